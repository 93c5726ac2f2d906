"""PERF-1/PERF-4: the bench's py-spy profile counts the app's work and runs beside the load
generator, not on the stack it measures."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bench import procs, profile


def test_profile_samples_only_the_thread_holding_the_gil() -> None:
    cmd = profile.command("py-spy", 1234, 9.6, Path("/tmp/x.txt"))
    assert cmd[:4] == ["py-spy", "record", "--pid", "1234"]
    assert "--gil" in cmd and "--nonblocking" in cmd
    assert cmd[cmd.index("--duration") + 1] == "9"


def test_top_frames_counts_leaves_and_inclusive_samples() -> None:
    collapsed = ("thread;main (a.py:1);decide (b.py:10) 6\n"
                 "thread;main (a.py:2);decide (b.py:12);hmac (c.py:3) 3\n"
                 "thread;main (a.py:1) 1\n"
                 "garbage line\n")
    top = profile.top_frames(collapsed)
    assert top["samples"] == 10
    own = {r["frame"]: r["samples"] for r in top["own"]}
    # line numbers do not split a function into rows
    assert own == {"decide (b.py)": 6, "hmac (c.py)": 3, "main (a.py)": 1}
    inclusive = {r["frame"]: r["pct"] for r in top["inclusive"]}
    assert inclusive["main (a.py)"] == 100.0 and inclusive["decide (b.py)"] == 90.0


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin apart")
def test_py_spy_runs_on_the_load_generators_cpu(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in for py-spy that reports the CPUs it was allowed to run on.
    fake = tmp_path / "py-spy"
    seen = tmp_path / "cpus"
    fake.write_text(f"#!/bin/sh\ngrep Cpus_allowed_list /proc/self/status > {seen}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(profile, "py_spy", lambda: str(fake))
    load = max(os.sched_getaffinity(0))
    monkeypatch.setattr(procs, "LOAD_CPUS", {load})
    proc = profile.start(os.getpid(), 1, tmp_path / "out.txt")
    assert proc is not None
    # no profile written: finish says so (and reaps the stand-in)
    assert profile.finish(proc, tmp_path / "out.txt", timeout_s=10) == {
        "error": "no profile written"}
    assert proc.returncode == 0
    assert seen.read_text().split(":")[1].strip() == str(load)
