"""Read the provisioned site into a SiteSnapshot (one query per table, no N+1)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
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

# Columns, not ORM entities: each process loads the whole site at start and on every `site`
# notice, and building an instrumented object per row made that 8-11 s at 10^5 contracts
# (PERF-3's scale; rows come back as plain named tuples).
_QUERIES: dict[str, Any] = {
    "contracts": select(Contract.id, Contract.code, Contract.kind),
    "recording": select(RecordingSubscription.contract_id, RecordingSubscription.activated_on,
                        RecordingSubscription.cancelled_on, RecordingSubscription.retention_days),
    "nuisance": select(NuisanceSubscription.contract_id, NuisanceSubscription.unit,
                       NuisanceSubscription.capacity, NuisanceSubscription.cancelled_on),
    "endpoints": select(Endpoint.id, Endpoint.name, Endpoint.contract_id, Endpoint.extension,
                        Endpoint.channels, Endpoint.roaming),
    "numbers": select(Number.id, Number.number, Number.contract_id, Number.endpoint_id,
                      Number.role, Number.nuisance_subscribed),
    "lists": select(NuisanceList.id, NuisanceList.contract_id, NuisanceList.number_id)
    .where(NuisanceList.active.is_(True)),
    "forwardings": select(Forwarding.number_id, Forwarding.mode, Forwarding.target,
                          Forwarding.after_s),
    "priority": select(PriorityLine.number),
    "settings": select(SiteSetting.key, SiteSetting.value),
    "recopts": select(RecordingOptions.contract_id, RecordingOptions.stereo,
                      RecordingOptions.announce_in, RecordingOptions.announce_out,
                      RecordingOptions.public_key, RecordingOptions.pause_code,
                      RecordingOptions.resume_code),
}


def options_of(row: Any) -> DomainRecordingOptions:
    return DomainRecordingOptions(stereo=row.stereo, announce_in=row.announce_in,
                                  announce_out=row.announce_out, public_key=row.public_key,
                                  pause_code=row.pause_code, resume_code=row.resume_code)


def build_snapshot(rows: dict[str, Sequence[Any]]) -> SiteSnapshot:
    code_of = {r.id: r.code for r in rows["contracts"]}
    rec = {r.contract_id: r for r in rows["recording"]}
    ncr = {r.contract_id: r for r in rows["nuisance"]}
    opts = {r.contract_id: options_of(r) for r in rows.get("recopts", ())}
    endpoints = rows["endpoints"]
    numbers = rows["numbers"]
    lists = rows["lists"]
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

    priority_lines, settings = _site_wide(rows["priority"], rows["settings"])
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
            for f in rows["forwardings"]
        },
        priority_lines=priority_lines,
        settings=settings,
    )


def _site_wide(priority: Iterable[Any],
               settings: Iterable[Any]) -> tuple[frozenset[str], dict[str, str]]:
    """Priority lines and site settings from the rows of the `priority`, `settings` queries."""
    return frozenset(r.number for r in priority), {r.key: r.value for r in settings}


def load_snapshot(session: Session) -> SiteSnapshot:
    conn = session.connection()  # Core rows: no ORM result processing either
    return build_snapshot({k: conn.execute(q).all() for k, q in _QUERIES.items()})


def _contracts_queries(ids: list[int]) -> dict[str, Any]:
    numbers = select(Number.id).where(Number.contract_id.in_(ids))
    return {
        "contracts": _QUERIES["contracts"].where(Contract.id.in_(ids)),
        "recording": _QUERIES["recording"].where(RecordingSubscription.contract_id.in_(ids)),
        "nuisance": _QUERIES["nuisance"].where(NuisanceSubscription.contract_id.in_(ids)),
        "endpoints": _QUERIES["endpoints"].where(Endpoint.contract_id.in_(ids)),
        "numbers": _QUERIES["numbers"].where(Number.contract_id.in_(ids)),
        "lists": _QUERIES["lists"].where(NuisanceList.contract_id.in_(ids)),
        "forwardings": _QUERIES["forwardings"].where(Forwarding.number_id.in_(numbers)),
        "recopts": _QUERIES["recopts"].where(RecordingOptions.contract_id.in_(ids)),
    }


def load_contracts(session: Session, ids: set[int]) -> SiteSnapshot | None:
    """The part of the site that belongs to the contracts `ids` (no priority lines or settings),
    for callguard.domain.site.with_contracts_replaced; None if one of their endpoints carries
    another contract's number or the other way round (then only a whole load is right)."""
    conn = session.connection()
    wanted = sorted(ids)
    rows: dict[str, Sequence[Any]] = {k: conn.execute(q).all()
                                      for k, q in _contracts_queries(wanted).items()}
    endpoint_ids = {e.id for e in rows["endpoints"]}
    if any(n.endpoint_id not in endpoint_ids for n in rows["numbers"]):
        return None
    if endpoint_ids and conn.execute(select(Number.id).where(
            Number.endpoint_id.in_(sorted(endpoint_ids)),
            Number.contract_id.not_in(wanted)).limit(1)).first() is not None:
        return None
    return build_snapshot(rows | {"priority": (), "settings": ()})


def load_site_settings(session: Session) -> tuple[frozenset[str], dict[str, str]]:
    """The site-wide rows alone (a `settings` notice): priority lines and site settings."""
    conn = session.connection()
    return _site_wide(conn.execute(_QUERIES["priority"]), conn.execute(_QUERIES["settings"]))
