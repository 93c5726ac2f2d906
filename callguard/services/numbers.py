"""Numbers of a contract's endpoints, their roles and nuisance subscription (ADM-1)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard.db.models import Contract, Endpoint, NuisanceSubscription, Number
from callguard.db.provision import ensure_nuisance_lists
from callguard.domain.numbers import NumberClass, classify
from callguard.services import base as b
from callguard.services.subscriptions import require_subscribed_numbers

FIXED_ROLES = ("representative", "dial-in", "base", "freephone")
MOBILE_ROLES = ("native", "office")
ROLES = FIXED_ROLES + MOBILE_ROLES


def _number_class_for(role: str) -> tuple[NumberClass, ...]:
    # Source 000: a mobile's own number is 080/090 (070 too); business numbers are 0ABJ or 050.
    if role == "native":
        return (NumberClass.MOBILE,)
    if role == "freephone":
        # Source 000: a fixed line may be the terminating line of a freephone number
        # (「フリーコール」の着信先回線); its calls are recorded like the line's own.
        return (NumberClass.FREEPHONE,)
    return (NumberClass.GEOGRAPHIC, NumberClass.IP_PHONE)



def number_json(num: Number, code: str, endpoint: str) -> dict[str, Any]:
    return {"number": num.number, "contract": code, "endpoint": endpoint, "role": num.role,
            "nuisance": num.nuisance_subscribed, "created_at": b.iso(num.created_at)}


def list_numbers(session: Session, contract: str | None = None, endpoint: str | None = None,
                 limit: int | None = None, offset: int = 0) -> b.Page:
    stmt = (select(Number, Contract.code, Endpoint.name)
            .join(Contract, Contract.id == Number.contract_id)
            .join(Endpoint, Endpoint.id == Number.endpoint_id))
    if contract is not None:
        stmt = stmt.where(Contract.code == b.get_contract(session, contract).code)
    if endpoint is not None:
        stmt = stmt.where(Endpoint.name == b.get_endpoint(session, endpoint).name)
    rows = b.page_of(session, stmt.order_by(Contract.code, Number.number), limit, offset)
    return b.make_page(rows, limit, offset, lambda r: number_json(r[0], r[1], r[2]))


def _check_number(session: Session, c: Contract, ep: Endpoint, digits: str, role: str,
                  nuisance: bool, own_id: int | None) -> None:
    if ep.contract_id != c.id:
        raise b.Invalid(f"endpoint {ep.name} belongs to another contract")
    roles = FIXED_ROLES if c.kind == "fixed" else MOBILE_ROLES
    if role not in roles:
        raise b.Invalid(f"role of a {c.kind} contract's number must be one of {', '.join(roles)}")
    cls = classify(digits)
    if cls not in _number_class_for(role):
        raise b.Invalid(f"{digits} is {cls.value}, not a number a {role} line can have")
    if c.kind == "mobile":
        # One native and at most one office number per handset (presentation, REC-OUT-1/3).
        taken = select(Number.number).where(Number.endpoint_id == ep.id, Number.role == role)
        if own_id is not None:
            taken = taken.where(Number.id != own_id)
        if (other := session.scalar(taken)) is not None:
            raise b.Conflict(f"handset {ep.name} already has the {role} number {other}")
    if nuisance:
        sub = session.get(NuisanceSubscription, c.id)
        if sub is None or sub.cancelled_on is not None:
            raise b.Conflict(f"contract {c.code} has no nuisance-call rejection subscription")


def _default_nuisance(session: Session, c: Contract, role: str) -> bool:
    """A business number of a per-number subscriber is subscribed, as `set_unit` does."""
    sub = session.get(NuisanceSubscription, c.id)
    return sub is not None and sub.cancelled_on is None and role != "native"


def create_number(session: Session, number: str, endpoint: str, role: str,
                  nuisance: bool | None = None) -> Number:
    b.match(b.NUMBER_RE, number, "number")
    ep = b.get_endpoint(session, endpoint)
    c = b.get_contract(session, ep.contract.code, lock=True)
    if session.scalar(select(Number.id).where(Number.number == number)) is not None:
        raise b.Conflict(f"number {number} already exists")
    flag = _default_nuisance(session, c, role) if nuisance is None else nuisance
    _check_number(session, c, ep, number, role, flag, None)
    num = Number(number=number, contract_id=c.id, endpoint_id=ep.id, role=role,
                 nuisance_subscribed=flag)
    session.add(num)
    session.flush()
    ensure_nuisance_lists(session, c)  # a per-number subscriber's new number gets its list
    return num


def update_number(session: Session, number: str, endpoint: str | None = None,
                  role: str | None = None, nuisance: bool | None = None) -> Number:
    num = b.get_number(session, number)
    c = b.get_contract(session, num.contract.code, lock=True)
    ep = b.get_endpoint(session, endpoint) if endpoint is not None else num.endpoint
    new_role = role if role is not None else num.role
    flag = nuisance if nuisance is not None else num.nuisance_subscribed
    _check_number(session, c, ep, num.number, new_role, nuisance is True, num.id)
    num.endpoint_id, num.role, num.nuisance_subscribed = ep.id, new_role, flag
    session.flush()
    _keep_per_number_scope(session, c)
    ensure_nuisance_lists(session, c)
    return num


def delete_number(session: Session, number: str) -> None:
    """Its nuisance list and forwarding go with it; recordings keep the number as text."""
    num = b.get_number(session, number)
    c = b.get_contract(session, num.contract.code, lock=True)
    session.delete(num)
    session.flush()
    _keep_per_number_scope(session, c)
    ensure_nuisance_lists(session, c)


def _keep_per_number_scope(session: Session, c: Contract) -> None:
    sub = session.get(NuisanceSubscription, c.id)
    if sub is not None and sub.cancelled_on is None:
        try:
            require_subscribed_numbers(session, c.id, sub.unit)
        except b.Conflict as exc:
            raise b.Conflict(f"that is the last subscribed number of {c.code}'s per-number "
                           "nuisance-call rejection; cancel it or change its unit first"
                           ) from exc
