"""The ARI app's database side: the shared statements of callguard.db.queries, executed with
short timeouts so a slow or absent database never holds a call (REL-2)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callguard.db import queries
from callguard.db.queries import write_statement
from callguard.db.site_repo import load_snapshot_async
from callguard.domain.site import SiteSnapshot
from callguard.journal import Journal, Op

log = logging.getLogger("callguard.store")
T = TypeVar("T")

CALL_PATH_TIMEOUT_S = 1.0


class StoreUnavailable(Exception):
    pass


class Store:
    def __init__(self, engine: AsyncEngine, journal: Journal) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.journal = journal
        self.journal_backlog = journal.pending() > 0

    async def _run(
        self, work: Callable[[AsyncSession], Awaitable[T]], timeout: float = CALL_PATH_TIMEOUT_S
    ) -> T:
        async def tx() -> T:
            async with self.sessions.begin() as session:
                return await work(session)

        try:
            return await asyncio.wait_for(tx(), timeout)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def snapshot(self) -> SiteSnapshot:
        return await self._run(load_snapshot_async, timeout=5.0)

    async def is_blocked(self, list_id: int, caller_key: str) -> bool:
        async def work(s: AsyncSession) -> bool:
            return bool((await s.execute(queries.is_blocked(list_id, caller_key))).scalar())
        return await self._run(work)

    async def screening_facts(self, list_id: int | None, caller_key: str | None,
                              count_active: bool) -> tuple[bool, int]:
        """The blocklist probe and the active-recordings count of an inbound call, in one
        transaction (either part may be skipped)."""
        async def work(s: AsyncSession) -> tuple[bool, int]:
            blocked = False
            if list_id is not None and caller_key is not None:
                blocked = bool((await s.execute(queries.is_blocked(list_id, caller_key))).scalar())
            active = 0
            if count_active:
                active = int((await s.execute(queries.active_recordings())).scalar() or 0)
            return blocked, active
        return await self._run(work)

    async def active_recordings(self) -> int:
        async def work(s: AsyncSession) -> int:
            return int((await s.execute(queries.active_recordings())).scalar() or 0)
        return await self._run(work)

    async def execute(self, *statements: Any) -> None:
        async def work(s: AsyncSession) -> None:
            for stmt in statements:
                await s.execute(stmt)
        await self._run(work)

    async def write(self, ops: Sequence[Op]) -> None:
        """Apply call-path writes, or journal them when the database is away (REL-2).

        While anything is journaled, new writes queue behind it so replay keeps their order.
        """
        if not ops:
            return
        if self.journal_backlog:
            self.journal.append(ops)
            return
        try:
            await self.execute(*(write_statement(op.name, op.args) for op in ops))
        except StoreUnavailable as exc:
            log.warning("database unavailable, journaling %d write(s): %s", len(ops), exc)
            self.journal.append(ops)
            self.journal_backlog = True

    async def replay_journal(self) -> int:
        """Apply journaled writes in order; returns how many were applied."""
        ops = await asyncio.to_thread(self.journal.take)
        if not ops:
            self.journal_backlog = False
            return 0
        # One transaction per op: a row that cannot be applied (e.g. a duplicate after a
        # crash) must not hold back the others.
        applied = 0
        for op in ops:
            try:
                await self.execute(write_statement(op.name, op.args))
            except StoreUnavailable:
                break
            applied += 1
        await asyncio.to_thread(self.journal.done, applied)
        if applied == len(ops):
            self.journal_backlog = await asyncio.to_thread(self.journal.pending) > 0
        if applied:
            log.info("replayed %d journaled write(s)", applied)
        return applied
