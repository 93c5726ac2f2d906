"""REL-1, REL-5, REL-6, REL-7: the services keep the astdb route map equal to their site
snapshot: debounced, only the difference written, the families read whole (`database show`,
which holds Asterisk's astdb lock) only when the marker `callguard_meta/map_hash` names a map
the process does not know, written only while the keeper follows PostgreSQL, one WARNING while
Asterisk cannot be reached, never an exception out of the thread. A fake Asterisk console
answers as main/db.c does."""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

import callguard.cli.site as site_cli
from callguard import astdb_sync
from callguard.astdb_sync import AstdbSync, Debounce, MapLock, keeper_site, sync_once
from callguard.asterisk.cli import AsteriskCliError
from callguard.cli import CliError
from callguard.config import Settings
from callguard.domain.astdb import (
    CID,
    MAP_HASH,
    META,
    ROUTE,
    UnreadableOutput,
    desired_map,
    map_hash,
)
from callguard.domain.site import EndpointInfo, NumberInfo, SiteSnapshot
from callguard.localstate import LocalState, StateKeeper
from tests.waiting import wait_for


class FakeAsterisk:
    """An astdb behind `database show|get|put|del`, recording the commands it was sent."""

    def __init__(self, db: dict[str, dict[str, str]] | None = None) -> None:
        self.db: dict[str, dict[str, str]] = db or {}
        self.commands: list[str] = []
        self.down = False
        self.lock = threading.Lock()

    def __call__(self, command: str) -> str:
        with self.lock:
            if self.down:
                raise AsteriskCliError("Asterisk console /run/asterisk/asterisk.ctl: "
                                       "[Errno 111] Connection refused")
            self.commands.append(command)
            words = command.split()
            verb, family = words[1], words[2]
            fam = self.db.setdefault(family, {})
            if verb == "get":
                return (f"Value: {fam[words[3]]}\n" if words[3] in fam
                        else "Database entry not found.\n")
            if verb == "show":
                lines = [f"{f'/{family}/{k}':<50}: {v:<25}" for k, v in sorted(fam.items())]
                return "\n".join([*lines, f"{len(lines)} results found.", ""])
            if verb == "put":
                fam[words[3]] = words[4]
                return "Updated database successfully\n"
            if verb == "del":
                return ("Database entry removed.\n" if fam.pop(words[3], None) is not None
                        else "Database entry does not exist.\n")
            raise AssertionError(command)

    def writes(self) -> list[str]:
        return [c for c in self.commands if c.split()[1] in ("put", "del")]

    def shows(self) -> list[str]:
        return [c for c in self.commands if c.startswith("database show")]

    def marker(self) -> str | None:
        return self.db.get(META, {}).get(MAP_HASH)


def marker_put(site: SiteSnapshot) -> str:
    return f"database put {META} {MAP_HASH} {map_hash(desired_map(site))}"


MARKER_DEL = f"database del {META} {MAP_HASH}"


def make_site(f2b_number_on: str = "f2-b", extra: str | None = None) -> SiteSnapshot:
    endpoints = {n: EndpointInfo(n, "F2", x, own_number=o) for n, x, o in (
        ("f2-a", "2001", "0612345678"), ("f2-b", "2002", "0612345679"))}
    numbers = {"0612345678": NumberInfo(1, "0612345678", "F2", "f2-a", "base"),
               "0612345679": NumberInfo(2, "0612345679", "F2", f2b_number_on, "base")}
    if extra:
        numbers[extra] = NumberInfo(3, extra, "F2", "f2-a", "dial-in")
    if f2b_number_on != "f2-b":
        endpoints["f2-b"] = replace(endpoints["f2-b"], own_number=None)
    return SiteSnapshot(endpoints=endpoints, numbers=numbers)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Holder:
    """What the process's StateKeeper holds: the site the syncer reads when it runs."""

    def __init__(self, site: SiteSnapshot) -> None:
        self.site = site

    def __call__(self) -> SiteSnapshot:
        return self.site


@pytest.fixture
def clock() -> Clock:
    return Clock()


