"""The call path's processes in Asterisk's real-time scheduling class (PERF-1, PERF-2).

Asterisk runs with `highpriority` (asterisk_conf/asterisk.conf): SCHED_RR at priority 10 for all
its threads, the option Asterisk has for timing-critical media. Measured on one core without
it: at 150 concurrent recorded calls (83 % of the core) some bridge threads stalled for up to
0.67 s (gaps in the RTP Asterisk forwards to the carrier while the caller's RTP came in
regularly), and MixMonitor's audiohook drops the audio of both directions once they drift more
than 100 ms apart, so recordings came out short. With it: none short at 150.

A real-time Asterisk in turn takes a busy core from everything at normal priority; the
call-deciding processes then waited behind it (43 of 200 calls failed in one run). So the ARI
app and the FastAGI fallback ask for the same class and priority. PostgreSQL stays at normal
priority: no call waits for it (decisions from memory, REL-5; writes batched, PERF-1).
"""

from __future__ import annotations

import os

ASTERISK_PRIORITY = 10  # what `highpriority` sets (main/asterisk.c, ast_set_priority)


def share_asterisk_priority(priority: int = ASTERISK_PRIORITY) -> str | None:
    """Put the calling thread (call this before any other thread starts: threads inherit it)
    in SCHED_RR at `priority`. None when done; else why not, and the process runs on at
    normal priority (0 disables; without CAP_SYS_NICE or RLIMIT_RTPRIO the kernel refuses)."""
    if priority <= 0:
        return "disabled (CALLGUARD_RT_PRIORITY=0)"
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except OSError as exc:  # EPERM: no privilege; EINVAL: out of range
        return f"{exc.strerror or exc}"
    return None
