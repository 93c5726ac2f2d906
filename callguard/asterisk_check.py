"""`callguard check`: do Asterisk's live PJSIP endpoints and the database agree? (ADM-1)

Asterisk is asked over ARI: `GET /ari/endpoints/PJSIP` for what is loaded, then each
endpoint's, AOR's and identify's configuration through `/ari/asterisk/config/dynamic/res_pjsip/…`
(readable for objects from pjsip.conf too). The comparison itself is a pure function.

Customer equipment is what lands in the `from-customer` context; other endpoints (the carrier,
the bench carrier) are infrastructure and not expected in the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard.asterisk.ari import AriReader as AriReader
from callguard.asterisk.ari import AsteriskUnavailable as AsteriskUnavailable
from callguard.config import Settings
from callguard.db.models import Contract, Endpoint, Number

CUSTOMER_CONTEXT = "from-customer"
SIP_PORT = 5060  # SPEC §8: customer equipment is reached at its address, port 5060


@dataclass(frozen=True)
class AstEndpoint:
    name: str
    state: str
    context: str
    callerid: str  # the number inside <…>, or ""
    contacts: tuple[str, ...]
    matches: tuple[str, ...] | None  # identify addresses; None: no identify of that name


@dataclass(frozen=True)
class DbEndpoint:
    name: str
    contract: str
    address: str
    numbers: tuple[str, ...]  # its non-office numbers (what the phone display shows)
    kind: str = "fixed"  # its contract's kind: mobile | fixed
    office: str | None = None  # a mobile handset's office number (0ABJ or 050), if any


@dataclass(frozen=True)
class Mismatch:
    endpoint: str
    # missing-in-asterisk | missing-in-database | context | address | contact | callerid
    problem: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"endpoint": self.endpoint, "problem": self.problem, "detail": self.detail}


@dataclass(frozen=True)
class CheckWarning:
    """Provisioning that agrees with Asterisk but will surprise its user; never fails the check."""
    endpoint: str
    problem: str  # no-office-number
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"endpoint": self.endpoint, "problem": self.problem, "detail": self.detail}


@dataclass(frozen=True)
class CheckReport:
    checked: int  # database endpoints compared
    mismatches: list[Mismatch]
    ignored: list[str]  # Asterisk endpoints that are not customer equipment
    warnings: list[CheckWarning] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked,
                "mismatches": [m.to_json() for m in self.mismatches],
                "ignored": self.ignored,
                "warnings": [w.to_json() for w in self.warnings]}


def _warnings(ep: DbEndpoint) -> list[CheckWarning]:
    if ep.kind == "mobile" and ep.office is None:
        # Source 000 records only handsets with an office number (オフィスケータイパック /
        # auオフィスナンバー); routing refuses such a handset's prefixed calls.
        return [CheckWarning(ep.name, "no-office-number",
                             "mobile handset without an office number: its 0077-26/0077-27 "
                             "calls are refused (rec_not_subscribed) and it is never recorded")]
    return []


def _host(uri_or_match: str) -> str:
    """'127.0.1.1/255.255.255.255' or '127.0.1.1/32' → '127.0.1.1'."""
    return uri_or_match.strip().split("/", 1)[0]


def compare(db: Iterable[DbEndpoint], asterisk: dict[str, AstEndpoint]) -> CheckReport:
    mismatches: list[Mismatch] = []
    warnings: list[CheckWarning] = []
    db_names: set[str] = set()
    checked = 0
    for ep in sorted(db, key=lambda e: e.name):
        checked += 1
        db_names.add(ep.name)
        warnings.extend(_warnings(ep))
        ast = asterisk.get(ep.name)
        if ast is None:
            mismatches.append(Mismatch(ep.name, "missing-in-asterisk",
                                       f"contract {ep.contract}, {ep.address}: no PJSIP "
                                       "endpoint of that name is loaded"))
            continue
        if ast.context != CUSTOMER_CONTEXT:
            mismatches.append(Mismatch(ep.name, "context",
                                       f"context is {ast.context!r}, not {CUSTOMER_CONTEXT!r}: "
                                       "its calls would bypass callguard"))
        if ast.matches is None:
            mismatches.append(Mismatch(ep.name, "address",
                                       f"no identify section {ep.name!r}; the database says "
                                       f"{ep.address}"))
        elif {_host(m) for m in ast.matches} != {ep.address}:
            mismatches.append(Mismatch(ep.name, "address",
                                       f"identified by {', '.join(ast.matches) or 'nothing'}; "
                                       f"the database says {ep.address}"))
        want = f"sip:{ep.address}:{SIP_PORT}"
        if want not in ast.contacts:
            mismatches.append(Mismatch(ep.name, "contact",
                                       f"reached at {', '.join(ast.contacts) or 'nothing'}; "
                                       f"the database says {want}"))
        if ep.numbers and ast.callerid not in ep.numbers:
            mismatches.append(Mismatch(ep.name, "callerid",
                                       f"shows <{ast.callerid}>; its numbers are "
                                       f"{', '.join(ep.numbers)}"))
    ignored: list[str] = []
    for name, ast in sorted(asterisk.items()):
        if name in db_names:
            continue
        if ast.context == CUSTOMER_CONTEXT:
            mismatches.append(Mismatch(name, "missing-in-database",
                                       "customer endpoint loaded in Asterisk but not in the "
                                       "database: its calls are refused"))
        else:
            ignored.append(name)
    return CheckReport(checked, mismatches, ignored, warnings)


def db_endpoints(session: Session) -> list[DbEndpoint]:
    numbers: dict[int, list[str]] = {}
    office: dict[int, str] = {}
    for endpoint_id, number, role in session.execute(
            select(Number.endpoint_id, Number.number, Number.role).order_by(Number.id)):
        if role == "office":
            office[endpoint_id] = number
        else:
            numbers.setdefault(endpoint_id, []).append(number)
    rows = session.execute(select(Endpoint, Contract.code, Contract.kind)
                           .join(Contract, Contract.id == Endpoint.contract_id)).all()
    return [DbEndpoint(e.name, code, e.address, tuple(numbers.get(e.id, ())), kind,
                       office.get(e.id))
            for e, code, kind in rows]


_CALLERID = re.compile(r"<([^>]*)>")


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def asterisk_endpoints(reader: AriReader,
                       progress: Callable[[int, int], None] | None = None,
                       ) -> dict[str, AstEndpoint]:
    listed = reader.get("endpoints/PJSIP")
    if listed is None:
        raise AsteriskUnavailable("ARI knows no PJSIP technology (chan_pjsip not loaded?)")
    out: dict[str, AstEndpoint] = {}
    for i, item in enumerate(listed, 1):
        name = str(item["resource"])
        cfg = reader.config("endpoint", name) or {}
        context = cfg.get("context", "")
        contacts: list[str] = []
        for aor in _split(cfg.get("aors", "")):
            contacts.extend(_split((reader.config("aor", aor) or {}).get("contact", "")))
        ident = reader.config("identify", name)
        matches = None if ident is None else _split(ident.get("match", ""))
        raw = cfg.get("callerid", "")
        m = _CALLERID.search(raw)  # '"Name" <0312345678>' or plain '0312345678'
        out[name] = AstEndpoint(name, str(item.get("state", "")), context,
                                (m.group(1) if m else raw).strip(), tuple(contacts), matches)
        if progress is not None:
            progress(i, len(listed))
    return out


def run_check(session: Session, settings: Settings,
              progress: Callable[[int, int], None] | None = None) -> CheckReport:
    db = db_endpoints(session)
    return compare(db, asterisk_endpoints(AriReader(settings), progress))
