"""PERF-1: the ARI app's batching writer against the real PostgreSQL.

Many calls' writes go as one statement (callguard.db.batch): the rows must be exactly those
the one-by-one statements of callguard.db.queries would give, in order (an update of a row
inserted in the same batch is not lost), and a statement holding a listed-caller counter or a
recordings row commits synchronously (`synchronous_commit=off` only for call statistics), so
a PostgreSQL crash after the commit cannot lose it.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from agi_scripts.fastagi import Fallback
from ari_app.store import Store
from callguard.config import Settings
from callguard.db import batch
from callguard.db.session import make_async_engine, make_sync_engine
from callguard.journal import Journal, Op

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def _ids(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        list_id = conn.execute(text("SELECT min(id) FROM nuisance_lists")).scalar_one()
        contract_id = conn.execute(text("SELECT min(id) FROM contracts")).scalar_one()
    return int(list_id), int(contract_id)


@asynccontextmanager
async def _writer(settings: Settings, tmp_path: Path) -> AsyncIterator[Store]:
    """The ARI app's Store with its batching writer running, closed (flushed) at the end."""
    store = Store(make_async_engine(settings), Journal(tmp_path / "j.jsonl"))
    await store.start()
    try:
        yield store
    finally:
        await store.close()
        await store.engine.dispose()


def _call_ops(list_id: int, contract_id: int) -> list[Op]:
    ops: list[Op] = []
    for i in range(5):  # five listed callers rejected: the month's counter +5
        ops += [Op("inbound_call_started", {
                    "channel_id": f"b.{i}", "list_id": list_id, "number_id": 1,
                    "caller_key": f"k{i}", "rejected": True, "started_at": T0}),
                Op("count_rejection", {"list_id": list_id, "month": "2026-12"}),
                Op("call_outcome", {"at": T0, "contract_id": contract_id, "direction": "in",
                                    "outcome": "rejected", "refuse_class": "", "via": "ari"})]
    end = T0 + timedelta(seconds=3)
    ops += [  # a whole recorded call in one batch: insert, then updates of the same row
        Op("recording_started", {"contract_id": contract_id, "number": "0312345678",
                                 "direction": "in", "remote": "anonymous",
                                 "channel_id": "r.1", "path": "x/r1.wav", "started_at": T0}),
        Op("recording_answered", {"channel_id": "r.1", "answered_at": T0 + timedelta(seconds=1)}),
        Op("recording_ended", {"channel_id": "r.1", "ended_at": end}),
        Op("recording_finished", {"channel_id": "r.1", "values": {
            "status": "complete", "reason": None, "bytes": 48044, "sha256": "ab" * 32,
            "duration_s": 3.0}}),
    ]
    return ops


def _assert_rows_of_call_ops(engine: Engine, list_id: int) -> None:
    """The rows `_call_ops` gives when every op is applied once, in order."""
    with engine.connect() as conn:
        assert conn.execute(text(
            "SELECT count FROM nuisance_counters WHERE list_id = :l AND month = '2026-12'"),
            {"l": list_id}).scalar_one() == 5
        assert conn.execute(text("SELECT count(*) FROM inbound_calls")).scalar_one() == 5
        assert conn.execute(text("SELECT count(*) FROM call_outcomes WHERE via = 'ari'")
                            ).scalar_one() == 5
        row = conn.execute(text(
            "SELECT status, answered_at, ended_at, bytes, duration_s FROM recordings "
            "WHERE channel_id = 'r.1'")).one()
    assert row.status == "complete" and row.bytes == 48044 and row.duration_s == 3.0
    assert row.answered_at == T0 + timedelta(seconds=1)
    assert row.ended_at == T0 + timedelta(seconds=3)


def test_segments_keep_each_row_in_one_statement() -> None:
    ops = _call_ops(1, 1)
    parts = batch.segments(ops)
    # the recording's insert rides with the first; its answer and end share one UPDATE; its
    # finish needs its own statement
    assert [len(p) for p in parts] == [16, 2, 1]
    assert [op for p in parts for op in p] == ops


def test_only_statistics_commit_asynchronously() -> None:
    stats = [Op("call_outcome", {"at": T0, "contract_id": None, "direction": "in",
                                 "outcome": "connected", "refuse_class": "", "via": "ari"})]
    assert batch.statement(stats)[1][0] == "off"
    assert batch.statement([*stats, Op("count_rejection", {"list_id": 1, "month": "m"})]
                           )[1][0] == "on"
    assert batch.statement([Op("recording_ended", {"channel_id": "c", "ended_at": T0})]
                           )[1][0] == "on"


