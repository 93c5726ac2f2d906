"""PERF-4: what the bench calls a sustained step. A step is sustained when no call failed,
none went to the fallback and the calls completed at (nearly) the offered rate: a path that
queues completes fewer per second than it is offered, and an 8-s step hides a queue that
would grow for as long as the load lasted."""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

import pytest

from bench import cluster, screening
from bench.report import kept_up, setup_by_quarter
from bench.state import BenchState
from callguard.asterisk.cli import AsteriskCliError


def step(rate: float, cps: float | None, failed: int = 0, fallback: int = 0) -> dict[str, Any]:
    return {"rate": rate, "cps": cps, "failed": failed, "fallback": fallback}


def test_a_path_within_its_limit_keeps_up() -> None:
    # measured on 4 Dec: all three paths at 150 calls/s, and the baseline and floor at 175
    for rate, cps in ((150, 149.2), (150, 149.9), (175, 174.8), (20, 19.97)):
        assert kept_up(cps, rate)
        assert screening._ok(step(rate, cps))
        assert cluster.sustained(step(rate, cps))


def test_a_queueing_path_is_not_sustained() -> None:
    # the ARI path offered 175 calls/s completed 162.6 a second, p50 221 ms, none failed
    assert not kept_up(162.6, 175)
    assert not screening._ok(step(175, 162.6))
    assert not cluster.sustained(step(175, 162.6))
    assert not kept_up(None, 20)


def test_a_queue_growing_through_the_step_is_not_sustained() -> None:
    """Completed calls/s within 95 % of the offered rate can hide a queue: the calls placed
    late wait longer than the early ones. Steady jitter of a few ms is no queue."""
    steady = [(i / 200, 0.004 + 0.002 * (i % 3)) for i in range(1600)]  # 4-8 ms throughout
    growing = [(i / 200, 0.010 + 0.25 * i / 1600) for i in range(1600)]  # 10 → 260 ms
    slower = [(i / 200, 0.004 if i < 800 else 0.018) for i in range(1600)]  # 4 → 18 ms
    assert setup_by_quarter(steady)["queue_grew"] is False
    assert setup_by_quarter(slower)["queue_grew"] is False  # more than 2x, but by 14 ms
    quarters = setup_by_quarter(growing)
    assert quarters["queue_grew"] is True
    assert quarters["first_p50_ms"] < 50 < 200 < quarters["last_p50_ms"]
    # the order calls were placed in counts, not the order they are listed in
    assert setup_by_quarter(list(reversed(growing)))["queue_grew"] is True
    assert setup_by_quarter(growing[:3])["queue_grew"] is False  # too few calls to tell
    kept = {**step(200, 191.3), "setup_quarters": quarters}
    assert kept_up(191.3, 200) and not screening._ok(kept) and not cluster.sustained(kept)
    assert screening._ok({**step(200, 199.9), "setup_quarters": setup_by_quarter(steady)})


def test_failed_or_fallback_calls_are_never_sustained() -> None:
    assert not screening._ok(step(100, 100.0, failed=1))
    assert not screening._ok(step(100, 100.0, fallback=1))
    assert not cluster.sustained(step(100, 100.0, failed=1))


def test_capacity_is_the_best_sustained_step() -> None:
    steps = [step(150, 149.2), step(175, 162.6), step(200, 64.9, failed=717)]
    assert screening.capacity(steps) == 149.2
    assert screening.RATES.index(175) == screening.RATES.index(150) + 1
    # 25 apart wherever a path's ceiling may fall on one core (150-300): a ceiling is read
    # to the step below it, then to the halfway step, so half the gap bounds its error.
    high = [r for r in screening.RATES if 150 <= r <= 300]
    assert all(b - a == 25 for a, b in pairwise(high))


class _NoCapture:
    """Stands in for the dumpcap capture: no packets."""

    packets = 0

    def __init__(self, *_args: object) -> None:
        pass

    def stop(self) -> _NoCapture:
        return self

    def first_after(self, *_args: object) -> None:
        return None


MS = {"n": 400, "p50": 2.0, "p99": 4.0, "max": 5.0}
# A path's carrier address → the most calls/s it completes (none failed, no fallback).
CEILING = {"127.0.0.2": 165.0, "127.0.0.5": 190.0, "127.0.0.4": 180.0}


