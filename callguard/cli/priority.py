"""`callguard priority list|add|delete`: disaster-priority caller lines, connected without
recording when recordings are at their maximum (REC-CAP-1)."""

from __future__ import annotations

import argparse
from typing import Any

from callguard.cli._admin import add_listing_args, emit, emit_page, run
from callguard.services import priority


def _list(args: argparse.Namespace) -> int:
    page = run(lambda s: priority.list_priority(s, args.limit, args.offset))
    return emit_page(args, page, [("NUMBER", lambda r: r["number"]),
                                  ("DESCRIPTION", lambda r: r["description"])])


def _add(args: argparse.Namespace) -> int:
    line = run(lambda s: priority.add_priority(s, args.number, args.description))
    return emit(args, {"number": line.number, "description": line.description},
                f"{line.number} is a disaster-priority line")


def _delete(args: argparse.Namespace) -> int:
    run(lambda s: priority.delete_priority(s, args.number))
    print(f"{args.number} is no longer a priority line")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("priority", help="disaster-priority caller lines", description=__doc__)
    psub = p.add_subparsers(dest="priority_command", required=True, metavar="ACTION")
    ls = psub.add_parser("list", help="all priority lines")
    add_listing_args(ls)
    ls.set_defaults(handler=_list)
    add = psub.add_parser("add", help="add a priority line")
    add.add_argument("number", help="national format, e.g. 0312340119")
    add.add_argument("--description", default="")
    add.add_argument("--json", action="store_true", help="print the line as JSON")
    add.set_defaults(handler=_add)
    rm = psub.add_parser("delete", help="remove a priority line")
    rm.add_argument("number")
    rm.set_defaults(handler=_delete)