def syncer(asterisk: FakeAsterisk, holder: Holder, clock: Clock) -> AstdbSync:
    return AstdbSync(asterisk, holder, quiet_s=1.0, max_wait_s=10.0, retry_s=10.0,
                     reconcile_every_s=300.0, clock=clock)


# ---- one sync ------------------------------------------------------------------------------------
def test_sync_writes_only_the_difference() -> None:
    asterisk = FakeAsterisk({ROUTE: {"0612345678": "0612345678@f2-a",
                                     "0612345679": "0612345679@f2-b",
                                     "0699999999": "gone@f9"},
                             CID: {"f2-a": "0612345678", "f2-b": "0612345679"},
                             "callguard_bench": {"active": "1"}})
    sync_once(asterisk, make_site(f2b_number_on="f2-a"))
    assert asterisk.writes() == [
        "database put callguard_route 0612345679 0612345678@f2-a",
        "database del callguard_cid f2-b",
        "database del callguard_route 0699999999",
        marker_put(make_site(f2b_number_on="f2-a")),  # last
    ]
    assert asterisk.db[ROUTE] == desired_map(make_site(f2b_number_on="f2-a"))[ROUTE]
    assert asterisk.db["callguard_bench"] == {"active": "1"}  # not ours: untouched
    asterisk.commands.clear()
    sync_once(asterisk, make_site(f2b_number_on="f2-a"))
    assert asterisk.writes() == []  # read, nothing to write
    assert len(asterisk.shows()) == 2  # the manual repair reads whole, marker or not


def test_map_hash_is_stable_and_tells_maps_apart() -> None:
    a, b = desired_map(make_site()), desired_map(make_site(f2b_number_on="f2-a"))
    assert map_hash(a) == map_hash({k: dict(reversed(list(v.items()))) for k, v in a.items()})
    assert map_hash(a) != map_hash(b) and len(map_hash(a)) == 16
    assert map_hash({ROUTE: {"1": "2 3"}, CID: {}}) != map_hash({ROUTE: {"1 2": "3"}, CID: {}})


def test_a_put_asterisk_refuses_is_an_error() -> None:
    def refusing(command: str) -> str:
        if command.startswith("database show"):
            return "0 results found.\n"
        if command.startswith("database get"):
            return "Database entry not found.\n"
        return "Failed to update entry\n"
    with pytest.raises(astdb_sync.AstdbWriteFailed):
        sync_once(refusing, make_site())


# ---- the debounce --------------------------------------------------------------------------------
def test_debounce_waits_for_quiet_but_not_forever() -> None:
    d = Debounce(quiet_s=1.0, max_wait_s=10.0)
    assert d.due_in(0.0) is None
    d.change(100.0)
    assert d.due_in(100.0) == 1.0
    d.change(100.5)
    assert d.due_in(100.5) == 1.0  # quiet_s after the last change
    for t in range(101, 111):  # a change every second for ten seconds
        d.change(float(t) - 0.2)
    assert d.due_in(109.0) == 1.0 and d.due_in(110.0) == 0.0  # max_wait_s after the first
    d.clear()
    assert d.due_in(111.0) is None


# ---- the syncer's turns (no thread: step() with a fake clock) ------------------------------------
def test_full_reconcile_at_start(clock: Clock) -> None:
    asterisk = FakeAsterisk()
    s = syncer(asterisk, Holder(make_site()), clock)
    assert s.step() == 300.0  # synced; next turn: the periodic reconcile
    assert asterisk.db[ROUTE] == desired_map(make_site())[ROUTE]
    assert asterisk.db[CID] == desired_map(make_site())[CID]
    assert asterisk.marker() == map_hash(desired_map(make_site()))
    assert asterisk.commands[-1] == marker_put(make_site())
    assert s.syncs == 1 and s.full_reads == 1


