"""An immutable snapshot of the provisioned site, the input of every routing decision.

Loaded from PostgreSQL by the shells and cached, so a decision needs no database round trip
except the blocklist lookup, and calls keep connecting while the database is away (REL-2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from callguard.domain.recording_options import RecordingOptions


@dataclass(frozen=True)
class ContractInfo:
    id: int
    code: str
    kind: str  # "mobile" | "fixed"
    recording_from: date | None = None  # recording add-on active from this day (None: none)
    recording_until: date | None = None
    retention_days: int = 90
    nuisance_unit: str | None = None  # "per-number" | "per-contract" | None
    nuisance_capacity: int = 30
    contract_list_id: int | None = None  # the shared list of a per-contract subscription
    rec_options: RecordingOptions = field(default_factory=RecordingOptions)  # issue #14

    def recording_active(self, today: date) -> bool:
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
class SiteSnapshot:
    contracts: dict[str, ContractInfo] = field(default_factory=dict)
    endpoints: dict[str, EndpointInfo] = field(default_factory=dict)
    numbers: dict[str, NumberInfo] = field(default_factory=dict)
    forwardings: dict[str, ForwardingInfo] = field(default_factory=dict)
    priority_lines: frozenset[str] = frozenset()
    settings: dict[str, str] = field(default_factory=dict)  # site_settings rows

    def setting_int(self, key: str, default: int) -> int:
        try:
            return int(self.settings[key])
        except (KeyError, ValueError):
            return default

    def extensions_of(self, contract: str) -> dict[str, str]:
        """Extension → endpoint name, within one contract."""
        return {e.extension: e.name for e in self.endpoints.values() if e.contract == contract}


def with_contracts_replaced(site: SiteSnapshot, ids: set[int], part: SiteSnapshot) -> SiteSnapshot:
    """`site` with everything of the contracts `ids` (by id: a code may have changed) replaced
    by `part`, those contracts as loaded now (a deleted one is absent from it). A number or
    endpoint that moved to another contract of `ids` is replaced too; one that moved to a
    contract outside `ids` is that contract's notice's business (both are named)."""
    gone = {code for code, c in site.contracts.items() if c.id in ids}
    gone_numbers = {n for n, info in site.numbers.items() if info.contract in gone}
    return SiteSnapshot(
        contracts={k: v for k, v in site.contracts.items() if k not in gone} | part.contracts,
        endpoints={k: v for k, v in site.endpoints.items() if v.contract not in gone}
        | part.endpoints,
        numbers={k: v for k, v in site.numbers.items() if k not in gone_numbers} | part.numbers,
        forwardings={k: v for k, v in site.forwardings.items() if k not in gone_numbers}
        | part.forwardings,
        priority_lines=site.priority_lines,
        settings=site.settings,
    )
