"""Local state in every process that decides calls (REL-5, REL-2, REL-1, REL-7), over real SIP.

- PostgreSQL stopped, then the ARI app and the fallback restarted while it is down: calls
  connect and are recorded, listed callers are rejected (through either shell); once the
  database is back the journaled rejection counts and the recording row arrive.
- The ARI app stopped: 144 works in the FastAGI fallback (2, the full-list 0, 3, 9, 4).
- A 144 change made through one shell rejects the very next call through the other.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from sqlalchemy import Engine

from callguard.config import PROJECT_ROOT, Settings
from callguard.domain.privacy import caller_key
from tests.e2e.conftest import AppLog, MessagesLog
from tests.e2e.rec_helpers import F1B, inbound, recordings, wav_files
from tests.e2e.sipp import dtmf, pause
from tests.e2e.test_nuisance import (
    dial_144,
    fill,
    keys,
    list_id,
    nuisance_call,
    rejected,
    this_month_count,
)
from tests.e2e.test_reliability import app_connected, block
from tests.waiting import wait_for

STACK = str(PROJECT_ROOT / "tools" / "stack.sh")
F2B = "127.0.1.4"  # f2-b, 0612345679: contract F2, per-contract list, not recorded
LISTED = "0399990666"


def stack(*args: str) -> None:
    subprocess.run([STACK, *args], check=True)


def decisions(log: AppLog) -> list[str]:
    return [str(r.get("decision")) for r in log.records() if "decision" in str(r.get("msg"))]


def key_known_locally(settings: Settings, number: str) -> bool:
    """Both processes' state snapshots on disk hold the caller's key (written on change)."""
    key = caller_key(settings.hmac_key, number)
    files = [settings.journal_dir / f"state-{n}.json" for n in ("ari", "fastagi")]
    return all(f.exists() and key in f.read_text() for f in files)


def start_fastagi(settings: Settings) -> None:
    log = AppLog(settings, "fastagi.log")
    stack("app-start", "fastagi")
    assert wait_for(lambda: "FastAGI fallback listening" in log.text(), 45)


def start_ari() -> None:
    stack("app-start", "ari")
    assert wait_for(app_connected, 45), "the ARI app did not connect"


@pytest.fixture
def ari_stopped(clean: Engine) -> Iterator[None]:
    stack("app-stop", "ari")
    try:
        assert wait_for(lambda: not app_connected(), 5)
        yield
    finally:
        start_ari()


def test_started_while_database_down_calls_recorded_listed_rejected(
        clean: Engine, settings: Settings, work: Path, figures: dict[str, object]) -> None:
    """REL-5: with PostgreSQL stopped, both apps restarted (so nothing is left in memory but
    what the disk snapshot gives): the recorded line connects and records, the listed caller
    is rejected by the ARI app and by the fallback; after PostgreSQL returns, the counter
    shows both rejections and the recording row exists, `complete`."""
    lid = block(clean, settings, LISTED)
    assert wait_for(lambda: key_known_locally(settings, LISTED), 5), "NOTIFY not followed"
    ari_log, agi_log = AppLog(settings), AppLog(settings, "fastagi.log")
    stack("pg-stop")
    try:
        stack("app-stop", "ari")
        stack("app-stop", "fastagi")
        start_fastagi(settings)
        start_ari()
        assert "deciding from the disk copy" in ari_log.text()
        assert "deciding from the disk copy" in agi_log.text()

        call = inbound(work / "rec", "0312345679", F1B)  # f1-b: recorded (REC-IN-1)
        assert call.final_status() == 200, call.timeline()
        assert wait_for(lambda: len(wav_files(settings)) == 1, 10), "no recording file"
        assert wav_files(settings)[0].stat().st_size > 44

        seconds = rejected(work / "rej-ari", "0612345679", F2B, caller=LISTED)
        figures["rejection_200_to_bye_s_db_down"] = round(seconds, 2)
        assert "Reject" in decisions(ari_log)

        stack("app-stop", "ari")
        assert wait_for(lambda: not app_connected(), 5)
        rejected(work / "rej-agi", "0612345679", F2B, caller=LISTED)
        assert "Reject" in decisions(agi_log)
        start_ari()
    finally:
        stack("pg-start")
    # Journaled in order, replayed by each process once the database answers (REL-2).
    assert wait_for(lambda: this_month_count(clean, lid) == 2, 20), this_month_count(clean, lid)
    rows = recordings(clean, wait_s=20)
    assert [(r["direction"], r["number"], r["status"]) for r in rows] == [
        ("in", "0312345679", "complete")]
    # Both processes found the database again and reloaded (reconnect after the restart).
    assert wait_for(lambda: ari_log.text().count("state loaded from the database") >= 1
                    and agi_log.text().count("state loaded from the database") >= 1, 10)


def test_144_in_the_fallback(ari_stopped: None, clean: Engine, settings: Settings,
                             work: Path) -> None:
    """REL-7: the ARI app down, 144 → 2 registers the last caller; 3 removes it; 9 clears the
    list; 4 reads the count; a full list asks 「…よろしければ“0”…」 and 0 evicts the oldest.
    The prompts are those the ARI app plays (logged by the fallback the same way)."""
    lid = list_id(clean, "0312345679")
    me = caller_key(settings.hmac_key, "0399997777")
    nuisance_call(work / "a", "0312345679", F1B)

    log = AppLog(settings, "fastagi.log")
    r = dial_144(work / "b", F1B, dtmf("2"))
    assert r.final_status() == 200 and r.bye_from_far_end()
    assert log.prompts() == ["menu", "registered"]
    assert keys(clean, lid) == [me]

    log = AppLog(settings, "fastagi.log")
    dial_144(work / "c", F1B, dtmf("3"))
    assert log.prompts() == ["menu", "deleted_newest"]
    assert keys(clean, lid) == []

    fill(clean, lid, ["k1", "k2"])
    log = AppLog(settings, "fastagi.log")
    dial_144(work / "d", F1B, dtmf("9"))
    assert log.prompts() == ["menu", "deleted_all"]
    assert keys(clean, lid) == []

    log = AppLog(settings, "fastagi.log")
    dial_144(work / "e", F1B, pause(500), dtmf("4"))
    assert log.prompts() == ["menu", "count_this_month", "times_0"]

    old = [f"old{i:02d}" for i in range(30)]
    fill(clean, lid, old)
    log = AppLog(settings, "fastagi.log")
    dial_144(work / "f", F1B, dtmf("2"), pause(1500), dtmf("0"))
    assert log.prompts() == ["menu", "list_full", "registered"]
    assert keys(clean, lid) == [*old[1:], me]


def test_144_change_in_one_shell_rejects_in_the_other(clean: Engine, settings: Settings,
                                                      work: Path) -> None:
    """REL-5: a registration through the ARI app rejects that caller on the very next call,
    taken by the fallback; and a registration through the fallback rejects on the next call
    taken by the ARI app (both follow the list by LISTEN/NOTIFY, no polling)."""
    lid = list_id(clean, "0312345679")
    first, second = "0399991111", "0399992222"

    nuisance_call(work / "a", "0312345679", F1B, caller=first)
    ari_log = AppLog(settings)
    dial_144(work / "b", F1B, dtmf("2"))
    assert ari_log.prompts() == ["menu", "registered"]
    stack("app-stop", "ari")
    try:
        assert wait_for(lambda: not app_connected(), 5)
        agi_log, asterisk_log = AppLog(settings, "fastagi.log"), MessagesLog(settings)
        rejected(work / "c", "0312345679", F1B, caller=first)
        assert decisions(agi_log) == ["Reject"]

        nuisance_call(work / "d", "0312345679", F1B, caller=second)
        # The fallback reads each call's facts and its end in one command apiece, empty
        # values (no video, no answer time, no recording) included, without a WARNING.
        assert [line for line in asterisk_log.lines() if "base64" in line.lower()] == []
        agi_log = AppLog(settings, "fastagi.log")
        dial_144(work / "e", F1B, dtmf("2"))
        assert agi_log.prompts() == ["menu", "registered"]
    finally:
        start_ari()
    ari_log = AppLog(settings)
    rejected(work / "f", "0312345679", F1B, caller=second)
    assert decisions(ari_log) == ["Reject"]
    assert keys(clean, lid) == [caller_key(settings.hmac_key, n) for n in (first, second)]
    assert this_month_count(clean, lid) == 2


def postmaster_pid() -> int:
    pidfile = PROJECT_ROOT / ".run" / "pg" / "data" / "postmaster.pid"
    if not pidfile.exists():
        pytest.skip("PostgreSQL is not the project-local cluster (DATABASE_URL)")
    return int(pidfile.read_text().split()[0])


def children_of(parent: int) -> list[int]:
    """The processes `parent` started (the postmaster's: its backends, the call path's
    connections among them)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a process gone meanwhile
        if ppid == parent:
            pids.append(int(stat.parent.name))
    return pids