def test_a_burst_of_changes_is_one_update_after_a_quiet_second(clock: Clock) -> None:
    asterisk = FakeAsterisk()
    holder = Holder(make_site())
    s = syncer(asterisk, holder, clock)
    s.step()
    asterisk.commands.clear()
    for extra in ("0612340001", "0612340002", "0612340003"):  # three changes, 0.3 s apart
        holder.site = make_site(extra=extra)
        s.site_changed()
        clock.now += 0.3
    assert s.step() == pytest.approx(0.7)  # not yet: quiet for 0.3 s of the 1.0 s
    assert asterisk.commands == []
    clock.now += 0.7
    s.step()
    assert asterisk.commands == [  # one `get`, the difference between the maps; no `show`
        f"database get {META} {MAP_HASH}",
        MARKER_DEL,  # first: a write cut short leaves no marker
        "database put callguard_route 0612340003 0612345678@f2-a",
        marker_put(make_site(extra="0612340003")),  # last
    ]
    assert s.syncs == 2 and s.full_reads == 1


def test_a_site_change_that_leaves_the_map_as_it_is_sends_nothing(clock: Clock) -> None:
    """A setting, a priority line, a contract's recording option: a new snapshot, the same
    map; the map last written is compared, Asterisk is not even asked."""
    asterisk = FakeAsterisk()
    holder = Holder(make_site())
    s = syncer(asterisk, holder, clock)
    s.step()
    asterisk.commands.clear()
    holder.site = replace(make_site(), settings={"max_recordings": "10"})
    s.site_changed()
    clock.now += 1.0
    s.step()
    assert asterisk.commands == []


def test_periodic_reconcile_reads_the_marker_not_the_families(clock: Clock) -> None:
    """REL-7: every 5 min one `database get`, no `database show` (which holds Asterisk's
    astdb lock while it writes every row to us) while the marker names the map wanted."""
    asterisk = FakeAsterisk()
    s = syncer(asterisk, Holder(make_site()), clock)
    s.step()
    asterisk.commands.clear()
    for _ in range(3):
        clock.now += 300.0
        assert s.step() == 300.0
    assert asterisk.commands == [f"database get {META} {MAP_HASH}"] * 3
    assert s.full_reads == 1


def test_periodic_reconcile_repairs_astdb_without_our_marker(clock: Clock) -> None:
    """An Asterisk restarted on another astdb, or a hand edit that drops the marker (the
    README's repair: that or `callguard site sync-asterisk`): read whole, repaired."""
    asterisk = FakeAsterisk()
    s = syncer(asterisk, Holder(make_site()), clock)
    s.step()
    del asterisk.db[CID]["f2-b"]  # `database del callguard_cid f2-b` by hand
    del asterisk.db[META][MAP_HASH]
    clock.now += 299.0
    assert s.step() == pytest.approx(1.0) and "f2-b" not in asterisk.db[CID]
    clock.now += 1.0
    s.step()
    assert asterisk.db[CID]["f2-b"] == "0612345679"
    assert asterisk.marker() == map_hash(desired_map(make_site()))
    assert s.full_reads == 2


def test_a_restarted_process_finds_the_map_in_place_by_the_marker(clock: Clock) -> None:
    """REL-7: the hung app killed and started again: one `get`, nothing read whole, nothing
    written; then its changes go by the difference."""
    asterisk = FakeAsterisk()
    syncer(asterisk, Holder(make_site()), clock).step()
    asterisk.commands.clear()
    holder = Holder(make_site())
    again = syncer(asterisk, holder, clock)
    again.step()
    assert asterisk.commands == [f"database get {META} {MAP_HASH}"]
    holder.site = make_site(f2b_number_on="f2-a")
    again.site_changed()
    clock.now += 1.0
    again.step()
    assert asterisk.shows() == [] and again.full_reads == 0
    assert {f: asterisk.db[f] for f in (ROUTE, CID)} == desired_map(holder.site)


def test_a_marker_of_another_map_means_reading_astdb_whole(clock: Clock) -> None:
    """The other writer wrote a map this process does not know (it lagged, or led): the
    difference from this process's last map would be wrong, astdb is read whole."""
    asterisk = FakeAsterisk()
    holder = Holder(make_site())
    s = syncer(asterisk, holder, clock)
    s.step()
    other = make_site(extra="0612340007")  # the other writer's map, from a later change
    sync_once(asterisk, other)
    asterisk.commands.clear()
    holder.site = make_site(extra="0612340008")
    s.site_changed()
    clock.now += 1.0
    s.step()
    assert len(asterisk.shows()) == 2 and s.full_reads == 2
    assert "database del callguard_route 0612340007" in asterisk.writes()
    assert {f: asterisk.db[f] for f in (ROUTE, CID)} == desired_map(holder.site)
    assert asterisk.marker() == map_hash(desired_map(holder.site))


