"""Chaos under load (REL-1, REL-2, RUN-4): the ARI app killed and PostgreSQL stopped while calls
are flowing. Bounded: 10 calls/s for 30 s, loopback only."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from callguard.config import PROJECT_ROOT, Settings
from callguard.domain.privacy import caller_key
from tests.e2e.sipp import Load, Phone, UacSpec, audio, uac
from tests.waiting import wait_for

STACK = str(PROJECT_ROOT / "tools" / "stack.sh")
BLOCKED_CALLER = "0399990666"
F2_LIST_SQL = "SELECT id FROM nuisance_lists WHERE active AND number_id IS NULL AND " \
    "contract_id = (SELECT id FROM contracts WHERE code = 'F2')"


def block(engine: Engine, settings: Settings, number: str) -> int:
    with engine.begin() as conn:
        list_id = int(conn.execute(text(F2_LIST_SQL)).scalar_one())
        conn.execute(text("INSERT INTO nuisance_entries (list_id, caller_key) VALUES (:l, :k)"),
                     {"l": list_id, "k": caller_key(settings.hmac_key, number)})
    return list_id


def app_connected() -> bool:
    """The app's websocket session is up (a dead app stays listed under /applications)."""
    return subprocess.run([STACK, "app-connected"], check=False).returncode == 0


@contextmanager
def mixed_load(work: Path) -> Iterator[tuple[Phone, Load, Load]]:
    """10 calls/s for 30 s: half to f2-b (unrecorded, NCR per contract), half to f1-b
    (recorded); both phones answer at once and every call carries 1 s of audio."""
    with Phone("127.0.1.4", work / "f2b", audio_s=0, calls=200, timeout_s=90) as f2b, \
            Phone("127.0.1.2", work / "f1b", audio_s=0, calls=200, timeout_s=90):
        plain = Load(UacSpec(to="0612345679", steps=[audio(1)]), work / "plain", 5, 150,
                     timeout_s=80)
        recorded = Load(UacSpec(to="0312345679", from_user="0399990001", steps=[audio(1)]),
                        work / "rec", 5, 150, timeout_s=80)
        yield f2b, plain, recorded


def rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_app_killed_under_load_no_call_dropped(clean: Engine, settings: Settings, work: Path,
                                               figures: dict[str, object]) -> None:
    """REL-1: SIGKILL the ARI app at 10 calls/s: every call still completes through the FastAGI
    fallback, a blocked caller is still rejected, eligible calls are still recorded, and the
    app reconnects by itself when restarted (RUN-4)."""
    list_id = block(clean, settings, BLOCKED_CALLER)
    pid = int((PROJECT_ROOT / ".run" / "ari.pid").read_text())
    with mixed_load(work) as (f2b, plain, recorded):
        time.sleep(5)
        os.kill(pid, signal.SIGKILL)
        # supervisord starts it again at once (REL-9); until the new process has connected
        # (interpreter start-up, a few seconds) calls go to the fallback.
        assert wait_for(lambda: not app_connected(), 5)
        outage_started = time.monotonic()
        blocked = uac(UacSpec(to="0612345679", from_user=BLOCKED_CALLER, hangup=False),
                      work / "blocked", timeout_s=40)
        time.sleep(max(0.0, 15 - (time.monotonic() - outage_started)))
        subprocess.run([STACK, "app-start", "ari"], check=True)
        assert wait_for(app_connected, 30), "app did not reconnect"
        outage_s = time.monotonic() - outage_started
        plain_result, rec_result = plain.wait(), recorded.wait()
        f2b.wait(5)
    # The blocked caller, during the outage: answered, message, released by Asterisk; the
    # phone never saw an INVITE from that number (NCR-REJ-2 through the fallback).
    assert blocked.final_status() == 200 and blocked.bye_from_far_end()
    assert not any(BLOCKED_CALLER in (m.header("From") or "")
                   for m in f2b.result().messages if m.method == "INVITE")
    counted = rows(clean, "SELECT list_id, count FROM nuisance_counters")
    assert counted == [(list_id, 1)]
    total = plain_result.attempted + rec_result.attempted
    failed = plain_result.failed + rec_result.failed
    # Recordings are finished a moment after their calls end; those the killed app was
    # following are finished by the restarted app (resume_followed).
    wait_for(lambda: not rows(clean, "SELECT 1 FROM recordings WHERE status = 'recording'"), 15)
    statuses = {status: n for status, n in
                rows(clean, "SELECT status, count(*) FROM recordings GROUP BY status")}
    figures.update(attempted=total, failed=failed, outage_s=round(outage_s, 1),
                   blocked_rejected=1, recordings=statuses)
    assert plain_result.attempted == 150 and rec_result.attempted == 150
    assert failed == 0, (plain_result.failed_codes, rec_result.failed_codes)
    assert statuses == {"complete": rec_result.answered}, statuses


def test_database_stopped_under_load_calls_connect_rows_recovered(
        clean: Engine, settings: Settings, work: Path, figures: dict[str, object]) -> None:
    """REL-2: stop PostgreSQL for 20 s at 10 calls/s: no call fails, recordings still happen,
    their rows are journaled and written when the database is back, with no restart."""
    with mixed_load(work) as (_, plain, recorded):
        time.sleep(5)
        subprocess.run([STACK, "pg-stop"], check=True)
        try:
            time.sleep(20)
        finally:
            subprocess.run([STACK, "pg-start"], check=True)
        plain_result, rec_result = plain.wait(), recorded.wait()
    journal = settings.journal_dir / "ari.jsonl"
    assert wait_for(lambda: not journal.exists() or not journal.read_text().strip(), 20), \
        "journal not replayed"
    time.sleep(3)
    statuses = {status: n for status, n in
                rows(clean, "SELECT status, count(*) FROM recordings GROUP BY status")}
    failed = plain_result.failed + rec_result.failed
    figures.update(attempted=plain_result.attempted + rec_result.attempted, failed=failed,
                   recorded_calls=rec_result.answered, rows=statuses)
    assert failed == 0, (plain_result.failed_codes, rec_result.failed_codes)
    assert statuses == {"complete": rec_result.answered}, statuses
    files = list(settings.recordings_dir.rglob("*_in_*.wav"))
    assert len(files) >= rec_result.answered
