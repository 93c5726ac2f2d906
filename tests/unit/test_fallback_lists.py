"""The FastAGI fallback's list store (callguard.db.nuisance_repo.SyncLists) gives up on the
database as the ARI shell's AsyncLists does (3 s), so a 144 caller hears the failure guidance
instead of silence (NCR-REG-7, REL-2, REL-7). Fake sessions here; a real hung server
(SIGSTOP) is an e2e matter, not run against the shared database."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text

from callguard.db.nuisance_repo import AsyncLists, StorageFailed, SyncLists
from callguard.domain.routing import NuisanceMenu
from tests.unit.test_menu144 import FakeAgi


class FakeSession:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def execute(self, statement: Any) -> None:
        self.log.append(str(statement))


class FakeSessions:
    """sessionmaker(...) as SyncLists uses it: `begin()` is one transaction; `hang` (until
    set) makes the server answer nothing once the transaction has begun."""

    def __init__(self, hang: threading.Event | None = None) -> None:
        self.log: list[str] = []
        self.hang = hang
        self.ended = threading.Event()

    @contextmanager
    def begin(self) -> Iterator[FakeSession]:
        self.log.append("BEGIN")
        try:
            if self.hang is not None:
                self.hang.wait(10)
            yield FakeSession(self.log)
        except BaseException:
            self.log.append("ROLLBACK")
            raise
        else:
            self.log.append("COMMIT")
        finally:
            self.ended.set()


def test_the_fallback_gives_up_when_the_ari_shell_does() -> None:
    default = inspect.signature(SyncLists).parameters["timeout_s"].default
    assert default == inspect.signature(AsyncLists).parameters["timeout_s"].default == 3.0


async def test_each_transaction_bounds_its_statements_on_the_server() -> None:
    sessions = FakeSessions()
    lists = SyncLists(sessions, secret=bytes(32))  # type: ignore[arg-type]
    assert await lists._run(lambda session: 42) == 42
    assert sessions.log == ["BEGIN", "SET LOCAL statement_timeout = 3000",
                            "SET LOCAL lock_timeout = 3000", "COMMIT"]


async def test_a_hung_database_fails_within_the_timeout_and_changes_nothing() -> None:
    hang = threading.Event()
    sessions = FakeSessions(hang)
    lists = SyncLists(sessions, timeout_s=0.2)  # type: ignore[arg-type]
    started = time.monotonic()
    try:
        with pytest.raises(StorageFailed, match="TimeoutError"):
            await lists._run(lambda session: session.execute(text("DELETE ...")))
        assert time.monotonic() - started < 1.5
    finally:
        hang.set()  # the server wakes up: the abandoned transaction must not commit
    assert await asyncio.to_thread(sessions.ended.wait, 5)
    assert sessions.log[-2:] == ["DELETE ...", "ROLLBACK"]


@pytest.mark.parametrize(("digit", "prompt"), [("2", "register_failed"), ("3", "congestion")])
async def test_the_fallback_menu_says_so_when_the_database_hangs(digit: str,
                                                                 prompt: str) -> None:
    """NCR-REG-7 / REL-2 over AGI: the same guidance as the ARI shell's on a failure, within
    the timeout, and the caller is released."""
    from agi_scripts.menu144_agi import run_agi_menu
    hang = threading.Event()
    lists = SyncLists(FakeSessions(hang), timeout_s=0.2)  # type: ignore[arg-type]
    agi = FakeAgi({"menu": digit})
    try:
        await asyncio.wait_for(run_agi_menu(agi, lists, "ch-1", NuisanceMenu("0312345679", 7),
                                            False), 3)
    finally:
        hang.set()
    assert agi.streamed == ["menu", prompt] and agi.hung_up

