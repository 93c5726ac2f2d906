"""Voiding a subscription period entered by mistake (BILL, ADM-1/2): the period is not
billed, the subscription goes back to the one before it, and who did it is kept
(`voided_subscription_periods`). The rules are `domain.void`'s; this module reads the periods
and writes the outcome in the caller's transaction (nothing written on a refusal)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Date, cast, delete, func, select, update
from sqlalchemy.orm import Session

from callguard.db.models import (
    NuisanceSubscription,
    NuisanceUnitChange,
    Recording,
    RecordingSubscription,
    SubscriptionPeriod,
    VoidedSubscriptionPeriod,
)
from callguard.db.provision import ensure_nuisance_lists
from callguard.domain.audit import clean_actor
from callguard.domain.billing import NuisanceUnit, Period, UnitChange
from callguard.domain.void import SERVICES, NoSuchPeriod, VoidRefused, plan_void
from callguard.services import base as b

__all__ = ["SERVICES", "list_voided", "void_period", "voided_json"]

MAX_REASON = b.MAX_TEXT


def voided_json(row: VoidedSubscriptionPeriod) -> dict[str, Any]:
    return {"id": row.id, "contract": row.contract, "service": row.service,
            "activated_on": b.iso(row.activated_on), "cancelled_on": b.iso(row.cancelled_on),
            "unit": row.unit, "unit_changes": row.unit_changes, "reason": row.reason,
            "voided_by": row.voided_by, "voided_at": b.iso(row.voided_at)}


def void_period(session: Session, contract: str, service: str, activated_on: date,
                today: date, actor: str, force_past: bool = False,
                reason: str = "") -> VoidedSubscriptionPeriod:
    """Void the `service` period that began on `activated_on` as entered by mistake: it is
    not billed (its `subscription_periods` row and the unit changes inside it go) and the
    subscription goes back to the period before it (cancelled: the call path stops recording
    or screening through the tables' notifications, REL-5), or away when there was none. The
    audit keeps what it was, `actor` and `reason`. Refused (Conflict, nothing written): not
    the latest period, a month before this one unless `force_past` (`domain.void`), or a
    recording period that already recorded calls (their files would have no subscription
    keeping them; cancel it instead)."""
    if service not in SERVICES:
        raise b.Invalid(f"service must be one of {', '.join(SERVICES)}")
    b.text(reason, "reason", MAX_REASON)
    try:
        who = clean_actor(actor)
    except ValueError as exc:
        raise b.Invalid(str(exc)) from exc
    c = b.get_contract(session, contract, lock=True)
    sp, uc = SubscriptionPeriod, NuisanceUnitChange
    rows = session.execute(select(sp.activated_on, sp.cancelled_on, sp.unit).where(
        sp.contract_id == c.id, sp.service == service)).all()
    try:
        changes = [] if service == "recording" else [
            UnitChange(day, NuisanceUnit(new))
            for day, new in session.execute(select(uc.changed_on, uc.new_unit)
                                            .where(uc.contract_id == c.id))]
        plan = plan_void(service, [Period(a, e, None if u is None else NuisanceUnit(u))
                                   for a, e, u in rows], changes, activated_on, today, force_past)
    except NoSuchPeriod as exc:
        raise b.NotFound(f"contract {contract}: {exc}") from exc
    except VoidRefused as exc:
        raise b.Conflict(f"contract {contract}: {exc}") from exc
    except ValueError as exc:  # a row written by hand that billing would refuse too
        raise b.Conflict(f"contract {contract}: its {service} periods cannot be read: "
                         f"{exc}; nothing was voided") from exc
    voided = plan.voided
    model: Any = RecordingSubscription if service == "recording" else NuisanceSubscription
    sub = session.get(model, c.id, with_for_update=True)
    if sub is None or sub.activated_on != voided.activated_on:  # the triggers keep them equal
        raise b.Conflict(f"contract {contract}: the {service} subscription does not hold the "
                         f"period from {activated_on.isoformat()}; nothing was voided")
    if service == "recording":
        # Tokyo's calendar day of each call, in SQL (no Python datetime for year 1 or 9999).
        day = cast(func.timezone("Asia/Tokyo", Recording.started_at), Date)
        made = session.scalar(select(func.count()).where(
            Recording.contract_id == c.id, day >= voided.activated_on)) or 0
        if made:
            raise b.Conflict(f"contract {contract}: {made} call(s) were recorded under the "
                             f"recording period from {activated_on.isoformat()}; cancel it "
                             "instead (its recordings stay kept for their retention)")
    row = VoidedSubscriptionPeriod(
        contract=c.code, service=service, activated_on=voided.activated_on,
        cancelled_on=voided.cancelled_on,
        unit=None if voided.unit is None else str(voided.unit),
        unit_changes=len(plan.unit_changes), reason=reason, voided_by=who)
    session.add(row)
    if plan.unit_changes:
        session.execute(delete(uc).where(uc.contract_id == c.id,
                                         uc.changed_on.in_(plan.unit_changes)))
    # The period's row first: the subscription's update below then finds no period of its
    # old start and the trigger only re-states the period it goes back to.
    session.execute(delete(sp).where(sp.contract_id == c.id, sp.service == service,
                                     sp.activated_on == voided.activated_on))
    if plan.restore is None:
        session.delete(sub)  # its DELETE trigger erases the service's (no other) periods
    else:
        sub.activated_on, sub.cancelled_on = plan.restore.activated_on, plan.restore.cancelled_on
        if service == "nuisance":
            sub.unit = str(plan.restore_unit)
    session.flush()
    if plan.restore is not None and service == "nuisance":
        # The trigger re-stated the period with the subscription's unit (its unit at the
        # end); a period keeps the unit it began with (changes: nuisance_unit_changes).
        session.execute(update(sp).where(
            sp.contract_id == c.id, sp.service == service,
            sp.activated_on == plan.restore.activated_on).values(unit=str(plan.restore.unit)))
    if service == "nuisance":
        ensure_nuisance_lists(session, c)  # no subscription in force: its lists stop screening
    session.flush()
    return row


def list_voided(session: Session, contract: str | None = None, limit: int | None = None,
                offset: int = 0) -> b.Page:
    """The periods voided, newest first; `contract` by code, deleted contracts' too (the
    audit outlives them)."""
    v = VoidedSubscriptionPeriod
    stmt = select(v)
    if contract is not None:
        stmt = stmt.where(v.contract == contract)
    rows = b.page_of(session, stmt.order_by(v.voided_at.desc(), v.id.desc()), limit, offset)
    return b.make_page(rows, limit, offset, lambda r: voided_json(r[0]))
