"""The local journal that holds call bookkeeping while the database is away (REL-2)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callguard.db.queries import WRITES, write_statement
from callguard.journal import Journal, Op, dumps, loads

T = datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)


def test_ops_roundtrip_with_datetimes_and_nesting() -> None:
    op = Op("recording_finished", {"channel_id": "1.2", "values": {"status": "complete",
                                                                   "at": T}})
    assert loads(dumps(op)) == op


def test_append_take_done_keeps_order_and_later_appends(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j" / "ari.jsonl")
    j.append([Op("inbound_call_ended", {"channel_id": "a", "ended_at": T})])
    j.append([Op("inbound_call_ended", {"channel_id": "b", "ended_at": T})])
    ops = j.take()
    assert [o.args["channel_id"] for o in ops] == ["a", "b"]
    j.append([Op("inbound_call_ended", {"channel_id": "c", "ended_at": T})])
    j.done(2)
    assert [o.args["channel_id"] for o in j.take()] == ["c"]
    assert j.pending() == 1


def test_replay_applies_then_truncates(tmp_path: Path) -> None:
    j = Journal(tmp_path / "x.jsonl")
    j.append([Op("count_rejection", {"list_id": 1, "month": "2026-11"})])
    seen: list[Op] = []
    assert j.replay_sync(seen.extend) == 1
    assert len(seen) == 1 and j.pending() == 0


def test_a_failed_replay_keeps_everything(tmp_path: Path) -> None:
    j = Journal(tmp_path / "x.jsonl")
    j.append([Op("count_rejection", {"list_id": 1, "month": "2026-11"})])

    def fail(_: list[Op]) -> None:
        raise RuntimeError("db down")

    try:
        j.replay_sync(fail)
    except RuntimeError:
        pass
    assert j.pending() == 1


def test_every_journaled_write_builds_a_statement() -> None:
    examples: dict[str, dict[str, Any]] = {
        "count_rejection": {"list_id": 1, "month": "2026-11"},
        "inbound_call_started": {"channel_id": "a", "list_id": 1, "number_id": 1,
                                 "caller_key": None, "rejected": False, "started_at": T},
        "inbound_call_ended": {"channel_id": "a", "ended_at": T},
        "recording_started": {"contract_id": 1, "number": "0312345678", "direction": "in",
                              "remote": "anonymous", "channel_id": "a", "path": "p.wav",
                              "started_at": T},
        "recording_ended": {"channel_id": "a", "ended_at": T},
        "recording_answered": {"channel_id": "a", "answered_at": T},
        "recording_finished": {"channel_id": "a", "values": {"status": "complete"}},
        "call_outcome": {"at": T, "contract_id": None, "direction": "in", "outcome": "refused",
                         "refuse_class": "cause_1", "via": "ari"},
    }
    assert set(examples) == set(WRITES)
    for name, args in examples.items():
        assert write_statement(name, loads(dumps(Op(name, args))).args) is not None


def test_journal_is_private_and_synced(tmp_path: Path, monkeypatch: Any) -> None:
    """SEC-4: the journal (caller numbers of recorded calls) is 0600 in a 0700 directory,
    and every append and rewrite is fsynced before it returns."""
    import os

    synced: list[int] = []
    real_fsync = os.fsync
    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    os.umask(0o022)
    j = Journal(tmp_path / "jd" / "ari.jsonl")
    j.append([Op("inbound_call_ended", {"channel_id": "a", "ended_at": T})])
    assert len(synced) == 1
    j.append([Op("inbound_call_ended", {"channel_id": "b", "ended_at": T})])
    j.done(1)
    assert len(synced) >= 3  # the rewrite syncs the new file (and its directory)
    assert (tmp_path / "jd").stat().st_mode & 0o777 == 0o700
    assert j.path.stat().st_mode & 0o777 == 0o600
