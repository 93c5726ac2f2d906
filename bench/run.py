"""`make bench` (`python -m bench.run`): PERF-1..3 on the running stack, in one bounded run.

Holds /tmp/callguard-e2e.lock throughout, saves what it changes first and puts it back at the
end (also after an interrupt, or on the next run after a crash). The load generator runs pinned
to its own CPU, the stack to the others (bench/pinning.py). Prints the tables and, as the last
line, `bench: setup_p50_ratio=… setup_p99_ratio=… cps_ratio=… max_recordings=…
lookup_p99_ms_1e6=… app_cpu_ms_per_call=… floor_p50_ratio=… floor_p99_ratio=… steal_max_pct=…`
(the CPU the host took, PERF-4); the full
result goes to bench/results/bench-<utc>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import pinning
from bench.floor_app import APP as FLOOR_APP
from bench.lookup import SCALES, Lookup
from bench.procs import (
    ASTERISK_PIDFILE,
    SETTLE_NOTE_S,
    SETTLE_QUIET_PCT,
    STEAL_WARN_PCT,
    Child,
    read_pid,
    steal_pct,
)
from bench.recording import Recording, RecordingConfig
from bench.report import fmt, table
from bench.screening import RATES, Screening, ScreeningConfig
from bench.state import RESULTS, BenchState, ensure_bench_config, pending_restore, stack_lock
from callguard.asterisk.cli import AsteriskCliError
from callguard.config import load_settings
from callguard.db.session import make_sync_engine

BUDGET_S = 25 * 60  # the whole run, lock wait excluded
MAX_RECORDINGS_FOR_RUN = 100_000  # site_settings row raised so capacity never refuses a call

CORES = os.cpu_count() or 1
TARGETS = {"setup_p50_ratio": 2.0, "setup_p99_ratio": 2.5, "cps_ratio": 0.9,
           "max_recordings": 300, "lookup_p99_ratio": 1.2, "app_cpu_ms_per_call": 3.0,
           "floor_p50_ratio": 1.1, "floor_p99_ratio": 1.3}
PATHS = ("baseline", "floor", "ari")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # so every `finally` restores the stack


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--parts", default="screening,recording,lookup",
                   help="comma-separated subset of screening,recording,lookup")
    p.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES),
                   help="screening call rates (calls/s)")
    p.add_argument("--seconds-per-step", type=float, default=8.0)
    p.add_argument("--min-calls", type=int, default=800,
                   help="calls per step at least (half listed: 400 samples per p99)")
    p.add_argument("--hold-ms", type=int, default=500, help="carrier holds the call, then BYE")
    p.add_argument("--callers", choices=("both", "listed", "unlisted"), default="both",
                   help="screening callers: alternate (default), or only one kind")
    p.add_argument("--levels", default=",".join(str(n) for n in RecordingConfig.levels),
                   help="concurrent recorded calls to try, in order (stops at a failure)")
    p.add_argument("--steady-s", type=float, default=10.0)
    p.add_argument("--scales", default=",".join(str(s) for s in SCALES))
    p.add_argument("--lookups", type=int, default=5000)
    p.add_argument("--entries-per-list", type=int, default=3)
    p.add_argument("--keep-logs", action="store_true", help="keep sipp logs and captures")
    p.add_argument("--lock-wait-s", type=float, default=1800)
    return p.parse_args(argv)


def _ratio_row(rate: float, label: str, c: dict[str, Any]) -> list[Any]:
    return [f"{rate:g}", label, "", "", "", "", c["cps_ratio"],
            c["rejected_200_ms_p50_ratio"], c["rejected_200_ms_p99_ratio"],
            c["rejected_rtp_ms_p50_ratio"], c["rejected_rtp_ms_p99_ratio"],
            c["connected_200_ms_p50_ratio"], c["connected_200_ms_p99_ratio"],
            "", "", "", "", "", "", "", ""]


def _screening_table(s: dict[str, Any]) -> str:
    rows: list[list[Any]] = []
    by_key = {(x["rate"], p): x for p in PATHS for x in s["steps"].get(p, [])}
    for rate in sorted({k[0] for k in by_key}):
        for path in PATHS:
            x = by_key.get((rate, path))
            if x is None:
                continue
            ms = x["cpu_ms_per_call"]
            own = ms["app"] if path == "ari" else ms.get("floor", 0.0) if path == "floor" else ""
            rows.append([f"{rate:g}", path, x["planned"], x["failed"],
                         x.get("fallback", 0) if path == "ari" else "", x.get("shed", "")
                         if path == "ari" else "", x["cps"],
                         x["rejected_200_ms"]["p50"], x["rejected_200_ms"]["p99"],
                         x["rejected_rtp_ms"]["p50"], x["rejected_rtp_ms"]["p99"],
                         x["connected_200_ms"]["p50"], x["connected_200_ms"]["p99"],
                         ms["asterisk"], own, ms["postgres"], ms.get("supervision", ""),
                         ms["machine"],
                         round(x["cpu_pct"]["machine"] / CORES), _steal(x),
                         x.get("asterisk_rss_mb", "")])
        for key, label in (("compared", "ari/base"), ("compared_floor", "ari/floor")):
            c = next((c for c in s.get(key, []) if c["rate"] == rate), None)
            if c is not None:
                rows.append(_ratio_row(rate, label, c))
    return table(["cps", "path", "calls", "failed", "fallbk", "shed", "done/s", "rej200p50",
                  "rej200p99", "rejRTPp50", "rejRTPp99", "con200p50", "con200p99",
                  "astms", "appms", "pgms", "supms", "allms", "busy%", "steal%", "astMB"], rows)


def _recording_table(r: dict[str, Any]) -> str:
    rows = [[x["concurrent"], x["failed"], x["channels_at_plateau"], x["cpu_pct"].get("asterisk"),
             x["cpu_pct"].get("app"), x["cpu_pct"].get("postgres"),
             round(x["cpu_pct"].get("machine", 0) / CORES), x["write_bytes_s"],
             x["write_bytes_s_per_call"], x["complete"], x["lost_audio"],
             x["duration_s"]["min"], x["call_audio_s"], _steal(x),
             x.get("asterisk_rss_mb", "")] for x in r["levels"]]
    return table(["calls", "failed", "channels", "ast%", "app%", "pg%", "busy%", "write B/s",
                  "B/s/call", "complete", "lost", "min dur s", "audio s", "steal%", "astMB"],
                 rows)


def _steal(step: dict[str, Any]) -> int | str:
    """The hypervisor's share of the machine's CPU time during a step (PERF-4)."""
    pct = steal_pct(step["cpu_pct"])
    return "" if pct is None else round(pct)


def _labelled_steps(out: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, result) of every measured step, screening then recording."""
    steps = [(f"screening {st['path']} {st['rate']:g}/s", st)
             for p in (out.get("screening") or {}).get("steps", {}).values() for st in p]
    steps += [(f"recording {x['concurrent']}", x) for x in (out.get("recording") or {}).get(
        "levels", [])]
    return steps