def test_a_statement_carries_only_the_kinds_of_its_batch() -> None:
    """A call's end is one small UPDATE, not eight CTEs over empty arrays (PERF-1)."""
    sql, args = batch.statement([Op("inbound_call_ended", {"channel_id": "c", "ended_at": T0})])
    assert sql.count(" AS (") == 1 and "UPDATE inbound_calls" in sql
    assert args == ["off", ["c"], [T0]]
    full, full_args = batch.statement(_call_ops(1, 1)[:15])  # rejected calls: 3 kinds
    assert full.count(" AS (") == 3 and len(full_args) == 1 + 6 + 3 + 6
    assert sorted(int(n) for n in re.findall(r"\$(\d+)::", full)) == list(
        range(1, len(full_args) + 1))


def test_an_answer_rides_in_the_end_of_its_recording() -> None:
    """A recorded call's end (PERF-1): the answer and the end are one UPDATE, one CTE."""
    ops = [Op("recording_answered", {"channel_id": "r", "answered_at": T0}),
           Op("recording_ended", {"channel_id": "r", "ended_at": T0 + timedelta(seconds=3)}),
           Op("recording_ended", {"channel_id": "s", "ended_at": T0})]
    assert batch.segments(ops) == [ops]
    sql, args = batch.statement(ops)
    assert sql.count(" AS (") == 1 and "UPDATE recordings" in sql
    assert args == ["on", ["r", "s"], [T0 + timedelta(seconds=3), T0], [T0, None]]
    assert batch.statement([ops[1], ops[0], ops[2]]) == (sql, args)  # in any order
    # an answer after the end, or twice, is still cut into the next statement
    late = [ops[1], ops[0]]
    assert batch.segments(late) == [[ops[1]], [ops[0]]]
    assert batch.segments([ops[0], ops[0]]) == [[ops[0]], [ops[0]]]


def test_folded_answer_and_end_give_the_one_by_one_rows(
        clean: Engine, settings: Settings, tmp_path: Path) -> None:
    """Each column is set only where still empty, as the two UPDATEs one by one would do."""
    _, contract_id = _ids(clean)
    first, later, end = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2), T0 + \
        timedelta(seconds=9)

    def started(ch: str) -> Op:
        return Op("recording_started", {"contract_id": contract_id, "number": "0312345678",
                                        "direction": "in", "remote": "anonymous",
                                        "channel_id": ch, "path": f"x/{ch}.wav",
                                        "started_at": T0})

    def answered(ch: str, at: datetime) -> Op:
        return Op("recording_answered", {"channel_id": ch, "answered_at": at})

    def ended(ch: str, at: datetime) -> Op:
        return Op("recording_ended", {"channel_id": ch, "ended_at": at})

    async def run() -> None:
        async with _writer(settings, tmp_path) as store:
            for ops in ([started("a"), started("b"), started("c")],
                        [answered("b", first), ended("c", first)],  # before the call's end
                        [ended("a", end)],  # never answered
                        [answered("b", later), ended("b", end)],  # answered before: kept
                        [answered("c", later), ended("c", end)]):  # ended before: kept
                await store.write(ops)
                await store.flush()

    asyncio.run(run())
    with clean.connect() as conn:
        rows = {r.channel_id: (r.answered_at, r.ended_at) for r in conn.execute(text(
            "SELECT channel_id, answered_at, ended_at FROM recordings"))}
    assert rows == {"a": (None, end), "b": (first, end), "c": (later, first)}


def test_batch_gives_the_rows_of_the_one_by_one_writes(
        clean: Engine, settings: Settings, tmp_path: Path) -> None:
    list_id, contract_id = _ids(clean)

    async def run() -> int:
        async with _writer(settings, tmp_path) as store:
            await store.write(_call_ops(list_id, contract_id))
            await store.flush()
            return store.batches

    assert asyncio.run(run()) == 3  # one statement per segment, not one per op
    _assert_rows_of_call_ops(clean, list_id)
    assert not (tmp_path / "j.jsonl").exists()  # nothing had to be journaled