def _ramp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rates: tuple[float, ...],
          ceiling: dict[str, float], down_at: tuple[str, float] | None = None,
          ) -> tuple[screening.Screening, list[tuple[str, float]]]:
    """A Screening whose steps are stand-ins: each path completes every call, at the rate
    offered up to its `ceiling` and at 90 % of that beyond; Asterisk answers no more from
    `down_at` (path, rate) on. Returns it and the list the steps it ran go to."""
    monkeypatch.setattr(screening, "RtpCapture", _NoCapture)
    monkeypatch.setattr(time, "sleep", lambda _s: None)

    def analyse(_calls: object, _rtp: object, ip: str, rate: float,
                planned: int) -> dict[str, Any]:
        cps = rate if rate <= ceiling[ip] else 0.9 * ceiling[ip]
        return {"rate": rate, "planned": planned, "attempted": planned, "completed": planned,
                "failed": 0, "failures": {}, "invite_rate": rate, "cps": cps,
                "setup_ms": MS, "rejected_200_ms": MS, "rejected_rtp_ms": MS,
                "connected_200_ms": MS}

    monkeypatch.setattr(screening, "analyse", analyse)
    sc = screening.Screening(cast(BenchState, None), tmp_path,
                             screening.ScreeningConfig(rates=rates),
                             deadline=time.monotonic() + 600)
    ran: list[tuple[str, float]] = []

    def attempt(path: str, rate: float) -> tuple[dict[str, Any], dict[str, Any]]:
        if (path, rate) == down_at:
            raise AsteriskCliError("Unable to connect to remote asterisk")
        ran.append((path, rate))
        cpu = {"asterisk": 5.0, "app": 1.0, "floor": 0.3}
        return {"path": path, "rate": rate, "fallback": 0, "cpu_pct": {},
                "cpu_ms_per_call": cpu}, {}

    monkeypatch.setattr(sc, "attempt", attempt)
    return sc, ran


def test_asterisk_gone_mid_ramp_keeps_the_steps_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PERF-4: Asterisk unreachable during a step (it crashed under overload): the steps
    measured before it are still summarised, every path says why its ramp stopped, and the
    run knows it was cut short (bench.run then names it and exits 1)."""
    sc, ran = _ramp(tmp_path, monkeypatch, (20.0, 50.0), CEILING, down_at=("floor", 50.0))
    result = sc.run()
    assert ran == [("ari", 20.0), ("floor", 20.0), ("baseline", 20.0), ("ari", 50.0)]
    assert sc.cut_short is not None and "floor at 50 calls/s" in sc.cut_short
    assert [s["rate"] for s in result["steps"]["ari"]] == [20.0, 50.0]
    assert [s["rate"] for s in result["steps"]["floor"]] == [20.0]
    assert [s["rate"] for s in result["steps"]["baseline"]] == [20.0]
    assert result["capacity_cps"] == {"ari": 50.0, "floor": 20.0, "baseline": 20.0}
    assert result["stopped"] == {"ari": "Asterisk unreachable at 50",
                                 "floor": "Asterisk unreachable at 50",
                                 "baseline": "Asterisk unreachable at 50"}


def test_each_ceiling_is_refined_halfway_to_the_step_it_missed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PERF-4: after the ramp, every path runs one step between its last sustained rate and
    the first it missed, so a ceiling is read to half a step, not a whole one, for all three
    paths alike; the steps are kept in rate order and the targets say how the step went."""
    sc, ran = _ramp(tmp_path, monkeypatch, (150.0, 175.0, 200.0), CEILING)
    result = sc.run()
    assert ran == [("ari", 150.0), ("floor", 150.0), ("baseline", 150.0),
                   ("ari", 175.0), ("floor", 175.0), ("baseline", 175.0),
                   ("floor", 200.0), ("baseline", 200.0),
                   ("ari", 162.0), ("floor", 188.0), ("baseline", 188.0)]
    assert [s["rate"] for s in result["steps"]["ari"]] == [150.0, 162.0, 175.0]
    assert [s["rate"] for s in result["steps"]["baseline"]] == [150.0, 175.0, 188.0, 200.0]
    # the ARI path and the floor held their halfway steps, the baseline did not
    assert result["capacity_cps"] == {"ari": 162.0, "floor": 188.0, "baseline": 175.0}
    assert result["cps_ratio"] == round(162 / 175, 2)
    assert result["stopped"]["ari"] == (
        "148.5 completed calls/s at 175 offered, then 162 calls/s sustained")
    assert result["stopped"]["baseline"].endswith(", then 188 calls/s not sustained")


def test_failed_ari_calls_count_up_to_the_baselines_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ARI path's halfway step (162) lies below the baseline's limit (175), where the
    baseline ran no step of its own: calls failed there still count against the target."""
    sc, _ran = _ramp(tmp_path, monkeypatch, (150.0, 175.0, 200.0), CEILING)
    real: Any = screening.analyse  # _ramp's stand-in

    def failing_at_162(calls: object, rtp: object, ip: str, rate: float,
                       planned: int) -> dict[str, Any]:
        out = real(calls, rtp, ip, rate, planned)
        return {**out, "failed": 3} if (ip, rate) == ("127.0.0.2", 162.0) else out

    monkeypatch.setattr(screening, "analyse", failing_at_162)
    result = sc.run()
    assert result["capacity_cps"]["ari"] == 150.0
    assert result["ari_failed_below_baseline_limit"] == 3


def test_a_path_that_held_the_top_rate_is_not_refined(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sc, ran = _ramp(tmp_path, monkeypatch, (100.0, 150.0), CEILING)
    result = sc.run()
    assert ran == [(p, r) for r in (100.0, 150.0) for p in ("ari", "floor", "baseline")]
    assert set(result["stopped"].values()) == {"top rate reached"}


def test_halfway_is_a_whole_rate_strictly_between() -> None:
    assert screening.halfway(150, 175) == 162
    assert screening.halfway(20, 50) == 35
    assert screening.halfway(None, 20) is None  # not even the first step held
    assert screening.halfway(300, None) is None  # the top rate held
    assert screening.halfway(75, 76) is None  # no whole rate between