def _stolen(out: dict[str, Any]) -> list[tuple[str, int]]:
    """(step, steal %) of every measured step."""
    return [(label, v) for label, st in _labelled_steps(out) if isinstance(v := _steal(st), int)]


def _leftover_line(out: dict[str, Any]) -> str | None:
    """Name the steps after which channels were still up and had to be hung up."""
    left = [f"{label}: {st['leftover_channels']}" for label, st in _labelled_steps(out)
            if st.get("leftover_channels")]
    return ("  channels still up 20 s after a step, hung up before the next: " + ", ".join(left)
            if left else None)


def _settle_line(out: dict[str, Any]) -> str | None:
    """Name the steps that waited for the stack to quiet down first (CpuMeter.settle): the step
    before them left work behind, and one that waited in vain started on it."""
    waited = [f"{label}: {st['settle_s']:g} s ({st['settle_stack_pct']:g} %)"
              for label, st in _labelled_steps(out) if st.get("settle_s", 0) > SETTLE_NOTE_S]
    return ("  waited for the stack to quiet down (under "
            f"{SETTLE_QUIET_PCT:g} % of its core) before: " + ", ".join(waited)
            if waited else None)


def _steal_line(out: dict[str, Any]) -> str | None:
    """Say when the host took CPU from this machine: those steps measured the neighbours too."""
    stolen = _stolen(out)
    if not stolen:
        return None
    label, worst = max(stolen, key=lambda lv: lv[1])
    over = [lbl for lbl, v in stolen if v >= STEAL_WARN_PCT]
    return (f"  CPU stolen by the host (steal, % of the machine): at most {worst} % ({label})"
            + (f"; {len(over)} step(s) at {STEAL_WARN_PCT} % or more, their figures include "
               f"the neighbours: {', '.join(over)}" if over else ""))


