"""`callguard recordings list|reconcile|purge|capacity` against the real database, files and
Asterisk (REC-FILE-2/3/4, REC-CAP-1, ADM-1)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import threading
import time
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from callguard.config import Settings
from callguard.domain.routing import recording_path
from callguard.recording_files import RECOVERED, prepare_dir
from callguard.recordings import ADOPTED
from tests.e2e.rec_helpers import CLI, F1B, capacity_restored, recordings
from tests.e2e.sipp import CallResult, Phone, UacSpec, audio, uac
from tests.e2e.test_reliability import rows
from tests.waiting import wait_for


def cli(*args: str, expect: int = 0) -> Any:
    done = subprocess.run([CLI, *args], capture_output=True, text=True, check=False)
    assert done.returncode == expect, (args, done.returncode, done.stdout, done.stderr)
    return json.loads(done.stdout) if "--json" in args else done.stdout


def write_wav(path: Path, seconds: float, cut_off: bool = False, age_s: float = 60) -> Path:
    """A MixMonitor-like file; `cut_off`: header sizes left at 0 (Asterisk died)."""
    # Missing levels made as the services make them (SEC-4: 2770, Asterisk's group), so the
    # services, which run as their own user, can purge or repair what a test plants as root.
    prepare_dir(Path(path.anchor), str(path.relative_to(path.anchor)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<h", 3000) * int(8000 * seconds))
    if cut_off:
        with path.open("r+b") as f:
            f.seek(4)
            f.write(b"\0\0\0\0")
            f.seek(40)
            f.write(b"\0\0\0\0")
    old = time.time() - age_s
    os.utime(path, (old, old))
    return path


def add_row(engine: Engine, contract: str, channel_id: str, started: datetime,
            direction: str = "in", status: str = "recording", number: str = "0312345678",
            remote: str = "0399990001") -> str:
    rel = recording_path(started, contract, direction, channel_id)
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO recordings (contract_id, number, direction, remote, channel_id, path,"
            " started_at, status) SELECT id, :n, :d, :r, :ch, :p, :s, :st FROM contracts"
            " WHERE code = :c"), {"n": number, "d": direction, "r": remote, "ch": channel_id,
                                  "p": rel, "s": started, "st": status, "c": contract})
    return rel


def row_of(engine: Engine, channel_id: str) -> dict[str, Any]:
    with engine.connect() as c:
        return dict(c.execute(text("SELECT * FROM recordings WHERE channel_id = :ch"),
                              {"ch": channel_id}).one()._mapping)


def test_reconcile_finishes_rows_of_gone_calls_and_adopts_orphan_files(
        clean: Engine, settings: Settings) -> None:
    """REC-FILE-2: a row left `recording` by a crash gets its WAV header repaired and ends
    `complete` with the reason; one without a file ends `failed`; a file without a row is
    adopted; a file whose name is not ours, or whose row is still journaled, is reported."""
    root = settings.recordings_dir
    now = datetime.now(UTC) - timedelta(minutes=5)
    crashed = add_row(clean, "F1", "1700000000.101", now)
    write_wav(root / crashed, 2.0, cut_off=True)
    add_row(clean, "F1", "1700000000.102", now)  # no file at all
    orphan = recording_path(now, "M1", "out", "1700000000.103")
    write_wav(root / orphan, 1.0)
    stranger = root / "2026/01/01/F1/not-ours.wav"
    write_wav(stranger, 0.5)
    journaled = recording_path(now, "F1", "in", "1700000000.104")
    write_wav(root / journaled, 0.5)
    journal = settings.journal_dir / "test-reconcile.jsonl"
    journal.write_text(json.dumps({"op": "recording_started",
                                   "args": {"channel_id": "1700000000.104"}}) + "\n")
    fresh = recording_path(now, "F1", "in", "1700000000.105")
    # MixMonitor may still be writing it: a live file's mtime moves every 20 ms. Stamped a
    # little ahead, so it still counts as just written when the CLI (slow to start on a
    # loaded machine) looks at it.
    write_wav(root / fresh, 0.5, age_s=-30)
    try:
        report = cli("recordings", "reconcile", "--json")
    finally:
        journal.unlink()
    assert report["checked"] == 2 and report["asterisk_unreachable"] is False
    assert (report["completed"], report["failed"], report["repaired_headers"]) == (1, 1, 1)
    assert report["adopted"] == 1 and report["orphan_files"] == 3
    assert sorted(report["orphans"]) == sorted([journaled, str(stranger.relative_to(root))])

    row = row_of(clean, "1700000000.101")
    data = (root / crashed).read_bytes()
    assert (row["status"], row["reason"]) == ("complete", RECOVERED)
    assert row["sha256"] == hashlib.sha256(data).hexdigest() and row["bytes"] == len(data)
    assert row["duration_s"] == 2.0 and row["ended_at"] is not None
    with wave.open(str(root / crashed)) as w:  # a valid WAV again
        assert w.getnframes() == 16000
    missing = row_of(clean, "1700000000.102")
    assert (missing["status"], missing["reason"]) == ("failed", "no recording file")
    adopted = row_of(clean, "1700000000.103")
    assert (adopted["status"], adopted["direction"], adopted["path"]) == ("complete", "out",
                                                                          orphan)
    assert adopted["reason"] == ADOPTED
    assert abs((adopted["started_at"] - now).total_seconds()) < 0.002
    # A second run finds nothing left to do (idempotent).
    again = cli("recordings", "reconcile", "--json", "--no-adopt")
    assert (again["checked"], again["completed"], again["adopted"]) == (0, 0, 0)
    log = (settings.log_dir / "recordings.log").read_text()
    assert "reconciled recording" in log and f"adopted recording file {orphan}" in log


def test_reconcile_leaves_a_live_call_alone(clean: Engine, settings: Settings,
                                            work: Path) -> None:
    """REC-FILE-2: a row whose channel still exists in Asterisk is not touched; the call
    finishes it normally afterwards."""
    result: dict[str, CallResult] = {}

    def call() -> None:
        result["call"] = uac(UacSpec(to="0312345679", steps=[audio(6)]), work / "carrier")

    with Phone(F1B, work / "phone", audio_s=7):
        caller = threading.Thread(target=call)
        caller.start()
        # The row is written when the call is decided (the phone answers at once);
        # answered_at only comes with the call's end (ANSWEREDTIME_MS, PERF-1).
        wait_for(lambda: rows(clean, "SELECT 1 FROM recordings WHERE status = 'recording'"), 10)
        time.sleep(3)  # past RECENT_WRITE_S would not matter: the channel is live
        report = cli("recordings", "reconcile", "--json")
        caller.join(30)
    assert (report["checked"], report["still_live"], report["completed"]) == (1, 1, 0)
    [row] = recordings(clean)
    assert row["status"] == "complete" and row["reason"] is None


def test_purge_by_contract_retention_dry_run_then_for_real(clean: Engine,
                                                           settings: Settings) -> None:
    """REC-FILE-3: recordings older than the contract's retention (90 days for F1) go, file
    and row, and the purge is logged; newer ones and a dry run change nothing."""
    root = settings.recordings_dir
    old_start = datetime.now(UTC) - timedelta(days=100)
    new_start = datetime.now(UTC) - timedelta(days=10)
    old = add_row(clean, "F1", "1700000000.201", old_start, status="complete")
    new = add_row(clean, "F1", "1700000000.202", new_start, status="complete")
    write_wav(root / old, 1.0)
    write_wav(root / new, 1.0)
    size = (root / old).stat().st_size
    dry = cli("recordings", "purge", "--dry-run", "--json")
    assert (dry["rows"], dry["files"], dry["bytes"], dry["errors"]) == (1, 1, size, 0)
    assert (root / old).exists() and len(recordings(clean)) == 2
    done = cli("recordings", "purge", "--json")
    assert (done["rows"], done["files"], done["bytes"]) == (1, 1, size)
    assert not (root / old).exists() and not (root / old).parent.exists()
    assert (root / new).exists()
    assert [r["channel_id"] for r in recordings(clean)] == ["1700000000.202"]
    log = (settings.log_dir / "recordings.log").read_text()
    assert "purge (dry run): contract F1 recording" in log
    assert "purge: contract F1 recording" in log and "retention 90 days" in log


def test_list_filters_and_fields(clean: Engine, settings: Settings) -> None:
    """REC-FILE-4 / ADM-1: search by contract, number, direction, time range; each row has
    the fields the operator needs and the file's absolute path on this host."""
    t0 = datetime.now(UTC) - timedelta(hours=3)
    add_row(clean, "F1", "1700000000.301", t0, "in", "complete")
    add_row(clean, "F1", "1700000000.302", t0 + timedelta(hours=1), "out", "complete",
            remote="0612345678")
    add_row(clean, "M1", "1700000000.303", t0 + timedelta(hours=2), "in", "complete",
            number="0311110001")
    page = cli("recordings", "list", "--json")
    # Issue #15: a page like every other listing.
    assert {"items", "limit", "offset", "next_offset"} <= page.keys()
    every = page["items"]
    assert [(r["contract"], r["direction"]) for r in every] == [
        ("M1", "in"), ("F1", "out"), ("F1", "in")]  # newest first
    for r in every:
        assert {"id", "contract", "number", "direction", "remote", "started_at", "ended_at",
                "duration_s", "bytes", "sha256", "status", "path"} <= r.keys()
        assert Path(r["path"]).is_absolute()
        assert Path(r["path"]).is_relative_to(settings.recordings_dir)
    f1 = cli("recordings", "list", "--json", "--contract", "F1")["items"]
    assert [r["direction"] for r in f1] == ["out", "in"]  # newest first
    outgoing = cli("recordings", "list", "--json", "--direction", "out")["items"]
    assert [r["remote"] for r in outgoing] == ["0612345678"]
    assert [r["contract"] for r in cli("recordings", "list", "--json", "--number",
                                       "0311110001")["items"]] == ["M1"]
    window = cli("recordings", "list", "--json", "--since",
                 (t0 + timedelta(minutes=30)).isoformat(), "--until",
                 (t0 + timedelta(minutes=90)).isoformat())["items"]
    assert [r["direction"] for r in window] == ["out"]
    cli("recordings", "list", "--since", "yesterday", expect=2)


