"""PERF-4: the load generator and the stack on CPUs of their own during a bench run.

On a machine with N ≥ 2 CPUs the last one carries the load generator (sipp, dumpcap; every
`procs.Child` the bench starts) and the others carry the stack under test (Asterisk, the ARI
app, the FastAGI fallback, the API, PostgreSQL, the floor app, and supervisord and Prometheus,
which `make run` starts beside them: supervisord carries every service's log lines), so
neither steals the other's cycles and the stack's CPU figures are its own. Threads are pinned
one by one (Linux affinity is per thread); threads and processes created later inherit it.
Undone at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import procs


def split(cpus: set[int]) -> tuple[set[int], set[int]] | None:
    """(stack CPUs, load CPUs), or None when there are too few CPUs to split."""
    if len(cpus) < 2:
        return None
    load = max(cpus)
    return cpus - {load}, {load}


def set_affinity(pid: int, cpus: set[int]) -> int:
    """Pin every thread of `pid`; how many were pinned (0 when it is gone)."""
    pinned = 0
    try:
        tids = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return 0
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
            pinned += 1
        except OSError:
            pass  # the thread ended meanwhile
    return pinned


def stack_pids(extra: list[int]) -> list[int]:
    pids = [procs.read_pid(f) for f in (procs.ASTERISK_PIDFILE, procs.APP_PIDFILE,
                                         procs.FASTAGI_PIDFILE, procs.API_PIDFILE)]
    return [p for p in pids if p] + procs.postgres_pids() + procs.supervision_pids() + extra


@contextmanager
def pinned(extra: list[int] | None = None) -> Iterator[str]:
    """Pin for the duration; yields the one-line description the bench prints."""
    everything = os.sched_getaffinity(0)
    plan = split(everything)
    if plan is None:
        yield f"not pinned: {len(everything)} CPU (the load generator shares it with the stack)"
        return
    stack, load = plan
    pids = stack_pids(extra or [])
    for pid in pids:
        set_affinity(pid, stack)
    procs.LOAD_CPUS = load
    try:
        yield (f"pinned: stack (Asterisk, apps, PostgreSQL, floor app, supervisord, "
               f"Prometheus) on CPU "
               f"{','.join(map(str, sorted(stack)))}; load generator (sipp, dumpcap) on CPU "
               f"{','.join(map(str, sorted(load)))}")
    finally:
        procs.LOAD_CPUS = None
        for pid in stack_pids(extra or []):
            set_affinity(pid, everything)
