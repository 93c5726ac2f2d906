"""Inbound and outbound call handling: gather facts, ask the domain, carry out the decision.

Thin I/O shell: every rule lives in callguard.domain; this file only talks to ARI and the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ari_app.client import AriClient, AriError, call_failure
from ari_app.menu144 import run_menu
from ari_app.overload import CLAIM_AFTER_S, event_age_s
from ari_app.site_cache import SiteCache
from ari_app.store import Store
from callguard import metrics
from callguard.callflow import FOLLOW_RECORDING
from callguard.callpath import (
    CallPlan,
    Limits,
    RawInbound,
    RawOutbound,
    plan_inbound,
    plan_outbound,
)
from callguard.config import Settings
from callguard.dialplan import ari_extension
from callguard.domain.routing import NuisanceMenu
from callguard.recording_files import prepare_dir

log = logging.getLogger("callguard.calls")

# PERF-1: a call's bookkeeping (its rows, its log line) waits this long once its continue is
# answered, so that Asterisk takes the call on first (the continue's dialplan up to Dial's
# INVITE, or a rejection's answer): Asterisk and this app share one core at the same
# real-time priority, and Python's work right after the continue held Asterisk's channel
# thread off it (0.1-0.6 ms more from the continue to the INVITE than the floor app's).
AFTER_CONTINUE_S = 0.005


@dataclass(frozen=True)
class Followed:
    why: str  # callflow.FOLLOW_RECORDING | FOLLOW_INBOUND
    rel_path: str = ""  # the recording file, for finishing it without a database read
    row: str = ""  # the channel its row is keyed by, when not this one (a transfer, issue #14)


@dataclass
class CallEnv:
    """What a handler needs; passed in, so handlers are testable with fakes."""

    settings: Settings
    ari: AriClient
    store: Store
    site: SiteCache
    tracked: dict[str, Followed]  # calls being finished (call-end bookkeeping)
    queues: dict[str, asyncio.Queue[dict[str, Any]]]  # events of channels a handler waits on
    # StasisStart (monotonic clock) and direction of calls not yet decided (decision latency)
    started: dict[str, tuple[float, str]] = field(default_factory=dict)
    # Calls whose continue is in flight: their rows are queued once it is answered, and a
    # call's end (its hangup handler's StasisStart) waits for them, so the writer never gets
    # an end before its start.
    queuing: dict[str, asyncio.Event] = field(default_factory=dict)
    # The global CG_REC_ROOT is set in Asterisk (on connect): recordings may travel in the
    # continue extension.
    rec_root_set: bool = True


def endpoint_of(channel_name: str) -> str:
    """`PJSIP/f1-a-0000002a` → `f1-a`."""
    tech, _, rest = channel_name.partition("/")
    return rest.rpartition("-")[0] if tech == "PJSIP" else ""


def _flag(args: list[str], index: int) -> bool:
    return len(args) > index and args[index] == "1"


def _prepare_dir(env: CallEnv, plan: CallPlan) -> None:
    """The recording's directory, before the continue starts MixMonitor (the services own
    the recordings tree, Asterisk writes into it, SEC-4)."""
    if plan.book.rel_path:
        prepare_dir(env.settings.recordings_dir, plan.book.rel_path)


def _count_recording(env: CallEnv, plan: CallPlan) -> None:
    """The recording's slot (REC-CAP-1 local count), before the next call is decided."""
    if plan.recordings_delta:
        env.site.keeper.adjust_recordings(plan.recordings_delta)


def continue_now(env: CallEnv, plan: CallPlan, *, created: object = None,
                 ) -> Coroutine[Any, Any, None] | None:
    """PERF-1: the decision's continue written before the StasisStart handler returns, not
    one pass of the event loop later in a task, when nothing has to come first: the call is
    on time, not followed by subscription, its decision fits the extension and a kept
    connection is free. The coroutine returned does the rest of `carry_out` (awaiting it is a
    must); None: `carry_out` does it all."""
    target = plan.target
    if (target is None or not env.rec_root_set or _late(created)
            or (plan.book.follow == FOLLOW_RECORDING and plan.direction == "out")):
        return None
    extension = ari_extension(target, plan.book.follow, plan.channel_id,
                              env.settings.recordings_asterisk_dir)
    if extension is None:
        return None
    ready = env.ari.ready()
    if ready is None:
        return None
    try:
        _prepare_dir(env, plan)
    except BaseException:
        env.ari.unready(ready)
        raise
    sent = env.ari.continue_on(ready, plan.channel_id, target.context, extension)
    # Written. What follows delays no call: the next StasisStart is handled after it.
    queued = _in_flight(env, plan)
    _count_recording(env, plan)
    _decision_sent(env, plan.channel_id)
    return _answered(env, plan, queued, sent)


