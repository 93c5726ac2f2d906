"""Measure what recording costs (PERF-2 figures for issue 4): Asterisk's and the ARI app's CPU
time per recorded call against the same call unrecorded, and disk bytes per second per
recording.

Both runs are identical outbound calls f1-a → carrier with RTP both ways; the only difference
is the 0077-27 prefix (REC-OUT-1: MixMonitor + metadata row) versus none (REC-OUT-3). CPU is
read from /proc/<pid>/stat (utime + stime) before and after each run.

    flock is taken by the script itself:
    .venv/bin/python tools/measure_recording_cost.py [--calls 30] [--seconds 5] [--rate 2]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from callguard.config import PROJECT_ROOT, load_settings
from callguard.db.session import make_sync_engine
from tests.e2e.sipp import CARRIER_OUT, Load, Phone, UacSpec, audio

F1A = "127.0.1.1"
DESTINATION = "0612345678"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


@dataclass
class Run:
    label: str
    calls: int
    answered: int
    failed: int
    wall_s: float
    asterisk_cpu_s: float
    app_cpu_s: float

    def per_call_ms(self, cpu: float) -> float:
        return 1000 * cpu / max(self.answered, 1)


def run(label: str, dialed: str, calls: int, seconds: float, rate: float, work: Path,
        pids: dict[str, int]) -> Run:
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    t0 = time.monotonic()
    with Phone(CARRIER_OUT, work / f"{label}-carrier", audio_s=seconds + 1, calls=calls,
               timeout_s=int(calls / rate + seconds + 60)):
        load = Load(UacSpec(to=dialed, steps=[audio(seconds)]), work / label, rate, calls,
                    local_ip=F1A, limit=calls, timeout_s=int(calls / rate + seconds + 40))
        result = load.wait()
    wall = time.monotonic() - t0
    time.sleep(2)  # recordings are finished just after their calls
    after = {k: cpu_seconds(p) for k, p in pids.items()}
    return Run(label, result.attempted, result.answered, result.failed, wall,
               after["asterisk"] - before["asterisk"], after["app"] - before["app"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=5.0, help="conversation per call")
    parser.add_argument("--rate", type=float, default=2.0, help="new calls per second")
    parser.add_argument("--work", type=Path, default=None,
                        help="where sipp's logs go (default: a fresh temporary directory)")
    args = parser.parse_args()
    work: Path = args.work or Path(tempfile.mkdtemp(prefix="callguard-rec-cost-"))
    settings = load_settings()
    engine = make_sync_engine(settings)
    # The lock every e2e run and service restart takes (tests/e2e/conftest.py).
    lock_path = Path(os.environ.get("CALLGUARD_E2E_LOCK", "/tmp/callguard-e2e.lock"))  # noqa: S108
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the stack is shared (see docs/architecture.md)
        ast_pid = Path(settings.asterisk_root, "run/asterisk/asterisk.pid")
        pids = {"asterisk": int(ast_pid.read_text()),
                "app": int((PROJECT_ROOT / ".run" / "ari.pid").read_text())}
        started = datetime.now(UTC)
        # Idle reference over the same wall time as one run.
        idle_before = {k: cpu_seconds(p) for k, p in pids.items()}
        idle_wall = args.calls / args.rate + args.seconds + 2
        time.sleep(idle_wall)
        idle = {k: cpu_seconds(p) - idle_before[k] for k, p in pids.items()}
        plain = run("unrecorded", DESTINATION, args.calls, args.seconds, args.rate,
                    work, pids)
        recorded = run("recorded", "007727" + DESTINATION, args.calls, args.seconds,
                       args.rate, work, pids)
        with engine.begin() as c:
            rows = c.execute(text(
                "SELECT r.id, r.path, r.bytes, r.duration_s, r.status FROM recordings r"
                " JOIN contracts c ON c.id = r.contract_id WHERE c.code = 'F1' AND"
                " r.direction = 'out' AND r.remote = :d AND r.started_at >= :t"),
                {"d": DESTINATION, "t": started}).all()
            # The measurement's own rows and files go again.
            c.execute(text("DELETE FROM recordings WHERE id = ANY(:ids)"),
                      {"ids": [r.id for r in rows]})
        for r in rows:
            (settings.recordings_dir / r.path).unlink(missing_ok=True)
    done = [r for r in rows if r.status == "complete" and r.duration_s]
    total_bytes = sum(int(r.bytes) for r in done)
    total_s = sum(float(r.duration_s) for r in done)
    report = {
        "calls_per_run": args.calls, "conversation_s": args.seconds, "rate_per_s": args.rate,
        "idle_cpu_s_over_one_run": {k: round(v, 3) for k, v in idle.items()},
        "runs": [{
            "label": r.label, "answered": r.answered, "failed": r.failed,
            "wall_s": round(r.wall_s, 1),
            "asterisk_cpu_s": round(r.asterisk_cpu_s, 3),
            "asterisk_cpu_ms_per_call": round(r.per_call_ms(r.asterisk_cpu_s), 1),
            "app_cpu_s": round(r.app_cpu_s, 3),
            "app_cpu_ms_per_call": round(r.per_call_ms(r.app_cpu_s), 1),
        } for r in (plain, recorded)],
        "recording_extra_asterisk_cpu_ms_per_call": round(
            recorded.per_call_ms(recorded.asterisk_cpu_s)
            - plain.per_call_ms(plain.asterisk_cpu_s), 1),
        "recording_extra_app_cpu_ms_per_call": round(
            recorded.per_call_ms(recorded.app_cpu_s) - plain.per_call_ms(plain.app_cpu_s), 1),
        "recordings": {"complete": len(done), "of_rows": len(rows)},
        "bytes_per_second_per_recording": round(total_bytes / total_s) if total_s else None,
        "audio_bytes_per_second": round((total_bytes - 44 * len(done)) / total_s)
        if total_s else None,
    }
    print(json.dumps(report, indent=2))
    return 0 if plain.failed == 0 and recorded.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
