"""`callguard check`: do Asterisk's live PJSIP endpoints and the database agree? (ADM-1)

Asterisk is asked over ARI: `GET /ari/endpoints/PJSIP` for what is loaded, then each
endpoint's, AOR's and identify's configuration through `/ari/asterisk/config/dynamic/res_pjsip/…`
(readable for objects from pjsip.conf too). The comparison itself is a pure function.

Identify objects (SEC-1: which source address is which endpoint) are compared whatever their
names: ARI lists no sorcery objects (`GET …/res_pjsip/identify` is 405, only `…/identify/{id}`
exists: ast_ari_asterisk_get_object), so the names come from the pjsip configuration files this
Asterisk reads (every section, includes followed), from the loaded endpoints and from the
database, and each name is asked of ARI as an identify: what is compared is what is loaded.
An identify whose `endpoint=` is not the endpoint it is named after (a copied block), or that maps
an address to an endpoint under another name (a stray section), is reported, as is one that
identifies by a header a caller can forge (only `X-Src-IP`, and only where the global
`endpoint_identifier_order` has `header`, as a cluster node's does behind Kamailio, counts as a
source address).

Customer equipment is what lands in the `from-customer` context; other endpoints (the carrier,
the bench carrier) are infrastructure and not expected in the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard.asterisk.ari import AriReader as AriReader
from callguard.asterisk.ari import AsteriskUnavailable as AsteriskUnavailable
from callguard.config import Settings
from callguard.db.models import Contract, Endpoint, Number

CUSTOMER_CONTEXT = "from-customer"
SIP_PORT = 5060  # SPEC §8: customer equipment is reached at its address, port 5060
# The header a cluster node identifies by: the source address Kamailio saw (tools/cluster.sh,
# tools/kamailio/kamailio.cfg removes any a caller sent). CLU-1.
SRC_IP_HEADER = "X-Src-IP"


@dataclass(frozen=True)
class AstEndpoint:
    name: str
    state: str
    context: str
    callerid: str  # the number inside <…>, or ""
    contacts: tuple[str, ...]
    # identify addresses; None: no identify of that name. Only read when compare() is given no
    # identify list; with one, an endpoint's addresses are those every identify maps to it.
    matches: tuple[str, ...] | None


@dataclass(frozen=True)
class AstIdentify:
    """One identify object Asterisk has loaded (SEC-1: which source is which endpoint)."""
    name: str
    endpoint: str
    matches: tuple[str, ...]  # `match`: '127.0.1.1/255.255.255.255', …
    match_header: str = ""  # 'X-Src-IP: 127.0.1.1' on a cluster node
    match_request_uri: str = ""


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
    # missing-in-asterisk | missing-in-database | context | address | contact | callerid |
    # identify-endpoint (an identify named after one endpoint maps to another) |
    # identify-address (an identify named otherwise maps an address to an endpoint) |
    # identify-header (identifies by something a caller can forge)
    problem: str
    detail: str
    identify: str | None = None  # the identify section at fault, for identify-* problems

    def to_json(self) -> dict[str, str]:
        out = {"endpoint": self.endpoint, "problem": self.problem, "detail": self.detail}
        if self.identify is not None:
            out["identify"] = self.identify
        return out


@dataclass(frozen=True)
class CheckWarning:
    """Provisioning that agrees with Asterisk but will surprise its user; never fails the check."""
    endpoint: str
    problem: str  # no-office-number | identify-no-endpoint
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"endpoint": self.endpoint, "problem": self.problem, "detail": self.detail}


@dataclass(frozen=True)
class CheckReport:
    checked: int  # database endpoints compared
    mismatches: list[Mismatch]
    ignored: list[str]  # Asterisk endpoints that are not customer equipment
    warnings: list[CheckWarning] = field(default_factory=list)
    identifies: int = 0  # identify objects compared (SEC-1)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked,
                "mismatches": [m.to_json() for m in self.mismatches],
                "ignored": self.ignored,
                "warnings": [w.to_json() for w in self.warnings],
                "identifies": self.identifies}


def _warnings(ep: DbEndpoint) -> list[CheckWarning]:
    if ep.kind == "mobile" and ep.office is None:
        # Source 000 records only handsets with an office number (オフィスケータイパック /
        # auオフィスナンバー); routing refuses such a handset's prefixed calls.
        return [CheckWarning(ep.name, "no-office-number",
                             "mobile handset without an office number: its 0077-26/0077-27 "
                             "calls are refused (rec_not_subscribed) and it is never recorded")]
    return []


_ONE_HOST = {"", "32", "128", "255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}


def _host(uri_or_match: str) -> str:
    """'127.0.1.1/255.255.255.255' or '127.0.1.1/32' → '127.0.1.1'. A network ('127.0.1.0/
    255.255.255.0') stays as written: it is never one box's address (SEC-1)."""
    host, _, mask = uri_or_match.strip().partition("/")
    return host if mask.strip().lower() in _ONE_HOST else uri_or_match.strip()


def _src_ip(match_header: str) -> str | None:
    """'X-Src-IP: 127.0.1.1' → '127.0.1.1'; None for any other header or a /regex/ value."""
    name, sep, value = match_header.partition(":")
    value = value.strip()
    if not sep or name.strip().lower() != SRC_IP_HEADER.lower() or not value \
            or value.startswith("/"):
        return None
    return value


def _identified_by(ident: AstIdentify, header_trusted: bool) -> tuple[str, ...]:
    """What this identify maps to its endpoint, as Asterisk spells it: every `match`, and a
    cluster node's `match_header = X-Src-IP: <addr>` where header identification is on."""
    out = list(ident.matches)
    if header_trusted and _src_ip(ident.match_header) is not None:
        out.append(ident.match_header)
    return tuple(out)


def _address_of(identified_by: str) -> str:
    src = _src_ip(identified_by)
    return src if src is not None else _host(identified_by)


def _identify_mismatches(identifies: list[AstIdentify], db: dict[str, DbEndpoint],
                         asterisk: dict[str, AstEndpoint], header_trusted: bool,
                         ) -> tuple[list[Mismatch], list[CheckWarning]]:
    """Identify objects whatever their names (SEC-1)."""
    mismatches: list[Mismatch] = []
    warnings: list[CheckWarning] = []
    owner = {ep.address: ep.name for ep in db.values()}  # DB address → its endpoint
    for ident in sorted(identifies, key=lambda i: i.name):
        target = ident.endpoint
        if target not in asterisk:
            warnings.append(CheckWarning(target or ident.name, "identify-no-endpoint",
                                         f"identify section {ident.name!r} maps "
                                         f"{', '.join(ident.matches) or 'nothing'} to an "
                                         "endpoint that is not loaded: those calls are "
                                         "refused until one of that name is added"))
            continue
        forgeable_header = bool(ident.match_header) and not (
            header_trusted and _src_ip(ident.match_header) is not None)
        if forgeable_header or ident.match_request_uri:
            how = (f"match_header = {ident.match_header}" if ident.match_header
                   else f"match_request_uri = {ident.match_request_uri}")
            mismatches.append(Mismatch(
                target, "identify-header",
                f"identify section {ident.name!r} identifies {target} by {how}: any "
                "sender can write that (only the source address, or the X-Src-IP Kamailio "
                "sets where endpoint_identifier_order has header, identifies customer "
                "equipment)", ident.name))
        if ident.name == target:
            continue  # its addresses are the endpoint's own: the `address` check below
        addresses = [_address_of(m) for m in _identified_by(ident, header_trusted)]
        if ident.name in db or ident.name in asterisk:
            # A copied block: renamed and given a new match, still `endpoint = <original>`.
            mismatches.append(Mismatch(
                ident.name, "identify-endpoint",
                f"identify section {ident.name!r} maps {', '.join(addresses) or 'nothing'} to "
                f"endpoint {target}, not {ident.name}: calls from there are taken as "
                f"{target}'s (its number, recordings and bill)", ident.name))
            continue
        customer = target in db or asterisk[target].context == CUSTOMER_CONTEXT
        for addr in addresses:
            if target in db and addr == db[target].address:
                continue  # a second section for the same address: redundant, not wrong
            other = owner.get(addr)
            if customer or (other is not None and other != target):
                whose = f" ({other}'s address in the database)" if other not in (None, target) \
                    else ""
                mismatches.append(Mismatch(
                    target, "identify-address",
                    f"identify section {ident.name!r} also maps {addr}{whose} to {target}: "
                    f"calls from there are taken as {target}'s", ident.name))
    return mismatches, warnings


def compare(db: Iterable[DbEndpoint], asterisk: dict[str, AstEndpoint],
            identifies: Iterable[AstIdentify] | None = None,
            header_trusted: bool = False) -> CheckReport:
    """`identifies`: every identify Asterisk has loaded; each endpoint's addresses are then
    those all of them map to it (AstEndpoint.matches is not read). `header_trusted`: the
    global endpoint_identifier_order has `header` (a cluster node behind Kamailio)."""
    db = sorted(db, key=lambda e: e.name)
    mismatches: list[Mismatch] = []
    warnings: list[CheckWarning] = []
    id_list = None if identifies is None else list(identifies)
    if id_list is not None:
        by_endpoint: dict[str, list[str]] = {}
        for ident in sorted(id_list, key=lambda i: i.name):
            by_endpoint.setdefault(ident.endpoint, []).extend(
                _identified_by(ident, header_trusted))
        asterisk = {name: AstEndpoint(a.name, a.state, a.context, a.callerid, a.contacts,
                                      tuple(by_endpoint[name]) if name in by_endpoint
                                      else None)
                    for name, a in asterisk.items()}
    db_names: set[str] = set()
    checked = 0
    for ep in db:
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
                                       f"{ep.address}" if id_list is None else
                                       f"no identify maps any address to {ep.name}; the "
                                       f"database says {ep.address}"))
        elif {_address_of(m) for m in ast.matches} != {ep.address}:
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
    if id_list is not None:
        more, more_warnings = _identify_mismatches(id_list, {ep.name: ep for ep in db},
                                                   asterisk, header_trusted)
        mismatches.extend(more)
        warnings.extend(more_warnings)
    return CheckReport(checked, mismatches, ignored, warnings,
                       0 if id_list is None else len(id_list))


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
        raw = cfg.get("callerid", "")
        m = _CALLERID.search(raw)  # '"Name" <0312345678>' or plain '0312345678'
        out[name] = AstEndpoint(name, str(item.get("state", "")), context,
                                (m.group(1) if m else raw).strip(), tuple(contacts),
                                None)  # compare() takes them from every identify
        if progress is not None:
            progress(i, len(listed))
    return out


