"""Migration price_history against the real PostgreSQL (BILL, RUN-2): the `price.*` settings
that exist when it runs become the table in force from the beginning (no bill changes), a
setting that is no price stops the upgrade and changes nothing, and the downgrade puts each
price's value in force in the current Tokyo month back as its setting, never one dated in a
later month (other settings untouched). Migration price_history_audit adds who and when,
NULL (unknown) for the rows it finds."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from callguard.config import Settings
from callguard.db import billing_repo, migrate
from callguard.domain.billing import BEGINNING, PriceTable
from callguard.services import billing

BEFORE = "subscription_periods"


def _table_exists(engine: Engine) -> bool:
    with engine.connect() as c:
        return c.execute(text("SELECT to_regclass('price_history')")).scalar() is not None


def _settings(engine: Engine) -> dict[str, str]:
    with engine.connect() as c:
        return {k: v for k, v in c.execute(text(
            "SELECT key, value FROM site_settings WHERE key LIKE 'price.%'"
            " OR key = 'max_recordings'"))}


def _history(engine: Engine) -> list[tuple[date, str, int]]:
    with engine.connect() as c:
        return [(d, n, v) for d, n, v in c.execute(text(
            "SELECT effective_from, name, value FROM price_history"
            " ORDER BY effective_from, name"))]


def test_upgrade_carries_price_settings_over_and_downgrade_puts_the_current_back(
        iso: Settings, iso_engine: Engine) -> None:
    migrate.downgrade(iso, BEFORE)
    try:
        assert not _table_exists(iso_engine)
        with iso_engine.begin() as c:
            c.execute(text(
                "INSERT INTO site_settings (key, value) VALUES"
                " ('price.nuisance_unit_change_fee', '5500'), ('price.tax_rate_percent', '8'),"
                " ('price.vip_fee', '1'), ('max_recordings', '7')"))
        migrate.upgrade(iso)
        assert _history(iso_engine) == [(BEGINNING, "nuisance_unit_change_fee", 5500),
                                        (BEGINNING, "tax_rate_percent", 8)]
        # Moved, not copied; a price.* key naming no price (ignored by billing) and the
        # other settings are left alone.
        assert _settings(iso_engine) == {"price.vip_fee": "1", "max_recordings": "7"}
        with Session(iso_engine) as s:
            for year, month in ((1, 1), (2026, 5), (9999, 12)):  # every month, as before
                in_force = billing_repo.prices(s, year, month)
                assert in_force.table == PriceTable(nuisance_unit_change_fee=5500,
                                                    tax_rate_percent=8)
                assert in_force.prices_from == "0001-01"
        # A change from a past month and one from a month not yet begun, then the downgrade:
        # each price's value in force this month in Tokyo (BILL); the later change is not,
        # and a price changed only from that later month keeps its default (no setting).
        with Session(iso_engine) as s, s.begin():
            billing_repo.set_prices(s, {"tax_rate_percent": 12, "nuisance_per_unit": 250},
                                    date(2020, 1, 1))
            billing_repo.set_prices(s, {"tax_rate_percent": 15, "nuisance_unit_change_fee": 6000,
                                        "recording_initial": 100}, date(9999, 12, 1))
        migrate.downgrade(iso, BEFORE)
        assert not _table_exists(iso_engine)
        assert _settings(iso_engine) == {
            "price.nuisance_unit_change_fee": "5500", "price.tax_rate_percent": "12",
            "price.nuisance_per_unit": "250", "price.vip_fee": "1", "max_recordings": "7"}
        # A setting that is no price stops the upgrade, named; nothing changes.
        with iso_engine.begin() as c:
            c.execute(text("INSERT INTO site_settings (key, value)"
                           " VALUES ('price.recording_initial', 'lots')"))
        with pytest.raises(RuntimeError, match=r"site setting price\.recording_initial='lots'"):
            migrate.upgrade(iso)
        assert not _table_exists(iso_engine)
        assert _settings(iso_engine)["price.tax_rate_percent"] == "12"
    finally:
        if not _table_exists(iso_engine):
            with iso_engine.begin() as c:
                c.execute(text("DELETE FROM site_settings"
                               " WHERE key = 'price.recording_initial'"))
        migrate.upgrade(iso)
        with iso_engine.begin() as c:
            c.execute(text("DELETE FROM price_history"))
            c.execute(text("DELETE FROM site_settings WHERE key LIKE 'price.%'"
                           " OR key = 'max_recordings'"))
    assert _table_exists(iso_engine)


def test_without_price_settings_nothing_is_carried_over(iso: Settings,
                                                        iso_engine: Engine) -> None:
    migrate.downgrade(iso, BEFORE)
    try:
        migrate.upgrade(iso)
        assert _history(iso_engine) == []
        with Session(iso_engine) as s:
            assert billing_repo.prices(s, 2026, 5).prices_from is None
            assert billing_repo.price_table_history(s)[0].table == PriceTable()
        migrate.downgrade(iso, BEFORE)
        assert _settings(iso_engine) == {}
    finally:
        migrate.upgrade(iso)
    assert _table_exists(iso_engine)


# ---- migration price_history_audit (0016): who and when, NULL for the rows before ----------
AUDITED = "price_history"  # the revision before price_history_audit


def _columns(engine: Engine) -> set[str]:
    with engine.connect() as c:
        return {str(n) for (n,) in c.execute(text(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'price_history' AND table_schema = current_schema()"))}


def test_the_audit_columns_come_and_go_and_old_rows_stay_unknown(
        iso: Settings, iso_engine: Engine) -> None:
    """BILL audit: the upgrade adds nullable changed_by/changed_at and leaves the rows it
    finds NULL (shown as unknown, never guessed); the downgrade drops both and keeps every
    price as it was."""
    migrate.downgrade(iso, AUDITED)
    try:
        assert {"changed_by", "changed_at"}.isdisjoint(_columns(iso_engine))
        with iso_engine.begin() as c:
            c.execute(text("INSERT INTO price_history (effective_from, name, value)"
                           " VALUES ('2026-08-01', 'nuisance_per_unit', 250)"))
        migrate.upgrade(iso)
        assert {"changed_by", "changed_at"} <= _columns(iso_engine)
        with Session(iso_engine) as s:
            [entry] = [i for i in billing.price_history(s).items
                       if i["prices_from"] == "2026-08"]
            assert (entry["changed_by"], entry["changed_at"]) == (None, None)
            assert entry["audit"] == {"nuisance_per_unit": {"changed_by": None,
                                                            "changed_at": None}}
        with Session(iso_engine) as s, s.begin():
            billing_repo.set_prices(s, {"tax_rate_percent": 12}, date(2026, 8, 1), "cli:alice")
        migrate.downgrade(iso, AUDITED)
        assert _history(iso_engine) == [(date(2026, 8, 1), "nuisance_per_unit", 250),
                                        (date(2026, 8, 1), "tax_rate_percent", 12)]
    finally:
        migrate.upgrade(iso)
        with iso_engine.begin() as c:
            c.execute(text("DELETE FROM price_history"))
    assert {"changed_by", "changed_at"} <= _columns(iso_engine)
