"""`callguard nuisance show|counters|set-unit`: list sizes and counters, never the numbers
(ADM-1, NCR-PRIV-1, NCR-UNIT-1)."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session

from callguard.cli import CliError
from callguard.cli._common import db_session, print_json
from callguard.db import nuisance_repo
from callguard.db.models import NuisanceList


def _list_of(session: Session, number: str) -> NuisanceList:
    lst = nuisance_repo.list_for_number(session, number)
    if lst is None:
        raise CliError(f"{number} has no nuisance-call rejection list", code=2)
    return lst


def _show(args: argparse.Namespace) -> int:
    with db_session() as session:
        info = nuisance_repo.summary(session, _list_of(session, args.number), datetime.now(UTC))
    if args.json:
        print_json(info.to_json())
    else:
        last = "-" if info.last_month is None else info.last_month
        print(f"list {info.list} ({info.unit}): {info.entries}/{info.capacity} entries; "
              f"rejected this month {info.this_month}, last month {last}")
    return 0


def _counters(args: argparse.Namespace) -> int:
    """Every month's rejection count of the list screening a number (NCR-CNT-1)."""
    with db_session() as session:
        lst = _list_of(session, args.number)
        months = nuisance_repo.monthly_counts(session, lst.id)
    if args.json:
        print_json({"list": lst.id, "unit": lst.unit,
                    "months": [{"month": m, "count": c} for m, c in months]})
    else:
        print(f"list {lst.id} ({lst.unit})")
        for month, count in months:
            print(f"{month}  {count}")
    return 0


def _set_unit(args: argparse.Namespace) -> int:
    try:
        with db_session() as session:
            nuisance_repo.set_unit(session, args.contract, args.unit, date.today())
    except (LookupError, ValueError) as exc:
        raise CliError(str(exc), code=2) from exc
    print(f"{args.contract}: unit {args.unit}; new, empty lists and counters")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("nuisance", help="nuisance-call rejection lists (counts only)")
    nsub = p.add_subparsers(dest="nuisance_command", required=True)
    show = nsub.add_parser("show", help="size and counters of the list screening a number")
    show.add_argument("--number", required=True)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)
    counters = nsub.add_parser("counters", help="monthly rejection counts of a number's list")
    counters.add_argument("--number", required=True)
    counters.add_argument("--json", action="store_true")
    counters.set_defaults(handler=_counters)
    unit = nsub.add_parser("set-unit", help="change a contract's unit (starts empty lists)")
    unit.add_argument("--contract", required=True)
    unit.add_argument("unit", choices=("per-number", "per-contract"))
    unit.set_defaults(handler=_set_unit)
