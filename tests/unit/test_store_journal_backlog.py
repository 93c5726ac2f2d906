"""REL-2: a write that the batching writer journals while a replay is ending is never left in
the journal with the backlog flag down (it would stay there, unreplayed, until the app
restarted; CI of 8fb4999 found 10 such ops of a database outage in the next test's rows).

No database: the store's sending is replaced by a list, and the journal's count of what is
left is held open at the moment the race needs (the replay has counted, not yet decided)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from ari_app.store import Store
from callguard.journal import Journal, Op


def outcome(n: int) -> Op:
    return Op("call_outcome", {"at": datetime(2026, 12, 7, tzinfo=UTC), "contract_id": n,
                               "direction": "in", "outcome": "connected", "refuse_class": "",
                               "via": "ari"})


class HeldCount(Journal):
    """A journal whose `pending`, once armed, counts, says so, then waits to be let go before
    answering."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.armed = False
        self.counted, self.go_on = threading.Event(), threading.Event()

    def pending(self) -> int:
        n = super().pending()
        if self.armed:
            self.counted.set()
            self.go_on.wait(5)
        return n


async def test_a_write_journaled_as_the_replay_ends_is_not_stranded(tmp_path: Path) -> None:
    journal = HeldCount(tmp_path / "ari.jsonl")
    journal.append([outcome(1)])
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    store = Store(engine, journal)
    assert store.journal_backlog
    sent: list[Op] = []

    async def send(part: list[Op]) -> None:  # the database takes everything
        sent.extend(part)

    store._send = send  # type: ignore[method-assign]
    journal.armed = True
    try:
        replay = asyncio.create_task(store.replay_journal())
        # The replay has counted what is left (nothing) and not yet decided.
        assert await asyncio.to_thread(journal.counted.wait, 5)
        # The writer's next batch, while the backlog flag is still up.
        write = asyncio.create_task(store._apply([outcome(2)]))
        await asyncio.sleep(0.1)  # as far as it gets before the replay decides
        journal.go_on.set()
        assert await replay == 1
        await write
    finally:
        journal.go_on.set()
        await engine.dispose()
    left = Journal(journal.path).pending()
    # Either written, or journaled with the flag up so the next replay takes it.
    assert (left == 0 and not store.journal_backlog) or (left == 1 and store.journal_backlog)
    assert [op.args["contract_id"] for op in sent] + [2] * left == [1, 2]
