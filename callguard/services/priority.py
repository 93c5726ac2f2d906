"""Disaster-priority lines (REC-CAP-1)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard.db.models import PriorityLine
from callguard.services import base as b


def list_priority(session: Session, limit: int | None = None, offset: int = 0) -> b.Page:
    rows = b.page_of(session, select(PriorityLine).order_by(PriorityLine.number), limit, offset)
    return b.make_page(rows, limit, offset,
                     lambda r: {"number": r[0].number, "description": r[0].description})


def add_priority(session: Session, number: str, description: str = "") -> PriorityLine:
    b.match(b.NUMBER_RE, number, "number")
    b.text(description, "description")
    if session.get(PriorityLine, number) is not None:
        raise b.Conflict(f"{number} is already a priority line")
    line = PriorityLine(number=number, description=description)
    session.add(line)
    session.flush()
    return line


def delete_priority(session: Session, number: str) -> None:
    line = session.get(PriorityLine, number)
    if line is None:
        raise b.NotFound(f"{number} is not a priority line")
    session.delete(line)
    session.flush()
