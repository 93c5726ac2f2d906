"""REL-5, PERF-3 against the real PostgreSQL: what a change to the nuisance lists notifies
(migration list_notify_per_statement) and that a process's StateKeeper follows it.

A statement names each list it changed (its entries or the list row itself) once; a statement
that changed more than BULK_LISTS lists sends one `lists` instead (a bulk fill of 10^6 lists used
to queue 10^6 notifications that every call-deciding process had to take in), and the keeper
then reloads every list. A list row also names its contract (migration site_notify_per_contract),
and a site-wide change sends `site`, which no longer reloads the lists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import Engine, text

from callguard import localstate
from callguard.config import Settings
from callguard.localstate import StateKeeper
from tests.migration_module import load_migration
from tests.waiting import wait_for

MIGRATION = "0009_list_notify_per_statement.py"
LISTS = 105  # more than BULK_LISTS
WAIT_S = 10.0  # for the keeper to follow a change (milliseconds when the machine is idle)


def _migration() -> ModuleType:
    return load_migration(MIGRATION)


def test_bulk_threshold_is_the_reload_threshold() -> None:
    # Past it a process reloads every list anyway: a lower one would reload more than needed,
    # a higher one would send notifications that buy nothing.
    assert _migration().BULK_LISTS == localstate.RELOAD_ALL_LISTS_AT < LISTS


def _contracts_with_lists(engine: Engine, prefix: str, n: int) -> list[int]:
    """`n` contracts coded prefix1..prefixN, each with one active per-contract list (no
    entries); the lists' ids."""
    with engine.begin() as conn:
        return [int(i) for i in conn.execute(text(
            "WITH c AS (INSERT INTO contracts (code, kind, name, extension_digits) "
            "SELECT :p || g, 'fixed', 'list notices test', 4 FROM generate_series(1, :n) g "
            "RETURNING id) "
            "INSERT INTO nuisance_lists (contract_id, number_id, unit, capacity, active) "
            "SELECT id, NULL, 'per-contract', 30, true FROM c RETURNING id"),
            {"p": prefix, "n": n}).scalars()]


@pytest.fixture(scope="module")
def list_ids(iso_engine: Engine) -> list[int]:
    """LISTS active per-contract lists (one contract each) in the private schema, no entries."""
    return _contracts_with_lists(iso_engine, "N", LISTS)


@pytest.fixture(autouse=True)
def empty_lists(iso_engine: Engine, list_ids: list[int]) -> None:
    """Each test starts from empty lists (one that failed half-way leaves entries behind)."""
    with iso_engine.begin() as conn:
        conn.execute(text("DELETE FROM nuisance_entries "
                          "WHERE list_id = ANY(CAST(:ids AS bigint[]))"), {"ids": list_ids})


