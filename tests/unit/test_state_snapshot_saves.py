"""REL-5: the disk copy of a process's local state is written at once after a quiet spell and
at most every SAVE_EVERY_S in a burst of changes (each write holds every key: 21 MB at 10^5
lists), and whatever is still unwritten is written when the keeper stops. No database: the
keeper's thread is not started."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson
import pytest

from callguard import localstate
from callguard.domain.recording_options import RecordingOptions
from callguard.domain.site import (
    ContractInfo,
    EndpointInfo,
    ForwardingInfo,
    NumberInfo,
    SiteSnapshot,
)
from callguard.journal import write_private
from callguard.localstate import LocalState, StateKeeper


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keeper(tmp_path: Path) -> StateKeeper:
    k = StateKeeper("postgresql+psycopg://nobody@127.0.0.1:1/none", tmp_path, "test")
    k.clock = Clock()
    return k


def state(*keys: str) -> LocalState:
    return LocalState(lists={1: frozenset(keys)}, source="database")


def on_disk(k: StateKeeper) -> frozenset[str]:
    return localstate.decode(k.path.read_bytes()).lists.get(1, frozenset())


def test_first_change_written_at_once_burst_coalesced(keeper: StateKeeper) -> None:
    clock = keeper.clock
    assert isinstance(clock, Clock)
    keeper._set(state("a"), save=True)
    assert on_disk(keeper) == {"a"}
    keeper._set(state("a", "b"), save=True)  # within SAVE_EVERY_S: memory only
    keeper._set(state("a", "b", "c"), save=True)
    assert keeper.current.lists[1] == {"a", "b", "c"} and on_disk(keeper) == {"a"}
    clock.now += localstate.SAVE_EVERY_S
    keeper._save_if_due()  # the keeper loop's next turn
    assert on_disk(keeper) == {"a", "b", "c"}
    mtime = keeper.path.stat().st_mtime_ns
    clock.now += 10 * localstate.SAVE_EVERY_S
    keeper._save_if_due()  # nothing new: not rewritten
    assert keeper.path.stat().st_mtime_ns == mtime


def test_a_recount_alone_does_not_write(keeper: StateKeeper) -> None:
    keeper._set(state("a"), save=True)
    keeper.clock.now += 10 * localstate.SAVE_EVERY_S  # type: ignore[attr-defined]
    mtime = keeper.path.stat().st_mtime_ns
    keeper._set(state("a"), save=False)
    assert keeper.path.stat().st_mtime_ns == mtime


def test_stop_writes_what_is_left(keeper: StateKeeper) -> None:
    keeper._set(state("a"), save=True)
    keeper._set(state("a", "z"), save=True)
    assert on_disk(keeper) == {"a"}
    keeper.stop()  # no thread started: stopped at once
    assert on_disk(keeper) == {"a", "z"}


def test_a_failed_write_is_tried_again(keeper: StateKeeper,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def full(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(localstate, "write_private", full)
    keeper._set(state("a"), save=True)
    assert not keeper.path.exists()
    monkeypatch.setattr(localstate, "write_private", write_private)
    keeper.clock.now += localstate.SAVE_EVERY_S  # type: ignore[attr-defined]
    keeper._save_if_due()
    assert on_disk(keeper) == {"a"}


def test_a_slow_write_spaces_the_next_ones(keeper: StateKeeper,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """PERF-3: at a site so large that a write takes 1 s, the keeper writes at most every
    SAVE_COST_RATIO s, not every SAVE_EVERY_S (which would hold the interpreter half the time)."""
    clock = keeper.clock
    assert isinstance(clock, Clock)
    real = localstate.encode

    def slow(state: LocalState) -> bytes:
        clock.now += 1.0
        return real(state)

    monkeypatch.setattr(localstate, "encode", slow)
    keeper._set(state("a"), save=True)
    keeper._set(state("a", "b"), save=True)
    clock.now += localstate.SAVE_EVERY_S
    keeper._save_if_due()
    assert on_disk(keeper) == {"a"}  # 3 s after the last write began: not yet
    clock.now += localstate.SAVE_COST_RATIO - localstate.SAVE_EVERY_S - 1.0
    keeper._save_if_due()
    assert on_disk(keeper) == {"a", "b"}


def test_every_field_survives_the_disk_copy_and_old_copies_still_read() -> None:
    """orjson writes the dataclasses itself (dates as ISO days, no date as null); a copy
    written before that (no date as "") still reads."""
    contract = ContractInfo(id=7, code="F7", kind="fixed", recording_from=date(2026, 1, 1),
                            nuisance_unit="per-number", contract_list_id=3,
                            rec_options=RecordingOptions(stereo=True, pause_code="*1"))
    site = SiteSnapshot(
        contracts={"F7": contract},
        endpoints={"f7": EndpointInfo("f7", "F7", "201", channels=2, own_number="0312")},
        numbers={"0312": NumberInfo(1, "0312", "F7", "f7", "base", list_id=3)},
        forwardings={"0312": ForwardingInfo("no-answer", "0399", 12)},
        priority_lines=frozenset({"0312"}), settings={"k": "v"})
    state = LocalState(site, {3: frozenset({"k1", "k2"})}, 2, "database")
    back = localstate.decode(localstate.encode(state))
    assert (back.site, back.lists, back.active_recordings) == (site, state.lists, 2)
    assert back.site.index == site.index
    old = orjson.loads(localstate.encode(state))
    old["contracts"]["F7"]["recording_until"] = ""
    assert localstate.decode(orjson.dumps(old)).site == site
