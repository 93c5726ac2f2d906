"""py-spy profile of the ARI app during one bench step (PERF-1): the step's result keeps the
top frames, so a regression shows where the app's time went.

`py-spy record --nonblocking` samples the running app (it is not paused, so the step's
latencies stay comparable) and writes collapsed stacks ("frame;frame;frame count"); the
summary counts each frame's own samples (the leaf) and its inclusive samples.

Two choices keep the profile and the step honest (PERF-4):
- `--gil`: only the thread holding the GIL is sampled, so the frames are the app's work.
  Without it, the loop's wait in libuv (C, under `Runner.run`) and idle worker threads were
  most of the samples (60 % `Runner.run` at 100 calls/s) and hid what the app spent.
- py-spy runs on the load generator's CPU (`procs.LOAD_CPUS`), like sipp: it used 2.7 s of
  CPU in a 23 s step at 100 calls/s (/proc, 4 Dec), which, scheduled on the stack's CPU,
  was taken from the very stack it measured, and on the ARI path's step alone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import procs

RATE_HZ = 200
TOP = 15


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def command(exe: str, pid: int, seconds: float, out: Path) -> list[str]:
    return [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
            "--rate", str(RATE_HZ), "--format", "raw", "--output", str(out), "--nonblocking",
            "--gil"]


def start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    exe = py_spy()
    if exe is None:
        return None
    return subprocess.Popen(command(exe, pid, seconds, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=procs.pin_for_child())


def _frame(raw: str) -> str:
    """`handle_inbound (ari_app/calls.py:140)` → `handle_inbound (ari_app/calls.py)`:
    line numbers would split one function into many rows."""
    name, _, where = raw.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})" if where else name


def top_frames(collapsed: str, top: int = TOP) -> dict[str, Any]:
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n

    def best(d: dict[str, int]) -> list[dict[str, Any]]:
        rows = sorted(d.items(), key=lambda kv: kv[1], reverse=True)[:top]
        return [{"frame": f, "samples": n, "pct": round(n / total * 100, 1)} for f, n in rows]

    return {"samples": total, "rate_hz": RATE_HZ, "own": best(own), "inclusive": best(inclusive)}


def finish(proc: subprocess.Popen[bytes] | None, out: Path, timeout_s: float = 30
           ) -> dict[str, Any] | None:
    if proc is None:
        return {"error": "py-spy not installed"}
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    if not out.exists():
        return {"error": (err or b"").decode(errors="replace")[-300:] or "no profile written"}
    return top_frames(out.read_text(errors="replace"))
