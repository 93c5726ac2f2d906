"""PERF-1: screened inbound calls through the ARI path and the pure-dialplan baseline.

The carrier (sipp) calls 0312345678 at rising rates, callers alternating between the 30 numbers
on f1-a's list and 30 others, with the same calls for both paths:
  ARI path  from 127.0.0.2: Stasis → the app (blocklist lookup, rows, variables) → cg-reject or
            cg-connect (MixMonitor + Dial f1-a), exactly as in production;
  baseline  from 127.0.0.4: [bench-baseline] (astdb lookup → Answer + Playback twice, or
            MixMonitor + Dial f1-a), no ARI, no app, no database;
  floor     from 127.0.0.5: Stasis → a minimal app (bench/floor_app.py) that only answers with
            one `continue` into [bench-baseline]: the baseline plus one Stasis round trip, the
            least any ARI design pays (PERF-4).
The baseline and the floor keep no rows, no counters and no keyed hash: they are media-only
lower bounds, not alternatives with the same features.
The phone f1-a (sipp on 127.0.1.1:5060) answers at once. Every call is held `hold_ms` after the
200, the carrier sending audio meanwhile (as a caller does), then the carrier hangs up: a
rejected call does not run the ~8 s message, so the load stays setup-bound. Measured per call
at the carrier: INVITE → 200 (both halves) and, for listed callers, INVITE → first RTP packet
of the rejection message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import profile, sipp
from bench.procs import STEAL_RETRY_PCT, CpuMeter, rss_mb, steal_pct
from bench.report import kept_up, percentile, queue_grew, ratio, setup_by_quarter, summary_ms
from bench.rtpcap import FirstPackets, RtpCapture
from bench.state import (
    LISTED,
    SCREENED_NUMBER,
    UNLISTED,
    BenchState,
    drain_channels,
)
from callguard.asterisk.cli import AsteriskCliError
from tests.e2e.rtp_pcap import tone_alaw

CARRIER_IP = {"ari": "127.0.0.2", "floor": "127.0.0.5", "baseline": "127.0.0.4"}
PHONE_IP = "127.0.1.1"  # f1-a
CARRIER_SIP_PORT = 5062
CARRIER_MEDIA_PORT = 30000
PHONE_MEDIA_PORT = 30100
# 25 calls/s apart from 150 to 300: a ceiling is read to the step below it (then to half a
# step, `Screening.refine`), and the ARI path's lies between 125 and 250 on one core, the
# baseline's and the floor's between 150 and 300. With 50 apart there, `cps_ratio` moved by up
# to 20 % on where the steps fell (200 / 250 for an ARI path that completed 230 calls/s at
# 250), for every path alike.
RATES = (20, 50, 75, 100, 125, 150, 175, 200, 225, 250, 275, 300, 400)
SECONDS_PER_STEP = 8.0
# PERF-4: p99 from at least 400 samples per figure; half the calls are listed callers, so a
# step places 800 calls (longer steps at low rates).
MIN_CALLS = 800


@dataclass
class ScreeningConfig:
    rates: tuple[float, ...] = RATES
    seconds_per_step: float = SECONDS_PER_STEP
    min_calls: int = MIN_CALLS
    hold_ms: int = 500
    callers: str = "both"  # both | listed | unlisted (to cost one kind of call alone)


@dataclass
class PathProgress:
    stopped: str = ""  # why the ramp stopped for this path
    steps: list[dict[str, Any]] = field(default_factory=list)
    last_ok: float | None = None  # the highest rate this path sustained in the ramp
    failed_at: float | None = None  # the rate it did not sustain (the ramp's end)
    refined: str = ""  # the step between those two, and whether it was sustained


def calls_for(rate: float, cfg: ScreeningConfig) -> int:
    n = max(cfg.min_calls, round(rate * cfg.seconds_per_step))
    return n + n % 2  # even: exactly half listed


def analyse(calls: dict[str, sipp.CallTiming], rtp: FirstPackets, carrier_ip: str,
            rate: float, planned: int) -> dict[str, Any]:
    listed = set(LISTED)
    placed: list[tuple[float, float]] = []  # (INVITE time, setup s) of every answered call
    rejected: list[float] = []
    connected: list[float] = []
    first_rtp: list[float] = []
    missing_rtp = 0
    codes: dict[str, int] = {}
    done_at: list[float] = []
    for c in calls.values():
        if not c.completed:
            key = str(c.final_status) if c.final_status and c.final_status != 200 else (
                "no final response" if c.final_status is None else "BYE not answered")
            codes[key] = codes.get(key, 0) + 1
        setup = c.setup_s
        if setup is None:
            continue
        placed.append((c.invite_at, setup))
        if c.completed and c.final_at is not None:
            done_at.append(c.final_at)
        if c.caller in listed:
            rejected.append(setup)
            t = rtp.first_after(carrier_ip, c.media_port, c.invite_at, 10.0) \
                if c.media_port else None
            if t is None:
                missing_rtp += 1
            else:
                first_rtp.append(t - c.invite_at)
        else:
            connected.append(setup)
    invites = sorted(c.invite_at for c in calls.values())
    completed = sum(1 for c in calls.values() if c.completed)
    span = (max(done_at) - min(done_at)) if len(done_at) > 1 else 0.0
    return {
        "rate": rate,
        "planned": planned,
        "attempted": len(calls),
        "completed": completed,
        "failed": planned - completed,
        "failures": codes,
        "invite_rate": round((len(invites) - 1) / (invites[-1] - invites[0]), 1)
        if len(invites) > 1 and invites[-1] > invites[0] else None,
        # Throughput of completed calls, measured on their answer times.
        "cps": round((len(done_at) - 1) / span, 1) if span > 0 else None,
        "setup_ms": summary_ms([setup for _at, setup in placed]),
        "rejected_200_ms": summary_ms(rejected),
        "rejected_rtp_ms": {**summary_ms(first_rtp), "missing": missing_rtp},
        "connected_200_ms": summary_ms(connected),
        "setup_quarters": setup_by_quarter(placed),
    }


def log_count(log: Path, start: int, marker: bytes) -> int:
    """Lines holding `marker` in a service log since byte `start`."""
    try:
        with log.open("rb") as f:
            f.seek(start)
            return f.read().count(marker)
    except OSError:
        return 0


# Calls the app handed on because it was behind (ari_app/overload.py), and every call the
# FastAGI fallback decided (shed, hung app, app down): decided there, never by ARI (PERF-4).
SHED_MARKER = b"handed to the FastAGI fallback"
FALLBACK_MARKER = b"decision (fallback)"


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


class Screening:
    def __init__(self, state: BenchState, work: Path, cfg: ScreeningConfig,
                 deadline: float) -> None:
        self.state = state
        self.work = work
        self.cfg = cfg
        self.deadline = deadline
        self.cpu = CpuMeter()
        # The carrier's audio for the hold (see sipp.uac_xml: Answer() waits for media).
        self.audio = tone_alaw(work / "hold.al", cfg.hold_ms / 1000)
        mix = {"listed": LISTED, "unlisted": UNLISTED,
               "both": [n for pair in zip(LISTED, UNLISTED, strict=True) for n in pair]}
        self.callers = sipp.write_callers(work / "callers.csv", mix[cfg.callers])
        self.profiled = False  # the first ARI step is profiled with py-spy (PERF-1)
        self.cut_short: str | None = None  # Asterisk unreachable: the steps before are kept

    def drain(self, since: datetime) -> int:
        """Until every channel is gone and the app has closed its recording rows (bounded);
        channels still up then are hung up, and their number returned."""
        left = drain_channels(self.state.settings)
        self.state.wait_recordings_finished(since, timeout_s=15)
        return left

    def step(self, path: str, rate: float) -> dict[str, Any]:
        n = calls_for(rate, self.cfg)
        work = self.work / f"{path}-{rate:g}cps"
        settled = self.cpu.settle()  # PERF-4: not on the leftovers of an overloaded step
        since = datetime.now(UTC)
        duration = n / rate
        app_log = self.state.settings.log_dir / "ari.log"
        agi_log = self.state.settings.log_dir / "fastagi.log"
        log_start, agi_start = _size(app_log), _size(agi_log)
        phone = sipp.start_uas(work, ip=PHONE_IP, media_port=PHONE_MEDIA_PORT, calls=n,
                               timeout_s=int(duration + 90))
        try:
            time.sleep(0.3)  # bound to 127.0.1.1:5060 before the first INVITE
            before = self.cpu.sample()
            spy = spy_out = None
            ast_pid, app_pid = self.cpu.pids()
            if path == "ari" and not self.profiled and app_pid is not None:
                self.profiled = True
                spy_out = work / "py-spy.txt"
                spy = profile.start(app_pid, duration, spy_out)
            uac = sipp.start_uac(
                work, xml=sipp.uac_xml(self.cfg.hold_ms, self.audio), ip=CARRIER_IP[path],
                port=CARRIER_SIP_PORT, media_port=CARRIER_MEDIA_PORT, callers=self.callers,
                service=SCREENED_NUMBER, rate=rate, calls=n, limit=5000,
                timeout_s=int(duration + 40))
            rc = uac.wait(duration + 55)
            if rc is None:
                uac.stop()
            during = self.cpu.sample().minus(before)
            ast_rss = rss_mb(ast_pid)  # with this step's transactions still held
            prof = profile.finish(spy, spy_out) if spy_out is not None else None
            leftover = self.drain(since)
            used = self.cpu.sample().minus(before)
        finally:
            phone.stop()
        return {"path": path, "sipp_rc": rc, "work": str(work), "leftover_channels": leftover,
                **settled, "asterisk_rss_mb": ast_rss,
                "shed": log_count(app_log, log_start, SHED_MARKER),
                "fallback": log_count(agi_log, agi_start, FALLBACK_MARKER),
                **self._cpu(used, during, n), "_since": since,
                **({"profile": prof} if prof is not None else {})}

    def attempt(self, path: str, rate: float) -> tuple[dict[str, Any], dict[str, sipp.CallTiming]]:
        raw = {**self.step(path, rate), "rate": rate}
        return raw, sipp.parse_calls(Path(raw["work"]) / "messages.log")

    @staticmethod
    def _cpu(used: dict[str, float], during: dict[str, float], n: int) -> dict[str, Any]:
        """CPU per 1,000 calls over the calls and their after-work (drain); load in % of one
        core while the calls were placed."""
        per = {k.removesuffix("_s"): round(v / n * 1000, 2) for k, v in used.items()
               if k != "wall_s"}
        # PERF-4: CPU ms per call while the calls ran, without the drain after them.
        per_call = {k.removesuffix("_s"): round(v / n * 1000, 3) for k, v in during.items()
                    if k != "wall_s"}
        return {"window_s": round(used["wall_s"], 1), "cpu_s_per_1000": per,
                "cpu_ms_per_call": per_call,
                "cpu_pct": {k.removesuffix("_s"): round(v / during["wall_s"] * 100, 1)
                            for k, v in during.items() if k != "wall_s"}}

    def measured(self, path: str, rate: float, n: int,
                 ) -> tuple[dict[str, Any], dict[str, sipp.CallTiming]]:
        """One step; run once more if the host took CPU during it (PERF-4)."""
        raw, calls = self.attempt(path, rate)
        stolen = steal_pct(raw["cpu_pct"]) or 0.0
        if stolen >= STEAL_RETRY_PCT and time.monotonic() + n / rate + 30 <= self.deadline:
            # The host took CPU during the step; run it once more and keep the attempt it
            # disturbed less (both steals are kept).
            print(f"bench: the host took {stolen:.0f} % of the CPU; once more", flush=True)
            again, again_calls = self.attempt(path, rate)
            if "profile" in raw:  # py-spy ran during the first attempt only
                again.setdefault("profile", raw["profile"])
            stolen_again = steal_pct(again["cpu_pct"]) or 0.0
            if stolen_again < stolen:
                raw, calls = again, again_calls
            raw["steal_pct_attempts"] = [round(stolen, 1), round(stolen_again, 1)]
        return raw, calls

    def ramp_figures(self, path: str, raw: dict[str, Any],
                     calls: dict[str, sipp.CallTiming], rate: float, n: int) -> dict[str, Any]:
        """The step's figures as far as the ramp needs them (RTP is matched at the end)."""
        return {**analyse(calls, FirstPackets(None), CARRIER_IP[path], rate, n),
                "fallback": raw["fallback"] if path == "ari" else 0}

    def run(self) -> dict[str, Any]:
        progress = {p: PathProgress() for p in CARRIER_IP}
        done: list[tuple[dict[str, Any], dict[str, sipp.CallTiming]]] = []
        capture = RtpCapture(self.work, list(CARRIER_IP.values()), CARRIER_MEDIA_PORT)
        try:
            for rate in self.cfg.rates:
                for path, prog in progress.items():
                    if prog.stopped:
                        continue
                    n = calls_for(rate, self.cfg)
                    if time.monotonic() + n / rate + 30 > self.deadline:
                        prog.stopped = f"time budget before {rate:g} calls/s"
                        continue
                    print(f"bench: screening {path:8} {rate:5g} calls/s ({n} calls)", flush=True)
                    try:
                        raw, calls = self.measured(path, rate, n)
                    except AsteriskCliError as exc:
                        # PERF-4: Asterisk gone mid-step (it crashed under overload): the
                        # steps measured before are still summarised and printed.
                        self.cut_short = f"{exc} (during {path} at {rate:g} calls/s)"
                        for other in progress.values():
                            other.stopped = other.stopped or f"Asterisk unreachable at {rate:g}"
                        break
                    done.append((raw, calls))
                    # Ramp on only while this path keeps up.
                    quick = self.ramp_figures(path, raw, calls, rate, n)
                    if _ok(quick):
                        prog.last_ok = rate
                        continue
                    prog.failed_at = rate
                    prog.stopped = (
                        f"{quick['failed']} failed calls at {rate:g} calls/s"
                        if quick["failed"] else
                        f"{quick['fallback']} calls decided by the fallback at {rate:g} "
                        "calls/s" if quick["fallback"] else
                        f"{quick['cps']} completed calls/s at {rate:g} offered"
                        if not kept_up(quick["cps"], rate) else
                        f"a queue at {rate:g} calls/s (INVITE → 200 p50 "
                        f"{quick['setup_quarters']['first_p50_ms']} ms in the step's first "
                        f"quarter, {quick['setup_quarters']['last_p50_ms']} in its last)")
                if self.cut_short:
                    break
            if not self.cut_short:
                done += self.refine(progress)
        finally:
            rtp = capture.stop()
        for raw, calls in done:
            path = raw["path"]
            step = {**{k: v for k, v in raw.items() if not k.startswith("_")},
                    **analyse(calls, rtp, CARRIER_IP[path], raw["rate"],
                              calls_for(raw["rate"], self.cfg))}
            if path != "ari":
                step["fallback"] = 0  # only the ARI path hands calls to the fallback
            # Calls the fallback decided are not the ARI path's successes (PERF-4).
            step["completed_by_path"] = step["completed"] - step["fallback"]
            progress[path].steps.append(step)
        for prog in progress.values():
            prog.steps.sort(key=lambda st: float(st["rate"]))
        return summarise(progress, rtp.packets)

    def refine(self, progress: dict[str, PathProgress],
               ) -> list[tuple[dict[str, Any], dict[str, sipp.CallTiming]]]:
        """One more step per path, halfway between its last sustained rate and the first it
        did not sustain (PERF-4): a ceiling read to the step below it is up to a whole step
        low (25 calls/s near the ceilings, 14-17 % of them), and `cps_ratio` took that error
        from both of its paths. Every path gets the same one step, so none gains on another."""
        done: list[tuple[dict[str, Any], dict[str, sipp.CallTiming]]] = []
        for path, prog in progress.items():
            rate = halfway(prog.last_ok, prog.failed_at)
            if rate is None:
                continue
            n = calls_for(rate, self.cfg)
            if time.monotonic() + n / rate + 30 > self.deadline:
                prog.refined = f"time budget before {rate:g} calls/s"
                continue
            print(f"bench: screening {path:8} {rate:5g} calls/s ({n} calls; between its last "
                  "sustained step and the next)", flush=True)
            try:
                raw, calls = self.measured(path, rate, n)
            except AsteriskCliError as exc:
                self.cut_short = f"{exc} (during {path} at {rate:g} calls/s)"
                break
            done.append((raw, calls))
            kept = _ok(self.ramp_figures(path, raw, calls, rate, n))
            prog.refined = f"{rate:g} calls/s {'sustained' if kept else 'not sustained'}"
        return done


