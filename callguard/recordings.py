"""Recordings housekeeping shared by the CLI and the HTTP API (REC-FILE-2/3/4): search,
reconcile after a crash, purge by retention."""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard.config import Settings
from callguard.db.models import Contract, Recording, RecordingSubscription
from callguard.recording_files import finished_row_values, probe, repair_header

log = logging.getLogger("callguard.recordings")


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
    stmt = stmt.order_by(Recording.started_at.desc(), Recording.id.desc())
    return [(r, code) for r, code in session.execute(stmt.limit(q.limit).offset(q.offset))]


def to_json(row: Recording, contract: str, recordings_dir: Path) -> dict[str, Any]:
    return {
        "id": row.id, "contract": contract, "number": row.number, "direction": row.direction,
        "remote": row.remote, "started_at": row.started_at, "answered_at": row.answered_at,
        "ended_at": row.ended_at, "duration_s": row.duration_s, "bytes": row.bytes,
        "sha256": row.sha256, "status": row.status, "reason": row.reason,
        "path": str(recordings_dir / row.path),
    }


def _channel_exists(settings: Settings, channel_id: str) -> bool | None:
    """True/False from ARI; None when Asterisk cannot be asked (then nothing is touched)."""
    auth = base64.b64encode(f"{settings.ari_user}:{settings.ari_password}".encode()).decode()
    req = urllib.request.Request(  # noqa: S310 - loopback URL from settings
        f"{settings.ari_url}/ari/channels/{channel_id}",
        headers={"Authorization": f"Basic {auth}"})
    try:
        with urllib.request.urlopen(req, timeout=3) as resp:  # noqa: S310
            json.load(resp)
            return True
    except urllib.error.HTTPError as exc:
        return False if exc.code == 404 else None
    except OSError:
        return None


@dataclass
class ReconcileReport:
    checked: int = 0
    still_live: int = 0
    completed: int = 0
    failed: int = 0
    repaired_headers: int = 0
    orphan_files: int = 0
    asterisk_unreachable: bool = False


def reconcile(session: Session, settings: Settings) -> ReconcileReport:
    """REC-FILE-2: rows left at `recording` whose call is gone end `complete` (header
    repaired when Asterisk died before closing the file) or `failed` with a reason."""
    report = ReconcileReport()
    now = datetime.now(UTC)
    rows = session.scalars(select(Recording).where(Recording.status == "recording")
                           .with_for_update(skip_locked=True)).all()
    for row in rows:
        report.checked += 1
        exists = _channel_exists(settings, row.channel_id)
        if exists is None:
            report.asterisk_unreachable = True
            continue
        if exists:
            report.still_live += 1
            continue
        path = settings.recordings_dir / row.path
        info, problem = probe(path)
        if info is not None and not info.closed:
            repair_header(path)
            report.repaired_headers += 1
            info, problem = probe(path)
            problem = "recovered after the call was cut off (header repaired)"
        values = finished_row_values(info, problem)
        if values["status"] == "complete" and info is not None and info.closed and problem:
            values["reason"] = problem
        for key, value in values.items():
            setattr(row, key, value)
        if row.ended_at is None:
            row.ended_at = now
        report.completed += values["status"] == "complete"
        report.failed += values["status"] == "failed"
        log.info("reconciled recording %s: %s", row.id, values["status"])
    known = set(session.scalars(select(Recording.path)))
    if settings.recordings_dir.exists():
        report.orphan_files = sum(
            1 for f in settings.recordings_dir.rglob("*.wav")
            if str(f.relative_to(settings.recordings_dir)) not in known)
    session.flush()
    return report


@dataclass
class PurgeReport:
    rows: int = 0
    files: int = 0
    bytes: int = 0


def purge(session: Session, settings: Settings, dry_run: bool = False) -> PurgeReport:
    """REC-FILE-3: delete recordings older than their contract's retention (rows and files)."""
    report = PurgeReport()
    now = datetime.now(UTC)
    subs = session.execute(select(RecordingSubscription.contract_id,
                                  RecordingSubscription.retention_days)).all()
    for contract_id, days in subs:
        old = session.scalars(select(Recording).where(
            Recording.contract_id == contract_id,
            Recording.started_at < now - timedelta(days=days),
            Recording.status != "recording")).all()
        for row in old:
            path = settings.recordings_dir / row.path
            report.rows += 1
            if path.exists():
                report.files += 1
                report.bytes += path.stat().st_size
                if not dry_run:
                    path.unlink()
            if not dry_run:
                session.delete(row)
            log.info("purge%s recording %s (%s)", " (dry run)" if dry_run else "", row.id,
                     row.started_at.date())
    session.flush()
    return report
