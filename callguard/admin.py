"""Operator operations shared by the CLI and the HTTP API (ADM-1, ADM-2): contracts, endpoints
(with their channels), numbers, service subscriptions, priority lines and API tokens.

Each function takes a sync Session inside the caller's transaction (the CLI's `db_session()`,
the API's worker-thread transaction) and validates everything before it writes anything, so an
error leaves the database as it was (ADM-2, REL-4). Errors are `AdminError`s carrying the HTTP
status the API answers with; the CLI turns them into one-line messages with exit status 2.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from callguard.db import nuisance_repo
from callguard.db.models import (
    ApiToken,
    Contract,
    Endpoint,
    NuisanceEntry,
    NuisanceList,
    NuisanceSubscription,
    Number,
    PriorityLine,
    Recording,
    RecordingSubscription,
)
from callguard.db.provision import deactivate_lists, ensure_nuisance_lists
from callguard.domain.nuisance import TOKYO
from callguard.domain.numbers import NumberClass, classify

# Formats, shared with the OpenAPI document so the API rejects the same things up front.
CONTRACT_CODE_RE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"  # also a path segment (REC-FILE-1)
ENDPOINT_NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # a PJSIP section name
NUMBER_RE = r"^0[0-9]{9,10}$"  # national format (SPEC §2)
EXTENSION_RE = r"^[0-9]{2,6}$"
KINDS = ("mobile", "fixed")
FIXED_ROLES = ("representative", "dial-in", "base", "freephone")
MOBILE_ROLES = ("native", "office")
ROLES = FIXED_ROLES + MOBILE_ROLES
UNITS = ("per-number", "per-contract")
LIST_SIZES = (30,)  # source 004: the business service has no smaller (6-entry) plan
MAX_CHANNELS = 100
MAX_RETENTION_DAYS = 3650
MAX_TEXT = 200
MAX_LABEL = 100  # api_tokens.label
TOKEN_PREFIX = "cgt_"  # noqa: S105 - a marker, not a credential

T = TypeVar("T")


class AdminError(Exception):
    """An operation refused; `status` is the HTTP status the API answers with."""

    status = 400


class Invalid(AdminError):
    status = 400


class NotFound(AdminError):
    status = 404


class Conflict(AdminError):
    status = 409


def today_tokyo() -> date:
    """Service dates are Japanese calendar days (the months billed are, too)."""
    return datetime.now(TOKYO).date()


# ---- small validators ---------------------------------------------------------------------
def _match(pattern: str, value: str, what: str) -> str:
    if not isinstance(value, str) or re.fullmatch(pattern, value) is None:
        raise Invalid(f"invalid {what}: {value!r}")
    return value


def _text(value: str, what: str, limit: int = MAX_TEXT) -> str:
    if len(value) > limit or any(ord(ch) < 32 for ch in value):
        raise Invalid(f"{what} must be at most {limit} printable characters")
    return value


def _int_range(value: int, low: int, high: int, what: str) -> int:
    if type(value) is not int or not low <= value <= high:
        raise Invalid(f"{what} must be an integer from {low} to {high}")
    return value


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise Invalid(f"invalid address {value!r}: an IPv4 or IPv6 address") from exc


def _number_class_for(role: str) -> tuple[NumberClass, ...]:
    # Source 000: a mobile's own number is 080/090 (070 too); business numbers are 0ABJ or 050.
    if role == "native":
        return (NumberClass.MOBILE,)
    if role == "freephone":
        # Source 000: a fixed line may be the terminating line of a freephone number
        # (「フリーコール」の着信先回線); its calls are recorded like the line's own.
        return (NumberClass.FREEPHONE,)
    return (NumberClass.GEOGRAPHIC, NumberClass.IP_PHONE)


@dataclass(frozen=True)
class Page:
    """One page of a listing; `next_offset` is None on the last page."""

    items: list[dict[str, Any]]
    limit: int | None
    offset: int
    next_offset: int | None

    def to_json(self) -> dict[str, Any]:
        return {"items": self.items, "limit": self.limit, "offset": self.offset,
                "next_offset": self.next_offset}


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


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


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


# ---- contracts ----------------------------------------------------------------------------
def _recording_json(sub: RecordingSubscription | None, today: date) -> dict[str, Any] | None:
    if sub is None:
        return None
    active = sub.activated_on <= today and (sub.cancelled_on is None or today < sub.cancelled_on)
    return {"activated_on": _iso(sub.activated_on), "cancelled_on": _iso(sub.cancelled_on),
            "retention_days": sub.retention_days, "active": active}


def _nuisance_json(sub: NuisanceSubscription | None, today: date) -> dict[str, Any] | None:
    if sub is None:
        return None
    active = sub.activated_on <= today and (sub.cancelled_on is None or today < sub.cancelled_on)
    return {"unit": sub.unit, "list_size": sub.capacity, "activated_on": _iso(sub.activated_on),
            "cancelled_on": _iso(sub.cancelled_on), "active": active}


def contract_json(session: Session, c: Contract) -> dict[str, Any]:
    today = today_tokyo()
    endpoints, channels = session.execute(
        select(func.count(Endpoint.id), func.coalesce(func.sum(Endpoint.channels), 0))
        .where(Endpoint.contract_id == c.id)).one()
    numbers = session.scalar(select(func.count(Number.id)).where(Number.contract_id == c.id))
    return {
        "code": c.code, "kind": c.kind, "name": c.name, "extension_digits": c.extension_digits,
        "created_at": _iso(c.created_at), "endpoints": int(endpoints),
        "channels": int(channels), "numbers": int(numbers or 0),
        "recording": _recording_json(session.get(RecordingSubscription, c.id), today),
        "nuisance": _nuisance_json(session.get(NuisanceSubscription, c.id), today),
    }


def list_contracts(session: Session, limit: int | None = None, offset: int = 0) -> Page:
    rows = page_of(session, select(Contract).order_by(Contract.code), limit, offset)
    return make_page(rows, limit, offset, lambda r: contract_json(session, r[0]))


def create_contract(session: Session, code: str, kind: str, name: str = "",
                    extension_digits: int = 4) -> Contract:
    _match(CONTRACT_CODE_RE, code, "contract code")
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}")
    _text(name, "name")
    _int_range(extension_digits, 2, 6, "extension_digits")
    if session.scalar(select(Contract.id).where(Contract.code == code)) is not None:
        raise Conflict(f"contract {code!r} already exists")
    c = Contract(code=code, kind=kind, name=name, extension_digits=extension_digits)
    session.add(c)
    session.flush()
    return c


def update_contract(session: Session, code: str, name: str | None = None,
                    extension_digits: int | None = None) -> Contract:
    c = get_contract(session, code, lock=True)
    if name is not None:
        c.name = _text(name, "name")
    if extension_digits is not None:
        _int_range(extension_digits, 2, 6, "extension_digits")
        odd = session.scalars(select(Endpoint.extension).where(
            Endpoint.contract_id == c.id, func.length(Endpoint.extension) != extension_digits
        )).all()
        if odd:
            raise Conflict(f"extensions {', '.join(sorted(odd))} do not have "
                           f"{extension_digits} digits")
        c.extension_digits = extension_digits
    session.flush()
    return c


def delete_contract(session: Session, code: str) -> None:
    """Refused while endpoints or recordings remain: the database would cascade silently and
    leave recording files without rows (REC-FILE-2)."""
    c = get_contract(session, code, lock=True)
    endpoints = session.scalar(select(func.count()).where(Endpoint.contract_id == c.id))
    recordings = session.scalar(select(func.count()).where(Recording.contract_id == c.id))
    if endpoints or recordings:
        raise Conflict(f"contract {code} still has {endpoints} endpoint(s) and {recordings} "
                       "recording(s); delete the endpoints and purge the recordings first")
    session.delete(c)
    session.flush()


# ---- endpoints (customer equipment, with their channels) ----------------------------------
def endpoint_json(session: Session, ep: Endpoint, code: str | None = None) -> dict[str, Any]:
    numbers = session.scalars(select(Number.number).where(Number.endpoint_id == ep.id)
                              .order_by(Number.id)).all()
    return {"name": ep.name, "contract": code or ep.contract.code, "address": ep.address,
            "extension": ep.extension, "channels": ep.channels, "roaming": ep.roaming,
            "numbers": list(numbers), "created_at": _iso(ep.created_at)}


def list_endpoints(session: Session, contract: str | None = None, limit: int | None = None,
                   offset: int = 0) -> Page:
    stmt = select(Endpoint, Contract.code).join(Contract, Contract.id == Endpoint.contract_id)
    if contract is not None:
        stmt = stmt.where(Contract.code == get_contract(session, contract).code)
    rows = page_of(session, stmt.order_by(Contract.code, Endpoint.extension, Endpoint.name),
                   limit, offset)
    return make_page(rows, limit, offset, lambda r: endpoint_json(session, r[0], r[1]))


def _check_endpoint(session: Session, contract: Contract, address: str, extension: str,
                    channels: int, roaming: bool, own_id: int | None) -> None:
    _match(EXTENSION_RE, extension, "extension")
    if len(extension) != contract.extension_digits:
        raise Invalid(f"extension must have {contract.extension_digits} digits "
                      f"(contract {contract.code})")
    _int_range(channels, 1, MAX_CHANNELS, "channels")
    if contract.kind == "mobile" and channels != 1:
        raise Invalid("a mobile handset has one channel")
    if contract.kind == "fixed" and roaming:
        raise Invalid("only a mobile handset can be roaming")
    # SEC-1: the source address identifies the endpoint; two owners would be ambiguous.
    same_address = select(Endpoint.name).where(Endpoint.address == address)
    same_ext = select(Endpoint.name).where(Endpoint.contract_id == contract.id,
                                           Endpoint.extension == extension)
    if own_id is not None:
        same_address = same_address.where(Endpoint.id != own_id)
        same_ext = same_ext.where(Endpoint.id != own_id)
    if (other := session.scalar(same_address)) is not None:
        raise Conflict(f"address {address} is already endpoint {other}")
    if (other := session.scalar(same_ext)) is not None:
        raise Conflict(f"extension {extension} is already endpoint {other} of {contract.code}")


def create_endpoint(session: Session, name: str, contract: str, address: str,
                    extension: str, channels: int = 1, roaming: bool = False) -> Endpoint:
    _match(ENDPOINT_NAME_RE, name, "endpoint name")
    addr = _address(address)
    c = get_contract(session, contract, lock=True)
    if session.scalar(select(Endpoint.id).where(Endpoint.name == name)) is not None:
        raise Conflict(f"endpoint {name!r} already exists")
    _check_endpoint(session, c, addr, extension, channels, roaming, None)
    ep = Endpoint(name=name, contract_id=c.id, address=addr, extension=extension,
                  channels=channels, roaming=roaming)
    session.add(ep)
    session.flush()
    return ep


def update_endpoint(session: Session, name: str, address: str | None = None,
                    extension: str | None = None, channels: int | None = None,
                    roaming: bool | None = None) -> Endpoint:
    ep = get_endpoint(session, name)
    c = get_contract(session, ep.contract.code, lock=True)
    addr = _address(address) if address is not None else ep.address
    ext = extension if extension is not None else ep.extension
    ch = channels if channels is not None else ep.channels
    roam = roaming if roaming is not None else ep.roaming
    _check_endpoint(session, c, addr, ext, ch, roam, ep.id)
    ep.address, ep.extension, ep.channels, ep.roaming = addr, ext, ch, roam
    session.flush()
    return ep


def delete_endpoint(session: Session, name: str) -> None:
    ep = get_endpoint(session, name)
    numbers = session.scalars(select(Number.number).where(Number.endpoint_id == ep.id)).all()
    if numbers:
        raise Conflict(f"endpoint {name} still rings {', '.join(numbers)}; move or delete "
                       "those numbers first")
    session.delete(ep)
    session.flush()


# ---- numbers ------------------------------------------------------------------------------
def number_json(num: Number, code: str, endpoint: str) -> dict[str, Any]:
    return {"number": num.number, "contract": code, "endpoint": endpoint, "role": num.role,
            "nuisance": num.nuisance_subscribed, "created_at": _iso(num.created_at)}


def list_numbers(session: Session, contract: str | None = None, endpoint: str | None = None,
                 limit: int | None = None, offset: int = 0) -> Page:
    stmt = (select(Number, Contract.code, Endpoint.name)
            .join(Contract, Contract.id == Number.contract_id)
            .join(Endpoint, Endpoint.id == Number.endpoint_id))
    if contract is not None:
        stmt = stmt.where(Contract.code == get_contract(session, contract).code)
    if endpoint is not None:
        stmt = stmt.where(Endpoint.name == get_endpoint(session, endpoint).name)
    rows = page_of(session, stmt.order_by(Contract.code, Number.number), limit, offset)
    return make_page(rows, limit, offset, lambda r: number_json(r[0], r[1], r[2]))


def _check_number(session: Session, c: Contract, ep: Endpoint, digits: str, role: str,
                  nuisance: bool, own_id: int | None) -> None:
    if ep.contract_id != c.id:
        raise Invalid(f"endpoint {ep.name} belongs to another contract")
    roles = FIXED_ROLES if c.kind == "fixed" else MOBILE_ROLES
    if role not in roles:
        raise Invalid(f"role of a {c.kind} contract's number must be one of {', '.join(roles)}")
    cls = classify(digits)
    if cls not in _number_class_for(role):
        raise Invalid(f"{digits} is {cls.value}, not a number a {role} line can have")
    if c.kind == "mobile":
        # One native and at most one office number per handset (presentation, REC-OUT-1/3).
        taken = select(Number.number).where(Number.endpoint_id == ep.id, Number.role == role)
        if own_id is not None:
            taken = taken.where(Number.id != own_id)
        if (other := session.scalar(taken)) is not None:
            raise Conflict(f"handset {ep.name} already has the {role} number {other}")
    if nuisance:
        sub = session.get(NuisanceSubscription, c.id)
        if sub is None or sub.cancelled_on is not None:
            raise Conflict(f"contract {c.code} has no nuisance-call rejection subscription")


def _default_nuisance(session: Session, c: Contract, role: str) -> bool:
    """A business number of a per-number subscriber is subscribed, as `set_unit` does."""
    sub = session.get(NuisanceSubscription, c.id)
    return sub is not None and sub.cancelled_on is None and role != "native"


def create_number(session: Session, number: str, endpoint: str, role: str,
                  nuisance: bool | None = None) -> Number:
    _match(NUMBER_RE, number, "number")
    ep = get_endpoint(session, endpoint)
    c = get_contract(session, ep.contract.code, lock=True)
    if session.scalar(select(Number.id).where(Number.number == number)) is not None:
        raise Conflict(f"number {number} already exists")
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
    num = get_number(session, number)
    c = get_contract(session, num.contract.code, lock=True)
    ep = get_endpoint(session, endpoint) if endpoint is not None else num.endpoint
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
    num = get_number(session, number)
    c = get_contract(session, num.contract.code, lock=True)
    session.delete(num)
    session.flush()
    _keep_per_number_scope(session, c)
    ensure_nuisance_lists(session, c)


def _keep_per_number_scope(session: Session, c: Contract) -> None:
    sub = session.get(NuisanceSubscription, c.id)
    if sub is not None and sub.cancelled_on is None:
        try:
            _require_subscribed_numbers(session, c.id, sub.unit)
        except Conflict as exc:
            raise Conflict(f"that is the last subscribed number of {c.code}'s per-number "
                           "nuisance-call rejection; cancel it or change its unit first"
                           ) from exc


# ---- service subscriptions ----------------------------------------------------------------
def subscriptions_json(session: Session, c: Contract) -> dict[str, Any]:
    today = today_tokyo()
    return {"contract": c.code,
            "recording": _recording_json(session.get(RecordingSubscription, c.id), today),
            "nuisance": _nuisance_json(session.get(NuisanceSubscription, c.id), today)}


def list_subscriptions(session: Session, limit: int | None = None, offset: int = 0) -> Page:
    rows = page_of(session, select(Contract).order_by(Contract.code), limit, offset)
    return make_page(rows, limit, offset, lambda r: subscriptions_json(session, r[0]))


def _check_period(start: date, end: date, what: str) -> None:
    if end <= start:
        raise Conflict(f"{what} cancellation must come after its activation on "
                       f"{start.isoformat()}")


def set_recording(session: Session, contract: str, activated_on: date | None = None,
                  retention_days: int | None = None) -> RecordingSubscription:
    """Subscribe (or re-subscribe after a cancellation: a new activation, BILL initial fee),
    or change the retention of an active subscription (REC-FILE-3)."""
    c = get_contract(session, contract, lock=True)
    if retention_days is not None:
        _int_range(retention_days, 1, MAX_RETENTION_DAYS, "retention_days")
    sub = session.get(RecordingSubscription, c.id)
    if sub is None or sub.cancelled_on is not None:
        sub = sub or RecordingSubscription(contract_id=c.id)
        sub.activated_on = activated_on or today_tokyo()
        sub.cancelled_on = None
        sub.retention_days = retention_days or sub.retention_days or 90
        session.add(sub)
    else:
        if activated_on is not None and activated_on != sub.activated_on:
            raise Conflict(f"recording is already active since {sub.activated_on.isoformat()}")
        if retention_days is not None:
            sub.retention_days = retention_days
    session.flush()
    return sub


def cancel_recording(session: Session, contract: str, on: date | None = None) -> None:
    c = get_contract(session, contract, lock=True)
    sub = session.get(RecordingSubscription, c.id)
    if sub is None or sub.cancelled_on is not None:
        raise Conflict(f"contract {contract} has no active recording subscription")
    end = on or today_tokyo()
    _check_period(sub.activated_on, end, "recording")
    sub.cancelled_on = end
    session.flush()


def set_nuisance(session: Session, contract: str, unit: str | None = None,
                 list_size: int | None = None, activated_on: date | None = None,
                 ) -> NuisanceSubscription:
    """Subscribe with a unit and list size, or change them. A unit change goes through
    `nuisance_repo.set_unit` (NCR-UNIT-1: new empty lists, the change billed as work)."""
    c = get_contract(session, contract, lock=True)
    if unit is not None and unit not in UNITS:
        raise Invalid(f"unit must be one of {', '.join(UNITS)}")
    if list_size is not None and list_size not in LIST_SIZES:
        raise Invalid(f"list_size must be one of {', '.join(map(str, LIST_SIZES))}")
    # The call path screens from the moment a subscription row is active (site_repo reads no
    # dates for it), so a future activation would screen unbilled days.
    if activated_on is not None and activated_on > today_tokyo():
        raise Invalid("nuisance-call rejection cannot be activated in the future")
    sub = session.get(NuisanceSubscription, c.id)
    if sub is None or sub.cancelled_on is not None:
        if unit is None:
            raise Invalid("a new nuisance-call rejection subscription needs a unit")
        # A fresh subscription (or one after a cancellation) starts with new, empty lists.
        deactivate_lists(session, c.id)
        sub = sub or NuisanceSubscription(contract_id=c.id)
        sub.unit, sub.capacity = unit, list_size or 30
        sub.activated_on, sub.cancelled_on = activated_on or today_tokyo(), None
        session.add(sub)
        session.flush()
        if unit == "per-number" and not _any_subscribed(session, c.id):
            _subscribe_business_numbers(session, c.id)
        _require_subscribed_numbers(session, c.id, unit)
        ensure_nuisance_lists(session, c)
        return sub
    if activated_on is not None and activated_on != sub.activated_on:
        raise Conflict(f"nuisance-call rejection is already active since "
                       f"{sub.activated_on.isoformat()}")
    if list_size is not None and list_size != sub.capacity:
        _resize_lists(session, c.id, list_size)
        sub.capacity = list_size
    if unit is not None and unit != sub.unit:
        nuisance_repo.set_unit(session, c.code, unit, today_tokyo())
        _require_subscribed_numbers(session, c.id, unit)
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


def _require_subscribed_numbers(session: Session, contract_id: int, unit: str) -> None:
    """A per-number subscription bills per subscribed number (BILL-*); with none it would
    screen nothing and could not be billed, so that state is never written."""
    if unit == "per-number" and not _any_subscribed(session, contract_id):
        raise Conflict("a per-number subscription needs at least one business number; "
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
            raise Conflict(f"list {lst.id} holds {used} entries, more than {size}; delete "
                           "entries first (144, 3 or 9)")
    for lst in lists:
        lst.capacity = size
    session.flush()


def cancel_nuisance(session: Session, contract: str, on: date | None = None) -> None:
    c = get_contract(session, contract, lock=True)
    sub = session.get(NuisanceSubscription, c.id)
    if sub is None or sub.cancelled_on is not None:
        raise Conflict(f"contract {contract} has no active nuisance-call rejection")
    end = on or today_tokyo()
    if end > today_tokyo():
        # Screening stops when the row is cancelled; a later date would bill unscreened days.
        raise Invalid("nuisance-call rejection cannot be cancelled in the future")
    _check_period(sub.activated_on, end, "nuisance-call rejection")
    sub.cancelled_on = end
    session.flush()
    ensure_nuisance_lists(session, c)  # lists of a cancelled subscription stop screening


# ---- nuisance lists: sizes and counters, never the numbers (NCR-PRIV-1) ------------------
def list_nuisance_lists(session: Session, contract: str | None, now: datetime,
                        limit: int | None = None, offset: int = 0) -> Page:
    stmt = (select(NuisanceList, Contract.code, Number.number)
            .join(Contract, Contract.id == NuisanceList.contract_id)
            .outerjoin(Number, Number.id == NuisanceList.number_id)
            .where(NuisanceList.active.is_(True)))
    if contract is not None:
        stmt = stmt.where(Contract.code == get_contract(session, contract).code)
    rows = page_of(session, stmt.order_by(Contract.code, NuisanceList.id), limit, offset)

    def render(r: Any) -> dict[str, Any]:
        lst, code, number = r
        info = nuisance_repo.summary(session, lst, now).to_json()
        return {**info, "contract": code, "number": number,
                "months": [{"month": m, "count": n}
                           for m, n in nuisance_repo.monthly_counts(session, lst.id)]}

    return make_page(rows, limit, offset, render)


# ---- disaster-priority lines (REC-CAP-1) ---------------------------------------------------
def list_priority(session: Session, limit: int | None = None, offset: int = 0) -> Page:
    rows = page_of(session, select(PriorityLine).order_by(PriorityLine.number), limit, offset)
    return make_page(rows, limit, offset,
                     lambda r: {"number": r[0].number, "description": r[0].description})


def add_priority(session: Session, number: str, description: str = "") -> PriorityLine:
    _match(NUMBER_RE, number, "number")
    _text(description, "description")
    if session.get(PriorityLine, number) is not None:
        raise Conflict(f"{number} is already a priority line")
    line = PriorityLine(number=number, description=description)
    session.add(line)
    session.flush()
    return line


def delete_priority(session: Session, number: str) -> None:
    line = session.get(PriorityLine, number)
    if line is None:
        raise NotFound(f"{number} is not a priority line")
    session.delete(line)
    session.flush()


# ---- API tokens (ADM-2, SEC-2) --------------------------------------------------------------
def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_json(row: ApiToken, code: str | None) -> dict[str, Any]:
    return {"id": row.id, "contract": code, "label": row.label,
            "created_at": _iso(row.created_at)}


def create_token(session: Session, contract: str | None, label: str = "") -> tuple[ApiToken, str]:
    """A new random token; only its sha256 is stored, so it is shown once, here."""
    _text(label, "label", MAX_LABEL)
    contract_id = get_contract(session, contract).id if contract is not None else None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(token_sha256=token_hash(token), contract_id=contract_id, label=label,
                   role="operator" if contract_id is None else "contract")
    session.add(row)
    session.flush()
    return row, token


def list_tokens(session: Session, contract: str | None = None, limit: int | None = None,
                offset: int = 0) -> Page:
    stmt = select(ApiToken, Contract.code).outerjoin(Contract,
                                                     Contract.id == ApiToken.contract_id)
    if contract is not None:
        stmt = stmt.where(Contract.code == get_contract(session, contract).code)
    rows = page_of(session, stmt.order_by(ApiToken.id), limit, offset)
    return make_page(rows, limit, offset, lambda r: token_json(r[0], r[1]))


def revoke_token(session: Session, token_id: int) -> None:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no token {token_id}")
    session.delete(row)
    session.flush()


def resolve_token(session: Session,
                  token: str) -> tuple[int, int | None, str | None, str] | None:
    """(token id, contract id, contract code, role) of a stored token; None when unknown."""
    row = session.execute(
        select(ApiToken.id, ApiToken.contract_id, Contract.code, ApiToken.role)
        .outerjoin(Contract, Contract.id == ApiToken.contract_id)
        .where(ApiToken.token_sha256 == token_hash(token))).first()
    return None if row is None else (row[0], row[1], row[2], row[3])
