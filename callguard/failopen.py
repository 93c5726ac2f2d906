"""Counting the calls that left the normal path (SEC-4 / REL-1 audit): every fail-open or
fallback branch of the dialplan logs a `callguard:` WARNING with the channel in Asterisk's
messages.log. tools/stack.sh moves the log aside (messages.log.1 ...) when it starts Asterisk and
when the log grows past its bound; the first line of each new file it makes says which:
START_MARK, the run began here; CONTINUED_MARK, the run's earlier lines are in the next older
file."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

# tools/stack.sh's first lines of a new messages.log (ast_start, ast_logs_rotate).
START_MARK = "tools/stack.sh: Asterisk started"
CONTINUED_MARK = "tools/stack.sh: log rotated"
KEPT = 5  # messages.log.1 ... messages.log.5 (tools/stack.sh AST_LOG_KEEP)

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


def _count_file(path: Path) -> tuple[dict[str, int], bool]:
    """The counts in one file, and whether the run continues into the next older file."""
    with path.open(encoding="utf-8", errors="replace") as f:
        first = f.readline()
        return count_branches(itertools.chain([first], f)), CONTINUED_MARK in first


def count_since_start(messages_log: Path) -> dict[str, int] | None:
    """The counts since Asterisk started: messages.log, and the older files the run continues
    into after a rotation by size (as far as they are kept). None when unreadable. A log
    without a mark (one an older tools/stack.sh emptied at the start) counts alone."""
    try:
        total, more = _count_file(messages_log)
    except OSError:
        return None
    for n in range(1, KEPT + 1):
        if not more:
            break
        try:
            counts, more = _count_file(messages_log.with_name(f"{messages_log.name}.{n}"))
        except OSError:
            break
        for kind, count in counts.items():
            total[kind] += count
    return total
