"""REL-9 upkeep of a running stack by tools/stack.sh: `make run` restarts the services only when
the code they started on changed (upgrades), and Asterisk's logs rotate by size while it runs,
with Asterisk writing on into the new file and `callguard status` still counting since its
start."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from callguard.code_fingerprint import fingerprint
from callguard.config import PROJECT_ROOT, Settings
from tests.e2e.test_failopen_logged import counts
from tests.e2e.test_reliability import app_connected
from tests.e2e.test_supervision import SERVICES, status_pids
from tests.waiting import wait_for

STACK = str(PROJECT_ROOT / "tools" / "stack.sh")
RESTARTED = "services: code changed since they started"


def apps_start() -> str:
    """`tools/stack.sh apps-start`, the services' step of `make run`: what it printed."""
    return subprocess.run([STACK, "apps-start"], capture_output=True, text=True,
                          check=True).stdout


def test_services_restart_only_when_their_code_changed(stack: Settings) -> None:
    recorded = PROJECT_ROOT / ".run" / "services.code"
    assert recorded.read_text().strip() == fingerprint(PROJECT_ROOT)
    before = status_pids()
    assert set(before) == set(SERVICES)
    # the same code: nothing restarted (tests and CI run `make run` again and again)
    assert RESTARTED not in apps_start()
    assert status_pids() == before
    # as after `git pull`: the services started on other code
    recorded.write_text("0" * 64 + "\n")
    out = apps_start()
    assert out.count(RESTARTED) == 1, out
    after = status_pids()
    assert set(after) == set(SERVICES)
    assert all(after[s] != before[s] for s in SERVICES), (before, after)
    assert app_connected()
    assert recorded.read_text().strip() == fingerprint(PROJECT_ROOT)
    assert RESTARTED not in apps_start()
    assert status_pids() == after


def test_asterisk_logs_rotate_by_size_and_asterisk_writes_on(stack: Settings) -> None:
    logs = Path(stack.asterisk_root) / "var" / "log" / "asterisk"
    conf = (PROJECT_ROOT / ".run" / "supervisord.conf").read_text()
    assert "[program:asterisk-logs]" in conf
    supervised = subprocess.run([STACK, "supervisorctl", "status", "asterisk-logs"],
                                capture_output=True, text=True, check=False).stdout
    assert "RUNNING" in supervised, supervised
    messages = logs / "messages.log"
    old = messages.read_bytes()
    owner = messages.stat().st_uid
    counted = counts()
    run = subprocess.run([STACK, "asterisk-logs-rotate"], capture_output=True, text=True,
                         check=True, env={**os.environ, "CALLGUARD_ASTERISK_LOG_MAX": "0"})
    assert "messages.log" in run.stdout, run.stdout + run.stderr
    assert (logs / "messages.log.1").read_bytes().startswith(old)
    first = messages.read_text(errors="replace").splitlines()[0]
    assert "tools/stack.sh: log rotated" in first, first
    assert messages.stat().st_uid == owner and messages.stat().st_mode & 0o777 == 0o640
    # Asterisk reopened its files (`logger reload`): its header goes into the new one
    assert wait_for(lambda: "Asterisk 22" in messages.read_text(errors="replace"), 5)
    assert counts() == counted  # still since Asterisk started, across the rotation