def test_calls_within_the_window_share_one_statement(
        clean: Engine, settings: Settings, tmp_path: Path) -> None:
    """PERF-1: ten calls decided 5 ms apart (200 calls/s) within the writer's gathering window
    go to PostgreSQL as ONE statement, on a connection with generic plans; every row is there."""
    _, contract_id = _ids(clean)
    assert batch.COALESCE_S > 10 * 0.005  # the ten writes fall in one window

    async def run() -> tuple[int, str]:
        async with _writer(settings, tmp_path) as store:
            for i in range(10):
                await store.write([Op("call_outcome", {
                    "at": T0 + timedelta(milliseconds=i), "contract_id": contract_id,
                    "direction": "in", "outcome": "connected", "refuse_class": "",
                    "via": "ari"})])
                await asyncio.sleep(0.005)
            await store.flush()
            return store.batches, await store._raw.fetchval("SHOW plan_cache_mode")

    assert asyncio.run(run()) == (1, "force_generic_plan")
    with clean.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM call_outcomes WHERE via = 'ari'")
                            ).scalar_one() == 10


@pytest.mark.parametrize(("ops", "expected"), [
    ("stats", "off"), ("counter", "on"), ("recording", "on")])
def test_commit_mode_is_in_force_in_the_statements_transaction(
        clean: Engine, ops: str, expected: str) -> None:
    """set_config(..., true) inside the statement governs that transaction's COMMIT: a
    counter or a recording row is flushed to disk before the commit returns."""
    list_id, contract_id = _ids(clean)
    chosen = {
        "stats": [Op("call_outcome", {"at": T0, "contract_id": contract_id, "direction": "in",
                                      "outcome": "connected", "refuse_class": "",
                                      "via": "ari"})],
        "counter": [Op("count_rejection", {"list_id": list_id, "month": "2026-12"})],
        "recording": [Op("recording_ended", {"channel_id": "none", "ended_at": T0})],
    }[ops]
    raw = clean.raw_connection()
    try:
        cur = raw.cursor()
        # psycopg: $n → %s placeholders, arguments in the order they occur in the text
        statement, args = batch.statement(chosen)
        order = [int(n) for n in re.findall(r"\$(\d+)::", statement)]
        sql = re.sub(r"\$\d+::", "%s::", statement)
        cur.execute("BEGIN")
        cur.execute(sql, [args[n - 1] for n in order])
        cur.execute("SHOW synchronous_commit")
        row = cur.fetchone()
        assert row is not None
        mode = row[0]
        cur.execute("ROLLBACK")
    finally:
        raw.close()
    assert mode == expected


def test_journal_replays_as_batches_and_drops_only_what_the_database_refuses(
        clean: Engine, settings: Settings, tmp_path: Path) -> None:
    """REL-2, PERF-1: journaled writes go back as the writer's batch statements, not one
    statement per op; an op PostgreSQL will never take (here the outcome of a contract deleted
    while the database was away) is dropped with an error line instead of holding back the
    journal for ever, and every other op of its batch is still applied."""
    list_id, contract_id = _ids(clean)
    gone = Op("call_outcome", {"at": T0, "contract_id": 2_000_000_000, "direction": "in",
                               "outcome": "connected", "refuse_class": "", "via": "ari"})
    late = Op("call_outcome", {"at": T0, "contract_id": contract_id, "direction": "in",
                               "outcome": "connected", "refuse_class": "", "via": "ari"})
    ops = [*_call_ops(list_id, contract_id), gone, late]
    journal = Journal(tmp_path / "j.jsonl")
    journal.append(ops)

    async def run() -> tuple[int, int, int]:
        store = Store(make_async_engine(settings), journal)
        try:
            assert store.journal_backlog
            applied = await store.replay_journal()
            return applied, store.batches, journal.pending()
        finally:
            await store.engine.dispose()

    applied, statements, pending = asyncio.run(run())
    assert (applied, pending) == (len(ops), 0)
    assert statements == 2  # the two clean segments; the refused third went op by op
    with clean.connect() as conn:
        assert conn.execute(text(
            "SELECT count FROM nuisance_counters WHERE list_id = :l AND month = '2026-12'"),
            {"l": list_id}).scalar_one() == 5
        assert conn.execute(text("SELECT count(*) FROM call_outcomes WHERE via = 'ari'")
                            ).scalar_one() == 6
        assert conn.execute(text("SELECT status FROM recordings WHERE channel_id = 'r.1'")
                            ).scalar_one() == "complete"


