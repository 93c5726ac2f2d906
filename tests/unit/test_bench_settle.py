"""PERF-4: a screening step starts on a quiet stack, not on the backlog an overloaded step left
(bench/procs.py CpuMeter.settle)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench import run
from bench.procs import CpuMeter, CpuSample


class ScriptedMeter(CpuMeter):
    """Asterisk's CPU seconds over successive 1-s windows, as given (starting at 0)."""

    def __init__(self, busy_per_window: list[float]) -> None:
        self.samples: Iterator[CpuSample] = iter(self._script(busy_per_window))

    @staticmethod
    def _script(busy: list[float]) -> list[CpuSample]:
        total, out = 0.0, [CpuSample(0.0, 0.0, 0.0, {}, 0.0)]
        for i, b in enumerate(busy, start=1):
            total += b
            out.append(CpuSample(float(i), total, 0.0, {}, 0.0))
        return out

    def sample(self) -> CpuSample:
        return next(self.samples)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]

    def sleep(s: float) -> None:
        clock[0] += s

    monkeypatch.setattr("bench.procs.time.sleep", sleep)
    monkeypatch.setattr("bench.procs.time.monotonic", lambda: clock[0])


def test_a_quiet_stack_starts_after_one_window() -> None:
    assert ScriptedMeter([0.03]).settle() == {"settle_s": 1.0, "settle_stack_pct": 3.0}


def test_a_busy_stack_is_waited_for_until_it_quiets() -> None:
    # A backlog: Asterisk at 90 %, 60 %, 20 % of its core, then 5 %.
    got = ScriptedMeter([0.9, 0.6, 0.2, 0.05]).settle()
    assert got == {"settle_s": 4.0, "settle_stack_pct": 5.0}


def test_the_wait_is_bounded_and_says_how_busy_the_stack_still_was() -> None:
    got = ScriptedMeter([0.8] * 10).settle(bound_s=3.0)
    assert got == {"settle_s": 3.0, "settle_stack_pct": 80.0}


def test_every_stack_process_counts() -> None:
    # 10 % in the app and 10 % in PostgreSQL: 20 % together is not quiet.
    a = CpuSample(0.0, 0.0, 0.0, {7: 0.0}, 0.0)
    b = CpuSample(1.0, 0.0, 0.1, {7: 0.1}, 0.0)
    c = CpuSample(2.0, 0.0, 0.11, {7: 0.11}, 0.0)
    meter = ScriptedMeter([])
    meter.samples = iter([a, b, c])
    assert meter.settle() == {"settle_s": 2.0, "settle_stack_pct": 2.0}


def test_steps_that_waited_are_named_in_the_targets() -> None:
    out = {"screening": {"steps": {
        "baseline": [{"path": "baseline", "rate": 225, "settle_s": 1.0, "settle_stack_pct": 4},
                     {"path": "baseline", "rate": 250, "settle_s": 14.0,
                      "settle_stack_pct": 12.5}],
        "ari": [{"path": "ari", "rate": 20}]}}}  # a result from before the wait existed
    assert run._settle_line(out) == ("  waited for the stack to quiet down (under 15 % of its "
                                     "core) before: screening baseline 250/s: 14 s (12.5 %)")
    assert run._settle_line({}) is None
