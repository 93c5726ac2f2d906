"""Child processes the bench starts (sipp, dumpcap), stopped by their own PID only, and the CPU
time of the processes it measures (from /proc/<pid>/stat, all threads included)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from callguard.config import PROJECT_ROOT

CLK_TCK = os.sysconf("SC_CLK_TCK")
ASTERISK_PIDFILE = PROJECT_ROOT / ".build" / "asterisk-root" / "run" / "asterisk" / "asterisk.pid"
APP_PIDFILE = PROJECT_ROOT / ".run" / "ari.pid"
FASTAGI_PIDFILE = PROJECT_ROOT / ".run" / "fastagi.pid"
API_PIDFILE = PROJECT_ROOT / ".run" / "api.pid"
PG_PIDFILE = PROJECT_ROOT / ".run" / "pg" / "data" / "postmaster.pid"
# What `make run` starts beside the services: supervisord carries their log lines (stdout →
# its pipe → .run/log/*.log), Prometheus scrapes them every second.
SUPERVISION_PIDFILES = (PROJECT_ROOT / ".run" / "supervisord.pid",
                        PROJECT_ROOT / ".run" / "prometheus.pid")


# PERF-4: the CPUs the load generator (sipp, dumpcap) runs on, apart from the stack's; set by
# bench.pinning for the whole run (None: no pinning, e.g. a one-core machine).
LOAD_CPUS: set[int] | None = None


def pin_for_child(cpus: set[int] | None = None) -> Callable[[], None] | None:
    """A child's `preexec_fn`: pinned to `cpus`, by default the load generator's CPUs
    (LOAD_CPUS); None when there is nothing to pin to."""
    chosen = cpus if cpus is not None else LOAD_CPUS
    if not chosen:
        return None

    def pin() -> None:  # runs in the child between fork and exec
        os.sched_setaffinity(0, chosen)
    return pin


class Child:
    """A process we started; `stop()` ends exactly it (SIGTERM, then SIGKILL after a grace).
    `cpus` pins it (default: the load generator's CPUs, LOAD_CPUS)."""

    def __init__(self, cmd: list[str], cwd: Path, log: Path | None = None,
                 cpus: set[int] | None = None) -> None:
        self.cmd = cmd
        out = log.open("w") if log is not None else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=pin_for_child(cpus))
        finally:
            if log is not None and not isinstance(out, int):
                out.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout_s: float) -> int | None:
        """The exit status, or None if it was still running after `timeout_s`."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = 5.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            if self.wait(grace_s) is None:
                self.proc.kill()
                self.proc.wait(grace_s)
        return int(self.proc.returncode)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (0.0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # comm (field 2) may hold spaces: split after its closing parenthesis.
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int | None) -> int | None:
    """Resident memory of a live process in MB (None if it is gone). Asterisk's follows the
    call rate of the last 32 s: pjsip keeps each response's 64 KB buffer for Timer J."""
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024)
    return None


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def supervision_pids() -> list[int]:
    return [p for p in (read_pid(f) for f in SUPERVISION_PIDFILES) if p]


def postgres_pids() -> list[int]:
    """The postmaster and its children (backends, checkpointer, walwriter, ...)."""
    master = read_pid(PG_PIDFILE)
    if master is None:
        return []
    kids = [int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and _ppid(int(p.name)) == master]
    return [master, *kids]


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine, all cores, from one read of /proc/stat:
    busy is everything but idle/iowait; stolen is `steal`, the time the hypervisor gave other
    guests while this machine's CPUs wanted to run (PERF-4: a step the host starved says so)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK, steal / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores; /proc/stat minus idle/iowait)."""
    return machine_cpu_seconds()[0]


# PERF-4: a step the host took this much of the machine from is not the stack's figure
# (named in the targets); from RETRY on it is run once more. This VM loses ~5 % even idle.
STEAL_WARN_PCT = 5
STEAL_RETRY_PCT = 10