_SECTION = re.compile(r"\[([^\]]+)\]\s*(?:\(([^)]*)\))?")
_INCLUDE = re.compile(r"#(include|tryinclude)\s+[\"<]?([^\">]+)[\">]?\s*$")


def config_section_names(etc_dir: Path, filename: str = "pjsip.conf", root: str = "",
                         _seen: set[Path] | None = None) -> set[str]:
    """The names of every section (templates `(!)` aside) of an Asterisk configuration file and
    of the files it includes (`#include`/`#tryinclude`, relative to the etc directory, globs as
    Asterisk allows); `root`: the chroot absolute include paths are inside. AsteriskUnavailable
    when a file Asterisk must read cannot be read here (a missing `#tryinclude` is fine)."""
    seen = set() if _seen is None else _seen
    path = etc_dir / filename if not filename.startswith("/") else Path(root + filename)
    names: set[str] = set()
    for one in sorted(path.parent.glob(path.name)) if any(c in path.name for c in "*?[") \
            else [path]:
        if one in seen:
            continue
        seen.add(one)
        try:
            text = one.read_text(errors="replace")
        except OSError as exc:
            raise AsteriskUnavailable(f"cannot read {one} to list its identify sections: "
                                      f"{exc.strerror}") from exc
        for raw in text.splitlines():
            line = raw.split(";", 1)[0].strip()
            inc = _INCLUDE.match(line)
            if inc is not None:
                target = inc.group(2).strip()
                try_only = inc.group(1) == "tryinclude"
                inc_path = Path(root + target) if target.startswith("/") else etc_dir / target
                if try_only and not any(c in target for c in "*?[") and not inc_path.exists():
                    continue
                names |= config_section_names(etc_dir, target, root, seen)
                continue
            sec = _SECTION.match(line)
            if sec is not None and "!" not in (sec.group(2) or ""):
                names.add(sec.group(1).strip())
    return names


