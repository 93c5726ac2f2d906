"""Percentiles, the printed tables and the summary line."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None without data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, Any]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 2)
    return {"n": len(seconds), "p50": ms(percentile(seconds, 50)),
            "p99": ms(percentile(seconds, 99)), "max": ms(max(seconds) if seconds else None)}


# PERF-4: a step is kept up when the calls completed at (nearly) the rate offered. A path within
# its limit completes 99-100 % (149.2-149.9 of 150 calls/s on all three paths); one that queues
# completes less (the ARI path 162.6 of 175 with p50 221 ms, 4 Dec), and an 8-s step hides a
# queue that would grow for as long as the load lasted. 85 % let that pass as sustained.
KEPT_UP_SHARE = 0.95
# PERF-4: ... and no queue grows through the step. 95 % still let a path pass that was
# falling behind all along: the ARI path completed 191.3 of 200 calls/s with INVITE → 200 p50
# 213 ms (5 ms at 150), and the floor 191.5 with 104 ms (7 Dec, clean clone of 954cf6e). A
# queue that grows makes the calls placed late in a step wait longer than the early ones; a
# path within its limit answers the last quarter of its calls as fast as the first.
QUEUE_GROWTH_FACTOR = 2.0  # the last quarter's p50 more than twice the first's …
QUEUE_GROWTH_MS = 20.0  # … and more than this much longer (jitter at a few ms is no queue)


def kept_up(cps: float | None, rate: float) -> bool:
    """Completed calls/s (cps) kept up with the offered rate."""
    return cps is not None and cps >= KEPT_UP_SHARE * rate


def setup_by_quarter(calls: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """INVITE → 200 p50 (ms) of a step's first and last quarter of calls, in the order they
    were placed ((INVITE time, setup s) pairs), and whether a queue grew in between."""
    ordered = [setup for _at, setup in sorted(calls)]
    quarter = len(ordered) // 4
    if quarter == 0:
        return {"first_p50_ms": None, "last_p50_ms": None, "queue_grew": False}
    first = summary_ms(ordered[:quarter])["p50"]
    last = summary_ms(ordered[-quarter:])["p50"]
    return {"first_p50_ms": first, "last_p50_ms": last,
            "queue_grew": last > QUEUE_GROWTH_FACTOR * first and last - first > QUEUE_GROWTH_MS}


def queue_grew(step: dict[str, Any]) -> bool:
    """A step's calls waited longer the later they were placed (its `setup_quarters`)."""
    return bool(step.get("setup_quarters", {}).get("queue_grew", False))


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 2)


def fmt(v: Any, width: int = 0) -> str:
    if v is None:
        s = "-"
    elif isinstance(v, float):
        s = f"{v:.1f}" if abs(v) >= 100 else f"{v:.2f}"
    else:
        s = str(v)
    return s.rjust(width) if width else s


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[fmt(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)
