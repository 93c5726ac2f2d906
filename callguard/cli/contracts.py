"""`callguard contracts list|show|create|update|delete` (ADM-1)."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.orm import Session

from callguard.cli._admin import add_listing_args, emit, emit_page, run, today
from callguard.services import base, contracts


def _services(c: dict[str, Any]) -> str:
    out = []
    if c["recording"] and c["recording"]["active"]:
        out.append("recording")
    if c["nuisance"] and c["nuisance"]["active"]:
        out.append(f"nuisance {c['nuisance']['unit']}/{c['nuisance']['list_size']}")
    return ", ".join(out) or "-"


def _list(args: argparse.Namespace) -> int:
    page = run(lambda s: contracts.list_contracts(s, today(), args.limit, args.offset))
    return emit_page(args, page, [
        ("CODE", lambda c: c["code"]), ("KIND", lambda c: c["kind"]),
        ("ENDPOINTS", lambda c: c["endpoints"]), ("CHANNELS", lambda c: c["channels"]),
        ("NUMBERS", lambda c: c["numbers"]), ("SERVICES", _services),
        ("NAME", lambda c: c["name"])])


def _show(args: argparse.Namespace) -> int:
    data = run(lambda s: contracts.contract_json(s, base.get_contract(s, args.code), today()))
    return emit(args, data, f"{data['code']} ({data['kind']}) {data['name']}\n"
                f"  {data['endpoints']} endpoints, {data['channels']} channels, "
                f"{data['numbers']} numbers; services: {_services(data)}")


def _create(args: argparse.Namespace) -> int:
    def work(s: Session) -> dict[str, Any]:
        return contracts.contract_json(s, contracts.create_contract(
            s, args.code, args.kind, args.name, args.extension_digits), today())

    data = run(work)
    return emit(args, data, f"contract {data['code']} ({data['kind']}) created")


def _update(args: argparse.Namespace) -> int:
    def work(s: Session) -> dict[str, Any]:
        return contracts.contract_json(s, contracts.update_contract(
            s, args.code, args.name, args.extension_digits), today())

    data = run(work)
    return emit(args, data, f"contract {data['code']} updated")


def _delete(args: argparse.Namespace) -> int:
    run(lambda s: contracts.delete_contract(s, args.code))
    print(f"contract {args.code} deleted")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("contracts", help="customer contracts (mobile or fixed)",
                       description="Customer contracts. A contract's code is also a directory "
                       "name of its recordings.")
    csub = p.add_subparsers(dest="contracts_command", required=True, metavar="ACTION")
    ls = csub.add_parser("list", help="all contracts with their size and services")
    add_listing_args(ls)
    ls.set_defaults(handler=_list)
    show = csub.add_parser("show", help="one contract")
    show.add_argument("code")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_show)
    cr = csub.add_parser("create", help="a new contract")
    cr.add_argument("code", help="e.g. F3 (letters, digits, - and _)")
    cr.add_argument("--kind", required=True, choices=contracts.KINDS)
    cr.add_argument("--name", default="", help="customer name")
    cr.add_argument("--extension-digits", type=int, default=4,
                    help="length of the contract's extensions (default 4)")
    cr.add_argument("--json", action="store_true", help="print the contract as JSON")
    cr.set_defaults(handler=_create)
    up = csub.add_parser("update", help="change a contract's name or extension length")
    up.add_argument("code")
    up.add_argument("--name")
    up.add_argument("--extension-digits", type=int)
    up.add_argument("--json", action="store_true", help="print the contract as JSON")
    up.set_defaults(handler=_update)
    rm = csub.add_parser("delete", help="delete a contract with no endpoints, no recordings "
                         "and no service ever subscribed (otherwise cancel its services)")
    rm.add_argument("code")
    rm.set_defaults(handler=_delete)
