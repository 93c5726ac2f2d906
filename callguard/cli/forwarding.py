"""`callguard forwarding set|clear|list`: forwarding of a number to an outside number
(REC-IN-2: forwarded calls are recorded too). Thin over `callguard.services.forwarding`."""

from __future__ import annotations

import argparse
from typing import Any

from callguard.cli._admin import add_listing_args, emit, emit_page, run
from callguard.services import forwarding


def _set(args: argparse.Namespace) -> int:
    data = run(lambda s: forwarding.set_forwarding(s, args.number, args.mode, args.to,
                                                   args.after))
    return emit(args, data, f"{data['number']}: {data['mode']} forwarding to {data['to']}")


def _clear(args: argparse.Namespace) -> int:
    run(lambda s: forwarding.clear_forwarding(s, args.number))
    return 0


def _list(args: argparse.Namespace) -> int:
    page = run(lambda s: forwarding.list_forwarding(s, args.contract, args.limit, args.offset))
    return emit_page(args, page, [("NUMBER", lambda d: d["number"]), ("TO", lambda d: d["to"]),
                                  ("MODE", lambda d: d["mode"]),
                                  ("AFTER_S", lambda d: d["after_s"])])


def register(sub: Any) -> None:
    p = sub.add_parser("forwarding", help="forward a number to an outside number")
    fsub = p.add_subparsers(dest="forwarding_command", required=True)
    s = fsub.add_parser("set", help="set forwarding of a number")
    s.add_argument("--number", required=True, help="our number, national format")
    s.add_argument("--to", required=True, help="the outside number calls go to")
    s.add_argument("--mode", required=True, choices=forwarding.MODES,
                   help="always, after ringing unanswered, or when the endpoint is unreachable")
    s.add_argument("--after", type=int, help="no-answer: seconds of ringing first (1-120, "
                   "default 20)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(handler=_set)
    c = fsub.add_parser("clear", help="remove forwarding of a number")
    c.add_argument("--number", required=True, help="our number, national format")
    c.set_defaults(handler=_clear)
    ls = fsub.add_parser("list", help="all forwardings")
    ls.add_argument("--contract", help="only this contract's numbers")
    add_listing_args(ls)
    ls.set_defaults(handler=_list)
