"""Load shedding: a call whose StasisStart reaches the app late goes to the FastAGI fallback.

When the app falls behind (more calls than one Python process can screen, or the process was
paused), every event waits in the websocket queue and every caller's setup time grows with it
until calls fail. A StasisStart older than SHED_AFTER_S is therefore not screened here: the
channel is sent straight on to its next dialplan priority, the FastAGI fallback, which runs
the same decisions in another process (REL-1). The age is Asterisk's own event timestamp
against this host's clock (same machine, same clock).
"""

from __future__ import annotations

from datetime import datetime

SHED_AFTER_S = 0.5


def event_age_s(timestamp: object, now: datetime) -> float | None:
    """Seconds since Asterisk stamped the event ("2026-11-22T17:15:00.123+0000"); None when
    the stamp is missing or unreadable (then nothing is shed)."""
    if not isinstance(timestamp, str) or not timestamp:
        return None
    try:
        stamped = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if stamped.tzinfo is None:
        return None
    return (now - stamped).total_seconds()


def should_shed(role: str, exten: str, age_s: float | None) -> bool:
    """Only new calls the fallback can finish: not 144 (its menu needs this app; the
    fallback could only refuse it), not a channel coming back from a dialplan step."""
    if age_s is None or age_s <= SHED_AFTER_S:
        return False
    if role == "inbound":
        return True
    return role == "outbound" and exten != "144"
