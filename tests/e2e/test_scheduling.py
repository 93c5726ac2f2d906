"""PERF-1/PERF-2: the call path runs in Asterisk's real-time class (callguard/realtime.py).

Asterisk starts with `highpriority` (every thread SCHED_RR 10, its canary watchdog beside it);
the ARI app and the FastAGI fallback take the same class and priority as they start, so every
thread they run has it; the API and PostgreSQL, off the call path, stay at normal priority."""

from __future__ import annotations

import os
from pathlib import Path

from callguard.config import PROJECT_ROOT, Settings
from callguard.realtime import ASTERISK_PRIORITY

RUN = PROJECT_ROOT / ".run"


def policies(pid: int) -> dict[int, tuple[int, int]]:
    """Every thread of `pid`: (scheduling policy, real-time priority)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        tid = int(task.name)
        try:
            out[tid] = (os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority)
        except ProcessLookupError:
            continue  # the thread ended meanwhile
    return out


def asterisk_pid(settings: Settings) -> int:
    return int((Path(settings.asterisk_root) / "run" / "asterisk" / "asterisk.pid")
               .read_text().split()[0])


def ppid_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def test_asterisk_runs_real_time_with_its_canary(stack: Settings) -> None:
    pid = asterisk_pid(stack)
    threads = policies(pid)
    assert len(threads) > 10
    assert set(threads.values()) == {(os.SCHED_RR, ASTERISK_PRIORITY)}, threads
    # The watchdog that takes the priority back if normal processes starve (asterisk.c).
    canaries = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                and (p / "comm").exists() and (p / "comm").read_text().strip() == "astcanary"
                and ppid_of(int(p.name)) == pid]
    assert len(canaries) == 1, canaries
    assert os.sched_getscheduler(canaries[0]) == os.SCHED_OTHER


def test_call_deciding_services_share_it_and_the_rest_do_not(stack: Settings) -> None:
    for name in ("ari", "fastagi"):
        threads = policies(int((RUN / f"{name}.pid").read_text()))
        assert len(threads) > 1, name  # its worker threads inherited it too
        assert set(threads.values()) == {(os.SCHED_RR, ASTERISK_PRIORITY)}, (name, threads)
    api = policies(int((RUN / "api.pid").read_text()))
    assert set(api.values()) == {(os.SCHED_OTHER, 0)}, api
    postmaster = int((RUN / "pg" / "data" / "postmaster.pid").read_text().split()[0])
    assert os.sched_getscheduler(postmaster) == os.SCHED_OTHER
