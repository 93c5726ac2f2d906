"""REL-9: the services are supervised (supervisord started by `make run`): a crashed ARI app,
FastAGI fallback or API is started again without a person; a deliberate stop
(`tools/stack.sh app-stop`) stays stopped; `make status` shows each part's PID; logs rotate.
Prometheus (issue 18) and Asterisk itself are supervised the same way."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from sqlalchemy import Engine

from callguard.config import PROJECT_ROOT, Settings
from tests.e2e.conftest import AppLog
from tests.e2e.rec_helpers import F1B, inbound, recordings
from tests.e2e.test_reliability import app_connected
from tests.e2e.test_scheduling import asterisk_pid
from tests.waiting import wait_for

STACK = str(PROJECT_ROOT / "tools" / "stack.sh")
SERVICES = ("ari", "fastagi", "api")


def status_pids() -> dict[str, int]:
    """The PIDs `make status` (tools/stack.sh status) shows for the supervised services."""
    out = subprocess.run([STACK, "status"], capture_output=True, text=True, check=True).stdout
    pids = {}
    for line in out.splitlines():
        m = re.match(r"(ari|fastagi|api)\s+up\s+(\d+)", line)
        if m:
            pids[m.group(1)] = int(m.group(2))
    return pids


def pid_file(name: str) -> int | None:
    """The PID the supervised shell wrote to .run/NAME.pid as it started (it then execs)."""
    try:
        return int((PROJECT_ROOT / ".run" / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def the_app_takes_the_next_call(clean: Engine, settings: Settings, work: Path) -> None:
    """A recorded inbound call after the restart: answered, its row written, and decided by
    the ARI app, not the FastAGI fallback."""
    agi_log = AppLog(settings, "fastagi.log")
    call = inbound(work / "after", "0312345679", F1B)
    assert call.final_status() == 200
    assert [r["direction"] for r in recordings(clean)] == ["in"]
    assert "(fallback)" not in agi_log.text()


def test_killed_services_are_restarted_within_2s(clean: Engine, settings: Settings,
                                                 work: Path,
                                                 figures: dict[str, object]) -> None:
    """REL-9: SIGKILL the ARI app and the fallback together: both are running again with new
    PIDs (shown by `make status`) within 2 s, nobody intervening; the ARI app reconnects to
    Asterisk, the fallback listens again, and the next call is handled by the ARI app."""
    before = status_pids()
    assert set(before) == set(SERVICES), before
    t0 = time.monotonic()
    os.kill(before["ari"], signal.SIGKILL)
    os.kill(before["fastagi"], signal.SIGKILL)

    def both_new() -> bool:  # the supervised shell writes the PID file as it starts
        return all(pid_file(n) not in (None, before[n]) and Path(f"/proc/{pid_file(n)}").exists()
                   for n in ("ari", "fastagi"))

    deadline = t0 + 2.0
    while not both_new() and time.monotonic() < deadline:
        time.sleep(0.02)
    restarted_s = time.monotonic() - t0
    assert both_new(), f"not restarted within 2 s: before {before}, now {status_pids()}"
    after = status_pids()  # `make status` shows the new processes
    assert {n: after[n] for n in ("ari", "fastagi")} == {n: pid_file(n) for n in ("ari", "fastagi")}
    assert after["api"] == before["api"]  # the others are left alone
    # Reconnection takes the interpreter's start-up on top (imports, site load).
    assert wait_for(app_connected, 30), "the restarted ARI app did not reconnect"
    connected_s = time.monotonic() - t0
    assert wait_for(lambda: listening(settings.fastagi_port), 30), \
        "the restarted fallback does not listen"
    figures.update(restarted_s=round(restarted_s, 2), reconnected_s=round(connected_s, 2))

    the_app_takes_the_next_call(clean, settings, work)


def test_api_killed_is_restarted(stack: Settings) -> None:
    """REL-9 for the HTTP API: killed, back with a new PID and answering."""
    before = status_pids()["api"]
    os.kill(before, signal.SIGKILL)
    assert wait_for(lambda: pid_file("api") not in (None, before), 2.0)
    assert status_pids()["api"] == pid_file("api")
    assert wait_for(lambda: listening(stack.api_port), 30)


def test_deliberate_stop_stays_stopped(stack: Settings) -> None:
    """`tools/stack.sh app-stop ari` (used by the fallback tests) is a stop the supervisor
    honours: the app stays down until `app-start ari`."""
    subprocess.run([STACK, "app-stop", "ari"], check=True)
    try:
        assert wait_for(lambda: not app_connected(), 5)
        time.sleep(3)  # longer than a crash restart takes
        assert "ari" not in status_pids() and not app_connected()
    finally:
        subprocess.run([STACK, "app-start", "ari"], check=True)
    assert wait_for(app_connected, 30)
    assert "ari" in status_pids()


def running_asterisk_pid(settings: Settings) -> int | None:
    """Asterisk's PID from its PID file, None when there is none or it is not running."""
    try:
        pid = asterisk_pid(settings)
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def asterisk_booted() -> bool:
    return subprocess.run([STACK, "ast", "-rx", "core waitfullybooted"], capture_output=True,
                          check=False).returncode == 0


