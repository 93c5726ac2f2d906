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

# REL-7: the dialplan enters Stasis() with `Set(TIMEOUT(absolute)=1)`; a call the app has not
# taken by then leaves Stasis() for the FastAGI fallback on its own (a hung app cannot hold it).
# A StasisStart this old describes a call the PBX has handed on or is about to: the app leaves
# it alone (a continue now would race the timeout, and the fallback already decides the call).
STASIS_DEADLINE_S = 1.0
HANDED_ON_AFTER_S = 0.9
# A handler still busy with a call this long after the channel was created claims it from the
# deadline (one request, only on late calls) before it writes any row.
CLAIM_AFTER_S = 0.3


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


def handed_on(role: str, age_s: float | None) -> bool:
    """A new call whose StasisStart arrived after the dialplan's Stasis() deadline, e.g. when
    the app wakes up from a stop: the fallback has it already, the app must not touch it."""
    return role in ("inbound", "outbound") and age_s is not None and age_s > HANDED_ON_AFTER_S