def _late(created: object) -> bool:
    age = event_age_s(created, datetime.now(UTC))
    return age is not None and age > CLAIM_AFTER_S


async def carry_out(env: CallEnv, plan: CallPlan, *, created: object = None) -> None:
    """Send the channel on into its cg-* context with ONE request (PERF-1): the decision
    travels as the continue target (callguard.dialplan.ari_extension). The call's rows go to
    the batching writer once Asterisk has answered the continue: a call that never got past
    Stasis (the caller hung up meanwhile, or the fallback took it) leaves no row behind, no
    call "in progress" for ever and no recording slot taken. A followed call's end comes
    back through its hangup handler ([cg-ari-ended])."""
    target, book = plan.target, plan.book
    assert target is not None
    channel_id = plan.channel_id
    if _late(created):
        # Late (a backlog, a pause): first take the call from the dialplan's 1 s Stasis()
        # deadline. If the deadline won, this fails (409) before any row is written and the
        # FastAGI fallback alone handles the call (REL-7). On time, the cg-* context clears it.
        await env.ari.set_variable(channel_id, "TIMEOUT(absolute)", "0")
    _count_recording(env, plan)
    _prepare_dir(env, plan)
    follow = book.follow
    if follow == FOLLOW_RECORDING and plan.direction == "out":
        # The customer's phone (this channel) may transfer the call away and leave while the
        # recording goes on (issue #14): followed by subscription and its events instead of
        # the hangup handler (one more request for these calls). Its rows go first: its
        # ChannelDestroyed finishes them, whatever becomes of the continue.
        await env.store.write([*book.ops, _outcome(plan)])
        env.tracked[channel_id] = Followed(follow, book.rel_path)
        try:
            await env.ari.subscribe_channel(channel_id)
        except AriError as exc:
            env.tracked.pop(channel_id, None)
            log.warning("subscribe failed: %s", exc)
        await _answered(env, plan, _in_flight(env, plan), _sent(env, plan, ""), rows=False)
        return
    await _answered(env, plan, _in_flight(env, plan), _sent(env, plan, follow))


async def _sent(env: CallEnv, plan: CallPlan, follow: str) -> None:
    """The continue, after the variables when the decision does not fit the extension."""
    target = plan.target
    assert target is not None
    channel_id = plan.channel_id
    extension = ari_extension(target, follow, channel_id,
                              env.settings.recordings_asterisk_dir) \
        if env.rec_root_set else None
    if extension is None:
        # Does not fit an extension: the variables first (one request), then the continue.
        values = {k: v for k, v in target.variables.items() if v}
        if follow:
            values["CG_FOLLOW"] = follow
        if values:
            await env.ari.set_variables(channel_id, values)
        extension = "a" if target.context == "cg-connect" else "s"
    _decision_sent(env, channel_id)
    await env.ari.continue_in_dialplan(channel_id, target.context, extension)


def _in_flight(env: CallEnv, plan: CallPlan) -> asyncio.Event:
    """The call's continue is about to go: until its rows are queued (`_answered`), the
    call's end waits on this (`env.queuing`)."""
    queued = env.queuing[plan.channel_id] = asyncio.Event()
    return queued


async def _answered(env: CallEnv, plan: CallPlan, queued: asyncio.Event,
                    sent: Coroutine[Any, Any, None], *, rows: bool = True) -> None:
    """Await the continue (`sent`); then the call's rows go to the writer (`rows`: not
    written yet), and the call leaves `env.queuing` (`queued`, from `_in_flight`)."""
    write_rows = rows  # in the finally below, unless the call never got past Stasis
    try:
        await sent
    except AriError as exc:
        if rows and call_failure(exc) in ("gone", "left-stasis"):
            # Never past Stasis: no rows (the fallback, when it took the call, keeps its
            # own), and the recording slot counted above is free again (REC-CAP-1).
            write_rows = False
            if plan.recordings_delta:
                env.site.keeper.adjust_recordings(-plan.recordings_delta)
        raise
    finally:  # also when the continue's fate is unknown (no answer): the call may go on
        try:
            if write_rows:
                await _rows_after_asterisk(env, plan)
        finally:  # also when the app stops during the wait
            env.queuing.pop(plan.channel_id, None)
            queued.set()


