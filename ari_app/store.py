"""The ARI app's database side: the shared statements of callguard.db.queries, executed with
short timeouts so a slow or absent database never holds a call (REL-2)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Insert, Select, Update, literal_column, select
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


def combined(statements: Sequence[Any]) -> Select[tuple[int]] | None:
    """Writes to distinct tables as one statement (data-modifying CTEs): atomic like a
    transaction, one round trip instead of BEGIN + n + COMMIT. None when they touch the same
    table (one statement could not see the other's rows) or are not plain DML."""
    tables = [s.table for s in statements if isinstance(s, (Insert, Update))]
    if len(tables) != len(statements) or len(set(tables)) != len(tables):
        return None
    return select(literal_column("1")).add_cte(
        *(stmt.cte(f"w{i}") for i, stmt in enumerate(statements)))


class Store:
    def __init__(self, engine: AsyncEngine, journal: Journal) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        # Call-path statements are Core constructs: run on a Core connection they skip the
        # ORM session's per-statement work, and a single statement is atomic by itself, so
        # it runs in autocommit (no BEGIN/COMMIT round trips). PERF-1.
        self._single = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.journal = journal
        self.journal_backlog = journal.pending() > 0

    @staticmethod
    async def _guard(work: Awaitable[T], timeout: float = CALL_PATH_TIMEOUT_S) -> T:
        try:
            async with asyncio.timeout(timeout):
                return await work
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _run(
        self, work: Callable[[AsyncSession], Awaitable[T]], timeout: float = CALL_PATH_TIMEOUT_S
    ) -> T:
        async def tx() -> T:
            async with self.sessions.begin() as session:
                return await work(session)

        return await self._guard(tx(), timeout)

    async def _row(self, stmt: Any) -> Any:
        async def one() -> Any:
            async with self._single.connect() as conn:
                return (await conn.execute(stmt)).first()
        return await self._guard(one())

    async def snapshot(self) -> SiteSnapshot:
        return await self._run(load_snapshot_async, timeout=5.0)

    async def is_blocked(self, list_id: int, caller_key: str) -> bool:
        row = await self._row(queries.is_blocked(list_id, caller_key))
        return bool(row[0]) if row is not None else False

    async def execute(self, *statements: Any) -> None:
        """All or none of the statements, in one round trip where possible (PERF-1)."""
        single = statements[0] if len(statements) == 1 else combined(statements)

        async def one(stmt: Any) -> None:
            async with self._single.connect() as conn:
                await conn.execute(stmt)

        async def tx() -> None:
            async with self.engine.begin() as conn:
                for stmt in statements:
                    await conn.execute(stmt)

        await self._guard(one(single) if single is not None else tx())

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
