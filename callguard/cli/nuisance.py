"""`callguard nuisance show|counters|set-unit`: list sizes and counters, never the numbers
(ADM-1, NCR-PRIV-1, NCR-UNIT-1)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from callguard.cli._admin import emit, run, today
from callguard.services import nuisance


def _show(args: argparse.Namespace) -> int:
    info = run(lambda s: nuisance.show(s, args.number, datetime.now(UTC)))
    last = "-" if info["last_month"] is None else info["last_month"]
    return emit(args, info, f"list {info['list']} ({info['unit']}): {info['entries']}/"
                f"{info['capacity']} entries; rejected this month {info['this_month']}, "
                f"last month {last}")


def _counters(args: argparse.Namespace) -> int:
    """Every month's rejection count of the list screening a number (NCR-CNT-1)."""
    data = run(lambda s: nuisance.counters(s, args.number))
    lines = [f"list {data['list']} ({data['unit']})"]
    lines += [f"{m['month']}  {m['count']}" for m in data["months"]]
    return emit(args, data, "\n".join(lines))


def _set_unit(args: argparse.Namespace) -> int:
    """The change is dated on Tokyo's calendar day, like every service date (BILL-*)."""
    changed = run(lambda s: nuisance.set_unit(s, args.contract, args.unit, today()))
    if changed:
        print(f"{args.contract}: unit {args.unit}; new, empty lists and counters")
    else:
        print(f"{args.contract}: unit {args.unit} unchanged; lists and counters kept")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("nuisance", help="nuisance-call rejection lists (counts only)")
    nsub = p.add_subparsers(dest="nuisance_command", required=True)
    show = nsub.add_parser("show", help="size and counters of the list screening a number")
    show.add_argument("--number", required=True, help="our number, national format")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_show)
    counters = nsub.add_parser("counters", help="monthly rejection counts of a number's list")
    counters.add_argument("--number", required=True, help="our number, national format")
    counters.add_argument("--json", action="store_true", help="machine-readable output")
    counters.set_defaults(handler=_counters)
    unit = nsub.add_parser("set-unit", help="change a contract's unit (starts empty lists)")
    unit.add_argument("--contract", required=True, help="contract code")
    unit.add_argument("unit", choices=("per-number", "per-contract"),
                      help="one list per number or one per contract")
    unit.set_defaults(handler=_set_unit)
