"""What every operator service shares: the errors, the formats (also used by the OpenAPI
document), small validators, paging and the lookups by name."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from callguard.db.models import Contract, Endpoint, Number
from callguard.domain.nuisance import tokyo_date as tokyo_date  # re-exported: the call path's too

# Formats, shared with the OpenAPI document so the API rejects the same things up front.
CONTRACT_CODE_RE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"  # also a path segment (REC-FILE-1)
ENDPOINT_NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # a PJSIP section name
NUMBER_RE = r"^0[0-9]{9,10}$"  # national format (SPEC §2)
EXTENSION_RE = r"^[0-9]{2,6}$"
MAX_TEXT = 200

T = TypeVar("T")


class AdminError(Exception):
    """An operation refused; `status` is the HTTP status the API answers with (the CLI
    exits 2)."""

    status = 400


class Invalid(AdminError):
    status = 400


class NotFound(AdminError):
    status = 404


class Conflict(AdminError):
    status = 409


# ---- small validators ---------------------------------------------------------------------
def match(pattern: str, value: str, what: str) -> str:
    if not isinstance(value, str) or re.fullmatch(pattern, value) is None:
        raise Invalid(f"invalid {what}: {value!r}")
    return value


def text(value: str, what: str, limit: int = MAX_TEXT) -> str:
    if len(value) > limit or any(ord(ch) < 32 for ch in value):
        raise Invalid(f"{what} must be at most {limit} printable characters")
    return value


def int_range(value: int, low: int, high: int, what: str) -> int:
    if type(value) is not int or not low <= value <= high:
        raise Invalid(f"{what} must be an integer from {low} to {high}")
    return value


def address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise Invalid(f"invalid address {value!r}: an IPv4 or IPv6 address") from exc


def iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# ---- paging -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Page:
    """One page of a listing; `next_offset` is None on the last page. A keyset page (the
    recordings) carries `next_cursor` instead of an offset."""

    items: list[dict[str, Any]]
    limit: int | None
    offset: int
    next_offset: int | None
    next_cursor: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"items": self.items, "limit": self.limit, "offset": self.offset,
               "next_offset": self.next_offset}
        if self.next_cursor is not None:
            out["next_cursor"] = self.next_cursor
        return out


def page_of(session: Session, stmt: Select[*tuple[Any, ...]], limit: int | None,
            offset: int) -> list[Any]:
    """Rows of `stmt` for one page plus one lookahead row (tells whether there is a next)."""
    stmt = stmt.offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit + 1)
    return list(session.execute(stmt).all())


def make_page(rows: Sequence[T], limit: int | None, offset: int,
              render: Callable[[T], dict[str, Any]]) -> Page:
    more = limit is not None and len(rows) > limit
    shown = rows[:limit] if limit is not None else rows
    return Page([render(r) for r in shown], limit, offset, offset + len(shown) if more else None)


# ---- lookups ------------------------------------------------------------------------------
def get_contract(session: Session, code: str, *, lock: bool = False) -> Contract:
    stmt = select(Contract).where(Contract.code == code)
    c = session.scalar(stmt.with_for_update() if lock else stmt)
    if c is None:
        raise NotFound(f"no contract {code!r}")
    return c


def get_endpoint(session: Session, name: str) -> Endpoint:
    ep = session.scalar(select(Endpoint).where(Endpoint.name == name))
    if ep is None:
        raise NotFound(f"no endpoint {name!r}")
    return ep


def get_number(session: Session, digits: str) -> Number:
    num = session.scalar(select(Number).where(Number.number == digits))
    if num is None:
        raise NotFound(f"no number {digits!r}")
    return num