def halfway(last_ok: float | None, failed_at: float | None) -> float | None:
    """The rate between a path's last sustained step and its first unsustained one, on a
    whole calls/s (sipp's rate); None when there is no such pair or no rate between them."""
    if last_ok is None or failed_at is None:
        return None
    mid = float(round((last_ok + failed_at) / 2))
    return mid if last_ok < mid < failed_at else None


def _ok(step: dict[str, Any]) -> bool:
    """Sustained: no failed call, none decided by the fallback, the rate kept up and no queue
    grew through the step."""
    return (step["failed"] == 0 and step.get("fallback", 0) == 0
            and kept_up(step["cps"], step["rate"]) and not queue_grew(step))


METRICS = ("rejected_200_ms", "rejected_rtp_ms", "connected_200_ms")


def compare(steps: list[dict[str, Any]], ref: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per rate both paths ran: each latency's p50/p99 ratio (path / reference) and cps."""
    by_rate = {s["rate"]: s for s in ref}
    rows: list[dict[str, Any]] = []
    for a in steps:
        b = by_rate.get(a["rate"])
        if b is None:
            continue
        row: dict[str, Any] = {"rate": a["rate"], "ref_ok": _ok(b), "path_ok": _ok(a)}
        for metric in ("setup_ms", *METRICS):
            for q in ("p50", "p99"):
                row[f"{metric}_{q}_ratio"] = ratio(a[metric][q], b[metric][q])
        row["cps_ratio"] = ratio(a["cps"], b["cps"])
        rows.append(row)
    return rows


def worst(rows: list[dict[str, Any]], q: str) -> float | None:
    """The worst ratio over the rejected-200, rejected-first-RTP and connected-200 latencies,
    at every rate the reference itself sustained."""
    vals = [c[f"{m}_{q}_ratio"] for c in rows if c["ref_ok"] for m in METRICS
            if c[f"{m}_{q}_ratio"] is not None]
    return max(vals) if vals else None


def capacity(steps: list[dict[str, Any]]) -> float | None:
    good = [s["cps"] for s in steps if _ok(s)]
    return max(good) if good else None


def cpu_ms_per_call(steps: list[dict[str, Any]], part: str) -> float | None:
    """CPU of one part per call over the sustained steps (calls weighted), drain excluded."""
    good = [s for s in steps if _ok(s)]
    calls = sum(s["planned"] for s in good)
    if not calls:
        return None
    total: float = sum(s["cpu_ms_per_call"][part] * s["planned"] for s in good)
    return float(round(total / calls, 3))


def summarise(progress: dict[str, PathProgress], rtp_packets: int) -> dict[str, Any]:
    ari, base = progress["ari"].steps, progress["baseline"].steps
    floor = progress["floor"].steps if "floor" in progress else []
    compared = compare(ari, base)
    vs_floor = compare(ari, floor)
    floor_vs_base = compare(floor, base)
    ari_cap, floor_cap, base_cap = capacity(ari), capacity(floor), capacity(base)
    # Up to the highest rate the baseline sustained, the ARI path's halfway step included
    # (the baseline ran no step at that rate).
    base_limit = max((s["rate"] for s in base if _ok(s)), default=None)
    ari_fail_below = sum(a["failed"] for a in ari
                         if base_limit is not None and a["rate"] <= base_limit)
    return {
        "steps": {"ari": ari, "floor": floor, "baseline": base},
        # py-spy's top frames of the ARI app during its first step (PERF-1)
        "profile": next(({"rate": st["rate"], **st["profile"]} for st in ari
                         if "profile" in st), None),
        "stopped": {k: (v.stopped or "top rate reached") + (f", then {v.refined}"
                                                            if v.refined else "")
                    for k, v in progress.items()},
        "compared": compared,
        "compared_floor": vs_floor,
        "floor_vs_baseline": floor_vs_base,
        "setup_p50_ratio": worst(compared, "p50"),
        "setup_p99_ratio": worst(compared, "p99"),
        "floor_p50_ratio": worst(vs_floor, "p50"),
        "floor_p99_ratio": worst(vs_floor, "p99"),
        "floor_vs_baseline_p50_ratio": worst(floor_vs_base, "p50"),
        "floor_vs_baseline_p99_ratio": worst(floor_vs_base, "p99"),
        "capacity_cps": {"ari": ari_cap, "floor": floor_cap, "baseline": base_cap},
        "cps_ratio": ratio(ari_cap, base_cap),
        # What cps_ratio an app doing nothing but `continue` reached on this machine.
        "floor_cps_ratio": ratio(floor_cap, base_cap),
        "app_cpu_ms_per_call": cpu_ms_per_call(ari, "app"),
        "floor_app_cpu_ms_per_call": cpu_ms_per_call(floor, "floor"),
        "asterisk_cpu_ms_per_call": {p: cpu_ms_per_call(st, "asterisk")
                                     for p, st in (("ari", ari), ("floor", floor),
                                                   ("baseline", base))},
        "ari_failed_below_baseline_limit": ari_fail_below,
        "fallback_calls": sum(a.get("fallback", 0) for a in ari),
        "rtp_packets_captured": rtp_packets,
        "median_p50_ratio": percentile(
            [c["setup_ms_p50_ratio"] for c in compared if c["ref_ok"] and c["setup_ms_p50_ratio"]],
            50),
    }
