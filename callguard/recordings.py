"""Recordings housekeeping shared by the CLI and the HTTP API (REC-FILE-2/3/4): search,
reconcile after a crash, purge by retention."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from callguard.asterisk.ari import AriReader, AsteriskUnavailable
from callguard.asterisk.cli import AsteriskCliError, run_cli
from callguard.config import Settings
from callguard.db.models import (
    Contract,
    InboundCall,
    Number,
    Recording,
    RecordingSubscription,
)
from callguard.domain.pause import closed_at_end
from callguard.journal import Journal
from callguard.recording_files import RECOVERED, settled_row_values

log = logging.getLogger("callguard.recordings")

# A file written to this recently may still be being closed by MixMonitor (which happens
# milliseconds after its channel is gone): reconcile leaves it for the next run.
RECENT_WRITE_S = 2.0
# REC-FILE-1 layout, parsed back when a file has no row (adoption).
_REL_PATH = re.compile(
    r"(?P<y>\d{4})/(?P<m>\d\d)/(?P<d>\d\d)/(?P<contract>[A-Za-z0-9_-]+)/"
    r"(?P<stamp>\d{8}T\d{6})(?P<ms>\d{3})Z_(?P<dir>in|out)_(?P<uid>[A-Za-z0-9.\-]{1,64})\.wav")
ADOPTED = "adopted by reconcile: the file had no metadata row (number and remote unknown)"
MAX_LISTED = 50  # paths named in a report; the counts are always complete


@dataclass(frozen=True)
class Search:
    contract: str | None = None
    number: str | None = None
    remote: str | None = None
    direction: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0
    # Keyset paging (issue #15): only rows after this (started_at, id) in newest-first order.
    before: tuple[datetime, int] | None = None


def search(session: Session, q: Search) -> list[tuple[Recording, str]]:
    """Rows with their contract code, newest first (REC-FILE-4)."""
    stmt = select(Recording, Contract.code).join(Contract, Contract.id == Recording.contract_id)
    if q.contract:
        stmt = stmt.where(Contract.code == q.contract)
    if q.number:
        stmt = stmt.where(Recording.number == q.number)
    if q.remote:
        stmt = stmt.where(Recording.remote == q.remote)
    if q.direction:
        stmt = stmt.where(Recording.direction == q.direction)
    if q.since:
        stmt = stmt.where(Recording.started_at >= q.since)
    if q.until:
        stmt = stmt.where(Recording.started_at < q.until)
    if q.before is not None:
        stmt = stmt.where(tuple_(Recording.started_at, Recording.id) < tuple_(*q.before))
    stmt = stmt.order_by(Recording.started_at.desc(), Recording.id.desc())
    return [(r, code) for r, code in session.execute(stmt.limit(q.limit).offset(q.offset))]


def to_json(row: Recording, contract: str, recordings_dir: Path) -> dict[str, Any]:
    """One row for people and programs; `path` is the file as this host sees it."""
    return {
        "id": row.id, "contract": contract, "number": row.number, "direction": row.direction,
        "remote": row.remote, "started_at": row.started_at, "answered_at": row.answered_at,
        "ended_at": row.ended_at, "duration_s": row.duration_s, "bytes": row.bytes,
        "sha256": row.sha256, "status": row.status, "reason": row.reason,
        # Issue #14: an encrypted file is age ciphertext for the contract's public key; the
        # sha256 and bytes are the ciphertext's.
        "encrypted": bool(row.encrypted),
        "sha256_of": "age ciphertext" if row.encrypted else "wav",
        "muted": closed_at_end(list(row.muted or []), row.ended_at) if row.ended_at
        else list(row.muted or []),
        "path": str(recordings_dir / row.path),
    }


class ChannelProbe:
    """Does a channel (by unique id) still exist in Asterisk? ARI first; when ARI cannot be
    asked, the Asterisk CLI (`core show channels concise`, unique id in the last field).
    None: neither answered, so nothing may be decided about that call."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cli_ids: set[str] | None = None
        self._cli_failed = False

    def exists(self, channel_id: str) -> bool | None:
        found = self._ari(channel_id)
        return found if found is not None else self._cli(channel_id)

    def _ari(self, channel_id: str) -> bool | None:
        try:
            return AriReader(self.settings, timeout_s=3).channel_exists(channel_id)
        except AsteriskUnavailable:
            return None

    def _cli(self, channel_id: str) -> bool | None:
        if self._cli_ids is None and not self._cli_failed:
            try:
                out = run_cli(self.settings, "core show channels concise")
                self._cli_ids = {line.rsplit("!", 1)[-1].strip()
                                 for line in out.splitlines() if "!" in line}
            except AsteriskCliError as exc:
                log.warning("cannot list Asterisk channels: %s", exc)
                self._cli_failed = True
        return None if self._cli_ids is None else channel_id in self._cli_ids


