"""Recording pause/resume as intervals (issue #14), pure: the row keeps every muted interval
`{"from": iso, "until": iso | None}`; an open interval means the recording is paused now."""

from __future__ import annotations

from datetime import datetime

Interval = dict[str, str | None]


class PauseConflict(ValueError):
    pass


def is_paused(intervals: list[Interval]) -> bool:
    return bool(intervals) and intervals[-1].get("until") is None


def toggled(intervals: list[Interval], pause: bool, now: datetime) -> list[Interval]:
    """The intervals after a pause (opens one) or a resume (closes the open one)."""
    if pause == is_paused(intervals):
        raise PauseConflict("the recording is already paused" if pause
                            else "the recording is not paused")
    if pause:
        return [*intervals, {"from": now.isoformat(), "until": None}]
    return [*intervals[:-1], {**intervals[-1], "until": now.isoformat()}]


def closed_at_end(intervals: list[Interval], ended: datetime) -> list[Interval]:
    """A pause still open when the call ended lasted to the end."""
    if not is_paused(intervals):
        return intervals
    return [*intervals[:-1], {**intervals[-1], "until": ended.isoformat()}]


MAX_CODE = 4


def dtmf_action(buffer: str, digit: str, pause_code: str,
                resume_code: str) -> tuple[str, str | None]:
    """Feed one digit pressed on the customer's side: (new buffer, "pause" | "resume" | None).
    The buffer keeps the last MAX_CODE digits and empties after a match."""
    buf = (buffer + digit)[-MAX_CODE:]
    if buf.endswith(pause_code):
        return "", "pause"
    if buf.endswith(resume_code):
        return "", "resume"
    return buf, None
