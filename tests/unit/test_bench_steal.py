"""PERF-4: `make bench` says when the host took CPU from this machine (steal), per step and in
the targets, so a step the neighbours starved is not read as the stack's figure."""

from __future__ import annotations

from typing import Any

from bench import pinning, procs, run
from bench.procs import CpuSample


def step(path: str, rate: float, steal_pct_of_one_core: float) -> dict[str, Any]:
    return {"path": path, "rate": rate, "cpu_pct": {"steal": steal_pct_of_one_core}}


def test_steal_is_a_share_of_the_whole_machine() -> None:
    assert run._steal(step("ari", 75, 10.0 * run.CORES)) == 10
    assert run._steal({"cpu_pct": {}}) == ""


def test_the_worst_step_and_those_over_the_limit_are_named() -> None:
    ari = [step("ari", 75, 0.0), step("ari", 100, 30.0 * run.CORES)]
    out = {"screening": {"steps": {"ari": ari,
                                   "baseline": [step("baseline", 75, 6.0 * run.CORES)]}},
           "recording": {"levels": [{"concurrent": 150, "cpu_pct": {"steal": 1.0}}]}}
    line = run._steal_line(out)
    assert line is not None
    assert "at most 30 % (screening ari 100/s)" in line
    assert "2 step(s) at 5 % or more" in line and "screening baseline 75/s" in line
    assert "recording 150" not in line.split("include", 1)[1]


def test_no_line_without_a_measured_step() -> None:
    assert run._steal_line({}) is None
    quiet = {"screening": {"steps": {"ari": [step("ari", 20, 0.0)]}}}
    assert run._steal_line(quiet) == "  CPU stolen by the host (steal, % of the machine): " \
                                     "at most 0 % (screening ari 20/s)"


def test_samples_subtract_steal() -> None:
    a = CpuSample(0.0, 0.0, 0.0, {}, 0.0, steal=1.0)
    b = CpuSample(2.0, 0.0, 0.0, {}, 0.0, steal=1.5)
    assert b.minus(a)["steal_s"] == 0.5


def test_the_last_line_keeps_its_fields_and_adds_the_worst_steal() -> None:
    out = {"screening": {"steps": {"ari": [step("ari", 20, 8.0 * run.CORES)]}}}
    line = run._last_line(out)
    assert line.startswith("bench: setup_p50_ratio=- setup_p99_ratio=- cps_ratio=- "
                           "max_recordings=- lookup_p99_ms_1e6=- app_cpu_ms_per_call=- "
                           "floor_p50_ratio=- floor_p99_ratio=- ")
    assert line.endswith(" steal_max_pct=8")


def test_a_run_cut_short_says_why() -> None:
    out = {"aborted": "Asterisk unreachable: Unable to connect to remote asterisk"}
    assert "  run cut short: Asterisk unreachable: Unable to connect to remote asterisk (the " \
           "part under way and those after it are missing)" in run._targets(out)


def test_supervision_is_metered_and_pinned_with_the_stack(monkeypatch: Any) -> None:
    """PERF-4: supervisord (which carries every service's log lines) and Prometheus run on the
    stack's CPU during a run and their CPU is in each step's figures (`supms`)."""
    a = CpuSample(0.0, 0.0, 0.0, {}, 0.0, supervision=2.0)
    b = CpuSample(1.0, 0.0, 0.0, {}, 0.0, supervision=2.25)
    assert b.minus(a)["supervision_s"] == 0.25
    monkeypatch.setattr(procs, "read_pid", lambda path: {
        "supervisord.pid": 11, "prometheus.pid": 12}.get(path.name))
    monkeypatch.setattr(procs, "postgres_pids", lambda: [13])
    assert pinning.stack_pids([]) == [13, 11, 12]
