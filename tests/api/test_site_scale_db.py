"""PERF-3's scale, BILL, REL-5 against the real PostgreSQL (a private schema built by the
migrations): every foreign key column is indexed (migration foreign_key_indexes), and the site
snapshot each call-deciding process loads (now from columns, not ORM objects) carries every
provisioned fact.

Without those indexes the billing-count trigger read the whole `numbers` table per number
written: provisioning 10^4 numbers took 9.9 s and 10^5 did not finish in 10 minutes."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from callguard import localstate
from callguard.config import Settings
from callguard.db import queries, site_repo
from callguard.domain.recording_options import RecordingOptions
from tests.waiting import wait_for

# Each foreign key whose referencing columns do not lead a plain (non-partial) index.
UNINDEXED_FOREIGN_KEYS = """
SELECT c.conrelid::regclass::text, c.conname
  FROM pg_constraint c
 WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace
   AND NOT EXISTS (
       SELECT 1 FROM pg_index i
        WHERE i.indrelid = c.conrelid AND i.indpred IS NULL
          AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] = c.conkey)
 ORDER BY 1, 2
"""


def test_every_foreign_key_is_indexed(iso_engine: Engine) -> None:
    with iso_engine.connect() as conn:
        assert conn.execute(text(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
            "AND connamespace = current_schema()::regnamespace")).scalar_one() >= 15
        assert conn.execute(text(UNINDEXED_FOREIGN_KEYS)).all() == []


def test_the_check_sees_a_missing_index(iso_engine: Engine) -> None:
    # The catalog query above is what the first test relies on: it must name a key whose index
    # is gone (inside a transaction that is rolled back).
    with iso_engine.connect() as conn, conn.begin() as tx:
        conn.execute(text("DROP INDEX ix_numbers_endpoint"))
        assert [name for _, name in conn.execute(text(UNINDEXED_FOREIGN_KEYS))] == [
            "fk_numbers_endpoint_id_endpoints"]
        tx.rollback()


@pytest.fixture
def provisioned(iso_engine: Engine) -> Iterator[dict[str, int]]:
    """One mobile contract and one fixed contract with every kind of provisioned fact."""
    with iso_engine.begin() as conn:
        def one(sql: str, **params: object) -> int:
            return int(conn.execute(text(sql + " RETURNING id"), params).scalar_one())

        fixed = one("INSERT INTO contracts (code, kind, name, extension_digits) "
                    "VALUES ('SC-F', 'fixed', 'site scale', 4)")
        mobile = one("INSERT INTO contracts (code, kind, name, extension_digits) "
                     "VALUES ('SC-M', 'mobile', 'site scale', 4)")
        desk = one("INSERT INTO endpoints (name, contract_id, address, extension, channels, "
                   "roaming) VALUES ('sc-desk', :c, '127.0.9.1', '1001', 2, false)", c=fixed)
        handset = one("INSERT INTO endpoints (name, contract_id, address, extension, channels, "
                      "roaming) VALUES ('sc-hand', :c, '127.0.9.2', '2001', 1, true)", c=mobile)
        rep = one("INSERT INTO numbers (number, contract_id, endpoint_id, role, "
                  "nuisance_subscribed) VALUES ('0398760001', :c, :e, 'representative', true)",
                  c=fixed, e=desk)
        one("INSERT INTO numbers (number, contract_id, endpoint_id, role, nuisance_subscribed) "
            "VALUES ('0120876000', :c, :e, 'freephone', false)", c=fixed, e=desk)
        one("INSERT INTO numbers (number, contract_id, endpoint_id, role, nuisance_subscribed) "
            "VALUES ('09087600001', :c, :e, 'native', false)", c=mobile, e=handset)
        one("INSERT INTO numbers (number, contract_id, endpoint_id, role, nuisance_subscribed) "
            "VALUES ('05087600001', :c, :e, 'office', false)", c=mobile, e=handset)
        conn.execute(text(
            "INSERT INTO recording_subscriptions (contract_id, activated_on, cancelled_on, "
            "retention_days) VALUES (:c, '2026-01-01', '2026-12-31', 365)"), {"c": fixed})
        conn.execute(text(
            "INSERT INTO recording_options (contract_id, stereo, announce_in, announce_out, "
            "pause_code, resume_code) VALUES (:c, true, true, false, '*1', '*2')"), {"c": fixed})
        conn.execute(text(
            "INSERT INTO nuisance_subscriptions (contract_id, unit, capacity, activated_on) "
            "VALUES (:c, 'per-number', 30, '2026-02-01')"), {"c": fixed})
        listed = one("INSERT INTO nuisance_lists (contract_id, number_id, unit, capacity, active) "
                     "VALUES (:c, :n, 'per-number', 30, true)", c=fixed, n=rep)
        one("INSERT INTO nuisance_lists (contract_id, number_id, unit, capacity, active) "
            "VALUES (:c, NULL, 'per-contract', 30, false)", c=fixed)  # a former unit's list
        conn.execute(text("INSERT INTO forwardings (number_id, mode, target, after_s) "
                          "VALUES (:n, 'no-answer', '0311112222', 15)"), {"n": rep})
        conn.execute(text("INSERT INTO priority_lines (number, description) "
                          "VALUES ('0398769999', 'site scale')"))
        conn.execute(text("INSERT INTO site_settings (key, value) "
                          "VALUES ('site-scale-test', 'on')"))
    yield {"fixed": fixed, "rep": rep, "list": listed}
    with iso_engine.begin() as conn:
        conn.execute(text("DELETE FROM contracts WHERE code IN ('SC-F', 'SC-M')"))
        conn.execute(text("DELETE FROM priority_lines WHERE number = '0398769999'"))
        conn.execute(text("DELETE FROM site_settings WHERE key = 'site-scale-test'"))


def test_the_site_snapshot_carries_every_provisioned_fact(
        iso_engine: Engine, provisioned: dict[str, int]) -> None:
    with iso_engine.connect() as conn:
        site = localstate.load_site(conn)

    fixed = site.contracts["SC-F"]
    assert (fixed.id, fixed.kind) == (provisioned["fixed"], "fixed")
    assert (fixed.recording_from, fixed.recording_until, fixed.retention_days) == (
        date(2026, 1, 1), date(2026, 12, 31), 365)
    assert (fixed.nuisance_unit, fixed.nuisance_capacity) == ("per-number", 30)
    assert fixed.contract_list_id is None  # the per-contract list is inactive
    assert fixed.rec_options == RecordingOptions(stereo=True, announce_in=True,
                                                 announce_out=False, public_key=None,
                                                 pause_code="*1", resume_code="*2")
    mobile = site.contracts["SC-M"]
    assert (mobile.recording_from, mobile.nuisance_unit, mobile.rec_options) == (
        None, None, RecordingOptions())

    rep = site.numbers["0398760001"]
    assert (rep.id, rep.contract, rep.endpoint, rep.role) == (
        provisioned["rep"], "SC-F", "sc-desk", "representative")
    assert (rep.list_id, rep.multi_channel_scope) == (provisioned["list"], True)  # 2 channels
    assert site.numbers["0120876000"].list_id is None  # not subscribed

    desk, handset = site.endpoints["sc-desk"], site.endpoints["sc-hand"]
    assert (desk.contract, desk.extension, desk.channels, desk.roaming) == (
        "SC-F", "1001", 2, False)
    assert desk.own_number == "0398760001"  # a freephone number is never presented
    assert (handset.roaming, handset.own_number, handset.office_number) == (
        True, "09087600001", "05087600001")

    forwarding = site.forwardings["0398760001"]
    assert (forwarding.mode, forwarding.target, forwarding.after_s) == (
        "no-answer", "0311112222", 15)
    assert "0398769999" in site.priority_lines
    assert site.settings["site-scale-test"] == "on"


def test_the_collector_is_paused_only_while_loading(
        iso_engine: Engine, provisioned: dict[str, int]) -> None:
    seen: list[bool] = []
    real = localstate.load_site

    def spying(conn: object) -> object:
        seen.append(gc.isenabled())
        return real(conn)  # type: ignore[arg-type]

    assert gc.isenabled()
    with pytest.MonkeyPatch.context() as mp, iso_engine.connect() as conn:
        mp.setattr(localstate, "load_site", spying)
        state = localstate.load_from_database(conn)
        localstate.apply_notices(conn, state, {"site"})
    assert seen == [False, False]
    assert gc.isenabled()
    assert "SC-F" in state.site.contracts


def test_unfinished_calls_are_open_recordings_and_open_screened_calls(
        iso_engine: Engine, provisioned: dict[str, int]) -> None:
    # What an app resumes following after a restart; an anti-join now (NOT IN over every
    # recording took 21 s at 10^6 call-log rows and recordings).
    with iso_engine.begin() as conn:
        for channel, rejected, ended in (("sc-open", False, False), ("sc-rec", False, False),
                                         ("sc-ended", False, True), ("sc-rej", True, False)):
            conn.execute(text(
                "INSERT INTO inbound_calls (channel_id, list_id, number_id, rejected, started_at, "
                "ended_at) VALUES (:ch, :l, :n, :r, now(), CASE WHEN :e THEN now() END)"),
                {"ch": channel, "l": provisioned["list"], "n": provisioned["rep"], "r": rejected,
                 "e": ended})
        for channel, status in (("sc-rec", "recording"), ("sc-done", "complete")):
            conn.execute(text(
                "INSERT INTO recordings (contract_id, number, direction, remote, channel_id, path, "
                "started_at, status) VALUES (:c, '0398760001', 'in', '0311110000', :ch, :p, "
                "now(), :s)"),
                {"c": provisioned["fixed"], "ch": channel, "p": f"/sc/{channel}.wav", "s": status})
        rows = conn.execute(queries.unfinished_calls()).all()
    assert sorted(tuple(r) for r in rows) == [("sc-open", "in", ""),
                                              ("sc-rec", "rec", "/sc/sc-rec.wav")]


class _ProvisionsMidLoad(dict[str, Any]):
    """The site's queries, with a contract, its endpoint and its number committed by another
    connection right after the contracts query ran."""

    def __init__(self, queries: dict[str, Any], engine: Engine) -> None:
        super().__init__(queries)
        self.engine = engine

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        for name, query in super().items():
            yield name, query
            if name == "contracts":
                with self.engine.begin() as other:
                    other.execute(text(
                        "WITH c AS (INSERT INTO contracts (code, kind, name, extension_digits) "
                        "VALUES ('SC-R', 'fixed', 'mid-load', 4) RETURNING id), "
                        "e AS (INSERT INTO endpoints (name, contract_id, address, extension, "
                        "channels, roaming) SELECT 'sc-race', id, '127.0.9.3', '1001', 1, false "
                        "FROM c RETURNING id, contract_id) "
                        "INSERT INTO numbers (number, contract_id, endpoint_id, role, "
                        "nuisance_subscribed) SELECT '0398760077', contract_id, id, "
                        "'representative', false FROM e"))


def test_a_site_load_reads_one_snapshot_of_the_database(
        iso_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # REL-5: the keeper's connection is in autocommit (it LISTENs); its queries must still see
    # one snapshot, or a number arrives without its contract.
    monkeypatch.setattr(site_repo, "_QUERIES", _ProvisionsMidLoad(site_repo._QUERIES, iso_engine))
    try:
        with iso_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            site = localstate.load_site(conn)
            assert "SC-R" not in site.contracts and "0398760077" not in site.numbers
            monkeypatch.undo()
            site = localstate.load_site(conn)  # the next load sees all of it
            assert site.numbers["0398760077"].contract == "SC-R"
            assert site.endpoints["sc-race"].own_number == "0398760077"
    finally:
        with iso_engine.begin() as conn:
            conn.execute(text("DELETE FROM contracts WHERE code = 'SC-R'"))


def test_the_keeper_outlives_a_failed_load(
        iso: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # An error that is not the database's (a bug) is logged, and the keeper loads everything
    # anew rather than ending: the process must not go on deciding from a frozen state.
    failures = [KeyError("a number's contract")]
    real = localstate.load_site

    def first_fails(conn: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(conn)

    monkeypatch.setattr(localstate, "load_site", first_fails)
    monkeypatch.setattr(localstate, "UNEXPECTED_RETRY_S", 0.1)
    keeper = localstate.StateKeeper(iso.sync_database_url, tmp_path, "failed-load-test")
    keeper.start()
    try:
        assert wait_for(keeper.connected.is_set, 10.0), "the keeper never loaded again"
        assert any("reload failed" in r.getMessage() for r in caplog.records)
        assert keeper._thread is not None and keeper._thread.is_alive()
    finally:
        keeper.stop()