def test_a_window_of_answered_calls_is_two_statements(
        clean: Engine, settings: Settings, tmp_path: Path) -> None:
    """PERF-1: five recorded calls started and answered within one gathering window (100
    calls/s) go as two statements (every start, then every answer), not one per answered call
    (`batch.segments` cut the window at each answer); every row is as written one by one."""
    _, contract_id = _ids(clean)
    ops: list[Op] = []
    for i in range(5):
        ops += [Op("recording_started", {"contract_id": contract_id, "number": "0312345678",
                                         "direction": "in", "remote": "anonymous",
                                         "channel_id": f"w.{i}", "path": f"x/w{i}.wav",
                                         "started_at": T0}),
                Op("call_outcome", {"at": T0, "contract_id": contract_id, "direction": "in",
                                    "outcome": "connected", "refuse_class": "", "via": "ari"}),
                Op("recording_answered", {"channel_id": f"w.{i}",
                                          "answered_at": T0 + timedelta(seconds=i)})]
    assert len(batch.segments(ops)) == 6  # cut at every answer
    assert [len(layer) for layer in batch.layers(ops)] == [10, 5]

    async def run() -> int:
        async with _writer(settings, tmp_path) as store:
            await store.write(ops)
            await store.flush()
            return store.batches

    assert asyncio.run(run()) == 2
    with clean.connect() as conn:
        rows: dict[str, datetime] = dict(conn.execute(text(
            "SELECT channel_id, answered_at FROM recordings WHERE channel_id LIKE 'w.%'")).all())
        assert conn.execute(text("SELECT count(*) FROM call_outcomes WHERE via = 'ari'")
                            ).scalar_one() == 5
    assert rows == {f"w.{i}": T0 + timedelta(seconds=i) for i in range(5)}


def _fallback_writer(settings: Settings, tmp_path: Path) -> Fallback:
    """The FastAGI fallback's writer as the server builds it (real PostgreSQL, psycopg)."""
    fb = Fallback.__new__(Fallback)
    fb.engine = make_sync_engine(settings)
    fb.journal = Journal(tmp_path / "fastagi.jsonl")
    fb._write_lock = threading.Lock()
    return fb


def test_the_fallbacks_transaction_gives_the_rows_of_the_one_by_one_writes(
        clean: Engine, settings: Settings, tmp_path: Path) -> None:
    """REL-1: the fallback sends the same batch statements in one transaction (psycopg)."""
    list_id, contract_id = _ids(clean)
    fb = _fallback_writer(settings, tmp_path)
    try:
        fb.write_now(_call_ops(list_id, contract_id))
    finally:
        fb.engine.dispose()
    _assert_rows_of_call_ops(clean, list_id)
    assert fb.journal.pending() == 0


def test_the_fallbacks_transaction_commits_a_counter_synchronously_to_its_end(
        clean: Engine) -> None:
    """A listed caller's start and counter, then the call's end (statistics only) in a later
    statement of the same transaction: set_config(..., true) of the last statement decides
    the COMMIT, so every statement asks for the transaction's mode, `on`."""
    list_id, _ = _ids(clean)
    ops = [Op("inbound_call_started", {"channel_id": "s.1", "list_id": list_id,
                                       "number_id": 1, "caller_key": "k", "rejected": True,
                                       "started_at": T0}),
           Op("count_rejection", {"list_id": list_id, "month": "2026-12"}),
           Op("inbound_call_ended", {"channel_id": "s.1", "ended_at": T0})]
    statements = batch.transaction_statements(ops)
    assert len(statements) == 2  # the end updates the row the start inserts
    with clean.begin() as conn:
        for sql, params in statements:
            conn.exec_driver_sql(sql, params)
        mode = conn.exec_driver_sql("SHOW synchronous_commit").scalar_one()
        conn.rollback()
    assert mode == "on"


def test_the_fallback_drops_only_what_the_database_refuses(
        clean: Engine, settings: Settings, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """REL-2: an op PostgreSQL will never take (the outcome of a contract deleted meanwhile)
    in the fallback's transaction: the batch goes op by op under savepoints, that op is
    logged whole at ERROR and dropped, every other op is applied, once, and nothing is left
    in the journal to hold back the writes after it (before, the whole batch went to the
    journal and every later write after it, for ever)."""
    list_id, contract_id = _ids(clean)
    gone = Op("call_outcome", {"at": T0, "contract_id": 2_000_000_000, "direction": "in",
                               "outcome": "connected", "refuse_class": "", "via": "fallback"})
    ops = [*_call_ops(list_id, contract_id), gone]
    fb = _fallback_writer(settings, tmp_path)
    try:
        with caplog.at_level("WARNING", logger="callguard.fastagi"):
            fb.write_now(ops)
    finally:
        fb.engine.dispose()
    assert fb.journal.pending() == 0
    dropped = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(dropped) == 1 and "2000000000" in dropped[0].getMessage()
    _assert_rows_of_call_ops(clean, list_id)
    with clean.connect() as conn:  # and no row of the refused outcome
        assert conn.execute(text("SELECT count(*) FROM call_outcomes")).scalar_one() == 5
