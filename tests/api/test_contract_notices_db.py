"""REL-5 at PERF-3's scale, against the real PostgreSQL: a change to one contract's provisioning
names that contract (migration site_notify_per_contract), and a process's StateKeeper reloads
that contract alone, ending with the same site a whole load gives.

Before, every provisioning change sent `site`, and each call-deciding process reloaded the whole
site: 2.4-3.8 s of CPU at 10^5 contracts, on the core Asterisk uses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from callguard import localstate
from callguard.config import Settings
from callguard.db import site_repo
from callguard.domain.site import SiteSnapshot
from tests.waiting import wait_for

WAIT_S = 10.0


def _sql(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.begin() as conn:
        result = conn.execute(text(sql), params)
        return result.scalar() if result.returns_rows else None


def _contract(engine: Engine, code: str, number: str, address: str) -> tuple[int, int]:
    """A fixed contract with one endpoint and one representative number: (contract, number)."""
    cid = _sql(engine, "INSERT INTO contracts (code, kind, name, extension_digits) "
                       "VALUES (:c, 'fixed', 'contract notices', 4) RETURNING id", c=code)
    eid = _sql(engine, "INSERT INTO endpoints (name, contract_id, address, extension, channels, "
                       "roaming) VALUES (:n, :c, :a, '1001', 1, false) RETURNING id",
               n=f"ep-{code}", c=cid, a=address)
    nid = _sql(engine, "INSERT INTO numbers (number, contract_id, endpoint_id, role, "
                       "nuisance_subscribed) VALUES (:n, :c, :e, 'representative', true) "
                       "RETURNING id", n=number, c=cid, e=eid)
    return int(cid), int(nid)


@pytest.fixture
def two_contracts(iso_engine: Engine) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
    a = _contract(iso_engine, "CN-A", "0397000001", "127.0.9.11")
    b = _contract(iso_engine, "CN-B", "0397000002", "127.0.9.12")
    yield a, b
    _sql(iso_engine, "DELETE FROM contracts WHERE code LIKE 'CN-%'")
    _sql(iso_engine, "DELETE FROM site_settings WHERE key = 'contract-notices'")


def test_each_table_names_the_contract_of_its_rows(
        iso_engine: Engine, two_contracts: Any, notices: Callable[[], list[str]]) -> None:
    (a, a_number), (b, _) = two_contracts
    notices()
    _sql(iso_engine, "INSERT INTO forwardings (number_id, mode, target, after_s) "
                     "VALUES (:n, 'unconditional', '0311112222', 20)", n=a_number)
    assert notices() == [f"contract:{a}"]  # through the forwarding's number
    _sql(iso_engine, "INSERT INTO recording_subscriptions (contract_id, activated_on, "
                     "retention_days) VALUES (:c, '2026-01-01', 90)", c=b)
    assert notices() == [f"contract:{b}"]
    _sql(iso_engine, "UPDATE numbers SET contract_id = :b, endpoint_id = "
                     "(SELECT id FROM endpoints WHERE contract_id = :b) WHERE id = :n",
         b=b, n=a_number)
    assert notices() == sorted([f"contract:{a}", f"contract:{b}"])  # left one, joined one
    _sql(iso_engine, "UPDATE numbers SET contract_id = :a, endpoint_id = "
                     "(SELECT id FROM endpoints WHERE contract_id = :a) WHERE id = :n",
         a=a, n=a_number)
    notices()
    _sql(iso_engine, "UPDATE endpoints SET channels = 1 WHERE contract_id = -1")
    assert notices() == []  # no row changed
    _sql(iso_engine, "INSERT INTO site_settings (key, value) VALUES ('contract-notices', 'x')")
    assert notices() == ["settings"]  # site-wide tables (migration site_notify_settings)
    _sql(iso_engine, "INSERT INTO priority_lines (number, description) "
                     "VALUES ('0397000099', 'x')")
    _sql(iso_engine, "DELETE FROM priority_lines WHERE number = '0397000099'")
    assert notices() == ["settings", "settings"]  # two transactions
    _sql(iso_engine, "DELETE FROM contracts WHERE id = :a", a=a)
    assert f"contract:{a}" in notices()


def test_a_bulk_change_names_the_site(iso_engine: Engine,
                                      notices: Callable[[], list[str]]) -> None:
    notices()
    _sql(iso_engine, "INSERT INTO contracts (code, kind, name, extension_digits) "
                     "SELECT 'CN-BULK' || g, 'fixed', 'bulk', 4 FROM generate_series(1, :n) g",
         n=localstate.RELOAD_SITE_AT + 1)
    try:
        assert notices() == ["site"]
    finally:
        _sql(iso_engine, "DELETE FROM contracts WHERE code LIKE 'CN-BULK%'")


def _whole(engine: Engine) -> SiteSnapshot:
    """The site as a whole load gives it (not through localstate.load_site, which the keeper
    test counts)."""
    with engine.connect() as conn, localstate.one_snapshot(conn) as session:
        return site_repo.load_snapshot(session)


def test_the_keeper_reloads_a_contract_alone_and_ends_where_a_whole_load_does(
        iso: Settings, iso_engine: Engine, two_contracts: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (a, a_number), (b, _) = two_contracts
    whole_loads: list[int] = []
    real = localstate.load_site

    def counted(conn: Any) -> SiteSnapshot:
        whole_loads.append(1)
        return real(conn)

    monkeypatch.setattr(localstate, "load_site", counted)
    keeper = localstate.StateKeeper(iso.sync_database_url, tmp_path, "contract-notices")
    keeper.start()
    try:
        assert keeper.connected.is_set() and whole_loads == [1]

        def follows(change: str, **params: Any) -> None:
            _sql(iso_engine, change, **params)
            expected = _whole(iso_engine)
            assert wait_for(lambda: keeper.current.site == expected, WAIT_S), change
            assert keeper.current.site.index == expected.index, change  # what each one owns

        follows("INSERT INTO forwardings (number_id, mode, target, after_s) "
                "VALUES (:n, 'no-answer', '0311113333', 12)", n=a_number)
        follows("INSERT INTO recording_options (contract_id, stereo, announce_in, "
                "announce_out) VALUES (:c, true, false, true)", c=a)
        follows("UPDATE contracts SET code = 'CN-A2' WHERE id = :a", a=a)
        follows("INSERT INTO nuisance_subscriptions (contract_id, unit, capacity, "
                "activated_on) VALUES (:c, 'per-number', 30, '2026-01-01')", c=a)
        follows("INSERT INTO nuisance_lists (contract_id, number_id, unit, capacity, active) "
                "VALUES (:c, :n, 'per-number', 30, true)", c=a, n=a_number)
        follows("UPDATE numbers SET contract_id = :b, endpoint_id = "
                "(SELECT id FROM endpoints WHERE contract_id = :b) WHERE id = :n",
                b=b, n=a_number)
        follows("DELETE FROM contracts WHERE id = :b", b=b)
        assert "0397000001" not in keeper.current.site.numbers
        assert "CN-A2" in keeper.current.site.contracts
        assert whole_loads == [1], "a contract's change reloaded the whole site"
        follows("INSERT INTO site_settings (key, value) VALUES ('contract-notices', 'on')")
        follows("INSERT INTO priority_lines (number, description) "
                "VALUES ('0397000099', 'x')")
        assert "0397000099" in keeper.current.site.priority_lines
        follows("DELETE FROM priority_lines WHERE number = '0397000099'")
        assert whole_loads == [1], "a setting reloaded the whole site"
        follows("TRUNCATE forwardings")
        assert len(whole_loads) == 2  # a TRUNCATE: one whole load
    finally:
        keeper.stop()


def test_contracts_sharing_an_endpoint_are_loaded_whole(
        iso_engine: Engine, two_contracts: Any) -> None:
    # A number of contract B rung on A's endpoint: A's part alone would be wrong, so the
    # partial load declines and the keeper loads the whole site.
    (a, _), (b, _) = two_contracts
    _sql(iso_engine, "INSERT INTO numbers (number, contract_id, endpoint_id, role, "
                     "nuisance_subscribed) VALUES ('0397000003', :b, "
                     "(SELECT id FROM endpoints WHERE contract_id = :a), 'dial-in', false)",
         a=a, b=b)
    with iso_engine.connect() as conn, localstate.one_snapshot(conn) as session:
        assert site_repo.load_contracts(session, {a}) is None
        assert site_repo.load_contracts(session, {b}) is None
        both = site_repo.load_contracts(session, {a, b})
    assert both is not None and set(both.contracts) == {"CN-A", "CN-B"}
    with iso_engine.connect() as conn:
        site = localstate.load_site(conn)
        assert localstate.reload_contracts(conn, SiteSnapshot(), {a}) == site
