"""`callguard billing report|prices`: monthly bills per contract in JPY, excluding tax, with
the tax-included total (BILL-*)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from sqlalchemy.orm import Session

from callguard.cli import CliError
from callguard.cli._admin import Progress, run
from callguard.cli._common import print_json
from callguard.db import billing_repo
from callguard.db.billing_repo import Report
from callguard.services import billing


def _month(text: str) -> str:
    try:
        billing_repo.parse_month(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _yen(n: int) -> str:
    return f"{n:,}"


def _report(args: argparse.Namespace) -> int:
    progress = Progress(f"billing {args.month}")

    def work(s: Session) -> Report:
        # An unknown code exits 2, not an empty report.
        return billing.report(s, args.month, args.contract, progress=progress)

    try:
        rep = run(work)
    except billing.BillingError as exc:
        raise CliError(str(exc)) from exc
    data = rep.to_json()
    if args.json:
        print_json(data)
    else:
        for bill in data["bills"]:
            print(f"{bill['contract']}  {bill['month']}")
            for item in bill["items"]:
                print(f"  {item['description']:<60} {item['quantity']:>3} x "
                      f"{_yen(item['unit_price']):>6} = {_yen(item['amount']):>8}")
            print(f"  {'subtotal (excl. tax)':<60} {'':>16}{_yen(bill['subtotal']):>8}")
            print(f"  {'tax':<60} {'':>16}{_yen(bill['tax']):>8}")
            print(f"  {'total JPY':<60} {'':>16}{_yen(bill['total']):>8}")
        print(f"{len(data['bills'])} contract(s): subtotal {_yen(data['subtotal'])}, tax "
              f"{_yen(data['tax'])}, total {_yen(data['total'])} JPY")
    for e in data["errors"]:
        print(f"callguard: cannot bill {e['message']}", file=sys.stderr)
    return 1 if data["errors"] else 0


def _parse_setting(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or name not in billing_repo.PRICE_FIELDS:
        raise argparse.ArgumentTypeError(
            f"expected NAME=YEN with NAME one of {', '.join(billing_repo.PRICE_FIELDS)}")
    try:
        return name, int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from exc


def _prices(args: argparse.Namespace) -> int:
    def work(s: Session) -> dict[str, Any]:
        table = billing.set_prices(s, dict(args.set)) if args.set else billing.prices(s)
        return dataclasses.asdict(table)

    try:
        data = run(work)
    except billing.BillingError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print_json(data)
    else:
        for name, value in data.items():
            print(f"{name:<32} {_yen(value):>8}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("billing", help="monthly bills (JPY) and the price table",
                       description=__doc__)
    bsub = p.add_subparsers(dest="billing_command", required=True, metavar="ACTION")
    rep = bsub.add_parser("report", help="the bills of a month")
    rep.add_argument("--month", required=True, type=_month, help="YYYY-MM")
    rep.add_argument("--contract", help="only this contract")
    rep.add_argument("--json", action="store_true", help="machine-readable output")
    rep.set_defaults(handler=_report)
    pr = bsub.add_parser("prices", help="show or change the price table")
    pr.add_argument("--set", action="append", type=_parse_setting, metavar="NAME=YEN",
                    help="change one price (repeatable), e.g. nuisance_unit_change_fee=2000")
    pr.add_argument("--json", action="store_true", help="machine-readable output")
    pr.set_defaults(handler=_prices)