def _lookup_table(lk: dict[str, Any]) -> str:
    rows = [[f"{x['lists']:,}", f"{x['entries']:,}", x["n"], x["p50"], x["p99"], x["max"],
             x["execution_ms"], x["scan"], x["build_s"]] for x in lk["scales"]]
    return table(["lists", "entries", "lookups", "p50 ms", "p99 ms", "max ms", "server",
                  "plan (one probe)", "build s"], rows)


def _targets(out: dict[str, Any]) -> list[str]:
    lines = []
    s, r, lk = out.get("screening"), out.get("recording"), out.get("lookup")
    if s:
        for key, op in (("setup_p50_ratio", "<="), ("setup_p99_ratio", "<="),
                        ("cps_ratio", ">="), ("app_cpu_ms_per_call", "<="),
                        ("floor_p50_ratio", "<="), ("floor_p99_ratio", "<=")):
            bound = TARGETS[key]
            v = s[key]
            ok = v is not None and (v <= bound if op == "<=" else v >= bound)
            lines.append(f"  {key} {fmt(v)} (target {op} {bound}): {'met' if ok else 'NOT met'}")
        n = s["ari_failed_below_baseline_limit"]
        lines.append(f"  ARI failed calls below the baseline's limit: {n} (target 0): "
                     f"{'met' if n == 0 else 'NOT met'}")
        lines.append(f"  calls decided by the FastAGI fallback on the ARI path: "
                     f"{s.get('fallback_calls', 0)} (never counted as ARI successes)")
        lines.append("  ramp stopped: " + "; ".join(f"{k}: {v}" for k, v in s["stopped"].items()))
        prof = s.get("profile") or {}
        if prof.get("own"):
            lines.append(f"  py-spy, ARI app at {fmt(prof.get('rate'))} calls/s "
                         f"({prof['samples']} samples holding the GIL; py-spy on the load "
                         f"generator's CPU), most own time:")
            lines += [f"    {r['pct']:5.1f} %  {r['frame']}" for r in prof["own"][:8]]
        lines.append(f"  floor / baseline (the cost of Stasis itself): p50 "
                     f"{fmt(s.get('floor_vs_baseline_p50_ratio'))}, p99 "
                     f"{fmt(s.get('floor_vs_baseline_p99_ratio'))}")
        if s.get("floor_cps_ratio") is not None:
            caps = s["capacity_cps"]
            lines.append(f"  floor's capacity / baseline's: {fmt(caps['floor'])} / "
                         f"{fmt(caps['baseline'])} calls/s = {fmt(s['floor_cps_ratio'])} "
                         "(the cps_ratio of an empty Stasis app)")
    if r:
        n = r["max_recordings"]
        lines.append(f"  concurrent recordings without failure or lost audio: {n} (target >= "
                     f"{TARGETS['max_recordings']}): "
                     f"{'met' if n >= TARGETS['max_recordings'] else 'NOT met'} ({r['stopped']})")
    steal = _steal_line(out)
    if steal:
        lines.append(steal)
    leftover = _leftover_line(out)
    if leftover:
        lines.append(leftover)
    settle = _settle_line(out)
    if settle:
        lines.append(settle)
    if "asterisk_restarted" in out:
        lines.append(f"  NOT a measurement of the stack: {out['asterisk_restarted']}")
    if "aborted" in out:
        lines.append(f"  run cut short: {out['aborted']} (the part under way and those after it "
                     "are missing)")
    if lk:
        v = lk["p99_ratio_last_vs_first"]
        ok = v is not None and v <= TARGETS["lookup_p99_ratio"]
        lines.append(f"  lookup p99 at {lk['scales'][-1]['lists']:,} lists / at "
                     f"{lk['scales'][0]['lists']:,}: {fmt(v)} (target <= 1.2): "
                     f"{'met' if ok else 'NOT met'}")
    return lines