def test_crashed_asterisk_is_back_without_a_person(clean: Engine, settings: Settings,
                                                   work: Path,
                                                   figures: dict[str, object]) -> None:
    """REL-9 for Asterisk itself: it once aborted under a CANCEL storm (upstream
    asterisk/asterisk#1985), and then nothing answered calls until a person ran `make run`.
    SIGKILLed, it is running again, fully booted, within 2 s; the ARI app reconnects by itself
    and takes the next call (recorded, not the fallback); `make status` shows the new PID as
    supervised."""
    before = running_asterisk_pid(settings)
    assert before is not None
    t0 = time.monotonic()
    os.kill(before, signal.SIGKILL)

    def back() -> bool:
        return running_asterisk_pid(settings) not in (None, before) and asterisk_booted()

    deadline = t0 + 2.0
    while not back() and time.monotonic() < deadline:
        time.sleep(0.02)
    booted_s = time.monotonic() - t0
    now = running_asterisk_pid(settings)
    assert back(), f"Asterisk not back within 2 s (PID {before} -> {now})"
    assert wait_for(app_connected, 15), "the ARI app did not reconnect to the new Asterisk"
    figures.update(booted_s=round(booted_s, 2), reconnected_s=round(time.monotonic() - t0, 2))
    status = subprocess.run([STACK, "status"], capture_output=True, text=True, check=True).stdout
    new = running_asterisk_pid(settings)
    assert re.search(rf"^asterisk\s+up\s+{new}\s.*supervised", status, re.M), status

    the_app_takes_the_next_call(clean, settings, work)


def test_deliberate_asterisk_stop_stays_stopped(stack: Settings) -> None:
    """`tools/stack.sh asterisk-stop` (`make down`) is a stop the supervisor honours, as is
    `core stop now` at Asterisk's own CLI (exit status 0): Asterisk stays down until
    `asterisk-start`."""
    before = running_asterisk_pid(stack)
    assert before is not None
    subprocess.run([STACK, "asterisk-stop"], check=True)
    try:
        assert running_asterisk_pid(stack) is None
        time.sleep(3)  # longer than a crash restart takes
        assert running_asterisk_pid(stack) is None and not asterisk_booted()
    finally:
        subprocess.run([STACK, "asterisk-start"], check=True)
    again = running_asterisk_pid(stack)
    assert again not in (None, before)
    subprocess.run([STACK, "ast", "-rx", "core stop now"], check=False, capture_output=True)
    try:
        assert wait_for(lambda: running_asterisk_pid(stack) is None, 10)
        time.sleep(3)
        assert running_asterisk_pid(stack) is None
    finally:
        subprocess.run([STACK, "asterisk-start"], check=True)
    assert wait_for(app_connected, 15)


def test_restarting_the_services_leaves_asterisk_running(stack: Settings) -> None:
    """`tools/stack.sh apps-stop` / `apps-start` (new code for the services) must not take
    Asterisk down with supervisord now that supervisord runs it too: same PID, booted
    throughout; the app reconnects to it."""
    before = running_asterisk_pid(stack)
    assert before is not None
    subprocess.run([STACK, "apps-stop"], check=True)
    try:
        assert wait_for(lambda: not app_connected(), 5)
        assert running_asterisk_pid(stack) == before and asterisk_booted()
    finally:
        subprocess.run([STACK, "apps-start"], check=True)
    assert wait_for(app_connected, 15)
    assert running_asterisk_pid(stack) == before
    assert set(status_pids()) == set(SERVICES)


