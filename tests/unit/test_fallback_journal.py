"""The FastAGI fallback's journaled writes (REL-2, REL-5): journal lines leave the file only
after the transaction that applied them has committed."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from agi_scripts.fastagi import Fallback
from callguard.journal import Journal, Op

T = datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)


class FakeEngine:
    """A transaction that fails on its n-th statement and rolls everything back. `committed`
    holds the channel ids of the committed inbound_call_ended ops, in order (the fallback
    sends them as the batch statements of callguard.db.batch, whose first array they are)."""

    def __init__(self, fail_at: int | None) -> None:
        self.fail_at = fail_at
        self.committed: list[str] = []
        self.statements = 0

    @contextmanager
    def begin(self) -> Iterator[Any]:
        pending: list[str] = []
        engine = self

        class Conn:
            def exec_driver_sql(self, sql: str, params: dict[str, Any]) -> None:
                if engine.fail_at is not None and engine.statements == engine.fail_at:
                    raise OperationalError("stmt", {}, Exception("connection lost"))
                engine.statements += 1
                assert "UPDATE inbound_calls" in sql and params["p1"] == "off"
                pending.extend(params["p2"])

        yield Conn()
        self.committed.extend(pending)  # reached only when the block did not raise


def fallback(tmp_path: Path, engine: FakeEngine) -> Fallback:
    fb = Fallback.__new__(Fallback)
    fb.engine = engine  # type: ignore[assignment]
    fb.journal = Journal(tmp_path / "journal" / "fastagi.jsonl")
    import threading
    fb._write_lock = threading.Lock()
    return fb


def running_writer(tmp_path: Path, engine: FakeEngine) -> Fallback:
    """The fallback with its writer thread running, as the server starts it."""
    import queue
    import threading

    fb = fallback(tmp_path, engine)
    fb._queue = queue.SimpleQueue()
    fb._writer = threading.Thread(target=fb._write_loop, daemon=True)
    fb._writer.start()
    return fb


def ended(channel: str) -> Op:
    return Op("inbound_call_ended", {"channel_id": channel, "ended_at": T})


def test_failing_write_after_a_replay_keeps_the_replayed_lines(tmp_path: Path) -> None:
    engine = FakeEngine(fail_at=0)  # the replayed op and the new one fail together: rollback
    fb = fallback(tmp_path, engine)
    fb.journal.append([ended("a")])
    fb.write_now([ended("b")])
    assert engine.committed == []
    # Nothing lost, order kept: the replayed line is still first, the new one after it.
    assert [o.args["channel_id"] for o in fb.journal.take()] == ["a", "b"]


def test_lines_leave_after_commit(tmp_path: Path) -> None:
    engine = FakeEngine(fail_at=None)
    fb = fallback(tmp_path, engine)
    fb.journal.append([ended("a"), ended("b")])
    fb.write_now([ended("c")])
    assert len(engine.committed) == 3 and fb.journal.pending() == 0
    fb.journal.append([ended("d")])
    fb.replay()
    assert len(engine.committed) == 4 and fb.journal.pending() == 0


def test_journal_is_private(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal" / "x.jsonl")
    j.append([ended("a")])
    j.done(0)
    assert stat.S_IMODE(j.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(j.path.parent.stat().st_mode) == 0o700


def test_call_path_never_waits_on_a_hung_database(tmp_path: Path) -> None:
    """REL-5: `write` queues; the writer thread applies the ops in order, later."""
    import threading

    release = threading.Event()

    class HungEngine(FakeEngine):
        @contextmanager
        def begin(self) -> Iterator[Any]:
            release.wait(5)
            with super().begin() as conn:
                yield conn

    engine = HungEngine(fail_at=None)
    fb = running_writer(tmp_path, engine)
    fb.write([ended("a")])
    fb.write([ended("b"), ended("c")])  # returns at once although the database hangs
    assert engine.committed == []
    release.set()
    fb.close()
    assert engine.committed == ["a", "b", "c"]


def test_calls_queued_while_a_transaction_runs_share_the_next_one(tmp_path: Path) -> None:
    """REL-1 capacity: the writer takes whatever queued while the previous transaction ran
    in one transaction (one pool checkout, ping and commit per batch, not per call), in
    order; the stop marker still ends the loop after what was queued before it."""
    import threading

    first_begun, release = threading.Event(), threading.Event()
    transactions: list[int] = []

    class CountingEngine(FakeEngine):
        @contextmanager
        def begin(self) -> Iterator[Any]:
            first_begun.set()
            release.wait(5)
            before = len(self.committed)
            with super().begin() as conn:
                yield conn
            transactions.append(len(self.committed) - before)  # ops, in one statement each

    engine = CountingEngine(fail_at=None)
    fb = running_writer(tmp_path, engine)
    fb.write([ended("a")])
    assert first_begun.wait(5)  # the writer holds "a" in a transaction of its own
    for channel in "bcd":
        fb.write([ended(channel)])
    release.set()
    fb.close()
    assert not fb._writer.is_alive()
    assert transactions == [1, 3] and engine.statements == 2
    assert engine.committed == ["a", "b", "c", "d"]
