"""PERF-4: every screening step and recording level keeps Asterisk's resident memory, so the
memory a call rate needs is read from the same run as its CPU (pjsip holds each response's
64 KB buffer for Timer J, 32 s: Asterisk's memory follows the rate of the last half minute)."""

from __future__ import annotations

import os
import subprocess

from bench import procs, run


def test_rss_of_a_live_process_in_mb_and_none_when_gone() -> None:
    own = procs.rss_mb(os.getpid())
    assert own is not None and own > 0
    child = subprocess.Popen(["true"])
    child.wait()
    assert procs.rss_mb(child.pid) is None  # reaped: no /proc entry
    assert procs.rss_mb(None) is None  # no Asterisk PID file


def test_the_tables_show_asterisk_memory_per_step_and_level() -> None:
    step = {"rate": 100.0, "planned": 800, "failed": 0, "cps": 100.0,
            "rejected_200_ms": {"p50": 1.0, "p99": 2.0},
            "rejected_rtp_ms": {"p50": 30.0, "p99": 40.0},
            "connected_200_ms": {"p50": 3.0, "p99": 5.0},
            "cpu_ms_per_call": {"asterisk": 3.4, "postgres": 0.0, "machine": 3.5},
            "cpu_pct": {"machine": 40.0}, "asterisk_rss_mb": 411}
    old = {**step, "rate": 50.0}
    del old["asterisk_rss_mb"]  # a result from before the field: an empty cell
    screening = run._screening_table({"steps": {"baseline": [old, step]}})
    header, rule, *rows = screening.splitlines()
    assert header.split()[-1] == "astMB" and set(rule) == {"-"}
    assert rows[1].split()[-1] == "411"
    assert rows[0].split()[-1] == "20"  # busy%, then no steal and no memory figure
    level = {"concurrent": 300, "failed": 0, "channels_at_plateau": 600,
             "cpu_pct": {"asterisk": 90.0, "machine": 95.0}, "write_bytes_s": 4_800_000,
             "write_bytes_s_per_call": 16_000, "complete": 300, "lost_audio": 0,
             "duration_s": {"min": 11.0}, "call_audio_s": 11, "asterisk_rss_mb": 512}
    recording = run._recording_table({"levels": [level]})
    header, _rule, row = recording.splitlines()
    assert header.split()[-1] == "astMB" and row.split()[-1] == "512"
