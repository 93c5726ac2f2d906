"""Migration subscription_periods against the real PostgreSQL (BILL, RUN-2): the subscriptions
that exist when it runs are carried into the history (a nuisance period starts at the unit it
had before its first change), the triggers keep the history from then on, and the downgrade
reverts it (the subscription rows are untouched)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from callguard.config import Settings
from callguard.db import migrate
from callguard.db.models import (
    Contract,
    NuisanceSubscription,
    NuisanceUnitChange,
    RecordingSubscription,
)

BEFORE = "last_caller_index"


def _periods(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(text(
            "SELECT c.code, p.service, p.activated_on, p.cancelled_on, p.unit"
            " FROM subscription_periods p JOIN contracts c ON c.id = p.contract_id"
            " ORDER BY c.code, p.service, p.activated_on"))]


def _table_exists(engine: Engine) -> bool:
    with engine.connect() as c:
        return c.execute(text("SELECT to_regclass('subscription_periods')")).scalar() is not None


def test_upgrade_carries_subscriptions_over_and_downgrade_reverts(iso: Settings,
                                                                 iso_engine: Engine) -> None:
    migrate.downgrade(iso, BEFORE)
    try:
        assert not _table_exists(iso_engine)
        with Session(iso_engine) as s, s.begin():
            p1, p2 = Contract(code="PM1", kind="fixed"), Contract(code="PM2", kind="fixed")
            s.add_all([p1, p2])
            s.flush()
            s.add(RecordingSubscription(contract_id=p1.id, activated_on=date(2026, 1, 10),
                                        cancelled_on=date(2026, 4, 1)))
            s.add(RecordingSubscription(contract_id=p2.id, activated_on=date(2026, 2, 1)))
            s.add(NuisanceSubscription(contract_id=p2.id, unit="per-number",
                                       activated_on=date(2026, 2, 1)))
            # One change before this activation (an earlier, overwritten period: not this
            # period's) and one inside it: the period began per contract.
            s.add(NuisanceUnitChange(contract_id=p2.id, changed_on=date(2025, 12, 1),
                                     old_unit="per-number", new_unit="per-contract"))
            s.add(NuisanceUnitChange(contract_id=p2.id, changed_on=date(2026, 3, 5),
                                     old_unit="per-contract", new_unit="per-number"))
        migrate.upgrade(iso)
        assert _periods(iso_engine) == [
            ("PM1", "recording", date(2026, 1, 10), date(2026, 4, 1), None),
            ("PM2", "nuisance", date(2026, 2, 1), None, "per-contract"),
            ("PM2", "recording", date(2026, 2, 1), None, None),
        ]
        # From now on the triggers keep it: a re-subscription is a new period.
        with iso_engine.begin() as c:
            c.execute(text(
                "UPDATE recording_subscriptions SET activated_on = '2026-06-01',"
                " cancelled_on = NULL WHERE contract_id = (SELECT id FROM contracts"
                " WHERE code = 'PM1')"))
        assert [p for p in _periods(iso_engine) if p[0] == "PM1"] == [
            ("PM1", "recording", date(2026, 1, 10), date(2026, 4, 1), None),
            ("PM1", "recording", date(2026, 6, 1), None, None)]
        migrate.downgrade(iso, BEFORE)
        assert not _table_exists(iso_engine)
        with iso_engine.connect() as c:  # the rows themselves are untouched
            assert c.execute(text("SELECT count(*) FROM recording_subscriptions")).scalar() == 2
    finally:
        migrate.upgrade(iso)
        with iso_engine.begin() as c:
            c.execute(text("DELETE FROM contracts WHERE code IN ('PM1', 'PM2')"))
    assert _table_exists(iso_engine)