HUNG_MAX_S = 120  # the watchdog's: however this test ends, PostgreSQL runs again by then


@contextmanager
def postgres_hung() -> Iterator[None]:
    """PostgreSQL alive but not answering (every process SIGSTOPped): a stuck host, a network
    that swallows packets. Unlike a stopped server, nothing is refused: connections and
    queries just wait. Continued at the end; and, should pytest itself be killed (a CI
    timeout) before that, by a watchdog in its own session HUNG_MAX_S later. The postmaster
    is stopped first, so no backend is forked between listing and stopping them."""
    postmaster = postmaster_pid()
    watchdog = subprocess.Popen(
        ["sh", "-c", f"sleep {HUNG_MAX_S}; kill -CONT {postmaster}; pkill -CONT -P {postmaster}"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stopped = [postmaster]
    try:
        os.kill(postmaster, signal.SIGSTOP)
        for pid in children_of(postmaster):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        yield
    finally:
        for pid in stopped:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        os.killpg(watchdog.pid, signal.SIGKILL)  # its own session: the shell and its sleep
        watchdog.wait()


def test_144_in_the_fallback_database_hung_says_failed_calls_go_on(
        ari_stopped: None, clean: Engine, settings: Settings, work: Path,
        figures: dict[str, object]) -> None:
    """REL-7 / REL-2 / REL-5 in the fallback with PostgreSQL hung, not stopped: the recorded
    line still connects and records (decided from local state, its row journaled), the 144
    menu still answers and "2" gets 「迷惑電話リストの登録に失敗しました。」 once the menu's
    own 3 s bound runs out (SyncLists: the blocking driver waits on a thread the menu stops
    waiting for), never silence or a stuck call. Once PostgreSQL runs again, the journaled
    recording row arrives `complete` and the list holds nothing half-written."""
    lid = list_id(clean, "0312345679")
    nuisance_call(work / "a", "0312345679", F1B)
    log = AppLog(settings, "fastagi.log")
    with postgres_hung():
        call = inbound(work / "rec", "0312345679", F1B, seconds=2)
        started = time.monotonic()
        r = dial_144(work / "b", F1B, dtmf("2"))
        menu_call_s = time.monotonic() - started
    assert call.final_status() == 200, call.timeline()
    assert r.final_status() == 200 and r.bye_from_far_end(), r.timeline()
    assert log.prompts() == ["menu", "register_failed"]
    # The first call's row and the hung-time call's: written once PostgreSQL answers again
    # (the writer's statement was waiting on the stopped server, or journaled).
    assert wait_for(lambda: [(r["status"], r["number"]) for r in recordings(clean)]
                    == [("complete", "0312345679")] * 2, 30), recordings(clean)
    assert len(wav_files(settings)) == 2
    assert keys(clean, lid) == []
    figures.update(menu_call_s=round(menu_call_s, 1))


def test_144_in_the_fallback_database_down_says_failed(ari_stopped: None, clean: Engine,
                                                       settings: Settings, work: Path) -> None:
    """REL-2 / NCR-REG-7 in the fallback: PostgreSQL away → the menu still answers, and "2"
    gets 「迷惑電話リストの登録に失敗しました。」 (nothing half-written)."""
    lid = list_id(clean, "0312345679")
    nuisance_call(work / "a", "0312345679", F1B)
    log = AppLog(settings, "fastagi.log")
    stack("pg-stop")
    try:
        r = dial_144(work / "b", F1B, dtmf("2"))
    finally:
        stack("pg-start")
    assert r.final_status() == 200 and r.bye_from_far_end()
    assert log.prompts() == ["menu", "register_failed"]
    assert keys(clean, lid) == []
