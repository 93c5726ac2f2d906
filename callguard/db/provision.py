"""Provisioning: the reference site (SPEC §8) and the nuisance lists a subscription needs.

Idempotent: running it again changes nothing that is already as described.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from callguard.db.models import (
    Contract,
    Endpoint,
    NuisanceList,
    NuisanceSubscription,
    Number,
    PriorityLine,
    RecordingSubscription,
    SiteSetting,
)


@dataclass(frozen=True)
class SiteEndpoint:
    name: str
    address: str
    contract: str
    extension: str
    channels: int
    numbers: tuple[tuple[str, str], ...]  # (number, role)


@dataclass(frozen=True)
class SiteContract:
    code: str
    kind: str
    recording: bool
    nuisance_unit: str | None


REFERENCE_CONTRACTS = (
    SiteContract("F1", "fixed", recording=True, nuisance_unit="per-number"),
    SiteContract("F2", "fixed", recording=False, nuisance_unit="per-contract"),
    SiteContract("M1", "mobile", recording=True, nuisance_unit=None),
)
REFERENCE_ENDPOINTS = (
    SiteEndpoint("f1-a", "127.0.1.1", "F1", "2001", 2, (("0312345678", "representative"),)),
    SiteEndpoint("f1-b", "127.0.1.2", "F1", "2002", 1, (("0312345679", "dial-in"),)),
    SiteEndpoint("f2-a", "127.0.1.3", "F2", "2001", 1, (("0612345678", "base"),)),
    SiteEndpoint("f2-b", "127.0.1.4", "F2", "2002", 1, (("0612345679", "base"),)),
    SiteEndpoint("m1-a", "127.0.1.5", "M1", "2001", 1,
                 (("09011110001", "native"), ("0311110001", "office"))),
    SiteEndpoint("m1-b", "127.0.1.6", "M1", "2002", 1,
                 (("09011110002", "native"), ("05011110002", "office"))),
)
REFERENCE_PRIORITY_LINES = ("0312340119",)


def ensure_nuisance_lists(session: Session, contract: Contract) -> None:
    """Create the active lists the contract's subscription needs (none exist → empty ones)."""
    sub = session.get(NuisanceSubscription, contract.id)
    active = session.scalars(
        select(NuisanceList).where(
            NuisanceList.contract_id == contract.id, NuisanceList.active.is_(True)
        )
    ).all()
    if sub is None or sub.cancelled_on is not None:
        for lst in active:
            lst.active = False
        return
    wanted: set[int | None]
    if sub.unit == "per-contract":
        wanted = {None}
    else:
        wanted = {
            n.id
            for n in session.scalars(
                select(Number).where(
                    Number.contract_id == contract.id, Number.nuisance_subscribed.is_(True)
                )
            )
        }
    have = {lst.number_id for lst in active if lst.unit == sub.unit}
    for lst in active:
        if lst.unit != sub.unit or lst.number_id not in wanted:
            lst.active = False
    session.flush()
    for number_id in wanted - have:
        session.add(NuisanceList(contract_id=contract.id, number_id=number_id, unit=sub.unit,
                                 capacity=sub.capacity))
    session.flush()


def provision_reference_site(session: Session, today: date) -> None:
    contracts: dict[str, Contract] = {}
    for sc in REFERENCE_CONTRACTS:
        c = session.scalar(select(Contract).where(Contract.code == sc.code))
        if c is None:
            c = Contract(code=sc.code, kind=sc.kind, name=f"reference site {sc.code}")
            session.add(c)
            session.flush()
        contracts[sc.code] = c
        if sc.recording and session.get(RecordingSubscription, c.id) is None:
            session.add(RecordingSubscription(contract_id=c.id, activated_on=today))
        if sc.nuisance_unit and session.get(NuisanceSubscription, c.id) is None:
            session.add(NuisanceSubscription(contract_id=c.id, unit=sc.nuisance_unit,
                                             activated_on=today))
    session.flush()
    for se in REFERENCE_ENDPOINTS:
        c = contracts[se.contract]
        ep = session.scalar(select(Endpoint).where(Endpoint.name == se.name))
        if ep is None:
            ep = Endpoint(name=se.name, contract_id=c.id, address=se.address,
                          extension=se.extension, channels=se.channels)
            session.add(ep)
            session.flush()
        for digits, role in se.numbers:
            if session.scalar(select(Number).where(Number.number == digits)) is None:
                subscribed = role != "native" and next(
                    s for s in REFERENCE_CONTRACTS if s.code == se.contract
                ).nuisance_unit is not None
                session.add(Number(number=digits, contract_id=c.id, endpoint_id=ep.id,
                                   role=role, nuisance_subscribed=subscribed))
    session.flush()
    for c in contracts.values():
        ensure_nuisance_lists(session, c)
    for line in REFERENCE_PRIORITY_LINES:
        if session.get(PriorityLine, line) is None:
            session.add(PriorityLine(number=line, description="disaster-priority caller"))
    session.flush()


PROVISIONED_KEY = "reference_site_provisioned_on"


def provision_once(session: Session, today: date, again: bool = False) -> date | None:
    """Provision the reference site the first time only (`make run` asks on every start): a
    contract, endpoint or number the operator deleted later stays deleted, and no add-on is
    activated again "today" onto a bill. Returns the day it was first provisioned when this
    call skipped it; `again` re-adds whatever is missing, as every start did before."""
    stamp = session.get(SiteSetting, PROVISIONED_KEY)
    if stamp is not None and not again:
        return date.fromisoformat(stamp.value)
    provision_reference_site(session, today)
    if stamp is None:
        session.add(SiteSetting(key=PROVISIONED_KEY, value=today.isoformat()))
        session.flush()
    return None


def deactivate_lists(session: Session, contract_id: int) -> None:
    session.execute(
        update(NuisanceList)
        .where(NuisanceList.contract_id == contract_id, NuisanceList.active.is_(True))
        .values(active=False)
    )
