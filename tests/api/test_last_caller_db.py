"""NCR-REG-2/3 against the real PostgreSQL: 144 → 2 registers the caller that disconnected last
(source 004: 「最後に切断した相手先の電話番号となります」), whatever else the line had since.

The call log used to be read as the list's 50 newest calls by start time, rejected ones
included. A long call that started before them and ended last fell out of that window, so the
caller of an earlier, shorter call was registered instead; and 50 rejections of a listed
auto-dialler pushed the real nuisance caller out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from callguard.db import nuisance_repo
from callguard.domain.nuisance import Refusal, select_last_caller

# An hour ago: calls in progress are read only if they started within STALE_IN_PROGRESS.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
OTHERS = 60  # more than the old window of 50, of each kind below


def _sql(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.begin() as conn:
        result = conn.execute(text(sql), params)
        return result.scalar() if result.returns_rows else None


@pytest.fixture
def line(iso_engine: Engine) -> Iterator[tuple[int, int]]:
    """A fixed contract's number with a per-number list: (list id, number id)."""
    cid = _sql(iso_engine, "INSERT INTO contracts (code, kind, name, extension_digits) "
                           "VALUES ('LC-A', 'fixed', 'last caller', 4) RETURNING id")
    eid = _sql(iso_engine, "INSERT INTO endpoints (name, contract_id, address, extension, "
                           "channels, roaming) VALUES ('ep-LC-A', :c, '127.0.9.31', '1001', 2, "
                           "false) RETURNING id", c=cid)
    nid = _sql(iso_engine, "INSERT INTO numbers (number, contract_id, endpoint_id, role, "
                           "nuisance_subscribed) VALUES ('0397000031', :c, :e, 'representative', "
                           "true) RETURNING id", c=cid, e=eid)
    lid = _sql(iso_engine, "INSERT INTO nuisance_lists (contract_id, number_id, unit, capacity, "
                           "active) VALUES (:c, :n, 'per-number', 30, true) RETURNING id",
               c=cid, n=nid)
    yield int(lid), int(nid)
    _sql(iso_engine, "DELETE FROM contracts WHERE code = 'LC-A'")


def _call(engine: Engine, line: tuple[int, int], channel: str, caller: str | None,
          started: datetime, ended: datetime | None, rejected: bool = False) -> None:
    lid, nid = line
    _sql(engine, "INSERT INTO inbound_calls (channel_id, list_id, number_id, caller_key, "
                 "rejected, started_at, ended_at) VALUES (:ch, :l, :n, :k, :r, :s, :e)",
         ch=channel, l=lid, n=nid, k=caller, r=rejected, s=started, e=ended)


def _newer_calls(engine: Engine, line: tuple[int, int]) -> None:
    """After the long call from X began: OTHERS rejected calls of a listed auto-dialler (never
    closed: rejected calls are not followed) and OTHERS short calls of other callers, all
    ended before X's."""
    for i in range(OTHERS):
        at = T0 + timedelta(seconds=10 + i)
        _call(engine, line, f"lc-rej-{i}", "key-dialler", at, None, rejected=True)
        _call(engine, line, f"lc-short-{i}", f"key-short-{i}", at, at + timedelta(seconds=5))


def _last(engine: Engine, lid: int, now: datetime) -> Any:
    with Session(engine) as session:
        calls = nuisance_repo.last_caller_candidates(session, lid)
    return select_last_caller(calls, now, multi_channel=True)


def test_the_call_that_ended_last_is_found_behind_newer_calls(
        iso_engine: Engine, line: tuple[int, int]) -> None:
    # X called first and hung up last, after 120 newer calls (half of them rejected).
    end = T0 + timedelta(seconds=200)
    _call(iso_engine, line, "lc-x", "key-x", T0, end)
    _newer_calls(iso_engine, line)
    last = _last(iso_engine, line[0], end + timedelta(seconds=10))
    assert (last.key, last.refusal) == ("key-x", None)


def test_a_call_still_in_progress_behind_newer_calls_blocks_registration(
        iso_engine: Engine, line: tuple[int, int]) -> None:
    # Another caller is still on the line (it started before all the others): nobody can be
    # registered (「どちらの電話番号も登録できない期間」), not the last short call's caller.
    _call(iso_engine, line, "lc-long", "key-long", T0, None)
    _newer_calls(iso_engine, line)
    last = _last(iso_engine, line[0], T0 + timedelta(seconds=80))
    assert last.refusal is Refusal.CALL_IN_PROGRESS_FROM_OTHER


def test_rejected_calls_never_hide_the_caller_before_them(
        iso_engine: Engine, line: tuple[int, int]) -> None:
    # The nuisance caller hung up; then its listed auto-dialler was rejected 60 times.
    end = T0 + timedelta(seconds=5)
    _call(iso_engine, line, "lc-y", "key-y", T0, end)
    for i in range(OTHERS):
        _call(iso_engine, line, f"lc-rej-{i}", "key-dialler", end + timedelta(seconds=i / 10),
              None, rejected=True)
    last = _last(iso_engine, line[0], end + timedelta(seconds=30))
    assert (last.key, last.refusal) == ("key-y", None)


def test_two_calls_ending_together_are_both_read(
        iso_engine: Engine, line: tuple[int, int]) -> None:
    end = T0 + timedelta(seconds=30)
    _call(iso_engine, line, "lc-a", "key-a", T0, end)
    _call(iso_engine, line, "lc-b", "key-b", T0 + timedelta(seconds=1), end)
    with Session(iso_engine) as session:
        calls = nuisance_repo.last_caller_candidates(session, line[0])
    assert sorted(c.caller_key or "" for c in calls) == ["key-a", "key-b"]
    assert _last(iso_engine, line[0], end).refusal is Refusal.SIMULTANEOUS_END


def test_a_call_left_in_progress_for_a_day_no_longer_blocks(
        iso_engine: Engine, line: tuple[int, int]) -> None:
    # A row whose end was lost (nothing closed it while the shells ran) stops blocking the
    # list after STALE_IN_PROGRESS; a recent one still blocks.
    stale = T0 - nuisance_repo.STALE_IN_PROGRESS
    _call(iso_engine, line, "lc-stale", "key-stale", stale, None)
    end = T0 + timedelta(seconds=30)
    _call(iso_engine, line, "lc-z", "key-z", T0, end)
    last = _last(iso_engine, line[0], end + timedelta(seconds=10))
    assert (last.key, last.refusal) == ("key-z", None)