def test_a_write_cut_short_leaves_no_marker(clock: Clock) -> None:
    """Asterisk gone between two puts: no marker names the half-written map, so the next
    sync (this process's or the other's) reads astdb whole."""
    asterisk = FakeAsterisk()
    holder = Holder(make_site())
    s = syncer(asterisk, holder, clock)
    s.step()
    puts = {"n": 0}

    def dying(command: str) -> str:
        if command.startswith("database put callguard_route"):
            puts["n"] += 1
            if puts["n"] == 2:
                raise AsteriskCliError("Asterisk console: [Errno 32] Broken pipe")
        return asterisk(command)

    s.run = dying
    holder.site = make_site(extra="0612340001")
    holder.site = replace(holder.site, numbers={
        **holder.site.numbers, "0612340002": replace(
            holder.site.numbers["0612340001"], number="0612340002")})
    s.site_changed()
    clock.now += 1.0
    assert s.step() == 10.0 and s.failing
    assert asterisk.marker() is None
    s.run = asterisk
    clock.now += 10.0
    s.step()
    assert s.full_reads == 2 and not s.failing
    assert asterisk.marker() == map_hash(desired_map(holder.site))


def test_an_unreadable_marker_is_no_permission_to_write(
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    asterisk = FakeAsterisk()

    def confused(command: str) -> str:
        if command.startswith("database get"):
            return "No such command 'database get' (type 'core show help database get')\n"
        return asterisk(command)

    s = syncer(asterisk, Holder(make_site()), clock)
    s.run = confused
    caplog.set_level(logging.WARNING, logger="callguard.astdb")
    assert s.step() == 10.0
    assert asterisk.commands == [] and s.failing
    assert "unexpected `database get` output" in caplog.records[0].getMessage()
    with pytest.raises(UnreadableOutput):
        sync_once(confused, make_site())


def test_other_families_are_never_touched(clock: Clock) -> None:
    bench = {"callguard_bench": {"active": "1"}, "callguard_bench_route": {"0699": "x@y"}}
    asterisk = FakeAsterisk({k: dict(v) for k, v in bench.items()})
    holder = Holder(make_site())
    s = syncer(asterisk, holder, clock)
    s.step()
    holder.site = make_site(f2b_number_on="f2-a")
    s.site_changed()
    clock.now += 1.0
    s.step()
    assert all("callguard_bench" not in c for c in asterisk.commands)
    assert {k: asterisk.db[k] for k in bench} == bench


def test_unreachable_asterisk_is_one_warning_then_retried(
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    asterisk = FakeAsterisk()
    asterisk.down = True
    holder = Holder(make_site())
    s = syncer(asterisk, holder, clock)
    caplog.set_level(logging.INFO, logger="callguard.astdb")
    assert s.step() == 10.0  # RETRY_S
    for _ in range(5):  # down for a minute, a site change meanwhile
        clock.now += 10.0
        holder.site = make_site(extra="0612340009")
        s.site_changed()
        s.step()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Connection refused" in warnings[0].getMessage()
    assert s.failing
    asterisk.down = False
    clock.now += 10.0
    s.step()
    assert not s.failing
    assert asterisk.db[ROUTE]["0612340009"] == "0612345678@f2-a"
    assert any("reachable again" in r.getMessage() for r in caplog.records)


# ---- the thread ----------------------------------------------------------------------------------
def wait_until(predicate: Callable[[], object], timeout_s: float = 5.0) -> bool:
    return wait_for(predicate, timeout_s, every_s=0.01)  # the thread's waits are 0.05 s


def test_thread_follows_the_keepers_site_and_survives_a_bug(tmp_path: Path) -> None:
    """The StateKeeper calls the syncer when its site snapshot is replaced (not for a list or
    a recordings count); the syncer writes from its own thread; a runner that raises what no
    one expected (a bug) is logged and retried, the thread goes on."""
    keeper = StateKeeper("postgresql+psycopg://nobody@127.0.0.1:1/none", tmp_path, "astdb")
    keeper.current = LocalState(make_site(), source="database")
    keeper.connected.set()  # as its thread does once LISTENing
    asterisk = FakeAsterisk()
    calls = {"n": 0}

    def flaky(command: str) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyError("a bug")
        return asterisk(command)

    s = astdb_sync.follow(keeper, cast(Settings, object()), flaky, quiet_s=0.05,
                          lock=MapLock(None), max_wait_s=0.5, retry_s=0.1)
    try:
        assert wait_until(lambda: asterisk.db.get(ROUTE) == desired_map(make_site())[ROUTE])
        seen = len(asterisk.commands)
        keeper._set(replace(keeper.current, lists={1: frozenset({"k"})}), save=False)
        time.sleep(0.2)
        assert len(asterisk.commands) == seen  # a list change: no site change, no sync
        keeper._set(LocalState(make_site(f2b_number_on="f2-a"), source="database"),
                    save=False)
        assert wait_until(lambda: asterisk.db[ROUTE]["0612345679"] == "0612345678@f2-a")
        assert "f2-b" not in asterisk.db[CID]
    finally:
        s.stop()
        keeper.engine.dispose()
    assert s._thread is not None and not s._thread.is_alive()


def test_no_site_known_yet_leaves_the_map_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A process started with the database down and no snapshot on disk knows no site: the
    map the dialplan has is all there is, never emptied; the database's site is written as
    soon as the keeper has it."""
    keeper = StateKeeper("postgresql+psycopg://nobody@127.0.0.1:1/none", tmp_path, "astdb")
    assert keeper.current.source == "empty"
    asterisk = FakeAsterisk({k: dict(v) for k, v in desired_map(make_site()).items()})
    caplog.set_level(logging.WARNING, logger="callguard.astdb")
    s = astdb_sync.follow(keeper, cast(Settings, object()), asterisk, quiet_s=0.05,
                          lock=MapLock(None), retry_s=0.1)
    try:
        assert wait_until(lambda: any("no site known" in r.getMessage()
                                      for r in caplog.records))
        time.sleep(0.3)  # retried meanwhile
        assert asterisk.commands == []
        keeper._set(LocalState(make_site(f2b_number_on="f2-a"), source="database"),
                    save=False)
        keeper.connected.set()  # (after the load, as the keeper thread sets it)
        assert wait_until(lambda: asterisk.db[ROUTE]["0612345679"] == "0612345678@f2-a")
    finally:
        s.stop()
        keeper.engine.dispose()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


# ---- only a keeper that follows PostgreSQL writes (two writers, REL-5) ---------------------------
@pytest.fixture
def keeper(tmp_path: Path) -> Iterator[StateKeeper]:
    k = StateKeeper("postgresql+psycopg://nobody@127.0.0.1:1/none", tmp_path, "astdb")
    yield k
    k.engine.dispose()


def test_a_process_on_its_disk_copy_does_not_undo_the_other_writer(
        keeper: StateKeeper, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """Started while the database was down: its site is the disk copy, older than the one
    the other process (connected) has written; it writes nothing, quietly, until its keeper
    loads the database's site."""
    asterisk = FakeAsterisk()
    sync_once(asterisk, make_site(extra="0612340001"))  # the other process, up to date
    written = {k: dict(v) for k, v in asterisk.db.items()}
    asterisk.commands.clear()
    keeper.current = LocalState(make_site(), source="disk")  # before 0612340001 was added
    s = syncer(asterisk, Holder(make_site()), clock)
    s.site = keeper_site(keeper)
    caplog.set_level(logging.DEBUG, logger="callguard.astdb")
    assert s.step() == 1.0  # looked at again every QUIET_S
    for _ in range(5):
        clock.now += 1.0
        assert s.step() == 1.0
    keeper.connected.set()  # even connected: until it has loaded, its site is the disk's
    clock.now += 1.0
    s.step()
    assert asterisk.commands == [] and asterisk.db == written
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "disk copy" in caplog.records[0].getMessage() and not s.failing
    keeper._set(LocalState(make_site(extra="0612340001"), source="database"), save=False)
    clock.now += 1.0
    s.step()
    assert asterisk.writes() == [] and asterisk.shows() == []  # the marker: already there
    assert s.syncs == 1


def test_a_process_that_lost_the_database_does_not_write_until_back(
        keeper: StateKeeper, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    asterisk = FakeAsterisk()
    keeper.current = LocalState(make_site(), source="database")
    keeper.connected.set()
    s = syncer(asterisk, Holder(make_site()), clock)
    s.site = keeper_site(keeper)
    s.step()
    assert asterisk.db[ROUTE] == desired_map(make_site())[ROUTE]
    asterisk.commands.clear()
    keeper.connected.clear()  # the LISTEN connection lost: notifications missed meanwhile
    keeper.current = LocalState(make_site(f2b_number_on="f2-a"), source="database")
    s.site_changed()
    caplog.set_level(logging.DEBUG, logger="callguard.astdb")
    clock.now += 1.0
    assert s.step() == 1.0
    clock.now += 300.0  # a reconcile due meanwhile: not written either
    assert s.step() == 1.0
    assert asterisk.commands == []
    assert "database connection lost" in caplog.records[0].getMessage()
    keeper.connected.set()  # reconnected and reloaded
    clock.now += 1.0
    s.step()
    assert {f: asterisk.db[f] for f in (ROUTE, CID)} == desired_map(make_site(f2b_number_on="f2-a"))
    assert asterisk.shows() == []


def test_no_site_known_is_still_a_warning(keeper: StateKeeper, clock: Clock,
                                          caplog: pytest.LogCaptureFixture) -> None:
    s = syncer(FakeAsterisk(), Holder(make_site()), clock)
    s.site = keeper_site(keeper)
    caplog.set_level(logging.WARNING, logger="callguard.astdb")
    assert s.step() == 10.0
    assert "no site known" in caplog.records[0].getMessage()


# ---- `callguard site sync-asterisk`: the same map, the same line -------------------------------
@contextmanager
def no_db(settings: object = None) -> Iterator[object]:
    yield object()


@pytest.fixture
def cli_lock(tmp_path: Path) -> MapLock:
    return MapLock(tmp_path / astdb_sync.LOCK_FILE, timeout_s=0.3)


@pytest.fixture
def cli_asterisk(monkeypatch: pytest.MonkeyPatch, cli_lock: MapLock) -> FakeAsterisk:
    """`site sync-asterisk` with the reference-like site and a fake `asterisk -rx`."""
    asterisk = FakeAsterisk({ROUTE: {"0699999999": "gone@f9"}})
    monkeypatch.setattr(site_cli, "load_settings", lambda: object())
    monkeypatch.setattr(site_cli, "map_lock", lambda settings, timeout_s: cli_lock)
    monkeypatch.setattr(site_cli, "db_session", no_db)
    monkeypatch.setattr(site_cli, "load_snapshot", lambda session: make_site())
    monkeypatch.setattr(site_cli, "run_cli", lambda settings, command: asterisk(command))
    return asterisk


def test_sync_asterisk_cli_writes_the_difference_and_says_what_it_always_said(
        cli_asterisk: FakeAsterisk, capsys: pytest.CaptureFixture[str]) -> None:
    assert site_cli._sync(argparse.Namespace()) == 0
    assert capsys.readouterr().out == "astdb route map: 2 numbers, 2 endpoints\n"
    assert cli_asterisk.db[ROUTE] == desired_map(make_site())[ROUTE]
    assert cli_asterisk.db[CID] == desired_map(make_site())[CID]
    cli_asterisk.commands.clear()
    assert site_cli._sync(argparse.Namespace()) == 0
    assert cli_asterisk.writes() == []  # nothing deleted and written again


def test_sync_asterisk_cli_repairs_whatever_the_marker_says(cli_asterisk: FakeAsterisk) -> None:
    """The manual repair: a hand edit that left the marker in place is found and undone."""
    assert site_cli._sync(argparse.Namespace()) == 0
    assert cli_asterisk.marker() == map_hash(desired_map(make_site()))
    cli_asterisk.db[ROUTE]["0612345678"] = "0612345678@f9-z"  # by hand
    cli_asterisk.commands.clear()
    assert site_cli._sync(argparse.Namespace()) == 0
    assert cli_asterisk.writes() == [
        MARKER_DEL, "database put callguard_route 0612345678 0612345678@f2-a",
        marker_put(make_site())]


def test_sync_asterisk_cli_without_asterisk_is_a_clear_error(cli_asterisk: FakeAsterisk) -> None:
    cli_asterisk.down = True
    with pytest.raises(CliError, match="cannot update Asterisk"):
        site_cli._sync(argparse.Namespace())


def test_sync_asterisk_cli_waits_for_the_services_turn(cli_asterisk: FakeAsterisk,
                                                       cli_lock: MapLock) -> None:
    """The manual repair takes the writers' lock too: while a service holds it (here: for
    longer than the lock's timeout), the CLI sends nothing and says why."""
    assert cli_lock.path is not None
    fd = os.open(cli_lock.path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(CliError, match=r"cannot update Asterisk: .*held by another writer"):
            site_cli._sync(argparse.Namespace())
        assert cli_asterisk.commands == []
    finally:
        os.close(fd)
    assert site_cli._sync(argparse.Namespace()) == 0


# ---- two writers of one map take turns (MapLock) -----------------------------------------------
class Paused:
    """A runner that stops after the first put into the route family until released: a
    writer halfway through its changes."""

    def __init__(self, asterisk: FakeAsterisk) -> None:
        self.asterisk = asterisk
        self.midway = threading.Event()
        self.release = threading.Event()
        self.paused = False

    def __call__(self, command: str) -> str:
        out = self.asterisk(command)
        if command.startswith(f"database put {ROUTE} ") and not self.paused:
            self.paused = True
            self.midway.set()
            assert self.release.wait(5)
        return out


def test_two_writers_never_interleave_and_the_marker_names_the_map(tmp_path: Path) -> None:
    """The narrow race the lock closes: writer B used to read the families while writer A
    was halfway through its changes, write its difference over them, and A's marker then
    named a map astdb did not hold. With the lock B starts only after A's marker; its own
    changes then make the map B's, whole, under B's marker."""
    asterisk = FakeAsterisk()
    lock_path = tmp_path / astdb_sync.LOCK_FILE
    seen_by_b: list[str] = []

    def b_runner(command: str) -> str:
        seen_by_b.append(command)
        return asterisk(command)

    paused = Paused(asterisk)
    b_site = make_site(f2b_number_on="f2-a")
    a = AstdbSync(paused, Holder(make_site(extra="0612340001")), lock=MapLock(lock_path))
    b = AstdbSync(b_runner, Holder(b_site), lock=MapLock(lock_path))
    ta = threading.Thread(target=a.sync, kwargs={"force": True})
    ta.start()
    assert paused.midway.wait(5)
    tb = threading.Thread(target=b.sync, kwargs={"force": True})
    tb.start()
    time.sleep(0.3)
    assert seen_by_b == []  # not a read, not a write while A is midway
    a_commands = len(asterisk.commands)
    paused.release.set()
    ta.join(5)
    tb.join(5)
    assert not ta.is_alive() and not tb.is_alive()
    assert asterisk.commands[a_commands - 1:][0].startswith(f"database put {ROUTE}")
    assert asterisk.marker() == map_hash(desired_map(b_site))  # B's, written last
    assert {f: asterisk.db[f] for f in (ROUTE, CID)} == desired_map(b_site)


def test_a_lock_held_too_long_is_a_warning_and_a_retry(
        tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """The other writer stopped while holding the lock (SIGSTOP, REL-7): this one sends
    nothing, warns once and tries again RETRY_S later, like an unreachable Asterisk."""
    asterisk = FakeAsterisk()
    lock = MapLock(tmp_path / astdb_sync.LOCK_FILE, timeout_s=0.2)
    s = AstdbSync(asterisk, Holder(make_site()), retry_s=10.0, clock=clock, lock=lock)
    fd = os.open(tmp_path / astdb_sync.LOCK_FILE, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with caplog.at_level(logging.WARNING, "callguard.astdb"):
            assert s.step() == 10.0
        assert s.failing and asterisk.commands == []
        assert "held by another writer" in caplog.text
    finally:
        os.close(fd)
    clock.now += 10.0
    s.step()
    assert not s.failing and asterisk.marker() == map_hash(desired_map(make_site()))


def test_a_lock_file_that_cannot_be_opened_is_one_warning_not_a_stop(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No journal directory yet: the map is still written (as before the lock), and the
    WARNING is said once, not at every sync."""
    asterisk = FakeAsterisk()
    holder = Holder(make_site())
    s = AstdbSync(asterisk, holder, lock=MapLock(tmp_path / "missing" / "x.lock"))
    with caplog.at_level(logging.WARNING, "callguard.astdb"):
        s.sync(force=True)
        holder.site = make_site(extra="0612340001")
        s.sync()
    assert caplog.text.count("without its lock") == 1
    assert {f: asterisk.db[f] for f in (ROUTE, CID)} == desired_map(holder.site)


def test_the_lock_lives_in_the_nodes_journal_directory(tmp_path: Path) -> None:
    """Settings.journal_dir: the services' own directory on this node (a cluster node has
    its own, as it has its own Asterisk and astdb)."""
    settings = cast(Settings, SimpleNamespace(journal_dir=tmp_path / "journal"))
    assert astdb_sync.map_lock(settings).path == tmp_path / "journal" / astdb_sync.LOCK_FILE


@pytest.mark.skipif(os.geteuid() != 0, reason="root's CLI making the file: needs root")
def test_roots_cli_leaves_the_lock_file_to_the_services(tmp_path: Path) -> None:
    """`make run` (root) runs `site sync-asterisk` before the services: the file it makes in
    their journal directory is theirs, 0600, like the rest of it (SEC-2)."""
    journal = tmp_path / "journal"
    journal.mkdir(mode=0o700)
    os.chown(journal, 65534, 65534)
    lock = MapLock(journal / astdb_sync.LOCK_FILE)
    with lock.held():
        pass
    st = (journal / astdb_sync.LOCK_FILE).stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o600)


@pytest.mark.skipif(os.geteuid() != 0, reason="root's CLI opening the file: needs root")
@pytest.mark.parametrize("planted", ["symlink to a file", "dangling symlink", "hard link",
                                     "directory"])
def test_roots_cli_follows_nothing_the_services_account_planted(tmp_path: Path,
                                                                planted: str) -> None:
    """SEC-4: the journal directory is the services' account's. Whatever it put at the lock's
    name (a link to /etc/shadow, to a file root would create, a hard link) is neither
    followed, created through, nor chowned: the map is written without the lock (a WARNING)."""
    journal, victim = tmp_path / "journal", tmp_path / "victim"
    journal.mkdir(mode=0o700)
    os.chown(journal, 65534, 65534)
    lock_path = journal / astdb_sync.LOCK_FILE
    if planted == "symlink to a file":
        victim.write_text("root's\n")
        victim.chmod(0o600)
        lock_path.symlink_to(victim)
    elif planted == "dangling symlink":
        lock_path.symlink_to(victim)
    elif planted == "hard link":
        victim.write_text("root's\n")
        victim.chmod(0o600)
        os.link(victim, lock_path)
    else:
        lock_path.mkdir()
    lock = MapLock(lock_path)
    with lock.held():
        pass
    assert lock._warned  # written without the lock, said once
    if planted == "dangling symlink":
        assert not victim.exists()
    elif planted != "directory":
        st = victim.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o600)


def test_an_existing_lock_file_is_never_chowned(tmp_path: Path) -> None:
    """Only a file this call created is given to the directory's owner."""
    journal = tmp_path / "journal"
    journal.mkdir()
    lock_path = journal / astdb_sync.LOCK_FILE
    lock_path.write_text("")
    before = lock_path.stat()
    with MapLock(lock_path).held():
        pass
    after = lock_path.stat()
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
