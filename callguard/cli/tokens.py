"""`callguard tokens create|list|revoke`: bearer tokens of the HTTP API (ADM-2, SEC-2).

A contract token sees only its own contract (its recordings page, REC-FILE-4); an operator
token sees everything. Only a token's sha256 is stored: `create` prints it once.
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.orm import Session

from callguard.cli._admin import add_listing_args, emit, emit_page, run
from callguard.services import tokens


def _create(args: argparse.Namespace) -> int:
    def work(s: Session) -> dict[str, Any]:
        row, token = tokens.create_token(s, args.contract, args.label)
        return {**tokens.token_json(row, args.contract), "token": token}

    data = run(work)
    if args.json:
        return emit(args, data, "")
    print(data["token"])  # alone on stdout, so `TOKEN=$(callguard tokens create ...)` works
    return 0


def _list(args: argparse.Namespace) -> int:
    page = run(lambda s: tokens.list_tokens(s, args.contract, args.limit, args.offset))
    return emit_page(args, page, [
        ("ID", lambda t: t["id"]), ("CONTRACT", lambda t: t["contract"] or "(operator)"),
        ("LABEL", lambda t: t["label"]), ("CREATED", lambda t: t["created_at"])])


def _revoke(args: argparse.Namespace) -> int:
    run(lambda s: tokens.revoke_token(s, args.id))
    print(f"token {args.id} revoked")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("tokens", help="HTTP API tokens", description=__doc__)
    tsub = p.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    cr = tsub.add_parser("create", help="a new token, printed once")
    who = cr.add_mutually_exclusive_group(required=True)
    who.add_argument("--contract", help="a token for this contract only")
    who.add_argument("--operator", action="store_true", help="an operator token (everything)")
    cr.add_argument("--label", default="", help="what it is for")
    cr.add_argument("--json", action="store_true", help="print id, contract, label and token")
    cr.set_defaults(handler=_create)
    ls = tsub.add_parser("list", help="tokens (never the tokens themselves)")
    ls.add_argument("--contract")
    add_listing_args(ls)
    ls.set_defaults(handler=_list)
    rv = tsub.add_parser("revoke", help="delete a token by id")
    rv.add_argument("id", type=int)
    rv.set_defaults(handler=_revoke)
