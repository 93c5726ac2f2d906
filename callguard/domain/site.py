"""An immutable snapshot of the provisioned site, the input of every routing decision.

Loaded from PostgreSQL by the shells and cached, so a decision needs no database round trip
except the blocklist lookup, and calls keep connecting while the database is away (REL-2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field, replace
from datetime import date

from callguard.domain.recording_options import RecordingOptions


@dataclass(frozen=True)
class ContractInfo:
    id: int
    code: str
    kind: str  # "mobile" | "fixed"
    recording_from: date | None = None  # recording add-on active from this day (None: none)
    recording_until: date | None = None  # the cancellation day: the first day without it
    retention_days: int = 90
    nuisance_unit: str | None = None  # "per-number" | "per-contract" | None
    nuisance_capacity: int = 30
    contract_list_id: int | None = None  # the shared list of a per-contract subscription
    rec_options: RecordingOptions = field(default_factory=RecordingOptions)  # issue #14

    def recording_active(self, today: date) -> bool:
        """`today` is a Tokyo calendar day (`nuisance.tokyo_date`), as the dates stored are."""
        if self.recording_from is None or today < self.recording_from:
            return False
        return self.recording_until is None or today < self.recording_until


@dataclass(frozen=True)
class EndpointInfo:
    name: str
    contract: str
    extension: str
    channels: int = 1
    roaming: bool = False
    own_number: str | None = None  # fixed: its line number; mobile: the native 080/090
    office_number: str | None = None  # mobile: the 0ABJ/050 number presented with the prefix


@dataclass(frozen=True)
class NumberInfo:
    id: int
    number: str
    contract: str
    endpoint: str
    role: str  # representative | dial-in | base | native | office
    list_id: int | None = None  # the nuisance list screening calls to this number
    multi_channel_scope: bool = False  # the list's scope has >1 channel or number (NCR-REG-3)


@dataclass(frozen=True)
class ForwardingInfo:
    mode: str  # unconditional | no-answer | unreachable
    target: str
    after_s: int = 20


@dataclass(frozen=True)
class SiteIndex:
    """What each contract owns, so that dialing an extension and reloading one contract need
    not pass over a site of 10^5 contracts (PERF-3). Sorted lists, not sets: one append per
    key keeps the build at ~4 % of a whole load."""

    endpoints: dict[str, list[str]]  # contract code → its endpoint names
    numbers: dict[str, list[str]]  # contract code → its number keys
    code_of: dict[int, str]  # contract id → code


@dataclass(frozen=True)
class SiteSnapshot:
    contracts: dict[str, ContractInfo] = field(default_factory=dict)
    endpoints: dict[str, EndpointInfo] = field(default_factory=dict)
    numbers: dict[str, NumberInfo] = field(default_factory=dict)
    forwardings: dict[str, ForwardingInfo] = field(default_factory=dict)
    priority_lines: frozenset[str] = frozenset()
    settings: dict[str, str] = field(default_factory=dict)  # site_settings rows
    # Built from the dicts above unless a merge hands over the one it kept up to date.
    prebuilt: InitVar[SiteIndex | None] = None
    index: SiteIndex = field(init=False, repr=False, compare=False)

    # Extension → endpoint name per contract, filled by the first call from each contract.
    _extensions: dict[str, dict[str, str]] = field(
        init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self, prebuilt: SiteIndex | None) -> None:
        object.__setattr__(self, "index",
                           build_index(self) if prebuilt is None else prebuilt)

    def setting_int(self, key: str, default: int) -> int:
        try:
            return int(self.settings[key])
        except (KeyError, ValueError):
            return default

    def extensions_of(self, contract: str) -> Mapping[str, str]:
        """Extension → endpoint name, within one contract."""
        found = self._extensions.get(contract)
        if found is None:
            # The index keeps each list sorted: the last of two equal extensions wins, as before.
            found = {self.endpoints[n].extension: n
                     for n in self.index.endpoints.get(contract, ())}
            self._extensions[contract] = found  # a race only computes the same dict twice
        return found


def build_index(site: SiteSnapshot) -> SiteIndex:
    endpoints: dict[str, list[str]] = {}
    numbers: dict[str, list[str]] = {}
    for name, e in site.endpoints.items():
        endpoints.setdefault(e.contract, []).append(name)
    for key, n in site.numbers.items():
        numbers.setdefault(n.contract, []).append(key)
    for keys in (*endpoints.values(), *numbers.values()):
        keys.sort()  # as a merge leaves them, so that two indexes of one site compare equal
    return SiteIndex(endpoints, numbers, {c.id: code for code, c in site.contracts.items()})


def with_contracts_replaced(site: SiteSnapshot, ids: set[int], part: SiteSnapshot) -> SiteSnapshot:
    """`site` with everything of the contracts `ids` (by id: a code may have changed) replaced
    by `part`, those contracts as loaded now (a deleted one is absent from it). A number or
    endpoint that moved to another contract of `ids` is replaced too; one that moved to a
    contract outside `ids` is that contract's notice's business (both are named).

    Costs copies of the dicts (C speed) and work in proportion to what changed, not a pass
    over every key: 29-45 ms at 10^5 contracts where that pass took 110-120 ms."""
    old = site.index
    contracts, endpoints = dict(site.contracts), dict(site.endpoints)
    numbers, forwardings = dict(site.numbers), dict(site.forwardings)
    code_of = dict(old.code_of)
    touched: set[str] = set()
    for cid in ids:
        code = code_of.pop(cid, None)
        if code is None:
            continue
        touched.add(code)
        contracts.pop(code, None)
        for name in old.endpoints.get(code, ()):
            endpoints.pop(name, None)
        for key in old.numbers.get(code, ()):
            numbers.pop(key, None)
            forwardings.pop(key, None)
    for code, info in part.contracts.items():
        displaced = contracts.get(code)
        if displaced is not None and displaced.id != info.id:  # codes swapped across notices
            code_of.pop(displaced.id, None)
        contracts[code] = info
        code_of[info.id] = code
        touched.add(code)
    for name, e in part.endpoints.items():
        if (before := endpoints.get(name)) is not None:
            touched.add(before.contract)  # moved here from a contract not reloaded now
        endpoints[name] = e
        touched.add(e.contract)
    for key, n in part.numbers.items():
        if (was := numbers.get(key)) is not None:
            touched.add(was.contract)
        numbers[key] = n
        touched.add(n.contract)
    forwardings.update(part.forwardings)

    by_endpoints, by_numbers = dict(old.endpoints), dict(old.numbers)
    for code in touched:  # what each touched contract owns now, from what it and part had
        _reindex(by_endpoints, endpoints, code,
                 {*old.endpoints.get(code, ()), *part.index.endpoints.get(code, ())})
        _reindex(by_numbers, numbers, code,
                 {*old.numbers.get(code, ()), *part.index.numbers.get(code, ())})
    return SiteSnapshot(contracts, endpoints, numbers, forwardings, site.priority_lines,
                        site.settings, SiteIndex(by_endpoints, by_numbers, code_of))


def _reindex(index: dict[str, list[str]], owners: Mapping[str, EndpointInfo | NumberInfo],
             code: str, candidates: set[str]) -> None:
    mine = sorted(k for k in candidates if (o := owners.get(k)) is not None and o.contract == code)
    if mine:
        index[code] = mine
    else:
        index.pop(code, None)


def with_site_settings(site: SiteSnapshot, priority_lines: frozenset[str],
                       settings: dict[str, str]) -> SiteSnapshot:
    """`site` with the site-wide rows replaced; the rest, and its index, kept as they are."""
    return replace(site, priority_lines=priority_lines, settings=settings, prebuilt=site.index)
