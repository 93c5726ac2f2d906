"""Service dates are Tokyo calendar days, wherever "today" is decided (REC-*, BILL-*)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

import callguard.cli._admin as admin
import callguard.cli.site as site_cli
from callguard.domain.nuisance import tokyo_date
from callguard.services import base

INSTANT = datetime(2020, 3, 31, 20, 0, tzinfo=UTC)  # 05:00 JST on 1 April 2020


@pytest.mark.parametrize(("ts", "day"), [
    (datetime(2026, 11, 30, 15, 0, tzinfo=UTC), date(2026, 12, 1)),  # 00:00 JST
    (datetime(2026, 11, 30, 14, 59, 59, tzinfo=UTC), date(2026, 11, 30)),
    (datetime(2026, 12, 1, 0, 0, tzinfo=timezone(timedelta(hours=-5))), date(2026, 12, 1)),
])
def test_tokyo_date(ts: datetime, day: date) -> None:
    assert tokyo_date(ts) == day
    assert base.tokyo_date is tokyo_date  # one helper for the services and the call path


def test_tokyo_date_refuses_naive_time() -> None:
    with pytest.raises(ValueError):
        tokyo_date(datetime(2026, 11, 30, 20, 0))


class FrozenClock(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> FrozenClock:
        return cls.fromtimestamp(INSTANT.timestamp(), tz)


def test_site_provision_dates_subscriptions_in_tokyo(monkeypatch: pytest.MonkeyPatch) -> None:
    # `callguard site provision` activates the reference site's add-ons today in Tokyo, as
    # every other service date, not on the host's local day.
    seen: list[date] = []

    @contextmanager
    def no_db(*args: Any) -> Iterator[object]:
        yield object()

    monkeypatch.setattr(admin, "datetime", FrozenClock)
    monkeypatch.setattr(site_cli, "db_session", no_db)
    monkeypatch.setattr(site_cli, "provision_once",
                        lambda session, today, again: seen.append(today))
    assert site_cli._provision(argparse.Namespace(again=False)) == 0
    assert seen == [date(2020, 4, 1)]
