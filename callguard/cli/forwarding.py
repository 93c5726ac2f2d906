"""`callguard forwarding set|clear|list`: forwarding of a number to an outside number
(REC-IN-2: forwarded calls are recorded too)."""

from __future__ import annotations

import argparse
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard.cli import CliError
from callguard.cli._common import db_session, print_json
from callguard.db.models import Forwarding, Number
from callguard.domain.numbers import allowed_with_prefix, classify


def _number(session: Session, digits: str) -> Number:
    num = session.scalar(select(Number).where(Number.number == digits))
    if num is None:
        raise CliError(f"no number {digits!r}", code=2)
    return num


def _set(args: argparse.Namespace) -> int:
    target = args.to
    if not re.fullmatch(r"[0-9]{1,20}", target) or not allowed_with_prefix(
            classify(target), line_is_050=False):
        raise CliError(f"cannot forward to {target!r}: not a reachable outside number", code=2)
    if target == args.number:
        raise CliError("a number cannot be forwarded to itself (the call would loop)", code=2)
    if args.after is not None and args.mode != "no-answer":
        raise CliError("--after applies to --mode no-answer only", code=2)
    if args.after is not None and not 1 <= args.after <= 120:
        raise CliError("--after must be 1..120 seconds", code=2)
    with db_session() as session:
        num = _number(session, args.number)
        fwd = session.get(Forwarding, num.id) or Forwarding(number_id=num.id)
        fwd.mode, fwd.target, fwd.after_s = args.mode, target, args.after or 20
        session.add(fwd)
    print(f"{args.number}: {args.mode} forwarding to {target}")
    return 0


def _clear(args: argparse.Namespace) -> int:
    with db_session() as session:
        fwd = session.get(Forwarding, _number(session, args.number).id)
        if fwd is not None:
            session.delete(fwd)
    return 0


def _list(args: argparse.Namespace) -> int:
    with db_session() as session:
        rows = session.execute(select(Number.number, Forwarding.mode, Forwarding.target,
                                      Forwarding.after_s)
                               .join(Forwarding, Forwarding.number_id == Number.id)).all()
    data = [{"number": n, "mode": m, "to": t, "after_s": a} for n, m, t, a in rows]
    if args.json:
        print_json(data)
    else:
        for d in data:
            print(f"{d['number']} → {d['to']} ({d['mode']}, after {d['after_s']} s)")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("forwarding", help="forward a number to an outside number")
    fsub = p.add_subparsers(dest="forwarding_command", required=True)
    s = fsub.add_parser("set", help="set forwarding of a number")
    s.add_argument("--number", required=True)
    s.add_argument("--to", required=True)
    s.add_argument("--mode", required=True, choices=("unconditional", "no-answer",
                                                      "unreachable"))
    s.add_argument("--after", type=int, help="no-answer: seconds of ringing first")
    s.set_defaults(handler=_set)
    c = fsub.add_parser("clear", help="remove forwarding of a number")
    c.add_argument("--number", required=True)
    c.set_defaults(handler=_clear)
    ls = fsub.add_parser("list", help="all forwardings")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_list)