def prometheus_pid() -> int | None:
    """The PID `make status` shows for Prometheus, when it shows it up and supervised."""
    out = subprocess.run([STACK, "status"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^prometheus\s+up\s+(\d+)\s+\(supervised\)", out, re.M)
    return int(m.group(1)) if m else None


def prometheus_ready(settings: Settings) -> bool:
    try:
        with urllib.request.urlopen(
                f"http://127.0.0.1:{settings.prometheus_port}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def test_killed_prometheus_is_restarted(stack: Settings) -> None:
    """Issue 18 / REL-9: Prometheus runs under supervisord like the services: SIGKILLed, it is
    started again without a person and answers its HTTP API again; `make status` shows the
    new PID; its log rotates like theirs."""
    before = prometheus_pid()
    assert before is not None and prometheus_ready(stack)
    os.kill(before, signal.SIGKILL)
    assert wait_for(lambda: prometheus_pid() not in (None, before), 10), prometheus_pid()
    assert wait_for(lambda: prometheus_ready(stack), 60)
    assert pid_file("prometheus") == prometheus_pid()
    conf = (PROJECT_ROOT / ".run" / "supervisord.conf").read_text()
    section = conf.split("[program:prometheus]", 1)[1].split("\n[", 1)[0]
    assert re.search(r"stdout_logfile_maxbytes = [1-9]\d*MB", section), section
    assert re.search(r"stdout_logfile_backups = [1-9]", section), section


def test_service_logs_rotate(stack: Settings) -> None:
    """REL-9 logs rotate: supervisord caps each service's output and its own log, keeping
    backups. The call-path services (ARI app, fallback) write their log file themselves, no
    pipe through supervisord (PERF-1), and rotate it at the same size (unit-tested in
    tests/unit/test_logs.py): the running process holds `services/<service>.log` open, which
    `<service>.log` links to. SEC-4: the log directory stays root's and closed to the services
    (a service's link there could redirect what root writes); theirs is a directory of their
    own."""
    conf = (PROJECT_ROOT / ".run" / "supervisord.conf").read_text()
    for name in SERVICES:
        section = conf.split(f"[program:{name}]", 1)[1].split("\n[", 1)[0]
        assert re.search(r"stdout_logfile_maxbytes = [1-9]\d*MB", section), section
        assert re.search(r"stdout_logfile_backups = [1-9]", section), section
    assert re.search(r"\blogfile_maxbytes = [1-9]\d*MB", conf)
    top = os.stat(stack.log_dir)
    assert top.st_uid == 0 and top.st_mode & 0o022 == 0, oct(top.st_mode)
    own = stack.log_dir / "services"
    assert own.stat().st_uid != 0 and own.stat().st_mode & 0o007 == 0
    for name in ("ari", "fastagi"):
        log = own / f"{name}.log"
        section = conf.split(f"[program:{name}]", 1)[1].split("\n[", 1)[0]
        assert f'CALLGUARD_LOG_FILE="{log}"' in section, section
        assert (stack.log_dir / f"{name}.log").resolve() == log.resolve()
        pid = pid_file(name)
        assert pid is not None
        held = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        assert str(log) in held, (name, held)
        assert log.stat().st_size > 0


def locked_versions(lock: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", lock.read_text(), re.M)
    return {name.lower().replace("_", "-"): version for name, version in pins}


def test_services_run_pinned_without_dev_tools(stack: Settings) -> None:
    """SEC-4: the supervised services run from the service virtualenv, which holds exactly
    the hash-pinned runtime lock (requirements/service.lock) and no dev tool (pytest,
    selenium, schemathesis, mypy)."""
    svc = PROJECT_ROOT / ".build" / "svc-venv"
    for name in SERVICES:
        pid = pid_file(name)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        assert any(part.startswith(str(svc / "bin")) for part in cmdline), (name, cmdline)
    out = subprocess.run([str(svc / "bin" / "python"), "-m", "pip", "list", "--format",
                          "freeze", "--exclude-editable", "--disable-pip-version-check"],
                         capture_output=True, text=True, check=True).stdout
    installed = {n.lower().replace("_", "-"): v for n, v in
                 (line.split("==") for line in out.splitlines() if "==" in line)}
    installed = {n: v for n, v in installed.items() if n not in ("pip", "setuptools")}
    assert installed == locked_versions(PROJECT_ROOT / "requirements" / "service.lock")
    assert not {"pytest", "selenium", "schemathesis", "mypy", "hypothesis"} & set(installed)
