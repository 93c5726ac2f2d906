"""Inbound and outbound call handling: gather facts, ask the domain, carry out the decision.

Thin I/O shell: every rule lives in callguard.domain; this file only talks to ARI and the store.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ari_app.client import AriClient, AriError
from ari_app.menu144 import run_menu
from ari_app.site_cache import SiteCache
from ari_app.store import Store, StoreUnavailable
from callguard import dialplan
from callguard.callflow import (
    Bookkeeping,
    capacity_for,
    inbound_bookkeeping,
    outbound_bookkeeping,
)
from callguard.config import Settings
from callguard.dialplan import audio_format_present
from callguard.domain import privacy
from callguard.domain.routing import (
    Capacity,
    Connect,
    Decision,
    InboundFacts,
    NuisanceMenu,
    OutboundFacts,
    decide_inbound,
    decide_outbound,
)

log = logging.getLogger("callguard.calls")


@dataclass(frozen=True)
class Followed:
    why: str  # callflow.FOLLOW_RECORDING | FOLLOW_INBOUND
    rel_path: str = ""  # the recording file, for finishing it without a database read


@dataclass
class CallEnv:
    """What a handler needs; passed in, so handlers are testable with fakes."""

    settings: Settings
    ari: AriClient
    store: Store
    site: SiteCache
    tracked: dict[str, Followed]  # channels followed to their end (call-end bookkeeping)
    queues: dict[str, asyncio.Queue[dict[str, Any]]]  # events of channels a handler waits on


def endpoint_of(channel_name: str) -> str:
    """`PJSIP/f1-a-0000002a` → `f1-a`."""
    tech, _, rest = channel_name.partition("/")
    return rest.rpartition("-")[0] if tech == "PJSIP" else ""


def _flag(args: list[str], index: int) -> bool:
    return len(args) > index and args[index] == "1"


async def _capacity(env: CallEnv, needed: bool) -> Capacity:
    active = 0
    if needed:
        try:
            active = await env.store.active_recordings()
        except StoreUnavailable:
            pass  # fail open: recording is still attempted (REL-2)
    return capacity_for(env.site.current, active, env.settings.max_recordings,
                        env.settings.at_capacity_policy)


async def _has_audio(env: CallEnv, channel_id: str) -> bool:
    try:
        fmt = await env.ari.get_variable(channel_id, "CHANNEL(audionativeformat)")
    except AriError:
        return True  # when in doubt, the caller hears the message
    return audio_format_present(fmt)


async def carry_out(env: CallEnv, channel_id: str, decision: Decision,
                    book: Bookkeeping | None = None) -> None:
    """Write the call's rows, set the CG_* variables and send the channel on into its
    cg-* context, with as few requests on the call's path as possible (PERF-1)."""
    target = dialplan.target_for(decision, env.settings.recordings_asterisk_dir)
    # The channel is fresh from StasisStart: an unset variable already expands to "", so
    # only non-empty values are set, all in one request where possible.
    values = {k: v for k, v in target.variables.items() if v}
    jobs: list[Any] = [env.ari.set_variables(channel_id, values)] if values else []
    ops = book.ops if book is not None else []
    if book is not None and book.follow:
        # The call's end (ChannelDestroyed) updates these rows: they and the subscription
        # must be in place before the channel moves on.
        jobs += [env.store.write(ops), _best_effort("subscribe", _follow(env, channel_id, book))]
        ops = []
    await asyncio.gather(*jobs)
    # Rows nothing later depends on (e.g. a rejection and its count) need not hold the
    # caller: they are written while the dialplan already plays (journaled if need be).
    await asyncio.gather(env.ari.continue_in_dialplan(channel_id, target.context),
                         env.store.write(ops))


async def _follow(env: CallEnv, channel_id: str, book: Bookkeeping) -> None:
    """Get ChannelDestroyed for a channel after it leaves Stasis (call end bookkeeping)."""
    env.tracked[channel_id] = Followed(book.follow, book.rel_path)
    await env.ari.subscribe_channel(channel_id)


