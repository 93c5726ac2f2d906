"""`callguard subscriptions ...`: the two add-ons of a contract (REC-*, NCR-*, BILL-*).

  subscriptions list                                     every contract's services
  subscriptions recording set|cancel --contract C        call recording, its retention
  subscriptions nuisance set|cancel --contract C         nuisance-call rejection: unit, list size
  subscriptions nuisance lists [--contract C]            list sizes and counters, never the
                                                         numbers (NCR-PRIV-1)
  subscriptions void --contract C --service S --from D   void a period entered by mistake
  subscriptions voided [--contract C]                    the periods voided: who, when, why

A unit change starts new, empty lists and counters and is billed as construction work
(NCR-UNIT-1). Dates are Japanese calendar days; a cancellation date is the first day without
the service.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from callguard.cli._admin import (
    actor,
    add_listing_args,
    emit,
    emit_page,
    iso_date,
    run,
    today,
)
from callguard.domain.void import SERVICES
from callguard.services import base, nuisance, subscriptions, voided_periods


def _state(sub: dict[str, Any] | None, extra: str) -> str:
    if sub is None:
        return "-"
    until = f" until {sub['cancelled_on']}" if sub["cancelled_on"] else ""
    return f"{'active' if sub['active'] else 'inactive'} from {sub['activated_on']}{until}, {extra}"


def _list(args: argparse.Namespace) -> int:
    page = run(lambda s: subscriptions.list_subscriptions(s, today(), args.limit, args.offset))
    return emit_page(args, page, [
        ("CONTRACT", lambda r: r["contract"]),
        ("RECORDING", lambda r: _state(r["recording"], f"kept {r['recording']['retention_days']}"
                                       " days") if r["recording"] else "-"),
        ("NUISANCE", lambda r: _state(r["nuisance"], f"{r['nuisance']['unit']}, list of "
                                      f"{r['nuisance']['list_size']}") if r["nuisance"]
         else "-")])


def _recording_set(args: argparse.Namespace) -> int:
    def work(s: Session) -> dict[str, Any]:
        subscriptions.set_recording(s, args.contract, today(), args.activated_on,
                                    args.retention_days)
        return subscriptions.subscriptions_json(s, base.get_contract(s, args.contract), today())

    data = run(work)
    rec = data["recording"]
    return emit(args, data, f"{args.contract}: call recording from {rec['activated_on']}, "
                f"kept {rec['retention_days']} days")


def _recording_cancel(args: argparse.Namespace) -> int:
    def work(s: Session) -> dict[str, Any]:
        subscriptions.cancel_recording(s, args.contract, today(), args.on)
        return subscriptions.subscriptions_json(s, base.get_contract(s, args.contract), today())

    data = run(work)
    return emit(args, data, f"{args.contract}: call recording ends; last day before "
                f"{data['recording']['cancelled_on']}")


def _nuisance_set(args: argparse.Namespace) -> int:
    def work(s: Session) -> dict[str, Any]:
        subscriptions.set_nuisance(s, args.contract, today(), args.unit, args.list_size,
                                   args.activated_on)
        return subscriptions.subscriptions_json(s, base.get_contract(s, args.contract), today())

    data = run(work)
    n = data["nuisance"]
    return emit(args, data, f"{args.contract}: nuisance-call rejection {n['unit']}, lists of "
                f"{n['list_size']}, from {n['activated_on']}")


def _nuisance_cancel(args: argparse.Namespace) -> int:
    def work(s: Session) -> dict[str, Any]:
        subscriptions.cancel_nuisance(s, args.contract, today(), args.on)
        return subscriptions.subscriptions_json(s, base.get_contract(s, args.contract), today())

    data = run(work)
    return emit(args, data, f"{args.contract}: nuisance-call rejection cancelled from "
                f"{data['nuisance']['cancelled_on']}")


def _nuisance_lists(args: argparse.Namespace) -> int:
    page = run(lambda s: nuisance.list_nuisance_lists(s, args.contract, datetime.now(UTC),
                                                   args.limit, args.offset))
    return emit_page(args, page, [
        ("LIST", lambda r: r["list"]), ("CONTRACT", lambda r: r["contract"]),
        ("NUMBER", lambda r: r["number"] or "(whole contract)"), ("UNIT", lambda r: r["unit"]),
        ("ENTRIES", lambda r: f"{r['entries']}/{r['capacity']}"),
        ("THIS MONTH", lambda r: r["this_month"]), ("LAST MONTH", lambda r: r["last_month"])])


def _void(args: argparse.Namespace) -> int:
    who, now = actor(), today()

    def work(s: Session) -> dict[str, Any]:
        row = voided_periods.void_period(s, args.contract, args.service, args.activated_on, now,
                                        who, args.force_past, args.reason)
        return voided_periods.voided_json(row)

    data = run(work)
    gone = (f", and its {data['unit_changes']} unit change(s)" if data["unit_changes"]
            else "")
    return emit(args, data, f"{args.contract}: {args.service} period from "
                f"{data['activated_on']} voided{gone} (not billed); by {data['voided_by']}")


def _voided(args: argparse.Namespace) -> int:
    page = run(lambda s: voided_periods.list_voided(s, args.contract, args.limit, args.offset))
    return emit_page(args, page, [
        ("CONTRACT", lambda r: r["contract"]), ("SERVICE", lambda r: r["service"]),
        ("PERIOD", lambda r: f"{r['activated_on']}..{r['cancelled_on'] or ''}"),
        ("BY", lambda r: r["voided_by"]), ("AT", lambda r: r["voided_at"]),
        ("REASON", lambda r: r["reason"] or "-")])


def register(sub: Any) -> None:
    p = sub.add_parser("subscriptions", help="call recording and nuisance-call rejection "
                       "add-ons", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ssub = p.add_subparsers(dest="subscriptions_command", required=True, metavar="SERVICE")
    ls = ssub.add_parser("list", help="every contract's services")
    add_listing_args(ls)
    ls.set_defaults(handler=_list)

    rec = ssub.add_parser("recording", help="the call-recording add-on")
    rsub = rec.add_subparsers(dest="recording_command", required=True, metavar="ACTION")
    rs = rsub.add_parser("set", help="subscribe (after a cancellation: a new period, billed "
                         "its own initial fee), revoke a pending cancellation, or change the "
                         "retention")
    rs.add_argument("--contract", required=True)
    rs.add_argument("--from", dest="activated_on", type=iso_date,
                    help="activation day YYYY-MM-DD (default today; billed initial fee)")
    rs.add_argument("--retention-days", type=int, help="keep recordings this long (default 90)")
    rs.add_argument("--json", action="store_true", help="print the subscriptions as JSON")
    rs.set_defaults(handler=_recording_set)
    rc = rsub.add_parser("cancel", help="end the add-on")
    rc.add_argument("--contract", required=True)
    rc.add_argument("--on", type=iso_date, help="first day without it (default today)")
    rc.add_argument("--json", action="store_true", help="print the subscriptions as JSON")
    rc.set_defaults(handler=_recording_cancel)

    ncr = ssub.add_parser("nuisance", help="the nuisance-call rejection add-on")
    nsub = ncr.add_subparsers(dest="nuisance_command", required=True, metavar="ACTION")
    ns = nsub.add_parser("set", help="subscribe, or change the unit or list size")
    ns.add_argument("--contract", required=True)
    ns.add_argument("--unit", choices=subscriptions.UNITS,
                    help="one list per number or per contract")
    ns.add_argument("--list-size", type=int, choices=subscriptions.LIST_SIZES,
                    help="entries per list (default 30)")
    ns.add_argument("--from", dest="activated_on", type=iso_date,
                    help="activation day YYYY-MM-DD (default today)")
    ns.add_argument("--json", action="store_true", help="print the subscriptions as JSON")
    ns.set_defaults(handler=_nuisance_set)
    nc = nsub.add_parser("cancel", help="end the add-on (its lists stop screening)")
    nc.add_argument("--contract", required=True)
    nc.add_argument("--on", type=iso_date, help="first day without it (default today)")
    nc.add_argument("--json", action="store_true", help="print the subscriptions as JSON")
    nc.set_defaults(handler=_nuisance_cancel)
    nl = nsub.add_parser("lists", help="list sizes and monthly counters (never the numbers)")
    nl.add_argument("--contract")
    add_listing_args(nl)
    nl.set_defaults(handler=_nuisance_lists)

    vd = ssub.add_parser(
        "void", help="void a period entered by mistake: not billed, the subscription goes back",
        description="Void a service's latest period as entered by mistake: it is not billed "
        "(nor the unit changes made in it), and the subscription goes back to the period "
        "before it (cancelled), or away when there was none; recording or screening stops. "
        "A period active before this month is refused (its bills may have been sent) unless "
        "--force-past. Who voided it, when and why is kept (`subscriptions voided`).")
    vd.add_argument("--contract", required=True)
    vd.add_argument("--service", required=True, choices=SERVICES,
                    help="which service's latest period: " + ", ".join(SERVICES))
    vd.add_argument("--from", dest="activated_on", required=True, type=iso_date,
                    metavar="YYYY-MM-DD", help="the day the period to void began")
    vd.add_argument("--reason", default="", help="why (kept in the audit)")
    vd.add_argument("--force-past", action="store_true",
                    help="allow a period active before this month (re-bills months whose "
                    "bills may have been sent)")
    vd.add_argument("--json", action="store_true", help="print the audit row as JSON")
    vd.set_defaults(handler=_void)
    vl = ssub.add_parser("voided", help="the periods voided: who, when, why")
    vl.add_argument("--contract", help="only this contract")
    add_listing_args(vl)
    vl.set_defaults(handler=_voided)