async def _rows_after_asterisk(env: CallEnv, plan: CallPlan) -> None:
    """The call's rows to the writer AFTER_CONTINUE_S from now; when the app stops meanwhile
    (its tasks are cancelled), at once: a graceful stop loses no decided call's rows."""
    try:
        await asyncio.sleep(AFTER_CONTINUE_S)
    finally:
        await env.store.write([*plan.book.ops, _outcome(plan)])


def _outcome(plan: CallPlan) -> Any:
    """The call_outcomes row (overview page, issue 18) and the decision counter."""
    metrics.call_decided(metrics.VIA_ARI, plan.direction, plan.decision)
    return metrics.outcome_op(plan.direction, plan.decision, metrics.VIA_ARI, plan.contract_id,
                              datetime.now(UTC))


def _decision_sent(env: CallEnv, channel_id: str) -> None:
    started = env.started.pop(channel_id, None)
    if started is not None:
        metrics.decision_latency(metrics.VIA_ARI, started[1], time.monotonic() - started[0])


def inbound_facts(channel: dict[str, Any], args: list[str], now: datetime) -> RawInbound:
    """The ARI adapter: StasisStart's channel and the dialplan's Stasis() arguments
    (inbound, Resource-Priority flag, CALLERID(pres), CHANNEL(audionativeformat))."""
    return RawInbound(
        called=str(channel.get("dialplan", {}).get("exten", "")),
        caller_number=str(channel.get("caller", {}).get("number", "")),
        withheld=len(args) > 2 and args[2].startswith("prohib"),
        resource_priority=_flag(args, 1),
        audio_format=args[3] if len(args) > 3 else None,
        video_format=args[4] if len(args) > 4 else None,
        channel_id=str(channel["id"]),
        now=now,
    )


def outbound_facts(channel: dict[str, Any], args: list[str], now: datetime) -> RawOutbound:
    return RawOutbound(
        endpoint=endpoint_of(str(channel.get("name", ""))),
        dialed=str(channel.get("dialplan", {}).get("exten", "")),
        # Carrier headers from customer equipment are never trusted (SEC-4; the dialplan
        # passes 0,0): a handset's priority is its line on the priority list, its roaming
        # the endpoint's flag.
        visited_network=False,
        resource_priority=False,
        channel_id=str(channel["id"]),
        now=now,
    )


def limits_of(settings: Settings) -> Limits:
    return Limits(settings.hmac_key, settings.max_recordings, settings.at_capacity_policy,
                  settings.ring_timeout_s, settings.recordings_asterisk_dir)


def start_inbound(env: CallEnv, channel: dict[str, Any], args: list[str],
                  ) -> Coroutine[Any, Any, None]:
    """Decided from memory (REL-5): no database round trip before the call moves on. The
    continue is written before this returns when it can be (`continue_now`, PERF-1); the
    coroutine returned (to be awaited) does the rest."""
    plan = plan_inbound(inbound_facts(channel, args, datetime.now(UTC)), env.site.state,
                        limits_of(env.settings))
    created = channel.get("creationtime")
    return _inbound_rest(env, plan, continue_now(env, plan, created=created), created)


async def _inbound_rest(env: CallEnv, plan: CallPlan, sent: Coroutine[Any, Any, None] | None,
                        created: object) -> None:
    try:
        await (sent if sent is not None else carry_out(env, plan, created=created))
    finally:  # the line after the continue: formatting it does not delay the call
        log.info("inbound decision", extra=plan.log)


def start_outbound(env: CallEnv, channel: dict[str, Any], args: list[str],
                   ) -> Coroutine[Any, Any, None]:
    """As `start_inbound`; the 144 menu (a session inside Stasis) starts in the coroutine."""
    plan = plan_outbound(outbound_facts(channel, args, datetime.now(UTC)), env.site.state,
                         limits_of(env.settings))
    created = channel.get("creationtime")
    sent = None if isinstance(plan.decision, NuisanceMenu) else continue_now(
        env, plan, created=created)
    return _outbound_rest(env, plan, sent, created)


async def _outbound_rest(env: CallEnv, plan: CallPlan, sent: Coroutine[Any, Any, None] | None,
                         created: object) -> None:
    if isinstance(plan.decision, NuisanceMenu):
        log.info("outbound decision", extra=plan.log)
        env.started.pop(plan.channel_id, None)
        await env.store.write([_outcome(plan)])
        await run_menu(env, plan.channel_id, plan.decision)
        return
    try:
        await (sent if sent is not None else carry_out(env, plan, created=created))
    finally:  # as inbound: after the continue and its bookkeeping
        log.info("outbound decision", extra=plan.log)