def test_capacity_cli_sets_and_resets(clean: Engine, settings: Settings) -> None:
    """REC-CAP-1: the maximum and policy are site_settings rows set by the CLI."""
    with capacity_restored(clean):
        shown = json.loads(cli("recordings", "capacity", "--max", "3", "--policy",
                               "unrecorded"))
        assert (shown["max_recordings"], shown["at_capacity_policy"]) == (3, "unrecorded")
        assert shown["source"] == {"max_recordings": "site_settings",
                                   "at_capacity_policy": "site_settings"}
        with clean.connect() as c:
            rows = {k: v for k, v in c.execute(text("SELECT key, value FROM site_settings"))}
        assert (rows["max_recordings"], rows["at_capacity_policy"]) == ("3", "unrecorded")
        reset = json.loads(cli("recordings", "capacity", "--reset"))
        assert reset["max_recordings"] == settings.max_recordings
        assert reset["source"]["max_recordings"] == "default"
        cli("recordings", "capacity", "--max", "-1", expect=2)
        cli("recordings", "capacity", "--reset", "--max", "2", expect=2)


def test_forwarding_cli_refuses_bad_input(clean: Engine) -> None:
    """ADM-1 / REL-4: clear errors (exit 2), nothing written."""
    cli("forwarding", "set", "--number", "0312345678", "--to", "0312345678", "--mode",
        "unconditional", expect=2)
    cli("forwarding", "set", "--number", "0399999999", "--to", "0399998877", "--mode",
        "unconditional", expect=2)
    cli("forwarding", "set", "--number", "0312345678", "--to", "110", "--mode",
        "unconditional", expect=2)
    cli("forwarding", "set", "--number", "0312345678", "--to", "0399998877", "--mode",
        "unreachable", "--after", "5", expect=2)
    assert cli("forwarding", "list", "--json")["items"] == []
