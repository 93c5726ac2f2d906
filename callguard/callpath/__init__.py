"""One call core for both shells (REL-1, REL-5): raw facts → local lookups → Decision, the
bookkeeping writes and the CG_* dialplan variables. No I/O, no clock (time comes in the facts).

The ARI app (ari_app/calls.py) and the FastAGI fallback (agi_scripts/fastagi.py) each only
turn their transport's view of a channel into `RawInbound` / `RawOutbound` (their adapters),
call `plan_inbound` / `plan_outbound` with the process's LocalState, and carry out the plan:
write `plan.book.ops`, set `plan.target.variables`, send the channel to `plan.target.context`.
tests/unit/test_callpath_parity.py feeds the same call through both adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from callguard.callflow import (
    FOLLOW_RECORDING,
    Bookkeeping,
    answered_at,
    capacity_for,
    ended_ops,
    inbound_bookkeeping,
    outbound_bookkeeping,
)
from callguard.dialplan import (
    DialplanTarget,
    audio_format_present,
    audio_is_wideband,
    target_for,
)
from callguard.domain import privacy
from callguard.domain.routing import (
    Connect,
    Decision,
    InboundFacts,
    NuisanceMenu,
    OutboundFacts,
    decide_inbound,
    decide_outbound,
)
from callguard.journal import Op
from callguard.localstate import LocalState


@dataclass(frozen=True)
class Limits:
    """The process's settings the call path needs (site_settings rows override some)."""

    hmac_key: bytes
    max_recordings: int
    at_capacity_policy: str
    ring_timeout_s: int
    recordings_root: str  # the recordings directory as Asterisk sees it


@dataclass(frozen=True)
class RawInbound:
    called: str  # the dialed extension
    caller_number: str  # caller ID number as received (untrusted)
    withheld: bool  # CALLERID(pres) prohib*
    resource_priority: bool  # an RFC 4412 Resource-Priority header was present
    audio_format: str | None  # CHANNEL(audionativeformat); None: not known (assume audio)
    channel_id: str
    now: datetime
    # CHANNEL(videonativeformat): a videophone's offer (source 004); None: not known
    video_format: str | None = None


@dataclass(frozen=True)
class RawOutbound:
    endpoint: str
    dialed: str
    visited_network: bool
    resource_priority: bool
    channel_id: str
    now: datetime


@dataclass(frozen=True)
class CallPlan:
    channel_id: str
    decision: Decision
    book: Bookkeeping
    target: DialplanTarget | None  # None for the interactive 144 menu
    log: dict[str, Any]  # what the shells log about the decision (no caller numbers)
    recordings_delta: int = 0  # +1: a recording starts (REC-CAP-1 local count)
    direction: str = ""  # "in" | "out" (metrics, the overview's call_outcomes row)
    contract_id: int | None = None


def _capacity(state: LocalState, limits: Limits) -> Any:
    return capacity_for(state.site, state.active_recordings, limits.max_recordings,
                        limits.at_capacity_policy)


def _target(decision: Decision, limits: Limits) -> DialplanTarget | None:
    return None if isinstance(decision, NuisanceMenu) else target_for(
        decision, limits.recordings_root)


def _recorded(decision: Decision) -> bool:
    return isinstance(decision, Connect) and decision.record is not None


def plan_inbound(raw: RawInbound, state: LocalState, limits: Limits) -> CallPlan:
    site = state.site
    identity = privacy.caller_identity(raw.caller_number, None, raw.withheld)
    facts = InboundFacts(
        called=raw.called, caller=identity,
        presented="anonymous" if raw.withheld or identity is None else identity,
        resource_priority=raw.resource_priority, channel_id=raw.channel_id, now=raw.now,
    )
    number = site.numbers.get(raw.called)
    key = privacy.caller_key(limits.hmac_key, identity) if identity else None
    contract = site.contracts.get(number.contract) if number else None
    blocked = number is not None and state.is_blocked(number.list_id, key)
    # When in doubt (format unknown) the caller hears the message (NCR-REJ-2).
    has_audio = raw.audio_format is None or audio_format_present(raw.audio_format)
    has_video = blocked and raw.video_format is not None and audio_format_present(
        raw.video_format)
    # Source 004 高音質電話: a listed caller's G.722 call is asked to call again (488).
    wideband = blocked and raw.audio_format is not None and audio_is_wideband(raw.audio_format)
    decision = decide_inbound(
        site, facts, blocked=blocked, has_audio=has_audio, has_video=has_video,
        wideband=wideband,
        capacity=_capacity(state, limits),
        ring_timeout_s=site.setting_int("ring_timeout_s", limits.ring_timeout_s),
    )
    # The call log never holds the list key itself, only a per-call seal of it (SEC-3),
    # made with the rows (after the ARI app's continue, PERF-1).
    book = inbound_bookkeeping(
        decision, number, contract,
        (lambda: privacy.seal_key(limits.hmac_key, raw.channel_id, key)) if key else None,
        raw.channel_id, raw.now)
    return CallPlan(raw.channel_id, decision, book, _target(decision, limits), {
        "called": raw.called, "caller": privacy.mask(identity),
        "decision": type(decision).__name__, "note": getattr(decision, "note", ""),
        "recorded": _recorded(decision),
    }, 1 if book.follow == FOLLOW_RECORDING else 0, "in", contract.id if contract else None)


def plan_outbound(raw: RawOutbound, state: LocalState, limits: Limits) -> CallPlan:
    site = state.site
    facts = OutboundFacts(raw.endpoint, raw.dialed, raw.visited_network,
                          raw.resource_priority, raw.channel_id, raw.now)
    endpoint = site.endpoints.get(raw.endpoint)
    contract = site.contracts.get(endpoint.contract) if endpoint else None
    decision = decide_outbound(site, facts, capacity=_capacity(state, limits))
    book = outbound_bookkeeping(decision, contract, raw.channel_id, raw.now)
    return CallPlan(raw.channel_id, decision, book, _target(decision, limits), {
        "endpoint": raw.endpoint, "decision": type(decision).__name__,
        "note": getattr(decision, "note", ""), "recorded": _recorded(decision),
    }, 1 if book.follow == FOLLOW_RECORDING else 0, "out", contract.id if contract else None)


def plan_ended(channel_id: str, follow: str, now: datetime,
               answered_ms: str | None = None) -> list[Op]:
    """The writes at a followed call's end. `answered_ms`: Dial's ANSWEREDTIME_MS, for a
    shell that saw no answer event (the fallback)."""
    ops = ended_ops(channel_id, follow, now)
    if follow == FOLLOW_RECORDING and answered_ms is not None:
        answered = answered_at(now, answered_ms)
        if answered is not None:
            ops.insert(0, Op("recording_answered",
                             {"channel_id": channel_id, "answered_at": answered}))
    return ops


def multi_channel(state: LocalState, menu: NuisanceMenu) -> bool:
    """NCR-REG-3: the 60 s window applies to the menu's scope."""
    info = state.site.numbers.get(menu.number)
    return bool(info and info.multi_channel_scope)
