"""PERF-4: the targets say what `cps_ratio` the floor (an app doing nothing but `continue`)
reached in the same run, so a `cps_ratio` below 0.9 is read against what Stasis itself allows
on this machine."""

from __future__ import annotations

from typing import Any

from bench import run
from bench.report import ratio


def screening(capacity_cps: dict[str, float | None]) -> dict[str, Any]:
    keys = ("setup_p50_ratio", "setup_p99_ratio", "cps_ratio", "app_cpu_ms_per_call",
            "floor_p50_ratio", "floor_p99_ratio")
    return {"screening": {**{k: None for k in keys}, "ari_failed_below_baseline_limit": 0,
                          "stopped": {}, "capacity_cps": capacity_cps,
                          "floor_cps_ratio": ratio(capacity_cps["floor"],
                                                   capacity_cps["baseline"])}}


def test_the_floors_capacity_is_put_against_the_baselines() -> None:
    lines = run._targets(screening({"ari": 125.0, "floor": 192.8, "baseline": 199.1}))
    assert ("  floor's capacity / baseline's: 192.8 / 199.1 calls/s = 0.97 (the cps_ratio of an"
            " empty Stasis app)") in lines


def test_no_line_when_the_floor_sustained_no_step() -> None:
    lines = run._targets(screening({"ari": 125.0, "floor": None, "baseline": 199.1}))
    assert not any(line.startswith("  floor's capacity") for line in lines)
