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


# Audible confirmation of a DTMF pause/resume, whispered to the customer's channel only (a
# snoop channel of the ARI app plays it; callguard.recording_pause.play_pause_tone):
#   pause  = one low beep, 400 Hz for 300 ms;
#   resume = two higher beeps, 800 Hz 120 ms, 80 ms gap, 800 Hz 120 ms.
# Each part is (Hz, ms); 0 Hz is silence. Far from the suite's test tones (440 / 1000 Hz).
PAUSE_TONE_ROLE = "pause-tone"  # StasisStart args[0] of the snoop channel playing it
PAUSE_TONES: dict[str, tuple[tuple[int, int], ...]] = {
    "pause": ((400, 300),),
    "resume": ((800, 120), (0, 80), (800, 120)),
}


def tone_app_args(action: str) -> str:
    """The snoop channel's Stasis appArgs for `action` ("pause" | "resume")."""
    if action not in PAUSE_TONES:
        raise ValueError(f"no tone for {action!r}")
    return f"{PAUSE_TONE_ROLE},{action}"


def tone_action(args: list[str]) -> str | None:
    """The action of a pause-tone snoop channel's StasisStart args; None if they name none."""
    if len(args) == 2 and args[0] == PAUSE_TONE_ROLE and args[1] in PAUSE_TONES:
        return args[1]
    return None


def tone_media(action: str) -> str:
    """ARI playback media for `action`: Asterisk's tone list, every part marked `!` (played
    once, not repeated: a `tone:` playback never ends by itself, the app hangs up after
    `tone_ms`). The parts are separated by `|`, which Asterisk's tone lists take as well as
    `,` (main/indications.c): ARI splits its `media` parameter at every comma, and with `,`
    only the first beep was played."""
    return "tone:" + "|".join(f"!{hz}/{ms}" for hz, ms in PAUSE_TONES[action])


def tone_ms(action: str) -> int:
    return sum(ms for _, ms in PAUSE_TONES[action])
