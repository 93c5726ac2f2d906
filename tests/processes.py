"""Ending a child process the tests started (sipp, a softphone, a private PostgreSQL)."""

from __future__ import annotations

import subprocess


def end(proc: subprocess.Popen[str] | subprocess.Popen[bytes], grace_s: float = 5) -> None:
    """SIGTERM, and SIGKILL if it has not exited within `grace_s`; reaped either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    wait_or_kill(proc, grace_s)


def wait_or_kill(proc: subprocess.Popen[str] | subprocess.Popen[bytes], timeout_s: float) -> None:
    """Until it exits by itself; SIGKILLed (and reaped) once `timeout_s` has passed."""
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
