"""The ARI app's database side: the shared statements of callguard.db.queries, executed with
short timeouts so a slow or absent database never holds a call (REL-2)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callguard.db import queries
from callguard.db.site_repo import load_snapshot_async
from callguard.domain.routing import RecordPlan
from callguard.domain.site import SiteSnapshot

log = logging.getLogger("callguard.store")
T = TypeVar("T")

CALL_PATH_TIMEOUT_S = 1.0


class StoreUnavailable(Exception):
    pass


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

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

    async def active_recordings(self) -> int:
        async def work(s: AsyncSession) -> int:
            return int((await s.execute(queries.active_recordings())).scalar() or 0)
        return await self._run(work)

    async def execute(self, *statements: Any) -> None:
        async def work(s: AsyncSession) -> None:
            for stmt in statements:
                await s.execute(stmt)
        await self._run(work)

    async def record_rejection(self, list_id: int, month: str) -> None:
        await self.execute(queries.count_rejection(list_id, month))

    async def recording_started(
        self, plan: RecordPlan, contract_id: int, channel_id: str, started_at: datetime
    ) -> None:
        await self.execute(queries.recording_started(plan, contract_id, channel_id, started_at))
