"""`callguard numbers list|add|update|delete`: a contract's telephone numbers, each rung on
one endpoint (SPEC §3 roles: fixed representative/dial-in/base; mobile native/office)."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.orm import Session

from callguard.cli._admin import add_listing_args, emit, emit_page, run
from callguard.services import numbers


def _list(args: argparse.Namespace) -> int:
    page = run(lambda s: numbers.list_numbers(s, args.contract, args.endpoint, args.limit,
                                            args.offset))
    return emit_page(args, page, [
        ("NUMBER", lambda n: n["number"]), ("CONTRACT", lambda n: n["contract"]),
        ("ENDPOINT", lambda n: n["endpoint"]), ("ROLE", lambda n: n["role"]),
        ("NUISANCE", lambda n: "yes" if n["nuisance"] else "-")])


def _number_json(s: Session, num: Any) -> dict[str, Any]:
    return numbers.number_json(num, num.contract.code, num.endpoint.name)


def _add(args: argparse.Namespace) -> int:
    def work(s: Session) -> dict[str, Any]:
        num = numbers.create_number(s, args.number, args.endpoint, args.role, args.nuisance)
        s.refresh(num)
        return _number_json(s, num)

    data = run(work)
    return emit(args, data, f"number {data['number']} ({data['role']}) added to "
                f"{data['contract']} on {data['endpoint']}"
                + ("; nuisance-call rejection on" if data["nuisance"] else ""))


def _update(args: argparse.Namespace) -> int:
    def work(s: Session) -> dict[str, Any]:
        num = numbers.update_number(s, args.number, args.endpoint, args.role, args.nuisance)
        s.refresh(num)
        return _number_json(s, num)

    data = run(work)
    return emit(args, data, f"number {data['number']} updated")


def _delete(args: argparse.Namespace) -> int:
    run(lambda s: numbers.delete_number(s, args.number))
    print(f"number {args.number} deleted")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("numbers", help="telephone numbers of contracts", description=__doc__)
    nsub = p.add_subparsers(dest="numbers_command", required=True, metavar="ACTION")
    ls = nsub.add_parser("list", help="numbers, optionally of one contract or endpoint")
    ls.add_argument("--contract")
    ls.add_argument("--endpoint")
    add_listing_args(ls)
    ls.set_defaults(handler=_list)
    add = nsub.add_parser("add", help="add a number to the contract of an endpoint")
    add.add_argument("number", help="national format, e.g. 0312345678")
    add.add_argument("--endpoint", required=True, help="the endpoint it rings")
    add.add_argument("--role", required=True, choices=numbers.ROLES)
    add.add_argument("--nuisance", action=argparse.BooleanOptionalAction, default=None,
                     help="subscribe it to nuisance-call rejection (default: yes for a "
                     "business number of a subscribed contract)")
    add.add_argument("--json", action="store_true", help="print the number as JSON")
    add.set_defaults(handler=_add)
    up = nsub.add_parser("update", help="move a number, change its role or subscription")
    up.add_argument("number")
    up.add_argument("--endpoint")
    up.add_argument("--role", choices=numbers.ROLES)
    up.add_argument("--nuisance", action=argparse.BooleanOptionalAction, default=None)
    up.add_argument("--json", action="store_true", help="print the number as JSON")
    up.set_defaults(handler=_update)
    rm = nsub.add_parser("delete", help="delete a number (its nuisance list goes with it)")
    rm.add_argument("number")
    rm.set_defaults(handler=_delete)
