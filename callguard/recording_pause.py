"""Pause/resume a running recording (issue #14): MixMonitorMute over AMI while the call goes
on, and the muted interval kept on the row. Used by the API and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard.ami import AmiError, mixmonitor_mute
from callguard.config import Settings
from callguard.db.models import Recording
from callguard.domain.pause import PauseConflict, is_paused, toggled
from callguard.services.base import AdminError, NotFound


class PauseRefused(AdminError):
    status = 409


class AsteriskUnavailable(AdminError):
    status = 503


def set_paused(session: Session, settings: Settings, rec_id: int, pause: bool, now: datetime,
               contract_id: int | None = None) -> dict[str, Any]:
    """contract_id: the caller's own contract (a contract token), None for an operator."""
    row = session.scalar(select(Recording).where(Recording.id == rec_id).with_for_update())
    if row is None or (contract_id is not None and row.contract_id != contract_id):
        raise NotFound(f"no recording {rec_id}")
    if row.status != "recording":
        raise PauseRefused(f"recording {rec_id} is not in progress")
    try:
        intervals = toggled(list(row.muted or []), pause, now)
    except PauseConflict as exc:
        raise PauseRefused(str(exc)) from exc
    try:
        mixmonitor_mute(settings, row.channel_id, pause)
    except AmiError as exc:
        raise AsteriskUnavailable(f"cannot {'pause' if pause else 'resume'}: {exc}") from exc
    row.muted = intervals
    session.flush()
    return {"id": row.id, "paused": is_paused(intervals), "muted": intervals}