def asterisk_identifies(reader: AriReader, names: Iterable[str]) -> list[AstIdentify]:
    """Every identify Asterisk has loaded under one of these names (ARI lists none itself)."""
    out: list[AstIdentify] = []
    for name in sorted(set(names)):
        cfg = reader.config("identify", name)
        if cfg is None:
            continue
        out.append(AstIdentify(name, cfg.get("endpoint", ""), _split(cfg.get("match", "")),
                               cfg.get("match_header", "").strip(),
                               cfg.get("match_request_uri", "").strip()))
    return out


def header_identification(reader: AriReader) -> bool:
    """Whether the global endpoint_identifier_order (section [global]) names `header`."""
    cfg = reader.config("global", "global") or {}
    return "header" in _split(cfg.get("endpoint_identifier_order", ""))


def etc_dir(settings: Settings) -> Path:
    """This Asterisk's configuration directory, as seen from here (a cluster node's too)."""
    etc = str(Path(settings.asterisk_conf).parent) if settings.asterisk_conf else "/etc/asterisk"
    return Path(f"{settings.asterisk_root}{etc}")


def run_check(session: Session, settings: Settings,
              progress: Callable[[int, int], None] | None = None) -> CheckReport:
    db = db_endpoints(session)
    reader = AriReader(settings)
    endpoints = asterisk_endpoints(reader, progress)
    sections = config_section_names(etc_dir(settings), root=settings.asterisk_root)
    identifies = asterisk_identifies(reader, sections | set(endpoints) | {e.name for e in db})
    return compare(db, endpoints, identifies, header_identification(reader))
