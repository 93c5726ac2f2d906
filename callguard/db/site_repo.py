"""Read the provisioned site into a SiteSnapshot (one query per table, no N+1)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from callguard.db.models import (
    Contract,
    Endpoint,
    Forwarding,
    NuisanceList,
    NuisanceSubscription,
    Number,
    PriorityLine,
    RecordingOptions,
    RecordingSubscription,
    SiteSetting,
)
from callguard.domain.recording_options import RecordingOptions as DomainRecordingOptions
from callguard.domain.site import (
    ContractInfo,
    EndpointInfo,
    ForwardingInfo,
    NumberInfo,
    SiteSnapshot,
)

_QUERIES: dict[str, Any] = {
    "contracts": select(Contract.id, Contract.code, Contract.kind),
    "recording": select(RecordingSubscription),
    "nuisance": select(NuisanceSubscription),
    "endpoints": select(Endpoint),
    "numbers": select(Number),
    "lists": select(NuisanceList).where(NuisanceList.active.is_(True)),
    "forwardings": select(Forwarding),
    "priority": select(PriorityLine.number),
    "settings": select(SiteSetting.key, SiteSetting.value),
    "recopts": select(RecordingOptions),
}


def options_of(row: RecordingOptions) -> DomainRecordingOptions:
    return DomainRecordingOptions(stereo=row.stereo, announce_in=row.announce_in,
                                  announce_out=row.announce_out, public_key=row.public_key,
                                  pause_code=row.pause_code, resume_code=row.resume_code)


def build_snapshot(rows: dict[str, Sequence[Any]]) -> SiteSnapshot:
    code_of = {r.id: r.code for r in rows["contracts"]}
    rec = {r.contract_id: r for (r,) in rows["recording"]}
    ncr = {r.contract_id: r for (r,) in rows["nuisance"]}
    opts = {r.contract_id: options_of(r) for (r,) in rows.get("recopts", ())}
    endpoints = [r for (r,) in rows["endpoints"]]
    numbers = [r for (r,) in rows["numbers"]]
    lists = [r for (r,) in rows["lists"]]
    ep_name = {e.id: e.name for e in endpoints}
    channels_of = {e.id: e.channels for e in endpoints}
    number_of = {n.id: n.number for n in numbers}

    per_number_list = {lst.number_id: lst.id for lst in lists if lst.number_id is not None}
    contract_list = {lst.contract_id: lst.id for lst in lists if lst.number_id is None}
    subscribed_per_contract = Counter(n.contract_id for n in numbers if n.role != "native")

    contracts: dict[str, ContractInfo] = {}
    for c in rows["contracts"]:
        r, s = rec.get(c.id), ncr.get(c.id)
        contracts[c.code] = ContractInfo(
            id=c.id,
            code=c.code,
            kind=c.kind,
            recording_from=r.activated_on if r else None,
            recording_until=r.cancelled_on if r else None,
            retention_days=r.retention_days if r else 90,
            nuisance_unit=s.unit if s and s.cancelled_on is None else None,
            nuisance_capacity=s.capacity if s else 30,
            contract_list_id=contract_list.get(c.id),
            rec_options=opts.get(c.id, DomainRecordingOptions()),
        )

    own: dict[int, str] = {}
    office: dict[int, str] = {}
    for n in numbers:
        if n.role == "office":
            office[n.endpoint_id] = n.number
        elif n.role != "freephone":  # terminating only: never presented as caller ID
            own.setdefault(n.endpoint_id, n.number)

    number_infos: dict[str, NumberInfo] = {}
    for n in numbers:
        code = code_of[n.contract_id]
        unit = contracts[code].nuisance_unit
        list_id: int | None = None
        multi = False
        if unit == "per-number" and n.nuisance_subscribed:
            list_id = per_number_list.get(n.id)
            multi = channels_of[n.endpoint_id] > 1
        elif unit == "per-contract":
            list_id = contract_list.get(n.contract_id)
            multi = subscribed_per_contract[n.contract_id] > 1 or channels_of[n.endpoint_id] > 1
        number_infos[n.number] = NumberInfo(
            id=n.id, number=n.number, contract=code, endpoint=ep_name[n.endpoint_id], role=n.role,
            list_id=list_id, multi_channel_scope=multi,
        )

    return SiteSnapshot(
        contracts=contracts,
        endpoints={
            e.name: EndpointInfo(
                name=e.name, contract=code_of[e.contract_id], extension=e.extension,
                channels=e.channels, roaming=e.roaming, own_number=own.get(e.id),
                office_number=office.get(e.id),
            )
            for e in endpoints
        },
        numbers=number_infos,
        forwardings={
            number_of[f.number_id]: ForwardingInfo(f.mode, f.target, f.after_s)
            for (f,) in rows["forwardings"]
        },
        priority_lines=frozenset(r.number for r in rows["priority"]),
        settings={r.key: r.value for r in rows["settings"]},
    )


def load_snapshot(session: Session) -> SiteSnapshot:
    return build_snapshot({k: session.execute(q).all() for k, q in _QUERIES.items()})


async def load_snapshot_async(session: AsyncSession) -> SiteSnapshot:
    return build_snapshot({k: (await session.execute(q)).all() for k, q in _QUERIES.items()})
