"""PERF-4: what the bench calls a sustained step. A step is sustained when no call failed,
none went to the fallback and the calls completed at (nearly) the offered rate: a path that
queues completes fewer per second than it is offered, and an 8-s step hides a queue that
would grow for as long as the load lasted."""

from __future__ import annotations

from typing import Any

from bench import cluster, screening
from bench.report import kept_up


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


def test_failed_or_fallback_calls_are_never_sustained() -> None:
    assert not screening._ok(step(100, 100.0, failed=1))
    assert not screening._ok(step(100, 100.0, fallback=1))
    assert not cluster.sustained(step(100, 100.0, failed=1))


def test_capacity_is_the_best_sustained_step() -> None:
    steps = [step(150, 149.2), step(175, 162.6), step(200, 64.9, failed=717)]
    assert screening.capacity(steps) == 149.2
    assert screening.RATES.index(175) == screening.RATES.index(150) + 1