class AnyNodeProbe:
    """CLU-3, REC-FILE-2: in a cluster a call may live on any node. A channel exists if one
    node has it; it is gone only when every node answered without it; otherwise (a node
    unreachable, none has it) nothing may be decided (None), so a live call on a node that
    cannot be asked is never finished."""

    def __init__(self, probes: list[ChannelProbe]) -> None:
        if not probes:
            raise ValueError("at least one node")
        self.probes = probes

    def exists(self, channel_id: str) -> bool | None:
        unknown = False
        for probe in self.probes:
            found = probe.exists(channel_id)
            if found:
                return True
            unknown = unknown or found is None
        return None if unknown else False


@dataclass
class ReconcileReport:
    checked: int = 0
    still_live: int = 0
    completed: int = 0
    failed: int = 0
    repaired_headers: int = 0
    orphan_files: int = 0
    asterisk_unreachable: bool = False
    busy: int = 0  # written to within RECENT_WRITE_S: left for the next run
    adopted: int = 0
    orphans: list[str] = field(default_factory=list)  # files without a row, not adopted


def _recently_written(path: Path, now: float) -> bool:
    try:
        return now - path.stat().st_mtime < RECENT_WRITE_S
    except OSError:
        return False


def _ended_at(path: Path) -> datetime:
    """When the call was cut off: the file's last write (or now, without a file)."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return datetime.now(UTC)


def _journaled_channels(settings: Settings) -> set[str]:
    """Channels with bookkeeping still waiting in a shell's journal (REL-2): their rows are
    on the way, so their files are not orphans."""
    ids: set[str] = set()
    if settings.journal_dir.is_dir():
        for path in settings.journal_dir.glob("*.jsonl"):
            try:
                ops = Journal(path).take()
            except (OSError, ValueError) as exc:
                log.warning("cannot read journal %s: %s", path, exc)
                continue
            ids.update(str(op.args.get("channel_id", "")) for op in ops)
    return ids


def reconcile(session: Session, settings: Settings, adopt: bool = True,
              progress: Callable[[int, int], None] | None = None,
              channels: ChannelProbe | AnyNodeProbe | None = None) -> ReconcileReport:
    """REC-FILE-2: rows left at `recording` whose call is gone end `complete` (the WAV header
    repaired when Asterisk died before closing the file) or `failed` with a reason; files
    without a row are adopted (a row is created from what the path says) or reported."""
    report = ReconcileReport()
    if channels is None:
        channels = ChannelProbe(settings)
    now = time.time()
    rows = session.scalars(select(Recording).where(Recording.status == "recording")
                           .with_for_update(skip_locked=True)).all()
    for row in rows:
        report.checked += 1
        if progress is not None:
            progress(report.checked, len(rows))
        exists = channels.exists(row.channel_id)
        if exists is None:
            report.asterisk_unreachable = True
            continue
        if exists:
            report.still_live += 1
            continue
        path = settings.recordings_dir / row.path
        if _recently_written(path, now):
            report.busy += 1
            continue
        values = settled_row_values(path)
        for key, value in values.items():
            setattr(row, key, value)
        if row.ended_at is None:
            row.ended_at = _ended_at(path)
        report.repaired_headers += values.get("reason") == RECOVERED
        report.completed += values["status"] == "complete"
        report.failed += values["status"] == "failed"
        log.info("reconciled recording %s: %s (%s)", row.id, values["status"],
                 values.get("reason") or "closed normally")
    _orphans(session, settings, report, adopt, now)
    session.flush()
    return report


def _orphans(session: Session, settings: Settings, report: ReconcileReport, adopt: bool,
             now: float) -> None:
    root = settings.recordings_dir
    if not root.exists():
        return
    known = set(session.scalars(select(Recording.path)))
    files = [f for f in root.rglob("*.wav")
             if str(f.relative_to(root)) not in known and not _recently_written(f, now)]
    report.orphan_files = len(files)
    if not files:
        return
    journaled = _journaled_channels(settings)
    contract_ids = {code: cid for code, cid in session.execute(select(Contract.code,
                                                                      Contract.id))}
    for f in sorted(files):
        rel = str(f.relative_to(root))
        m = _REL_PATH.fullmatch(rel)
        contract_id = contract_ids.get(m["contract"]) if m else None
        if not adopt or m is None or contract_id is None or m["uid"] in journaled \
                or session.scalar(select(Recording.id).where(Recording.channel_id == m["uid"])):
            if len(report.orphans) < MAX_LISTED:
                report.orphans.append(rel)
            continue
        started = datetime.strptime(m["stamp"], "%Y%m%dT%H%M%S").replace(
            tzinfo=UTC) + timedelta(milliseconds=int(m["ms"]))
        values = settled_row_values(f)
        reason = ADOPTED if values.get("reason") is None else f"{ADOPTED}; {values['reason']}"
        session.add(Recording(
            contract_id=contract_id, number="", direction=m["dir"], remote="",
            channel_id=m["uid"], path=rel, started_at=started, ended_at=_ended_at(f),
            **{**values, "reason": reason}))
        report.adopted += 1
        log.info("adopted recording file %s (%s)", rel, values["status"])


@dataclass
class PurgeReport:
    rows: int = 0
    files: int = 0
    bytes: int = 0
    errors: int = 0  # files that could not be deleted: their rows are kept for the next run
    calls: int = 0  # call-log rows (inbound_calls) past the same retention (SEC-3)


def _remove_empty_dirs(start: Path, root: Path) -> None:
    """Drop the day/contract directories a purge emptied (never the root)."""
    d = start
    while d != root and root in d.parents:
        try:
            d.rmdir()
        except OSError:
            return
        d = d.parent


def purge(session: Session, settings: Settings, dry_run: bool = False,
          progress: Callable[[int, int], None] | None = None,
          now: datetime | None = None) -> PurgeReport:
    """REC-FILE-3: delete recordings older than their contract's retention (file, then row);
    every deletion is logged (logger `callguard.recordings`)."""
    report = PurgeReport()
    now = now or datetime.now(UTC)
    root = settings.recordings_dir
    subs = session.execute(select(RecordingSubscription.contract_id, Contract.code,
                                  RecordingSubscription.retention_days)
                           .join(Contract, Contract.id == RecordingSubscription.contract_id)
                           ).all()
    for done, (contract_id, code, days) in enumerate(subs):
        if progress is not None:
            progress(done, len(subs))  # contracts finished so far
        old = session.scalars(select(Recording).where(
            Recording.contract_id == contract_id,
            Recording.started_at < now - timedelta(days=days),
            Recording.status != "recording").order_by(Recording.started_at)).all()
        for row in old:
            path = root / row.path
            existed = path.exists()
            size = path.stat().st_size if existed else 0
            if not dry_run:
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    report.errors += 1
                    log.error("purge: cannot delete %s (recording %s kept): %s", path, row.id,
                              exc)
                    continue
                _remove_empty_dirs(path.parent, root)
                session.delete(row)
            report.rows += 1
            report.files += existed
            report.bytes += size
            log.info("purge%s: contract %s recording %s of %s (%d bytes, retention %d days)",
                     " (dry run)" if dry_run else "", code, row.id,
                     row.started_at.isoformat(timespec="seconds"), size, days)
        # The call log goes with the recordings: a call older than the retention leaves no
        # trace at all (SEC-3).
        stale = (select(InboundCall.id).join(Number, Number.id == InboundCall.number_id)
                 .where(Number.contract_id == contract_id, InboundCall.ended_at.is_not(None),
                        InboundCall.started_at < now - timedelta(days=days)))
        if dry_run:
            report.calls += len(session.scalars(stale).all())
        else:
            gone = session.execute(delete(InboundCall).where(InboundCall.id.in_(stale)))
            report.calls += int(gone.rowcount or 0)  # type: ignore[attr-defined]
    if progress is not None:
        progress(len(subs), len(subs))
    session.flush()
    return report
