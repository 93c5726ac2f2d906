"""Recording through the FastAGI fallback (REL-1 with REC-*): with the ARI app stopped, an
eligible call is still recorded and its row finished by the `cg-agi-ended` hangup handler,
answer time included (REC-FILE-1/2); the capacity knobs are read by this shell too (REC-CAP-1)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine

from callguard.config import PROJECT_ROOT, Settings
from tests.e2e.conftest import AppLog, MessagesLog, ari_get
from tests.e2e.rec_helpers import (
    CLI,
    F1A,
    F1B,
    capacity_restored,
    check_file,
    inbound,
    outbound,
    recordings,
    talk_time,
    wav_files,
)
from tests.e2e.sipp import Phone, UacSpec, audio, uac
from tests.e2e.test_reliability import app_connected
from tests.waiting import wait_for

STACK = str(PROJECT_ROOT / "tools" / "stack.sh")


@pytest.fixture
def ari_app_stopped(clean: Engine) -> Iterator[None]:
    """The ARI app down (a clean stop), started again afterwards whatever happens."""
    subprocess.run([STACK, "app-stop", "ari"], check=True)
    try:
        assert wait_for(lambda: not app_connected(), 5)
        yield
    finally:
        subprocess.run([STACK, "app-start", "ari"], check=True)
        assert wait_for(app_connected, 15), "the ARI app did not reconnect"


def fallback_used(agi_log: AppLog) -> bool:
    """The FastAGI server logged a decision since `agi_log` was made (not via ARI)."""
    return "(fallback)" in agi_log.text()


def test_fallback_records_inbound_and_outbound(ari_app_stopped: None, clean: Engine,
                                               settings: Settings, work: Path) -> None:
    """REL-1 + REC-IN-1 / REC-OUT-1: both calls recorded through the fallback, the rows
    `complete` with size, hash, answer and end time (ANSWEREDTIME_MS). The fallback reads
    every fact in one command, empty ones (no video) included, without a WARNING in
    Asterisk's log."""
    agi_log, asterisk_log = AppLog(settings, "fastagi.log"), MessagesLog(settings)
    inbound_call = inbound(work / "in", "0312345679", F1B)
    out_call, _ = outbound(work / "out", F1A, "0077270612345678")
    assert inbound_call.final_status() == 200 and out_call.final_status() == 200
    assert fallback_used(agi_log)
    rows = recordings(clean)
    assert [(r["direction"], r["number"]) for r in rows] == [("in", "0312345679"),
                                                             ("out", "0312345678")]
    check_file(settings, rows[0], talk_time(inbound_call))
    check_file(settings, rows[1], talk_time(out_call))
    assert [line for line in asterisk_log.lines() if "base64" in line.lower()] == []


@pytest.fixture
def no_recording_capacity(clean: Engine) -> Iterator[None]:
    with capacity_restored(clean):
        subprocess.run([CLI, "recordings", "capacity", "--max", "0", "--policy",
                        "congestion"], check=True, capture_output=True)
        time.sleep(2.5)  # the fallback's site snapshot lives 2 s
        yield


def test_fallback_reads_capacity_settings(ari_app_stopped: None, no_recording_capacity: None,
                                          clean: Engine, settings: Settings,
                                          work: Path) -> None:
    """REC-CAP-1 in the fallback: at the maximum (0 here) an ordinary call gets congestion,
    the disaster-priority line connects unrecorded."""
    with Phone(F1B, work / "phone", audio_s=2, calls=2):
        ordinary = uac(UacSpec(to="0312345679", from_user="0399990009"), work / "ordinary")
        priority = uac(UacSpec(to="0312345679", from_user="0312340119", steps=[audio(1)]),
                       work / "priority")
    assert ordinary.final_status() == 503 and 183 in ordinary.statuses()
    assert priority.final_status() == 200
    assert recordings(clean) == [] and wav_files(settings) == []


def waiting_in_stasis(settings: Settings) -> bool:
    """A channel sits in the callguard Stasis app (entered, not yet handled)."""
    app = ari_get(settings, "applications/callguard")
    return isinstance(app, dict) and bool(app.get("channel_ids"))


def test_late_calls_are_shed_to_the_fallback(clean: Engine, settings: Settings,
                                             work: Path) -> None:
    """REL-1 / PERF-1 load shedding: while the ARI app is behind (paused here with SIGSTOP, as
    under overload), a call's StasisStart reaches it late; the app hands that call to the
    FastAGI fallback instead of screening it late, and the call is still connected and
    recorded. The next call, on time, is handled by the app again."""
    pid = int((PROJECT_ROOT / ".run" / "ari.pid").read_text())
    log = AppLog(settings)
    agi_log = AppLog(settings, "fastagi.log")
    with ThreadPoolExecutor(1) as pool:
        os.kill(pid, signal.SIGSTOP)
        try:
            call = pool.submit(inbound, work / "late", "0312345679", F1B)
            # Late for sure: released a second after the channel entered Stasis, however
            # long the two sipp processes took to start on a busy machine.
            in_stasis = wait_for(lambda: waiting_in_stasis(settings), 20)
            time.sleep(1.0)
        finally:
            os.kill(pid, signal.SIGCONT)
        late = call.result(timeout=60)
    why = (f"in Stasis seen: {in_stasis}\ncarrier:\n{late.timeline()}\n"
           f"ari.log:\n{log.text()}\nfastagi.log:\n{agi_log.text()}")
    assert late.final_status() == 200, why
    shed = [line for line in log.text().splitlines() if "handed to the FastAGI fallback" in line]
    assert len(shed) == 1, why
    assert fallback_used(agi_log)
    rows = recordings(clean)
    assert [(r["direction"], r["number"], r["status"]) for r in rows] == [
        ("in", "0312345679", "complete")]
    check_file(settings, rows[0], talk_time(late))
    # On time again: screened by the app, nothing more shed.
    on_time = inbound(work / "on-time", "0312345679", F1B)
    assert on_time.final_status() == 200
    assert log.text().count("handed to the FastAGI") == 1
