"""`callguard billing report|prices|price-history`: monthly bills per contract in JPY,
excluding tax, with the tax-included total, and the prices each month is billed with (BILL-*)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sqlalchemy.orm import Session

from callguard.cli import CliError
from callguard.cli._admin import Progress, actor, add_listing_args, emit_page, run, today
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
        print(f"prices: {_in_force(data['prices_from'])}")
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
    if not args.set and (args.from_month is not None or args.force_past):
        raise CliError("--from and --force-past go with --set", code=2)
    if args.set and args.month is not None:
        raise CliError("--month shows a month's prices; with --set, use --from", code=2)
    now = today()
    who = actor() if args.set else None

    def work(s: Session) -> dict[str, Any]:
        if args.set:
            return billing.set_prices(s, dict(args.set), now, args.from_month,
                                      args.force_past, actor=who).to_json()
        return billing.prices(s, now, args.month).to_json()

    try:
        data = run(work)
    except billing.BillingError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print_json(data)
    else:
        for name in billing_repo.PRICE_FIELDS:
            print(f"{name:<32} {_yen(data[name]):>8}")
        print(f"{'in force from':<32} {data['prices_from'] or '(defaults)':>8}")
    return 0


def _in_force(prices_from: str | None) -> str:
    return ("the defaults (no change in force by then)" if prices_from is None
            else f"the table in force from {prices_from}")


def _price_history(args: argparse.Namespace) -> int:
    page = run(lambda s: billing.price_history(s, args.limit, args.offset))
    # The whole table of each entry, and each price's own writer: --json, or `billing prices
    # --month`. BY/AT: the month's latest write; "(unknown)": set before it was recorded.
    return emit_page(args, page, [
        ("FROM", lambda x: x["prices_from"] or "(start)"),
        ("CHANGED", lambda x: ", ".join(f"{k}={_yen(v)}" for k, v in x["changed"].items())
         or "(the defaults)"),
        ("BY", lambda x: _audit(x, x.get("changed_by"))),
        ("AT", lambda x: _audit(x, x.get("changed_at"))),
    ])


def _audit(entry: dict[str, Any], value: str | None) -> str:
    if not entry["changed"]:
        return "-"  # the defaults: nobody set them
    return "(unknown)" if value is None else value


def register(sub: Any) -> None:
    p = sub.add_parser("billing", help="monthly bills (JPY) and the price table",
                       description=__doc__)
    bsub = p.add_subparsers(dest="billing_command", required=True, metavar="ACTION")
    rep = bsub.add_parser("report", help="the bills of a month")
    rep.add_argument("--month", required=True, type=_month, help="YYYY-MM")
    rep.add_argument("--contract", help="only this contract")
    rep.add_argument("--json", action="store_true", help="machine-readable output")
    rep.set_defaults(handler=_report)
    pr = bsub.add_parser(
        "prices", help="show or change the price table",
        description="Show the price table a month is billed with (default: this month), or "
        "change prices from a month's bill on (default: this month's). A month is billed with "
        "the table in force on its first day: a change never re-prices an earlier month. "
        "`billing price-history` lists every change.")
    pr.add_argument("--set", action="append", type=_parse_setting, metavar="NAME=YEN",
                    help="change one price (repeatable), e.g. nuisance_unit_change_fee=2000")
    pr.add_argument("--from", dest="from_month", type=_month, metavar="YYYY-MM",
                    help="with --set: the first month billed at the new prices (default: "
                    "this month, Tokyo time)")
    pr.add_argument("--force-past", action="store_true",
                    help="with --set: allow --from before this month (re-prices months whose "
                    "bills may have been sent)")
    pr.add_argument("--month", type=_month, metavar="YYYY-MM",
                    help="show the table that month is billed with (default: this month)")
    pr.add_argument("--json", action="store_true", help="machine-readable output")
    pr.set_defaults(handler=_prices)
    hist = bsub.add_parser("price-history",
                           help="every price change: the month it applies from and the table")
    add_listing_args(hist)
    hist.set_defaults(handler=_price_history)
