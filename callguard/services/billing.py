"""Monthly bills in JPY and the price table (BILL-*); the history comes from `billing_counts`
through `callguard.db.billing_repo`."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from callguard.db import billing_repo
from callguard.db.billing_repo import BillingError, Report
from callguard.domain.billing import PriceTable
from callguard.services import base as b

__all__ = ["BillingError", "parse_month", "prices", "report", "set_prices"]


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


def prices(session: Session) -> PriceTable:
    return billing_repo.prices(session)


def set_prices(session: Session, values: dict[str, int]) -> PriceTable:
    """Refused values (unknown name, not a non-negative integer) store nothing."""
    try:
        return billing_repo.set_prices(session, values)
    except BillingError:
        raise
    except ValueError as exc:
        raise b.Invalid(str(exc)) from exc
