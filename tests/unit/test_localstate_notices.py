"""REL-5: how a batch of PostgreSQL notifications changes a process's local state, without a
database (the loaders are replaced): one query per changed list, or one for all of them when a
bulk change names many lists at once."""

from __future__ import annotations

from typing import Any

import pytest

from callguard import localstate
from callguard.domain.site import NumberInfo, SiteSnapshot, with_site_settings
from callguard.localstate import LocalState


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    calls: list[int | None] = []

    def load_lists(conn: Any, list_id: int | None = None) -> dict[int, frozenset[str]]:
        calls.append(list_id)
        if list_id is None:
            return {1: frozenset({"new-1"}), 2: frozenset({"new-2"})}
        return {list_id: frozenset({f"new-{list_id}"})} if list_id != 3 else {}

    monkeypatch.setattr(localstate, "load_lists", load_lists)
    return calls


STATE = LocalState(lists={1: frozenset({"old-1"}), 3: frozenset({"old-3"})}, active_recordings=4)


def test_one_list_changed_reloads_that_list(loads: list[int | None]) -> None:
    after = localstate.apply_notices(None, STATE, {"list:1"})  # type: ignore[arg-type]
    assert loads == [1]
    assert after.lists == {1: frozenset({"new-1"}), 3: frozenset({"old-3"})}
    assert after.active_recordings == 4 and after.source == "database"


def test_emptied_list_disappears(loads: list[int | None]) -> None:
    after = localstate.apply_notices(None, STATE, {"list:3"})  # type: ignore[arg-type]
    assert 3 not in after.lists and after.lists[1] == frozenset({"old-1"})


def test_bulk_change_reloads_every_list_in_one_query(loads: list[int | None]) -> None:
    payloads = {f"list:{i}" for i in range(localstate.RELOAD_ALL_LISTS_AT + 1)}
    after = localstate.apply_notices(None, STATE, payloads)  # type: ignore[arg-type]
    assert loads == [None]
    assert after.lists == {1: frozenset({"new-1"}), 2: frozenset({"new-2"})}


def test_garbage_payloads_change_nothing(loads: list[int | None]) -> None:
    after = localstate.apply_notices(None, STATE, {"list:x", "bogus", "list:"})  # type: ignore[arg-type]
    assert loads == [] and after.lists == STATE.lists


def test_all_lists_notice_reloads_every_list(loads: list[int | None]) -> None:
    # A statement that changed many lists sends `lists` alone (migration
    # list_notify_per_statement), possibly batched with a single list's notice.
    after = localstate.apply_notices(None, STATE, {localstate.ALL_LISTS, "list:3"})  # type: ignore[arg-type]
    assert loads == [None]
    assert after.lists == {1: frozenset({"new-1"}), 2: frozenset({"new-2"})}


def test_site_change_reloads_the_site_but_keeps_the_lists(
        loads: list[int | None], monkeypatch: pytest.MonkeyPatch) -> None:
    # A forwarding or a number changed: the site is reloaded and the recordings recounted,
    # but not every list's keys (6.7-9.7 s per process at 10^6 lists); a list row's own
    # change comes as `list:<id>` or `lists` (migration list_notify_per_statement).
    site = SiteSnapshot()
    monkeypatch.setattr(localstate, "load_site", lambda conn: site)
    monkeypatch.setattr(localstate, "count_recordings", lambda conn: 7)
    after = localstate.apply_notices(None, STATE, {"site"})  # type: ignore[arg-type]
    assert loads == []
    assert after.site is site and after.lists == STATE.lists and after.active_recordings == 7



def test_the_collector_is_back_after_a_load_that_failed(loads: list[int | None]) -> None:
    # A load pauses the cyclic collector process-wide (PERF-3's scale); a failed one (the
    # database went away mid-load) must not leave it off.
    import gc

    def broken(conn: Any) -> SiteSnapshot:
        assert not gc.isenabled()
        raise OSError("connection lost")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(localstate, "load_site", broken)
        with pytest.raises(OSError):
            localstate.apply_notices(None, STATE, {"site"})  # type: ignore[arg-type]
    assert gc.isenabled()


def test_a_collector_paused_by_someone_else_stays_paused() -> None:
    import gc

    gc.disable()
    try:
        with localstate.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_contract_notices_reload_those_contracts_and_many_reload_the_site(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Migration site_notify_per_contract: `contract:<id>` reloads that contract's part only;
    # past RELOAD_SITE_AT contracts in one batch, one whole load is cheaper.
    whole, parts = SiteSnapshot(settings={"whole": "1"}), []

    def reload_contracts(conn: Any, site: SiteSnapshot, ids: set[int]) -> SiteSnapshot:
        parts.append(ids)
        return SiteSnapshot(settings={"part": "1"})

    monkeypatch.setattr(localstate, "load_site", lambda conn: whole)
    monkeypatch.setattr(localstate, "reload_contracts", reload_contracts)
    monkeypatch.setattr(localstate, "count_recordings", lambda conn: 0)
    after = localstate.apply_notices(None, STATE, {"contract:7", "contract:9", "contract:x"})  # type: ignore[arg-type]
    assert parts == [{7, 9}] and after.site.settings == {"part": "1"}
    assert after.lists == STATE.lists and after.active_recordings == STATE.active_recordings
    many = {f"contract:{i}" for i in range(localstate.RELOAD_SITE_AT + 1)}
    assert localstate.apply_notices(None, STATE, many).site is whole  # type: ignore[arg-type]
    assert localstate.apply_notices(None, STATE, {"site", "contract:7"}).site is whole  # type: ignore[arg-type]
    assert parts == [{7, 9}]


def test_a_settings_notice_reloads_the_settings_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Migration site_notify_settings: a priority line or a site setting reloads those two
    # tables, after any contract named in the same batch; `site` still means everything.
    base = SiteSnapshot(numbers={"0311110000": NumberInfo(1, "0311110000", "F", "f", "base")})
    state = LocalState(base, STATE.lists, 3, "database")
    whole, order = SiteSnapshot(settings={"whole": "1"}), []

    def reload_contracts(conn: Any, site: SiteSnapshot, ids: set[int]) -> SiteSnapshot:
        order.append("contracts")
        return site

    def settings(conn: Any, site: SiteSnapshot) -> SiteSnapshot:
        order.append("settings")
        return with_site_settings(site, frozenset({"0399990000"}), {"k": "v"})

    monkeypatch.setattr(localstate, "load_site", lambda conn: whole)
    monkeypatch.setattr(localstate, "reload_contracts", reload_contracts)
    monkeypatch.setattr(localstate, "reload_site_settings", settings)
    monkeypatch.setattr(localstate, "count_recordings", lambda conn: 0)
    after = localstate.apply_notices(None, state, {"settings", "contract:4"})  # type: ignore[arg-type]
    assert order == ["contracts", "settings"]
    assert after.site.settings == {"k": "v"} and after.site.priority_lines == {"0399990000"}
    assert after.site.numbers is base.numbers and after.site.index is base.index
    assert (after.lists, after.active_recordings) == (STATE.lists, 3)  # no recount
    assert localstate.apply_notices(None, state, {"site", "settings"}).site is whole  # type: ignore[arg-type]
    assert order == ["contracts", "settings"]
