"""`make bench NODES=2` (`python -m bench.cluster --nodes 2`): PERF-1 through Kamailio (issue 12).

The same screened inbound calls as PERF-1's ARI path (carrier 127.0.0.2 → 0312345678, callers
alternating between the 30 listed numbers, rejected, and 30 others, connected to f1-a and
recorded), at rising rates, in three set-ups one after the other:
  direct      `make run`'s single node: the carrier sends to Asterisk on 127.0.0.1:5060;
  1 node      Kamailio on 127.0.0.1:5060 in front of one node (tools/cluster.sh up 1);
  N nodes     Kamailio in front of N nodes (tools/cluster.sh up N).
For each: calls placed, failed, completed calls/s, INVITE → 200 p50/p99 at the carrier, and CPU
ms per call of Kamailio, the Asterisks, the apps (ARI + FastAGI), PostgreSQL and the whole
machine, so the proxy's own cost is visible. The single node is put back at the end
(tools/cluster.sh restore-single) and everything the calls changed is restored (bench.state).

On one machine every node shares the same cores: the N-node figure is bounded by the cores, not
by the nodes; the output says so. `--short` runs two small steps (development on a shared box).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import sipp
from bench.procs import (
    APP_PIDFILE,
    ASTERISK_PIDFILE,
    FASTAGI_PIDFILE,
    cpu_seconds,
    machine_busy_seconds,
    postgres_pids,
    read_pid,
)
from bench.report import (
    KEPT_UP_SHARE,
    fmt,
    kept_up,
    queue_grew,
    setup_by_quarter,
    summary_ms,
    table,
)
from bench.screening import CARRIER_MEDIA_PORT, CARRIER_SIP_PORT, PHONE_IP, PHONE_MEDIA_PORT
from bench.state import (
    LISTED,
    RESULTS,
    SCREENED_NUMBER,
    UNLISTED,
    BenchState,
    active_channels,
    pending_restore,
    stack_lock,
)
from callguard.config import PROJECT_ROOT, Settings, load_settings
from callguard.db.session import make_sync_engine
from tests.e2e.rtp_pcap import tone_alaw

CLUSTER_SH = PROJECT_ROOT / "tools" / "cluster.sh"
RUN = PROJECT_ROOT / ".run"
CL = RUN / "cluster"
AST_ROOT = PROJECT_ROOT / ".build" / "asterisk-root"
SUPERVISORCTL = PROJECT_ROOT / ".build" / "svc-venv" / "bin" / "supervisorctl"
CARRIER_IP = "127.0.0.2"
CORES = os.cpu_count() or 1
PARTS = ("kamailio", "asterisk", "app", "postgres")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # so every `finally` puts the stack back


def _children(parent: int) -> list[int]:
    kids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if int((p / "stat").read_text().rpartition(")")[2].split()[1]) == parent:
                kids.append(int(p.name))
        except (OSError, ValueError, IndexError):
            continue
    return kids


def _supervised(name: str) -> int | None:
    done = subprocess.run([str(SUPERVISORCTL), "-c", str(CL / "supervisord.conf"), "pid", name],
                          capture_output=True, text=True, check=False, timeout=20)
    out = done.stdout.strip()
    return int(out) if out.isdigit() and out != "0" else None


@dataclass(frozen=True)
class Setup:
    name: str
    nodes: int  # 0: the single node reached directly

    def pids(self) -> dict[str, list[int]]:
        """The processes of each part, read again at every sample (they may restart)."""
        pg = postgres_pids()
        if self.nodes == 0:
            ids = [read_pid(APP_PIDFILE), read_pid(FASTAGI_PIDFILE)]
            return {"kamailio": [], "asterisk": [p for p in [read_pid(ASTERISK_PIDFILE)] if p],
                    "app": [p for p in ids if p], "postgres": pg}
        kam = read_pid(CL / "kamailio.pid")
        ast = [read_pid(AST_ROOT / "run" / f"asterisk-n{n}" / "asterisk.pid")
               for n in range(1, self.nodes + 1)]
        apps = [_supervised(f"{s}-n{n}") for n in range(1, self.nodes + 1)
                for s in ("ari", "fastagi")]
        return {"kamailio": [kam, *_children(kam)] if kam else [],
                "asterisk": [p for p in ast if p], "app": [p for p in apps if p],
                "postgres": pg}


def cpu_sample(pids: dict[str, list[int]]) -> dict[str, Any]:
    return {"at": time.time(), "machine": machine_busy_seconds(),
            "parts": {part: {pid: cpu_seconds(pid) for pid in ps} for part, ps in pids.items()}}


def cpu_used(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """CPU seconds per part between two samples (a process born in between counts from 0)."""
    used = {part: sum(v - before["parts"].get(part, {}).get(pid, 0.0)
                      for pid, v in after["parts"][part].items())
            for part in after["parts"]}
    used["stack"] = sum(used[p] for p in PARTS)
    used["machine"] = after["machine"] - before["machine"]
    used["wall"] = after["at"] - before["at"]
    return used


def _node_settings(setup: Setup, settings: Settings) -> list[Settings]:
    if setup.nodes == 0:
        return [settings]
    return [load_settings(RUN / "nodes" / f"n{n}" / "callguard.env")
            for n in range(1, setup.nodes + 1)]


def step(setup: Setup, settings: Settings, work: Path, callers: Path, audio: Path,
         rate: float, calls: int, hold_ms: int) -> dict[str, Any]:
    duration = calls / rate
    phone = sipp.start_uas(work, ip=PHONE_IP, media_port=PHONE_MEDIA_PORT, calls=calls,
                           timeout_s=int(duration + 90))
    try:
        time.sleep(0.3)
        pids = setup.pids()
        before = cpu_sample(pids)
        uac = sipp.start_uac(work, xml=sipp.uac_xml(hold_ms, audio), ip=CARRIER_IP,
                             port=CARRIER_SIP_PORT, media_port=CARRIER_MEDIA_PORT,
                             callers=callers, service=SCREENED_NUMBER, rate=rate, calls=calls,
                             limit=5000, timeout_s=int(duration + 40))
        if uac.wait(duration + 55) is None:
            uac.stop()
        used = cpu_used(before, cpu_sample(pids))
        deadline = time.monotonic() + 20  # let the calls' after-work end before the next step
        while time.monotonic() < deadline and any(
                active_channels(s) > 0 for s in _node_settings(setup, settings)):
            time.sleep(0.2)
    finally:
        phone.stop()
    timings = sipp.parse_calls(work / "messages.log")
    done_at = sorted(c.final_at for c in timings.values() if c.completed and c.final_at)
    completed = sum(1 for c in timings.values() if c.completed)
    span = done_at[-1] - done_at[0] if len(done_at) > 1 else 0.0
    placed = [(c.invite_at, c.setup_s) for c in timings.values() if c.setup_s is not None]
    setup_s = [setup for _at, setup in placed]
    return {
        "setup": setup.name, "rate": rate, "planned": calls, "completed": completed,
        "failed": calls - completed,
        "cps": round((len(done_at) - 1) / span, 1) if span > 0 else None,
        "setup_ms": summary_ms(setup_s),
        "setup_quarters": setup_by_quarter(placed),
        "cpu_ms_per_call": {k: round(v / calls * 1000, 3) for k, v in used.items()
                            if k != "wall"},
        "busy_pct": round(used["machine"] / used["wall"] * 100 / CORES) if used["wall"] else None,
    }


def sustained(s: dict[str, Any]) -> bool:
    """As in the screening part: no failed call, the rate kept up, no queue grew."""
    return bool(s["failed"] == 0 and kept_up(s["cps"], s["rate"]) and not queue_grew(s))


def run_setup(setup: Setup, settings: Settings, work: Path, callers: Path, audio: Path,
              args: argparse.Namespace) -> list[dict[str, Any]]:
    steps = []
    for rate in (float(r) for r in args.rates.split(",")):
        calls = max(args.min_calls, round(rate * args.seconds_per_step))
        calls += calls % 2  # even: exactly half listed
        print(f"bench: {setup.name:10} {rate:5g} calls/s ({calls} calls)", flush=True)
        s = step(setup, settings, work / f"{setup.name.replace(' ', '-')}-{rate:g}", callers,
                 audio, rate, calls, args.hold_ms)
        steps.append(s)
        if not sustained(s):
            break
        time.sleep(1.0)
    return steps


def cluster_sh(*args: str) -> None:
    done = subprocess.run([str(CLUSTER_SH), *args], capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tools/cluster.sh {' '.join(args)}: {done.stdout}{done.stderr}")


def wait_cluster_active(nodes: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run([str(CLUSTER_SH), "kamcmd", "dispatcher.list"],
                             capture_output=True, text=True, check=False).stdout
        if out.count("FLAGS: A") == nodes:
            return
        time.sleep(0.2)
    raise RuntimeError(f"not every node active in Kamailio's dispatcher after {timeout_s:.0f} s")


def report(steps: list[dict[str, Any]], nodes: int) -> str:
    rows = [[s["setup"], f"{s['rate']:g}", s["planned"], s["failed"], s["cps"],
             s["setup_ms"]["p50"], s["setup_ms"]["p99"],
             *(s["cpu_ms_per_call"].get(p) for p in (*PARTS, "stack", "machine")),
             s["busy_pct"]] for s in steps]
    out = [table(["setup", "cps", "calls", "failed", "done/s", "200p50ms", "200p99ms",
                  "kam ms", "ast ms", "app ms", "pg ms", "stack ms", "all ms", "busy%"], rows)]
    out.append(f"\nCPU ms per call at the highest sustained rate (no failed call, >= "
               f"{KEPT_UP_SHARE:.0%} of the offered rate completed, no growing queue):")
    best: dict[str, dict[str, Any]] = {}
    for s in steps:
        if sustained(s) and (s["setup"] not in best or s["rate"] > best[s["setup"]]["rate"]):
            best[s["setup"]] = s
    names = list(dict.fromkeys(s["setup"] for s in steps))
    side = [[name, *([fmt(best[name]["rate"]), *(best[name]["cpu_ms_per_call"].get(p)
                                                  for p in (*PARTS, "stack", "machine"))]
                     if name in best else ["none", *[None] * 6])] for name in names]
    out.append(table(["setup", "max cps", "kam ms", "ast ms", "app ms", "pg ms", "stack ms",
                      "all ms"], side))
    direct, one = best.get("direct"), best.get("1 node")
    if direct and one:
        extra = one["cpu_ms_per_call"]["stack"] - direct["cpu_ms_per_call"]["stack"]
        out.append(f"  the proxy's cost: Kamailio {one['cpu_ms_per_call']['kamailio']} ms per "
                   f"call; stack behind Kamailio vs direct: {extra:+.3f} ms per call")
    out.append(f"  One machine with {CORES} core(s): all {nodes} nodes, Kamailio, PostgreSQL "
               "and the load generator share the same cores, so the "
               f"{nodes}-node figure is bounded by the cores, not by the nodes. On separate "
               "machines each node brings its own cores: calls/s per node ≈ cores × 1000 / "
               "(the node's ast ms + app ms per call), PostgreSQL and Kamailio sized apart.")
    return "\n".join(out)


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=2, help="nodes of the last set-up (2..9)")
    p.add_argument("--rates", default="20,50,100,150,200", help="call rates to try, in order")
    p.add_argument("--seconds-per-step", type=float, default=8.0)
    p.add_argument("--min-calls", type=int, default=200, help="calls per step at least")
    p.add_argument("--hold-ms", type=int, default=500, help="carrier holds the call, then BYE")
    p.add_argument("--short", action="store_true",
                   help="two small steps (10 and 20 calls/s, 3 s) for development")
    p.add_argument("--lock-wait-s", type=float, default=1800)
    args = p.parse_args(argv)
    if not 2 <= args.nodes <= 9:
        p.error("--nodes must be 2..9")
    if args.short:
        args.rates, args.seconds_per_step, args.min_calls = "10,20", 3.0, 30
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if shutil.which("kamailio") is None:
        print("bench: kamailio is not installed (make deps)", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _terminate)
    settings = load_settings()
    engine = make_sync_engine(settings)
    work = Path(tempfile.mkdtemp(prefix="callguard-bench-cluster-"))
    out: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "args": vars(args),
                           "cores": CORES}
    steps: list[dict[str, Any]] = []
    try:
        with stack_lock(args.lock_wait_s):
            state = BenchState(settings, engine)
            leftover = pending_restore()
            if leftover is not None:
                state.restore(leftover)
            saved = state.save()
            audio = tone_alaw(work / "hold.al", args.hold_ms / 1000)
            mix = [n for pair in zip(LISTED, UNLISTED, strict=True) for n in pair]
            callers = sipp.write_callers(work / "callers.csv", mix)
            try:
                state.set_max_recordings(100_000)  # capacity never refuses a bench call
                state.fill_list(int(saved["f1a_list_id"]))
                time.sleep(2.5)  # the shells follow the change by NOTIFY
                for setup in (Setup("direct", 0), Setup("1 node", 1),
                              Setup(f"{args.nodes} nodes", args.nodes)):
                    if setup.nodes:
                        cluster_sh("up", str(setup.nodes))
                        wait_cluster_active(setup.nodes)
                    steps += run_setup(setup, settings, work, callers, audio, args)
            finally:
                try:
                    cluster_sh("restore-single")
                finally:
                    out["cleanup"] = state.restore(saved)
    finally:
        engine.dispose()
        shutil.rmtree(work, ignore_errors=True)
    out["steps"] = steps
    RESULTS.mkdir(parents=True, exist_ok=True)
    result_file = RESULTS / f"bench-cluster-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    result_file.write_text(json.dumps(out, indent=2, default=str))
    print("\nPERF-1 through Kamailio (issue 12): screened inbound calls to 0312345678, half "
          "listed (rejected), half connected to f1-a and recorded; CPU ms per call")
    print(report(steps, args.nodes))
    print(f"results: {result_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