def _entries(engine: Engine, ids: list[int], per_list: int = 2) -> None:
    """One INSERT statement: `per_list` entries in each of `ids`."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO nuisance_entries (list_id, caller_key) "
            "SELECT l, md5(l || ':' || g) || md5(g || ':' || l) "
            "FROM unnest(CAST(:ids AS bigint[])) l, generate_series(1, :k) g"),
            {"ids": ids, "k": per_list})


def _ours(payloads: list[str], ids: list[int]) -> list[str]:
    mine = {f"list:{i}" for i in ids} | {localstate.ALL_LISTS}
    return [p for p in payloads if p in mine]


def test_a_statement_names_each_list_it_changed_once(
        iso_engine: Engine, list_ids: list[int], notices: Callable[[], list[str]]) -> None:
    a, b = list_ids[:2]
    notices()
    _entries(iso_engine, [a, b], per_list=3)
    assert _ours(notices(), list_ids) == sorted([f"list:{a}", f"list:{b}"])
    # An entry moved from one list to another: both lists changed.
    with iso_engine.begin() as conn:
        conn.execute(text("UPDATE nuisance_entries SET list_id = :b WHERE id = "
                          "(SELECT min(id) FROM nuisance_entries WHERE list_id = :a)"),
                     {"a": a, "b": b})
    assert _ours(notices(), list_ids) == sorted([f"list:{a}", f"list:{b}"])
    # A statement that changed no row says nothing.
    with iso_engine.begin() as conn:
        conn.execute(text("DELETE FROM nuisance_entries WHERE list_id = :a AND false"), {"a": a})
    assert _ours(notices(), list_ids) == []
    with iso_engine.begin() as conn:
        conn.execute(text("DELETE FROM nuisance_entries WHERE list_id IN (:a, :b)"),
                     {"a": a, "b": b})
    assert _ours(notices(), list_ids) == sorted([f"list:{a}", f"list:{b}"])


def test_a_bulk_statement_sends_one_notice(
        iso_engine: Engine, list_ids: list[int], notices: Callable[[], list[str]]) -> None:
    notices()
    _entries(iso_engine, list_ids)
    assert _ours(notices(), list_ids) == [localstate.ALL_LISTS]
    with iso_engine.begin() as conn:
        conn.execute(text("UPDATE nuisance_entries SET added_at = now() "
                          "WHERE list_id = ANY(CAST(:ids AS bigint[]))"), {"ids": list_ids})
    assert _ours(notices(), list_ids) == [localstate.ALL_LISTS]
    with iso_engine.begin() as conn:
        conn.execute(text("DELETE FROM nuisance_entries "
                          "WHERE list_id = ANY(CAST(:ids AS bigint[]))"), {"ids": list_ids})
    assert _ours(notices(), list_ids) == [localstate.ALL_LISTS]


def _contract_of(engine: Engine, list_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT contract_id FROM nuisance_lists WHERE id = :i"),
                                {"i": list_id}).scalar_one())


def test_a_list_row_names_itself_and_its_contract(
        iso_engine: Engine, list_ids: list[int], notices: Callable[[], list[str]]) -> None:
    # (migration site_notify_per_contract: a list row is part of its contract's provisioning)
    a = list_ids[0]
    contract = f"contract:{_contract_of(iso_engine, a)}"
    notices()
    with iso_engine.begin() as conn:
        conn.execute(text("UPDATE nuisance_lists SET active = false WHERE id = :a"), {"a": a})
    got = notices()
    assert _ours(got, list_ids) == [f"list:{a}"] and contract in got and "site" not in got
    with iso_engine.begin() as conn:  # 105 lists of 105 contracts: both past their bulk mark
        conn.execute(text("UPDATE nuisance_lists SET active = true "
                          "WHERE id = ANY(CAST(:ids AS bigint[]))"), {"ids": list_ids})
    got = notices()
    assert _ours(got, list_ids) == [localstate.ALL_LISTS] and "site" in got
    assert not any(p.startswith("contract:") for p in got)
    # Another provisioning table: the contract alone.
    with iso_engine.begin() as conn:
        conn.execute(text("UPDATE contracts SET name = name WHERE id = "
                          "(SELECT contract_id FROM nuisance_lists WHERE id = :a)"), {"a": a})
    got = notices()
    assert _ours(got, list_ids) == [] and contract in got and "site" not in got


def test_a_deleted_contract_names_its_lists(
        iso_engine: Engine, notices: Callable[[], list[str]]) -> None:
    gone = _contracts_with_lists(iso_engine, "GONE", 2)
    contracts = sorted(f"contract:{_contract_of(iso_engine, i)}" for i in gone)
    _entries(iso_engine, gone)
    notices()
    with iso_engine.begin() as conn:  # the foreign keys' cascade deletes lists and entries
        conn.execute(text("DELETE FROM contracts WHERE code LIKE 'GONE%'"))
    got = notices()
    assert _ours(got, gone) == sorted(f"list:{i}" for i in gone)
    assert [p for p in got if p.startswith("contract:")] == contracts and "site" not in got


def test_the_keeper_follows_bulk_and_single_changes(
        iso: Settings, iso_engine: Engine, list_ids: list[int], tmp_path: Path) -> None:
    keeper = StateKeeper(iso.sync_database_url, tmp_path, "notices-test")
    keeper.start()
    try:
        assert keeper.connected.is_set()
        assert not any(i in keeper.current.lists for i in list_ids)
        _entries(iso_engine, list_ids)  # bulk: one `lists` notice
        assert wait_for(lambda: all(len(keeper.current.lists.get(i, ())) == 2
                                    for i in list_ids), WAIT_S), "bulk change not loaded"
        with iso_engine.begin() as conn:  # one list: its own notice
            conn.execute(text("DELETE FROM nuisance_entries WHERE list_id = :a"),
                         {"a": list_ids[0]})
        assert wait_for(lambda: list_ids[0] not in keeper.current.lists, WAIT_S), \
            "deletion not seen"
        assert all(len(keeper.current.lists[i]) == 2 for i in list_ids[1:])
        b = list_ids[1]
        with iso_engine.begin() as conn:  # a list switched off: its keys leave the state
            conn.execute(text("UPDATE nuisance_lists SET active = false WHERE id = :b"),
                         {"b": b})
        assert wait_for(lambda: b not in keeper.current.lists, WAIT_S), "deactivation not seen"
        with iso_engine.begin() as conn:  # ... and come back with it
            conn.execute(text("UPDATE nuisance_lists SET active = true WHERE id = :b"),
                         {"b": b})
        assert wait_for(lambda: len(keeper.current.lists.get(b, ())) == 2, WAIT_S), \
            "activation not seen"
        # A site change (a setting) reloads the site and keeps the lists.
        with iso_engine.begin() as conn:
            conn.execute(text("INSERT INTO site_settings (key, value) "
                              "VALUES ('notices_test', 'on')"))
        assert wait_for(lambda: keeper.current.site.settings.get("notices_test") == "on",
                        WAIT_S), "site change not seen"
        assert all(len(keeper.current.lists[i]) == 2 for i in list_ids[1:])
    finally:
        keeper.stop()
