"""Prometheus metrics of every callguard process, defined once (issue 18).

Each process (the ARI app, the FastAGI fallback, the API) serves its own registry on its own
127.0.0.1 port (`serve`); the shells call the one-line hooks below at their decision points.
Labels hold kinds, never a caller's or a customer's number: a decision's class, a direction,
a 144 key, an HTTP route template.

`outcome_of` is pure (a Decision in, the label values out) and so is `outcome_op` (the row the
overview page counts), so both shells count a call the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

from callguard.domain.routing import Connect, Decision, NuisanceMenu, Refuse, Reject
from callguard.journal import Op

VIA_ARI = "ari"
VIA_FALLBACK = "fallback"
DIRECTIONS = ("in", "out")
# Every decision a call can get; "shed" is a call the app handed to the fallback (REL-1).
OUTCOMES = ("connected", "recorded", "rejected", "refused", "menu144", "shed")

# No *_created series: half the lines, and nothing we query.
disable_created_metrics()  # type: ignore[no-untyped-call]
# The call processes' metrics; the API has its own registry (no call figures of its own).
REGISTRY = CollectorRegistry()
API_REGISTRY = CollectorRegistry()

CALLS = Counter(
    "callguard_calls", "Calls decided, by direction and decision (refused: by class)",
    ["via", "direction", "decision", "refuse_class"], registry=REGISTRY)
FALLBACK_CALLS = Counter(
    "callguard_fallback_calls", "Calls the FastAGI fallback decided (the ARI app was down or "
    "behind)", registry=REGISTRY)
MENU144 = Counter(
    "callguard_menu144_operations", "144 menu operations, by key pressed and outcome",
    ["key", "outcome"], registry=REGISTRY)
DECISION_LATENCY = Histogram(
    "callguard_decision_latency_seconds",
    "StasisStart (ARI) or AGI start (fallback) to the request that carries the decision",
    ["via", "direction"], registry=REGISTRY,
    buckets=(0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
JOURNAL_DEPTH = Gauge(
    "callguard_journal_depth", "Writes waiting in the local journal for the database (REL-2)",
    registry=REGISTRY)
JOURNAL_REPLAYED = Counter(
    "callguard_journal_replayed", "Journaled writes applied once the database answered",
    registry=REGISTRY)
DATABASE_UP = Gauge(
    "callguard_database_up", "1 when the last database round trip of this process succeeded",
    registry=REGISTRY)
RECORDINGS_LIVE = Gauge(
    "callguard_recordings_live", "Recordings in progress (rows in status 'recording')",
    registry=REGISTRY)
RECORDINGS_MAX = Gauge(
    "callguard_recordings_max", "Concurrent recording limit in force (REC-CAP-1)",
    registry=REGISTRY)
DEAD_CALLS_REAPED = Counter(
    "callguard_dead_calls_reaped", "Calls released because both ends had vanished (REL-8)",
    registry=REGISTRY)
API_REQUESTS = Counter(
    "callguard_api_requests", "HTTP requests answered by the API, by route template and status",
    ["method", "route", "status"], registry=API_REGISTRY)

_MENU_OUTCOMES = {
    "registered": "registered", "register_cancelled": "cancelled",
    "cannot_identify": "cannot_identify", "register_failed": "failed",
    "deleted_newest": "deleted", "deleted_all": "deleted", "list_empty": "empty",
    "congestion": "failed",  # 3/9/4 when the list store failed (nuisance.failure_prompt)
}
_MENU_KEYS = {"register": "2", "delete_newest": "3", "delete_all": "9", "read_counts": "4"}


def outcome_of(decision: Decision) -> tuple[str, str]:
    """(decision label, refusal class) of a routing Decision; the class is the refusal's
    prompt, or its Q.850 cause when it has none."""
    if isinstance(decision, Connect):
        return ("recorded" if decision.record is not None else "connected"), ""
    if isinstance(decision, Reject):
        return "rejected", ""
    if isinstance(decision, Refuse):
        return "refused", decision.prompt or f"cause_{decision.cause}"
    if isinstance(decision, NuisanceMenu):
        return "menu144", ""
    raise TypeError(f"not a decision: {decision!r}")


def outcome_op(direction: str, decision: Decision | None, via: str, contract_id: int | None,
               at: datetime) -> Op:
    """The call_outcomes row of one call (counted by the overview page; no numbers in it).
    `decision` None: the call was shed to the fallback."""
    outcome, cls = outcome_of(decision) if decision is not None else ("shed", "")
    return Op("call_outcome", {"at": at, "contract_id": contract_id, "direction": direction,
                               "outcome": outcome, "refuse_class": cls, "via": via})


def init_process(via: str) -> None:
    """Create the usual series at zero, so a rate or increase sees their first call."""
    for direction in DIRECTIONS:
        for outcome in ("connected", "recorded", "rejected", "menu144"):
            CALLS.labels(via, direction, outcome, "")
    if via == VIA_ARI:
        CALLS.labels(via, "in", "shed", "")
        CALLS.labels(via, "out", "shed", "")
    DATABASE_UP.set(1)


def call_decided(via: str, direction: str, decision: Decision) -> None:
    outcome, cls = outcome_of(decision)
    CALLS.labels(via, direction, outcome, cls).inc()
    if via == VIA_FALLBACK:
        FALLBACK_CALLS.inc()


def call_shed(direction: str) -> None:
    CALLS.labels(VIA_ARI, direction, "shed", "").inc()


def menu144_done(action: str, prompts: list[str], nobody_to_register: bool = False) -> None:
    """One 144 operation: `action` a MenuAction value, `prompts` its result guidance;
    `nobody_to_register`: 144 → 2 found no caller it could register (whatever it said)."""
    key = _MENU_KEYS.get(action, "none")
    if nobody_to_register:
        outcome = "cannot_identify"
    elif action == "read_counts":
        outcome = "failed" if prompts[:1] == ["congestion"] else "read"
    elif action == "hangup":
        outcome = "no_input"
    else:
        outcome = _MENU_OUTCOMES.get(prompts[0] if prompts else "", "other")
    MENU144.labels(key, outcome).inc()


def decision_latency(via: str, direction: str, seconds: float) -> None:
    DECISION_LATENCY.labels(via, direction).observe(max(seconds, 0.0))


def journal_replayed(count: int) -> None:
    if count:
        JOURNAL_REPLAYED.inc(count)


def database(up: bool) -> None:
    DATABASE_UP.set(1 if up else 0)


def recordings(live: int, limit: int) -> None:
    RECORDINGS_LIVE.set(live)
    RECORDINGS_MAX.set(limit)


# Q.850 causes with which Asterisk releases a call whose far end is gone (REL-8):
# 44 "requested channel not available" is what res_pjsip_sdp_rtp sets when no RTP came for
# rtp_timeout seconds (its log: "Disconnecting channel ... for lack of audio RTP activity");
# 18 "no user responding" is a SIP 408 on an answered call: a session-timer refresh (or another
# in-dialog request) nobody answered.
CAUSE_RTP_TIMEOUT = 44
CAUSE_NO_USER_RESPONSE = 18


def reaped(cause: object, answered: bool) -> bool:
    """Was a followed call released because its ends vanished (REL-8), judging by the
    Q.850 cause its channel ended with (an int, or the text of ${HANGUPCAUSE})?"""
    try:
        code = int(str(cause))
    except ValueError:
        return False
    return code == CAUSE_RTP_TIMEOUT or (answered and code == CAUSE_NO_USER_RESPONSE)


def dead_call_reaped() -> None:
    """One call released because both ends vanished (REL-8)."""
    DEAD_CALLS_REAPED.inc()


def call_released(cause: object, answered: bool) -> bool:
    """The end of a call a shell follows: counted as reaped when its cause says so."""
    if reaped(cause, answered):
        dead_call_reaped()
        return True
    return False


def api_request(method: str, route: str, status: int) -> None:
    API_REQUESTS.labels(method, route, str(status)).inc()


def watch_journal(pending: Callable[[], int]) -> None:
    """The journal depth is read when Prometheus scrapes (one small file)."""
    JOURNAL_DEPTH.set_function(lambda: float(pending()))


def serve(port: int, registry: CollectorRegistry = REGISTRY, host: str = "127.0.0.1") -> None:
    """/metrics of this process on host:port (a daemon thread; loopback only)."""
    start_http_server(port, addr=host, registry=registry)


def every(interval_s: float, probe: Callable[[], None], name: str) -> threading.Thread:
    """Run `probe` every `interval_s` on a daemon thread (a threaded shell's gauges)."""

    def loop() -> None:
        while True:
            probe()
            time.sleep(interval_s)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread
