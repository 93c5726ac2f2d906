"""Pause/resume a running recording (issue #14): MixMonitorMute over AMI while the call goes
on, and the muted interval kept on the row. Used by the API and the CLI."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard.ami import AmiError, mixmonitor_mute
from callguard.asterisk.ari import AriReader
from callguard.asterisk.ari import AsteriskUnavailable as AriUnavailable
from callguard.config import Settings
from callguard.db.models import Recording
from callguard.domain.pause import PauseConflict, is_paused, toggled, tone_app_args
from callguard.services.base import AdminError, NotFound

log = logging.getLogger("callguard.recordings")
TONE_ARI_TIMEOUT_S = 2.0  # the DTMF listener waits for this; the pause is already done


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


def play_pause_tone(settings: Settings, channel_id: str, action: str,
                    reader: AriReader | None = None) -> bool:
    """The tone of `action` ("pause" | "resume"; callguard.domain.pause) whispered to the
    channel `channel_id` only (the customer's, where the digits came from): a snoop channel
    with whisper=out, spy=none into the ARI app, which plays the tone on it and hangs it up
    (ari_app/app.py). Best effort: the pause stands either way; a tone not played (the ARI app
    away, fallback mode; Asterisk not answering; the channel gone) is one INFO line."""
    ari = reader or AriReader(settings, timeout_s=TONE_ARI_TIMEOUT_S)
    try:
        if not ari.app_registered(settings.ari_app):
            log.info("no %s tone: the ARI app is not connected (fallback mode)", action)
            return False
        if ari.snoop(channel_id, settings.ari_app, tone_app_args(action)) is None:
            log.info("no %s tone: channel %s is gone", action, channel_id)
            return False
    except AriUnavailable as exc:
        log.info("no %s tone: %s", action, exc)
        return False
    return True