def steal_pct(cpu_pct: dict[str, float]) -> float | None:
    """The hypervisor's share of the whole machine during a step (cpu_pct: % of one core)."""
    pct = cpu_pct.get("steal")
    return None if pct is None else pct / (os.cpu_count() or 1)


@dataclass(frozen=True)
class CpuSample:
    at: float
    asterisk: float
    app: float
    postgres: dict[int, float]
    machine: float
    fastagi: float = 0.0
    floor: float = 0.0  # the bench's minimal Stasis app (bench/floor_app.py), when running
    steal: float = 0.0  # taken by the hypervisor (machine_cpu_seconds)
    supervision: float = 0.0  # supervisord and Prometheus (SUPERVISION_PIDFILES)

    def minus(self, earlier: CpuSample) -> dict[str, float]:
        """CPU seconds used between two samples; a backend born in between counts from 0.
        `machine_s` is everything (sipp, the kernel's loopback work, other users) too."""
        pg = sum(v - earlier.postgres.get(pid, 0.0) for pid, v in self.postgres.items())
        return {"wall_s": self.at - earlier.at, "asterisk_s": self.asterisk - earlier.asterisk,
                "app_s": self.app - earlier.app, "postgres_s": pg,
                "fastagi_s": self.fastagi - earlier.fastagi, "floor_s": self.floor - earlier.floor,
                "machine_s": self.machine - earlier.machine,
                "steal_s": self.steal - earlier.steal,
                "supervision_s": self.supervision - earlier.supervision}


# What `CpuMeter.settle` adds up, and when it calls the stack quiet: the idle stack uses ~3 %
# of its core (Prometheus, scrapes, supervisord) and up to ~7 % for half a minute after a
# step (measured 2-7 % once the step's channels were gone; PJSIP's transaction timers).
STACK_PARTS = ("asterisk_s", "app_s", "postgres_s", "fastagi_s", "floor_s", "supervision_s")
SETTLE_QUIET_PCT = 15.0
SETTLE_BOUND_S = 60.0
SETTLE_NOTE_S = 2.0  # a step that waited longer than this is named in the targets


class CpuMeter:
    """Samples Asterisk, the ARI app, the FastAGI fallback, PostgreSQL, the floor app,
    supervisord and Prometheus; PIDs are re-read (the app may restart)."""

    floor_pid: int | None = None

    def pids(self) -> tuple[int | None, int | None]:
        return read_pid(ASTERISK_PIDFILE), read_pid(APP_PIDFILE)

    def settle(self, quiet_pct: float = SETTLE_QUIET_PCT, bound_s: float = SETTLE_BOUND_S,
               window_s: float = 1.0) -> dict[str, float]:
        """Wait (bounded) until the stack is quiet: its processes together under `quiet_pct`
        of a core over `window_s`. A step that overloaded the stack can leave work behind
        after its channels are gone (a backlog of events, writes, SIP retransmissions); the
        next step would then measure that too (PERF-4). At least one window, so it is also the
        pause between steps. How long it took and the last load."""
        start = time.monotonic()
        before = self.sample()
        while True:
            time.sleep(window_s)
            now = self.sample()
            used = now.minus(before)
            stack = sum(used[k] for k in STACK_PARTS) / used["wall_s"] * 100 \
                if used["wall_s"] > 0 else 0.0
            waited = time.monotonic() - start
            if stack < quiet_pct or waited >= bound_s:
                return {"settle_s": round(waited, 1), "settle_stack_pct": round(stack, 1)}
            before = now

    def sample(self) -> CpuSample:
        ast, app = self.pids()
        busy, stolen = machine_cpu_seconds()
        return CpuSample(
            time.time(),
            cpu_seconds(ast) if ast else 0.0,
            cpu_seconds(app) if app else 0.0,
            {pid: cpu_seconds(pid) for pid in postgres_pids()},
            busy,
            fastagi=cpu_seconds(f) if (f := read_pid(FASTAGI_PIDFILE)) else 0.0,
            floor=cpu_seconds(self.floor_pid) if self.floor_pid else 0.0,
            steal=stolen,
            supervision=sum(cpu_seconds(p) for p in supervision_pids()),
        )
