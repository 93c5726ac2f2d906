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


def kept_up(cps: float | None, rate: float) -> bool:
    """Completed calls/s (cps) kept up with the offered rate."""
    return cps is not None and cps >= KEPT_UP_SHARE * rate


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