def _last_line(out: dict[str, Any]) -> str:
    s = out.get("screening") or {}
    r = out.get("recording") or {}
    lk = out.get("lookup") or {}
    p99 = lk["scales"][-1]["p99"] if lk.get("scales") else None
    return (f"bench: setup_p50_ratio={fmt(s.get('setup_p50_ratio'))} "
            f"setup_p99_ratio={fmt(s.get('setup_p99_ratio'))} "
            f"cps_ratio={fmt(s.get('cps_ratio'))} "
            f"max_recordings={fmt(r.get('max_recordings'))} lookup_p99_ms_1e6={fmt(p99)} "
            f"app_cpu_ms_per_call={fmt(s.get('app_cpu_ms_per_call'))} "
            f"floor_p50_ratio={fmt(s.get('floor_p50_ratio'))} "
            f"floor_p99_ratio={fmt(s.get('floor_p99_ratio'))} "
            f"steal_max_pct={fmt(max((v for _, v in _stolen(out)), default=None))}")


def start_floor_app(work: Path) -> Child:
    """The minimal Stasis app of the floor path, connected before the first call."""
    log = work / "floor_app.log"
    # Not pinned here (cpus=set()): pinning.pinned() puts it on the stack's CPUs with the rest.
    child = Child([sys.executable, "-m", "bench.floor_app"], Path.cwd(), log, cpus=set())
    deadline = time.monotonic() + 15
    while "connected" not in (log.read_text() if log.exists() else ""):
        if not child.alive() or time.monotonic() > deadline:
            child.stop()
            raise RuntimeError(f"the floor app ({FLOOR_APP}) did not connect: see {log}")
        time.sleep(0.1)
    return child


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    parts = set(args.parts.split(","))
    signal.signal(signal.SIGTERM, _terminate)
    settings = load_settings()
    engine = make_sync_engine(settings)
    work = Path(tempfile.mkdtemp(prefix="callguard-bench-"))
    out: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "args": vars(args)}
    try:
        with stack_lock(args.lock_wait_s):
            started = time.monotonic()
            deadline = started + BUDGET_S
            state = BenchState(settings, engine)
            leftover = pending_restore()
            if leftover is not None:
                print("bench: putting back what an interrupted run changed", flush=True)
                state.restore(leftover)
            ensure_bench_config(settings)
            saved = state.save()
            asterisk_pid = read_pid(ASTERISK_PIDFILE)
            try:
                _run_parts(args, parts, state, saved, work, out, started, deadline)
            except AsteriskCliError as exc:
                # PERF-4: Asterisk gone mid-run (it exited once at 300 calls/s): what was
                # measured before is still reported, and the run says why it ended.
                out["aborted"] = f"Asterisk unreachable: {exc}"
                print(f"bench: {out['aborted']}", flush=True)
            finally:
                restarted = _asterisk_restarted(asterisk_pid, read_pid(ASTERISK_PIDFILE))
                if restarted:
                    out["asterisk_restarted"] = restarted
                    print(f"bench: {restarted}", flush=True)
                try:
                    out["cleanup"] = state.restore(saved)
                except AsteriskCliError as exc:
                    out["cleanup"] = {"error": str(exc)}
                    print("bench: could not put back what the run changed: after `make run`, "
                          "the next `make bench` does that first", flush=True)
            out["duration_s"] = round(time.monotonic() - started, 1)
    finally:
        engine.dispose()
        if args.keep_logs:
            print(f"bench: logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return _report(out)


def _run_parts(args: argparse.Namespace, parts: set[str], state: BenchState,
               saved: dict[str, Any], work: Path, out: dict[str, Any], started: float,
               deadline: float) -> None:
    """The measured parts, in order (main puts back what they change, whatever happens)."""
    state.set_max_recordings(MAX_RECORDINGS_FOR_RUN)
    state.fill_list(int(saved["f1a_list_id"]))
    state.baseline_on()
    time.sleep(2.5)  # both shells refresh the site snapshot every 2 s
    if "screening" in parts:
        wk = work / "screening"
        wk.mkdir()
        cfg = ScreeningConfig(tuple(float(x) for x in args.rates.split(",")),
                              args.seconds_per_step, args.min_calls, args.hold_ms,
                              args.callers)
        floor = start_floor_app(wk)
        try:
            with pinning.pinned([floor.pid]) as how:
                print(f"bench: {how}", flush=True)
                out["pinning"] = how
                screening = Screening(state, wk, cfg,
                                      min(deadline, started + 14 * 60))
                screening.cpu.floor_pid = floor.pid
                out["screening"] = screening.run()
                if screening.cut_short:
                    raise AsteriskCliError(screening.cut_short)
        finally:
            floor.stop()
    if "recording" in parts:
        wk = work / "recording"
        wk.mkdir()
        rcfg = RecordingConfig(tuple(int(x) for x in args.levels.split(",")),
                               args.steady_s)
        with pinning.pinned() as how:
            out["pinning_recording"] = how
            out["recording"] = Recording(state, wk, rcfg,
                                         min(deadline, started + 20 * 60)).run()
    if "lookup" in parts:
        wk = work / "lookup"
        wk.mkdir()
        out["lookup"] = Lookup(state, wk, args.lookups, args.entries_per_list,
                               tuple(int(x) for x in args.scales.split(",")),
                               deadline - 60).run()


def _asterisk_restarted(before: int | None, after: int | None) -> str | None:
    """What to say when Asterisk's PID changed during the run (a crash supervisord recovered
    from, REL-9, or a restart by hand): the steps from then on ran on a new, unpinned
    Asterisk, with the calls up at the time lost (PERF-4: not a figure of the stack)."""
    if before is None or before == after:
        return None
    return (f"Asterisk restarted during the run (PID {before} -> {after or 'none'}): a crash "
            "supervisord recovered from (see messages.log and var/lib/asterisk/cores) or a "
            "restart by hand")


def _report(out: dict[str, Any]) -> int:
    """Result file, tables, targets and the summary line; 1 if the run was cut short."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result_file = RESULTS / f"bench-{stamp}.json"
    result_file.write_text(json.dumps(out, indent=2, default=str))
    if "screening" in out:
        print("\nPERF-1 screened inbound calls to 0312345678 (half listed callers → rejected, "
              "half → f1-a rung, recorded); latencies ms at the carrier, CPU s per 1,000 calls")
        print(_screening_table(out["screening"]))
    if "recording" in out:
        print("\nPERF-2 concurrent recorded calls (f1-a 007727… → carrier, RTP both ways)")
        print(_recording_table(out["recording"]))
    if "lookup" in out:
        print("\nPERF-3 blocklist lookup (queries.is_blocked via the app's Store), one at a time")
        print(_lookup_table(out["lookup"]))
        print("  EXPLAIN at the largest scale:")
        for line in out["lookup"]["explain"]:
            print(f"    {line}")
    print("\nTargets:")
    for line in _targets(out):
        print(line)
    print(f"results: {result_file}  (run took {out.get('duration_s')} s)")
    print(_last_line(out), flush=True)
    return 1 if "aborted" in out or "asterisk_restarted" in out else 0


if __name__ == "__main__":
    sys.exit(main())
