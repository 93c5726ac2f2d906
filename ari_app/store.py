"""The ARI app's database side: the shared statements of callguard.db.queries, executed with
short timeouts so a slow or absent database never holds a call (REL-2).

Call-path writes go through ONE batching writer (PERF-1): `write` only queues the ops (a call
never waits for the database); a single task sends everything queued as one fixed statement
per batch (callguard.db.batch), in order, over one connection, or journals it when the
database is away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Insert, Select, Update, literal_column, select
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callguard.db import batch, queries
from callguard.db.queries import write_statement
from callguard.journal import Journal, Op

log = logging.getLogger("callguard.store")
T = TypeVar("T")

CALL_PATH_TIMEOUT_S = 1.0
# A batch is off the call path (no caller waits for it), so it may take longer than a call-path
# read before the database counts as away: under a CPU overload PostgreSQL, at normal priority
# beside a real-time Asterisk, answered a batch in more than 1 s, and everything after it was
# journaled and replayed while the overload lasted (4 Dec bench, 200 calls/s).
BATCH_TIMEOUT_S = 5.0
# Journal replay goes as batch statements of at most this many ops (REL-2, PERF-1): one
# statement per op replayed thousands of journaled writes on an already busy core.
REPLAY_CHUNK = 500


class StoreUnavailable(Exception):
    pass


def refused(exc: StoreUnavailable) -> bool:
    """The database answered and rejected the statement (a constraint, a value that does not
    fit), as opposed to being away or too slow."""
    return isinstance(exc.__cause__, (IntegrityError, DataError))


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
        self._queue: list[Op] = []
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._conn: Any = None  # the writer's SQLAlchemy AsyncConnection (AUTOCOMMIT)
        self._raw: Any = None  # its asyncpg connection (no greenlet hop per batch)
        self._sending = asyncio.Lock()  # the writer and the replay share that connection
        # Held while ops go into the journal because of the backlog flag, and while a replay
        # decides from the file that the backlog is over: without it, ops appended between
        # the replay's count and its `journal_backlog = False` stayed in the file, unreplayed
        # until the app restarted (CI of 8fb4999: 10 ops of test_reliability's outage, then
        # replayed into test_supervision's rows).
        self._journaling = asyncio.Lock()
        self.batches = 0  # statements sent (tests, bench)

    async def start(self) -> None:
        """Start the batching writer (on the running loop)."""
        self._wake, self._idle = asyncio.Event(), asyncio.Event()
        self._idle.set()
        self._writer = asyncio.create_task(self._write_loop())

    async def close(self) -> None:
        """Write (or journal) what is queued, then stop the writer."""
        await self.flush()
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        await self._drop_connection()

    async def flush(self) -> None:
        """Wait until every op queued so far is written or journaled."""
        if self._idle is not None and self._writer is not None and not self._writer.done():
            await self._idle.wait()

    @staticmethod
    async def _guard(work: Awaitable[T], timeout: float = CALL_PATH_TIMEOUT_S) -> T:
        try:
            async with asyncio.timeout(timeout):
                return await work
        except (SQLAlchemyError, OSError, TimeoutError, asyncpg.InterfaceError,
                asyncpg.exceptions.PostgresConnectionError) as exc:
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
        """Queue call-path writes for the batching writer; returns at once. Ops are applied in
        the order queued; while anything is journaled, new ones queue behind it (REL-2)."""
        if not ops:
            return
        if self._wake is None or self._idle is None:  # no writer (tools, tests): direct
            await self._apply(list(ops))
            return
        self._queue.extend(ops)
        self._idle.clear()
        self._wake.set()

    async def _write_loop(self) -> None:
        assert self._wake is not None and self._idle is not None
        while True:
            await self._wake.wait()
            await asyncio.sleep(batch.COALESCE_S)
            self._wake.clear()
            ops, self._queue = self._queue, []
            if ops:
                try:
                    await self._apply(ops)
                except Exception:  # never lose the ops nor the writer
                    log.exception("batch write failed; journaling %d write(s)", len(ops))
                    await self._to_journal(ops)
            if not self._queue:
                self._idle.set()

    async def _to_journal(self, ops: list[Op]) -> None:
        """Journal `ops` and mark the backlog, as one step against a replay's end."""
        async with self._journaling:
            await asyncio.to_thread(self.journal.append, ops)
            self.journal_backlog = True

    async def _behind_backlog(self, ops: list[Op]) -> bool:
        """While anything is journaled, `ops` queue behind it in the journal (True)."""
        async with self._journaling:
            if not self.journal_backlog:
                return False
            await asyncio.to_thread(self.journal.append, ops)
            return True

    async def _apply(self, ops: list[Op]) -> None:
        if self.journal_backlog and await self._behind_backlog(ops):
            return
        parts = batch.layers(ops)
        for n, part in enumerate(parts):
            # an earlier part was journaled: the rest follows it
            if n and self.journal_backlog and await self._behind_backlog(
                    [op for p in parts[n:] for op in p]):
                return
            try:
                await self._guard(self._send(part), BATCH_TIMEOUT_S)
            except asyncpg.PostgresError as exc:
                # The server refused the batch (e.g. a row that no longer fits): apply its
                # ops one by one so one bad op does not take the others with it.
                log.warning("batch refused (%s); writing %d op(s) one by one", exc, len(part))
                await self._one_by_one(part)
            except StoreUnavailable as exc:
                await self._drop_connection()
                rest = [op for p in parts[n:] for op in p]
                log.warning("database unavailable, journaling %d write(s): %s", len(rest), exc)
                await self._to_journal(rest)
                return

    async def _one_by_one(self, part: list[Op]) -> None:
        done = await self._apply_each(part)
        if done < len(part):
            log.warning("database unavailable, journaling %d write(s)", len(part) - done)
            await self._to_journal(part[done:])

    async def _apply_each(self, part: list[Op]) -> int:
        """Apply `part` op by op (after the server refused it as one statement); returns how
        many, from its start, are done with, stopping where the database is away. An op the
        server answers and will never take is logged whole (it can be put in by hand) and
        dropped, not left to block the journal for ever."""
        await self._drop_connection()
        for n, op in enumerate(part):
            try:
                await self.execute(write_statement(op.name, op.args))
            except StoreUnavailable as exc:
                if not refused(exc):
                    return n
                log.error("write refused, dropped: %s %r: %s", op.name, op.args, exc)
        return len(part)

    async def _send(self, part: list[Op]) -> None:
        async with self._sending:
            await self._send_locked(part)

    async def _send_locked(self, part: list[Op]) -> None:
        if self._raw is None:
            if self._conn is None:
                self._conn = await self._single.connect()
            self._raw = (await self._conn.get_raw_connection()).driver_connection
            # Each batch text is prepared once; without this PostgreSQL plans it anew on every
            # execution (a custom plan for the arrays' values), ~20 % of its CPU per batch.
            # The generic plans are the same nested loops over the unique indexes (PERF-1).
            await self._raw.execute("SET plan_cache_mode = force_generic_plan")
        # asyncpg prepares each statement text once per connection and reuses it.
        sql, args = batch.statement(part)
        await self._raw.execute(sql, *args)
        self.batches += 1

    async def _drop_connection(self) -> None:
        conn, self._conn, self._raw = self._conn, None, None
        if conn is not None:
            try:
                await conn.invalidate()
                await conn.close()
            except Exception as exc:  # already broken: nothing to give back
                log.debug("closing the writer's connection: %s", exc)

    async def replay_journal(self) -> int:
        """Apply journaled writes in order; returns how many were applied. They go as batch
        statements (the writer's), a chunk at a time; a chunk PostgreSQL refuses (e.g. a row
        that no longer fits) goes op by op, so one bad op does not hold back the others."""
        ops = await asyncio.to_thread(self.journal.take)
        if not ops:
            self.journal_backlog = False
            return 0
        applied = 0
        for start in range(0, len(ops), REPLAY_CHUNK):
            chunk = ops[start:start + REPLAY_CHUNK]
            done = await self._replay_chunk(chunk)
            applied += done
            if done < len(chunk):
                break
        await asyncio.to_thread(self.journal.done, applied)
        if applied == len(ops):
            async with self._journaling:  # no append between the count and the flag
                self.journal_backlog = await asyncio.to_thread(self.journal.pending) > 0
        if applied:
            log.info("replayed %d journaled write(s)", applied)
        return applied

    async def _replay_chunk(self, chunk: list[Op]) -> int:
        """How many of `chunk`'s ops, from its start, are now in the database."""
        applied = 0
        for part in batch.segments(chunk):
            try:
                await self._guard(self._send(part), BATCH_TIMEOUT_S)
            except asyncpg.PostgresError as exc:
                log.warning("replayed batch refused (%s); replaying %d op(s) one by one",
                            exc, len(part))
                done = await self._apply_each(part)
                applied += done
                if done < len(part):
                    return applied
                continue
            except StoreUnavailable:
                await self._drop_connection()
                return applied
            applied += len(part)
        return applied
