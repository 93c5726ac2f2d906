"""Forwarding of a number to an outside number (REC-IN-2: forwarded calls are recorded too)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard.db.models import Contract, Forwarding, Number
from callguard.domain.numbers import allowed_with_prefix, classify
from callguard.services import base as b

MODES = ("unconditional", "no-answer", "unreachable")
TARGET_RE = r"^[0-9]{1,20}$"
MIN_AFTER_S, MAX_AFTER_S, DEFAULT_AFTER_S = 1, 120, 20


def forwarding_json(number: str, fwd: Forwarding) -> dict[str, Any]:
    return {"number": number, "mode": fwd.mode, "to": fwd.target, "after_s": fwd.after_s}


def set_forwarding(session: Session, number: str, mode: str, to: str,
                   after_s: int | None = None) -> dict[str, Any]:
    """Set (or replace) the forwarding of one of our numbers; refused: an unreachable or
    looping target, an unknown mode, a ring time outside 1..120 s or without no-answer."""
    if mode not in MODES:
        raise b.Invalid(f"mode must be one of {', '.join(MODES)}")
    if not isinstance(to, str) or re.fullmatch(TARGET_RE, to) is None or not allowed_with_prefix(
            classify(to), line_is_050=False):
        raise b.Invalid(f"cannot forward to {to!r}: not a reachable outside number")
    if to == number:
        raise b.Invalid("a number cannot be forwarded to itself (the call would loop)")
    if after_s is not None and mode != "no-answer":
        raise b.Invalid("after_s applies to mode no-answer only")
    if after_s is not None:
        b.int_range(after_s, MIN_AFTER_S, MAX_AFTER_S, "after_s (seconds)")
    num = b.get_number(session, number)
    fwd = session.get(Forwarding, num.id) or Forwarding(number_id=num.id)
    fwd.mode, fwd.target, fwd.after_s = mode, to, after_s or DEFAULT_AFTER_S
    session.add(fwd)
    session.flush()
    return forwarding_json(num.number, fwd)


def get_forwarding(session: Session, number: str) -> Forwarding:
    fwd = session.get(Forwarding, b.get_number(session, number).id)
    if fwd is None:
        raise b.NotFound(f"{number} is not forwarded")
    return fwd


def clear_forwarding(session: Session, number: str) -> None:
    """Idempotent: a number without forwarding stays so (an unknown number is refused)."""
    fwd = session.get(Forwarding, b.get_number(session, number).id)
    if fwd is not None:
        session.delete(fwd)
        session.flush()


def list_forwarding(session: Session, contract: str | None = None, limit: int | None = None,
                    offset: int = 0) -> b.Page:
    stmt = (select(Forwarding, Number.number).join(Number, Number.id == Forwarding.number_id))
    if contract is not None:
        stmt = stmt.join(Contract, Contract.id == Number.contract_id).where(
            Contract.code == b.get_contract(session, contract).code)
    rows = b.page_of(session, stmt.order_by(Number.number), limit, offset)
    return b.make_page(rows, limit, offset, lambda r: forwarding_json(r[1], r[0]))
