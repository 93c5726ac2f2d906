"""Counting the calls that left the normal path (SEC-4 / REL-1 audit): every fail-open or
fallback branch of the dialplan logs a `callguard:` WARNING with the channel in Asterisk's
messages.log, which tools/stack.sh empties when Asterisk starts."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# The dialplan's WARNING texts (asterisk_conf/extensions_callguard.conf) → what they count.
MARKERS = {
    "callguard: ARI app unavailable": "fallback",
    "- failing open": "failed_open",
}


def count_branches(lines: Iterable[str]) -> dict[str, int]:
    """How many WARNING lines of each fail-open/fallback kind the log holds."""
    counts = dict.fromkeys(MARKERS.values(), 0)
    for line in lines:
        if "WARNING[" not in line:
            continue
        for marker, kind in MARKERS.items():
            if marker in line:
                counts[kind] += 1
    return counts


def count_since_start(messages_log: Path) -> dict[str, int] | None:
    """The counts in messages.log (emptied at Asterisk's start), None when unreadable."""
    try:
        with messages_log.open(encoding="utf-8", errors="replace") as f:
            return count_branches(f)
    except OSError:
        return None