async def _best_effort(what: str, coro: Any) -> None:
    try:
        await coro
    except (StoreUnavailable, AriError) as exc:
        log.warning("%s failed: %s", what, exc)


async def handle_inbound(env: CallEnv, channel: dict[str, Any], args: list[str]) -> None:
    now = datetime.now(UTC)
    site = env.site.current
    channel_id = channel["id"]
    called = str(channel.get("dialplan", {}).get("exten", ""))
    raw_caller = str(channel.get("caller", {}).get("number", ""))
    withheld = len(args) > 2 and args[2].startswith("prohib")
    identity = privacy.caller_identity(raw_caller, None, withheld)
    facts = InboundFacts(
        called=called,
        caller=identity,
        presented="anonymous" if withheld or identity is None else identity,
        resource_priority=_flag(args, 1),
        channel_id=channel_id,
        now=now,
    )
    number = site.numbers.get(called)
    caller_key = privacy.caller_key(env.settings.hmac_key, identity) if identity else None
    contract = site.contracts.get(number.contract) if number else None
    list_id = number.list_id if number is not None and caller_key is not None else None
    records = contract is not None and contract.recording_active(now.date())
    blocked, active = False, 0
    if list_id is not None or records:
        # The blocklist probe and the capacity count in one round trip (PERF-1).
        try:
            blocked, active = await env.store.screening_facts(list_id, caller_key, records)
        except StoreUnavailable as exc:
            # Fail open: not screened, recording still attempted (REL-2).
            log.warning("blocklist/capacity lookup failed, not screening: %s", exc)
    capacity = capacity_for(site, active, env.settings.max_recordings,
                            env.settings.at_capacity_policy)
    # Only a listed caller needs to know whether the offer carries audio (NCR-REJ-2).
    # The dialplan passes the audio format as the 4th Stasis argument (no round trip).
    has_audio = not blocked or (audio_format_present(args[3]) if len(args) > 3
                                else await _has_audio(env, channel_id))
    decision = decide_inbound(
        site, facts, blocked=blocked, capacity=capacity, has_audio=has_audio,
        ring_timeout_s=site.setting_int("ring_timeout_s", env.settings.ring_timeout_s),
    )
    log.info("inbound decision", extra={
        "called": called, "caller": privacy.mask(identity), "decision": type(decision).__name__,
        "note": getattr(decision, "note", ""),
        "recorded": isinstance(decision, Connect) and decision.record is not None,
    })

    sealed = privacy.seal_key(env.settings.hmac_key, channel_id, caller_key) if caller_key \
        else None  # the call log never holds the list key itself (SEC-3)
    book = inbound_bookkeeping(decision, number, contract, sealed, channel_id, now)
    await carry_out(env, channel_id, decision, book)


async def handle_outbound(env: CallEnv, channel: dict[str, Any], args: list[str]) -> None:
    now = datetime.now(UTC)
    site = env.site.current
    channel_id = channel["id"]
    facts = OutboundFacts(
        endpoint=endpoint_of(str(channel.get("name", ""))),
        dialed=str(channel.get("dialplan", {}).get("exten", "")),
        visited_network=_flag(args, 2),
        resource_priority=_flag(args, 1),
        channel_id=channel_id,
        now=now,
    )
    endpoint = site.endpoints.get(facts.endpoint)
    contract = site.contracts.get(endpoint.contract) if endpoint else None
    capacity = await _capacity(
        env, contract is not None and contract.recording_active(now.date()))
    decision = decide_outbound(site, facts, capacity=capacity)
    log.info("outbound decision", extra={
        "endpoint": facts.endpoint, "decision": type(decision).__name__,
        "note": getattr(decision, "note", ""),
        "recorded": isinstance(decision, Connect) and decision.record is not None,
    })
    if isinstance(decision, NuisanceMenu):
        await run_menu(env, channel_id, decision)
        return
    await carry_out(env, channel_id, decision,
                    outbound_bookkeeping(decision, contract, channel_id, now))
