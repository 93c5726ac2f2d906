"""Nuisance-call rejection lists: sizes and counters, never the numbers (NCR-PRIV-1,
NCR-CNT-1), and the unit change (NCR-UNIT-1, on Tokyo's `today`, passed in)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard.db import nuisance_repo
from callguard.db.models import Contract, NuisanceList, Number
from callguard.services import base as b
from callguard.services.subscriptions import UNITS, require_subscribed_numbers


def list_of(session: Session, number: str) -> NuisanceList:
    """The active list screening `number`."""
    lst = nuisance_repo.list_for_number(session, number)
    if lst is None:
        raise b.NotFound(f"{number} has no nuisance-call rejection list")
    return lst


def show(session: Session, number: str, now: datetime) -> dict[str, Any]:
    return nuisance_repo.summary(session, list_of(session, number), now).to_json()


def counters(session: Session, number: str) -> dict[str, Any]:
    """Every month's rejection count of the list screening a number (NCR-CNT-1)."""
    lst = list_of(session, number)
    return {"list": lst.id, "unit": lst.unit,
            "months": [{"month": m, "count": c}
                       for m, c in nuisance_repo.monthly_counts(session, lst.id)]}


def set_unit(session: Session, contract: str, unit: str, today: date) -> bool:
    """New, empty lists and counters; the change is billed as work (NCR-UNIT-1). False when
    the unit was already `unit` (nothing changed, nothing billed); Conflict when there is no
    subscription in force (none, or cancelled)."""
    if unit not in UNITS:
        raise b.Invalid(f"unit must be one of {', '.join(UNITS)}")
    c = b.get_contract(session, contract, lock=True)
    try:
        changed = nuisance_repo.set_unit(session, c.code, unit, today)
    except LookupError as exc:
        raise b.Conflict(str(exc)) from exc
    except ValueError as exc:
        raise b.Invalid(str(exc)) from exc
    require_subscribed_numbers(session, c.id, unit)
    return changed


def list_nuisance_lists(session: Session, contract: str | None, now: datetime,
                        limit: int | None = None, offset: int = 0) -> b.Page:
    stmt = (select(NuisanceList, Contract.code, Number.number)
            .join(Contract, Contract.id == NuisanceList.contract_id)
            .outerjoin(Number, Number.id == NuisanceList.number_id)
            .where(NuisanceList.active.is_(True)))
    if contract is not None:
        stmt = stmt.where(Contract.code == b.get_contract(session, contract).code)
    rows = b.page_of(session, stmt.order_by(Contract.code, NuisanceList.id), limit, offset)

    def render(r: Any) -> dict[str, Any]:
        lst, code, number = r
        info = nuisance_repo.summary(session, lst, now).to_json()
        return {**info, "contract": code, "number": number,
                "months": [{"month": m, "count": n}
                           for m, n in nuisance_repo.monthly_counts(session, lst.id)]}

    return b.make_page(rows, limit, offset, render)
