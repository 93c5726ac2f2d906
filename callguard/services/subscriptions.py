"""The contract's services: call recording and nuisance-call rejection, subscribed, changed
and cancelled on Japanese calendar days (`today`, passed in; BILL-*, NCR-UNIT-1)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callguard.db import nuisance_repo
from callguard.db.models import (
    Contract,
    NuisanceEntry,
    NuisanceList,
    NuisanceSubscription,
    Number,
    RecordingSubscription,
)
from callguard.db.provision import deactivate_lists, ensure_nuisance_lists
from callguard.services import base as b

UNITS = ("per-number", "per-contract")
LIST_SIZES = (30,)  # source 004: the business service has no smaller (6-entry) plan
MAX_RETENTION_DAYS = 3650


def recording_json(sub: RecordingSubscription | None, today: date) -> dict[str, Any] | None:
    if sub is None:
        return None
    active = sub.activated_on <= today and (sub.cancelled_on is None or today < sub.cancelled_on)
    return {"activated_on": b.iso(sub.activated_on), "cancelled_on": b.iso(sub.cancelled_on),
            "retention_days": sub.retention_days, "active": active}


def nuisance_json(sub: NuisanceSubscription | None, today: date) -> dict[str, Any] | None:
    if sub is None:
        return None
    active = sub.activated_on <= today and (sub.cancelled_on is None or today < sub.cancelled_on)
    return {"unit": sub.unit, "list_size": sub.capacity, "activated_on": b.iso(sub.activated_on),
            "cancelled_on": b.iso(sub.cancelled_on), "active": active}



def subscriptions_json(session: Session, c: Contract, today: date) -> dict[str, Any]:
    return {"contract": c.code,
            "recording": recording_json(session.get(RecordingSubscription, c.id), today),
            "nuisance": nuisance_json(session.get(NuisanceSubscription, c.id), today)}


def list_subscriptions(session: Session, today: date, limit: int | None = None,
                       offset: int = 0) -> b.Page:
    rows = b.page_of(session, select(Contract).order_by(Contract.code), limit, offset)
    return b.make_page(rows, limit, offset, lambda r: subscriptions_json(session, r[0], today))


def _check_period(start: date, end: date, what: str) -> None:
    if end <= start:
        raise b.Conflict(f"{what} cancellation must come after its activation on "
                       f"{start.isoformat()}")


def _check_new_period(cancelled_on: date, start: date, what: str) -> None:
    """A subscription after a cancellation is a new period: it cannot begin inside the one
    that ended (its months are billed already)."""
    if start < cancelled_on:
        raise b.Conflict(f"{what} was subscribed until {cancelled_on.isoformat()} (its first "
                         f"day without); a new subscription starts on or after it")


def set_recording(session: Session, contract: str, today: date, activated_on: date | None = None,
                  retention_days: int | None = None) -> RecordingSubscription:
    """Subscribe (or re-subscribe after a cancellation: a new activation, BILL initial fee),
    or change the retention of an active subscription (REC-FILE-3). While a cancellation is
    still to come (cancelled_on after today), subscribing revokes it: the subscription goes
    on from its activation, with no new initial fee. The earlier periods stay billed: the
    database keeps every period (`subscription_periods`)."""
    c = b.get_contract(session, contract, lock=True)
    if retention_days is not None:
        b.int_range(retention_days, 1, MAX_RETENTION_DAYS, "retention_days")
    sub = session.get(RecordingSubscription, c.id)
    if sub is not None and sub.cancelled_on is not None and sub.cancelled_on > today:
        if activated_on is not None and activated_on != sub.activated_on:
            raise b.Conflict(f"recording is active since {sub.activated_on.isoformat()} with "
                             f"a cancellation pending on {sub.cancelled_on.isoformat()}; "
                             "subscribing again revokes that cancellation, without --from")
        sub.cancelled_on = None
        if retention_days is not None:
            sub.retention_days = retention_days
    elif sub is None or sub.cancelled_on is not None:
        start = activated_on or today
        if sub is not None and sub.cancelled_on is not None:
            _check_new_period(sub.cancelled_on, start, "recording")
        sub = sub or RecordingSubscription(contract_id=c.id)
        sub.activated_on = start
        sub.cancelled_on = None
        sub.retention_days = retention_days or sub.retention_days or 90
        session.add(sub)
    else:
        if activated_on is not None and activated_on != sub.activated_on:
            raise b.Conflict(f"recording is already active since {sub.activated_on.isoformat()}")
        if retention_days is not None:
            sub.retention_days = retention_days
    session.flush()
    return sub


def cancel_recording(session: Session, contract: str, today: date, on: date | None = None) -> None:
    c = b.get_contract(session, contract, lock=True)
    sub = session.get(RecordingSubscription, c.id)
    if sub is None or sub.cancelled_on is not None:
        raise b.Conflict(f"contract {contract} has no active recording subscription")
    end = on or today
    _check_period(sub.activated_on, end, "recording")
    sub.cancelled_on = end
    session.flush()


def set_nuisance(session: Session, contract: str, today: date, unit: str | None = None,
                 list_size: int | None = None, activated_on: date | None = None,
                 ) -> NuisanceSubscription:
    """Subscribe with a unit and list size, or change them. A unit change goes through
    `nuisance_repo.set_unit` (NCR-UNIT-1: new empty lists, the change billed as work)."""
    c = b.get_contract(session, contract, lock=True)
    if unit is not None and unit not in UNITS:
        raise b.Invalid(f"unit must be one of {', '.join(UNITS)}")
    if list_size is not None and list_size not in LIST_SIZES:
        raise b.Invalid(f"list_size must be one of {', '.join(map(str, LIST_SIZES))}")
    # The call path screens from the moment a subscription row is active (site_repo reads no
    # dates for it), so a future activation would screen unbilled days.
    if activated_on is not None and activated_on > today:
        raise b.Invalid("nuisance-call rejection cannot be activated in the future")
    sub = session.get(NuisanceSubscription, c.id)
    if sub is None or sub.cancelled_on is not None:
        if unit is None:
            raise b.Invalid("a new nuisance-call rejection subscription needs a unit")
        start = activated_on or today
        if sub is not None and sub.cancelled_on is not None:
            _check_new_period(sub.cancelled_on, start, "nuisance-call rejection")
        # A fresh subscription (or one after a cancellation) starts with new, empty lists.
        # The earlier period keeps its unit (`subscription_periods`): no unit change, no fee.
        deactivate_lists(session, c.id)
        sub = sub or NuisanceSubscription(contract_id=c.id)
        sub.unit, sub.capacity = unit, list_size or 30
        sub.activated_on, sub.cancelled_on = start, None
        session.add(sub)
        session.flush()
        if unit == "per-number" and not _any_subscribed(session, c.id):
            _subscribe_business_numbers(session, c.id)
        require_subscribed_numbers(session, c.id, unit)
        ensure_nuisance_lists(session, c)
        return sub
    if activated_on is not None and activated_on != sub.activated_on:
        raise b.Conflict(f"nuisance-call rejection is already active since "
                       f"{sub.activated_on.isoformat()}")
    if list_size is not None and list_size != sub.capacity:
        _resize_lists(session, c.id, list_size)
        sub.capacity = list_size
    if unit is not None and unit != sub.unit:
        nuisance_repo.set_unit(session, c.code, unit, today)
        require_subscribed_numbers(session, c.id, unit)
    session.flush()
    return sub


def _any_subscribed(session: Session, contract_id: int) -> bool:
    return session.scalar(select(func.count()).where(
        Number.contract_id == contract_id, Number.nuisance_subscribed.is_(True))) != 0


def _subscribe_business_numbers(session: Session, contract_id: int) -> None:
    for num in session.scalars(select(Number).where(Number.contract_id == contract_id,
                                                    Number.role != "native")):
        num.nuisance_subscribed = True
    session.flush()


def require_subscribed_numbers(session: Session, contract_id: int, unit: str) -> None:
    """A per-number subscription bills per subscribed number (BILL-*); with none it would
    screen nothing and could not be billed, so that state is never written."""
    if unit == "per-number" and not _any_subscribed(session, contract_id):
        raise b.Conflict("a per-number subscription needs at least one business number; "
                       "add the contract's numbers first")


def _resize_lists(session: Session, contract_id: int, size: int) -> None:
    """A smaller plan is refused while a list holds more entries than it allows: dropping
    registered callers silently would let them ring again (NCR-REG-5 asks first)."""
    lists = session.scalars(select(NuisanceList).where(
        NuisanceList.contract_id == contract_id, NuisanceList.active.is_(True))
        .with_for_update()).all()
    for lst in lists:
        used = session.scalar(select(func.count()).where(NuisanceEntry.list_id == lst.id)) or 0
        if used > size:
            raise b.Conflict(f"list {lst.id} holds {used} entries, more than {size}; delete "
                           "entries first (144, 3 or 9)")
    for lst in lists:
        lst.capacity = size
    session.flush()


def cancel_nuisance(session: Session, contract: str, today: date, on: date | None = None) -> None:
    c = b.get_contract(session, contract, lock=True)
    sub = session.get(NuisanceSubscription, c.id)
    if sub is None or sub.cancelled_on is not None:
        raise b.Conflict(f"contract {contract} has no active nuisance-call rejection")
    end = on or today
    if end > today:
        # Screening stops when the row is cancelled; a later date would bill unscreened days.
        raise b.Invalid("nuisance-call rejection cannot be cancelled in the future")
    _check_period(sub.activated_on, end, "nuisance-call rejection")
    sub.cancelled_on = end
    session.flush()
    ensure_nuisance_lists(session, c)  # lists of a cancelled subscription stop screening
