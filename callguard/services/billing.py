"""Monthly bills in JPY and the price table (BILL-*); the history comes from `billing_counts`
through `callguard.db.billing_repo`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from callguard.db import billing_repo
from callguard.db.billing_repo import BillingError, PriceAudit, Report
from callguard.domain.billing import PriceChange, PricesInForce, month_start, month_text
from callguard.services import base as b

__all__ = ["BillingError", "parse_month", "price_history", "prices", "report", "set_prices"]


def parse_month(text: str) -> tuple[int, int]:
    """(year, month) of YYYY-MM; Invalid otherwise."""
    try:
        return billing_repo.parse_month(text)
    except ValueError as exc:
        raise b.Invalid(str(exc)) from exc


def report(session: Session, month: str, contract: str | None = None,
           limit: int | None = None, offset: int = 0,
           progress: Callable[[int, int], None] | None = None) -> Report:
    """Bills of every contract or of one (an unknown code is NotFound, not an empty report).
    A contract that cannot be billed is listed in `errors`; a broken price table raises
    BillingError."""
    parse_month(month)
    if contract is not None:
        b.get_contract(session, contract)
    return billing_repo.report(session, month, contract, limit, offset, progress=progress)


def prices(session: Session, today: date, month: str | None = None) -> PricesInForce:
    """The price table `month` (YYYY-MM; default: this month) is billed with."""
    year, mon = parse_month(month) if month is not None else (today.year, today.month)
    return billing_repo.prices(session, year, mon)


def price_history(session: Session, limit: int | None = None, offset: int = 0) -> b.Page:
    """The tables in force over time, oldest first: each with the month it is in force from
    (`prices_from`, null for the defaults), the prices set from that month (`changed`), the
    whole table, and who set them and when (`changed_by`/`changed_at`: the latest write of
    the month; `audit`: each price's; null: unknown, written before they were recorded)."""
    rows = billing_repo.price_table_history(session)[offset:]
    audit = billing_repo.price_audit(session)
    return b.make_page(rows if limit is None else rows[:limit + 1], limit, offset,
                       lambda entry: price_version_json(
                           entry, () if entry.effective_from is None
                           else audit.get(entry.effective_from, ())))


def price_version_json(entry: PricesInForce,
                       audit: Sequence[PriceAudit] = ()) -> dict[str, Any]:
    """One entry of the history. Fields are only ever added (a fixed interface): the month's
    own writer is the latest known one, as a month's prices may be set in several goes."""
    known = [a for a in audit if a.changed_at is not None]
    last = max(known, key=lambda a: a.changed_at or datetime.min) if known else None
    return {**entry.to_json(), "changed": dict(entry.changed),
            "changed_by": None if last is None else last.changed_by,
            "changed_at": None if last is None else b.iso(last.changed_at),
            "audit": {a.name: {"changed_by": a.changed_by, "changed_at": b.iso(a.changed_at)}
                      for a in audit}}


def set_prices(session: Session, values: dict[str, int], today: date,
               from_month: str | None = None, force_past: bool = False, *,
               actor: str | None = None, at: datetime | None = None) -> PricesInForce:
    """Set prices from the bill of `from_month` (YYYY-MM; default: this month, Tokyo) on; the
    months before keep theirs. A month before this one is refused (Conflict) unless
    `force_past`: its bills may have been sent. Refused values (unknown name, not a
    non-negative integer, over the bounds) store nothing. `actor` (`domain.audit`: the CLI
    and the API always say who) and `at` (default: the database's now) are kept with every
    price written, for `price_history`."""
    if not values:
        raise b.Invalid(f"set at least one price: {', '.join(billing_repo.PRICE_FIELDS)}")
    this_month = month_start(today)
    if from_month is None:
        first_day = this_month
    else:
        year, mon = parse_month(from_month)
        first_day = date(year, mon, 1)
    try:
        for name, value in values.items():
            PriceChange(first_day, name, value)  # a bad value is said before a past month
    except ValueError as exc:
        raise b.Invalid(str(exc)) from exc
    if first_day < this_month and not force_past:
        raise b.Conflict(f"{month_text(first_day)} is before this month "
                         f"({month_text(this_month)}): its bills may have been sent; to re-price "
                         "it anyway, force it (CLI --force-past, API force_past)")
    try:
        return billing_repo.set_prices(session, values, first_day, actor, at)
    except BillingError:
        raise
    except ValueError as exc:
        raise b.Invalid(str(exc)) from exc
