"""The recordings background worker of the API process (issue #14): encrypts closed
recordings of contracts with a public key (every SEAL_EVERY_S) and purges recordings past
their retention by itself (REC-FILE-3), daily unless the site setting `purge_interval_s`
says otherwise. Both log what they do (logger `callguard.recordings`); the same purge is
`callguard recordings purge [--dry-run]` by hand."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from callguard import recordings
from callguard.api.core import SESSIONS, SETTINGS
from callguard.config import Settings
from callguard.db.models import SiteSetting
from callguard.recording_dtmf import DtmfPause
from callguard.recording_seal import seal_pending

log = logging.getLogger("callguard.recordings")
SEAL_EVERY_S = 2.0
PURGE_INTERVAL_KEY = "purge_interval_s"
DEFAULT_PURGE_INTERVAL_S = 86400
MIN_PURGE_INTERVAL_S = 1


def purge_interval(value: str | None) -> float:
    """The site setting, or daily when unset or not a positive number."""
    try:
        seconds = int(value) if value is not None else DEFAULT_PURGE_INTERVAL_S
    except ValueError:
        return DEFAULT_PURGE_INTERVAL_S
    return float(seconds) if seconds >= MIN_PURGE_INTERVAL_S else DEFAULT_PURGE_INTERVAL_S


def purge_due(last: float | None, now: float, interval: float) -> bool:
    return last is None or now - last >= interval


@dataclass
class Worker:
    settings: Settings
    sessions: sessionmaker[Session]
    last_purge: float | None = None

    def seal_once(self) -> int:
        with self.sessions.begin() as session:
            report = seal_pending(session, self.settings.recordings_dir)
        report.remove_plaintexts()
        return report.sealed

    def interval(self) -> float:
        with self.sessions() as session:
            return purge_interval(session.scalar(
                select(SiteSetting.value).where(SiteSetting.key == PURGE_INTERVAL_KEY)))

    def purge_once(self) -> recordings.PurgeReport:
        with self.sessions.begin() as session:
            report = recordings.purge(session, self.settings)
        log.info("scheduled purge: %d recording(s), %d file(s), %d bytes deleted, %d error(s)",
                 report.rows, report.files, report.bytes, report.errors)
        return report

    def tick(self, now: float) -> None:
        self.seal_once()
        if purge_due(self.last_purge, now, self.interval()):
            self.last_purge = now
            self.purge_once()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.to_thread(self.tick, loop.time())
            except OperationalError as exc:
                log.warning("recordings worker: database unavailable: %s", exc.orig)
            except Exception:
                log.exception("recordings worker failed; retrying")
            await asyncio.sleep(SEAL_EVERY_S)


async def worker_ctx(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup_ctx entry (after the database one): the worker, and the DTMF pause
    listener when AMI is configured, for the app's life."""
    tasks = [asyncio.create_task(Worker(app[SETTINGS], app[SESSIONS]).run())]
    if app[SETTINGS].ami_password:
        tasks.append(asyncio.create_task(DtmfPause(app[SETTINGS], app[SESSIONS]).run()))
    yield
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
