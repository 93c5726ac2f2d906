"""Contracts (ADM-1, ADM-2): create, change, list, delete."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callguard.db.models import (
    Contract,
    Endpoint,
    NuisanceSubscription,
    Number,
    Recording,
    RecordingSubscription,
    SubscriptionPeriod,
)
from callguard.services import base as b
from callguard.services.subscriptions import nuisance_json, recording_json

KINDS = ("mobile", "fixed")


def contract_json(session: Session, c: Contract, today: date) -> dict[str, Any]:
    endpoints, channels = session.execute(
        select(func.count(Endpoint.id), func.coalesce(func.sum(Endpoint.channels), 0))
        .where(Endpoint.contract_id == c.id)).one()
    numbers = session.scalar(select(func.count(Number.id)).where(Number.contract_id == c.id))
    return {
        "code": c.code, "kind": c.kind, "name": c.name, "extension_digits": c.extension_digits,
        "created_at": b.iso(c.created_at), "endpoints": int(endpoints),
        "channels": int(channels), "numbers": int(numbers or 0),
        "recording": recording_json(session.get(RecordingSubscription, c.id), today),
        "nuisance": nuisance_json(session.get(NuisanceSubscription, c.id), today),
    }


def list_contracts(session: Session, today: date, limit: int | None = None,
                   offset: int = 0) -> b.Page:
    rows = b.page_of(session, select(Contract).order_by(Contract.code), limit, offset)
    return b.make_page(rows, limit, offset, lambda r: contract_json(session, r[0], today))


def create_contract(session: Session, code: str, kind: str, name: str = "",
                    extension_digits: int = 4) -> Contract:
    b.match(b.CONTRACT_CODE_RE, code, "contract code")
    if kind not in KINDS:
        raise b.Invalid(f"kind must be one of {', '.join(KINDS)}")
    b.text(name, "name")
    b.int_range(extension_digits, 2, 6, "extension_digits")
    if session.scalar(select(Contract.id).where(Contract.code == code)) is not None:
        raise b.Conflict(f"contract {code!r} already exists")
    c = Contract(code=code, kind=kind, name=name, extension_digits=extension_digits)
    session.add(c)
    session.flush()
    return c


def update_contract(session: Session, code: str, name: str | None = None,
                    extension_digits: int | None = None) -> Contract:
    c = b.get_contract(session, code, lock=True)
    if name is not None:
        c.name = b.text(name, "name")
    if extension_digits is not None:
        b.int_range(extension_digits, 2, 6, "extension_digits")
        odd = session.scalars(select(Endpoint.extension).where(
            Endpoint.contract_id == c.id, func.length(Endpoint.extension) != extension_digits
        )).all()
        if odd:
            raise b.Conflict(f"extensions {', '.join(sorted(odd))} do not have "
                           f"{extension_digits} digits")
        c.extension_digits = extension_digits
    session.flush()
    return c


def delete_contract(session: Session, code: str) -> None:
    """Refused while endpoints or recordings remain: the database would cascade silently and
    leave recording files without rows (REC-FILE-2). Refused as well once the contract has
    had any service: its subscriptions' history, counts and unit changes would go with it and
    its past months vanish from the bills (BILL); cancel its services instead. A contract
    never subscribed can still be deleted."""
    c = b.get_contract(session, code, lock=True)
    endpoints = session.scalar(select(func.count()).where(Endpoint.contract_id == c.id))
    recordings = session.scalar(select(func.count()).where(Recording.contract_id == c.id))
    if endpoints or recordings:
        raise b.Conflict(f"contract {code} still has {endpoints} endpoint(s) and {recordings} "
                       "recording(s); delete the endpoints and purge the recordings first")
    services = sorted(set(session.scalars(select(SubscriptionPeriod.service).where(
        SubscriptionPeriod.contract_id == c.id))))
    services += [name for name, model in (("recording", RecordingSubscription),
                                          ("nuisance", NuisanceSubscription))
                 if name not in services and session.get(model, c.id) is not None]
    if services:
        raise b.Conflict(f"contract {code} has had {' and '.join(services)} subscriptions and "
                         "its past bills would be lost with it; it cannot be deleted: cancel "
                         "its services instead")
    session.delete(c)
    session.flush()
