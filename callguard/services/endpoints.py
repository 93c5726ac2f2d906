"""Endpoints: the customer's equipment, with their channels (ADM-1, SEC-1)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard.db.models import Contract, Endpoint, Number
from callguard.services import base as b

MAX_CHANNELS = 100


def endpoint_json(session: Session, ep: Endpoint, code: str | None = None) -> dict[str, Any]:
    numbers = session.scalars(select(Number.number).where(Number.endpoint_id == ep.id)
                              .order_by(Number.id)).all()
    return {"name": ep.name, "contract": code or ep.contract.code, "address": ep.address,
            "extension": ep.extension, "channels": ep.channels, "roaming": ep.roaming,
            "numbers": list(numbers), "created_at": b.iso(ep.created_at)}


def list_endpoints(session: Session, contract: str | None = None, limit: int | None = None,
                   offset: int = 0) -> b.Page:
    stmt = select(Endpoint, Contract.code).join(Contract, Contract.id == Endpoint.contract_id)
    if contract is not None:
        stmt = stmt.where(Contract.code == b.get_contract(session, contract).code)
    rows = b.page_of(session, stmt.order_by(Contract.code, Endpoint.extension, Endpoint.name),
                   limit, offset)
    return b.make_page(rows, limit, offset, lambda r: endpoint_json(session, r[0], r[1]))


def _check_endpoint(session: Session, contract: Contract, address: str, extension: str,
                    channels: int, roaming: bool, own_id: int | None) -> None:
    b.match(b.EXTENSION_RE, extension, "extension")
    if len(extension) != contract.extension_digits:
        raise b.Invalid(f"extension must have {contract.extension_digits} digits "
                      f"(contract {contract.code})")
    b.int_range(channels, 1, MAX_CHANNELS, "channels")
    if contract.kind == "mobile" and channels != 1:
        raise b.Invalid("a mobile handset has one channel")
    if contract.kind == "fixed" and roaming:
        raise b.Invalid("only a mobile handset can be roaming")
    # SEC-1: the source address identifies the endpoint; two owners would be ambiguous.
    same_address = select(Endpoint.name).where(Endpoint.address == address)
    same_ext = select(Endpoint.name).where(Endpoint.contract_id == contract.id,
                                           Endpoint.extension == extension)
    if own_id is not None:
        same_address = same_address.where(Endpoint.id != own_id)
        same_ext = same_ext.where(Endpoint.id != own_id)
    if (other := session.scalar(same_address)) is not None:
        raise b.Conflict(f"address {address} is already endpoint {other}")
    if (other := session.scalar(same_ext)) is not None:
        raise b.Conflict(f"extension {extension} is already endpoint {other} of {contract.code}")


def create_endpoint(session: Session, name: str, contract: str, address: str,
                    extension: str, channels: int = 1, roaming: bool = False) -> Endpoint:
    b.match(b.ENDPOINT_NAME_RE, name, "endpoint name")
    addr = b.address(address)
    c = b.get_contract(session, contract, lock=True)
    if session.scalar(select(Endpoint.id).where(Endpoint.name == name)) is not None:
        raise b.Conflict(f"endpoint {name!r} already exists")
    _check_endpoint(session, c, addr, extension, channels, roaming, None)
    ep = Endpoint(name=name, contract_id=c.id, address=addr, extension=extension,
                  channels=channels, roaming=roaming)
    session.add(ep)
    session.flush()
    return ep


def update_endpoint(session: Session, name: str, address: str | None = None,
                    extension: str | None = None, channels: int | None = None,
                    roaming: bool | None = None) -> Endpoint:
    ep = b.get_endpoint(session, name)
    c = b.get_contract(session, ep.contract.code, lock=True)
    addr = b.address(address) if address is not None else ep.address
    ext = extension if extension is not None else ep.extension
    ch = channels if channels is not None else ep.channels
    roam = roaming if roaming is not None else ep.roaming
    _check_endpoint(session, c, addr, ext, ch, roam, ep.id)
    ep.address, ep.extension, ep.channels, ep.roaming = addr, ext, ch, roam
    session.flush()
    return ep


def delete_endpoint(session: Session, name: str) -> None:
    ep = b.get_endpoint(session, name)
    numbers = session.scalars(select(Number.number).where(Number.endpoint_id == ep.id)).all()
    if numbers:
        raise b.Conflict(f"endpoint {name} still rings {', '.join(numbers)}; move or delete "
                       "those numbers first")
    session.delete(ep)
    session.flush()
