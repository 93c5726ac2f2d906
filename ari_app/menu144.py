"""The 144 menu (NCR-*): guidance with barge-in, digit timeouts, three tries, then the chosen
operation on the line's list and its result guidance. Decisions come from
callguard.domain.nuisance; storage from callguard.db.nuisance_repo (row-locked, REL-3)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session

from ari_app.client import AriError
from ari_app.store import StoreUnavailable
from callguard.db import nuisance_repo
from callguard.domain import nuisance
from callguard.domain.nuisance import MenuAction, MenuState, Outcome
from callguard.domain.routing import NuisanceMenu

if TYPE_CHECKING:
    from ari_app.calls import CallEnv

log = logging.getLogger("callguard.menu")
T = TypeVar("T")

DIGIT_WAIT_S = 5.0  # after the menu guidance has ended
EVICTION_WAIT_S = 8.0
DB_TIMEOUT_S = 3.0


class CallerGone(Exception):
    """The caller hung up (or the channel left the app) during the menu."""


class Menu:
    def __init__(self, env: CallEnv, channel_id: str, decision: NuisanceMenu) -> None:
        self.env = env
        self.channel_id = channel_id
        self.decision = decision
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pending_digit: str | None = None

    # ---- media primitives ----------------------------------------------------------------
    async def _next_event(self, timeout: float | None) -> dict[str, Any] | None:
        try:
            event = await asyncio.wait_for(self.events.get(), timeout)
        except TimeoutError:
            return None
        if event.get("type") in ("StasisEnd", "ChannelHangupRequest", "ChannelDestroyed"):
            raise CallerGone
        return event

    async def play(self, prompts: list[str], barge_in: bool) -> str | None:
        """Play prompts in order; with barge-in a digit stops them and is returned."""
        playback_id = uuid.uuid4().hex
        for name in prompts:
            log.info("prompt", extra={"prompt": name})
        await self.env.ari.play(self.channel_id, [f"sound:callguard/{p}" for p in prompts],
                                playback_id)
        while True:
            event = await self._next_event(None)
            assert event is not None
            kind = event.get("type")
            if kind == "ChannelDtmfReceived" and barge_in:
                digit = str(event.get("digit", ""))
                try:
                    await self.env.ari.stop_playback(playback_id)
                except AriError:
                    pass  # it had just finished
                log.info("digit", extra={"digit": digit, "barge_in": True})
                return digit
            if kind == "PlaybackFinished" and event.get("playback", {}).get("id") == playback_id:
                return None

    async def digit(self, timeout: float) -> str | None:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return None
            event = await self._next_event(remaining)
            if event is None:
                return None
            if event.get("type") == "ChannelDtmfReceived":
                digit = str(event.get("digit", ""))
                log.info("digit", extra={"digit": digit, "barge_in": False})
                return digit

    async def ask(self, prompts: list[str], timeout: float) -> str | None:
        return await self.play(prompts, barge_in=True) or await self.digit(timeout)

    async def db(self, work: Callable[[Session], T]) -> T:
        async def tx() -> T:
            async with self.env.store.sessions.begin() as session:
                return await session.run_sync(work)
        try:
            return await asyncio.wait_for(tx(), DB_TIMEOUT_S)
        except Exception as exc:  # any storage failure → "registration failed" (NCR-REG-7)
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    # ---- the menu ------------------------------------------------------------------------
    async def run(self) -> None:
        await self.env.ari.answer(self.channel_id)
        state = MenuState(1)
        choice = await self.ask([nuisance.MENU], DIGIT_WAIT_S)
        while True:
            state, action = nuisance.on_menu_input(state, choice)
            log.info("menu input", extra={"action": action.value, "tries": state.attempts})
            if action is MenuAction.HANGUP:
                return
            if action is MenuAction.PLAY_MENU:
                choice = await self.ask([nuisance.MENU], DIGIT_WAIT_S)
                continue
            break
        result = await self.perform(action)
        await self.play(result, barge_in=False)

    async def perform(self, action: MenuAction) -> list[str]:
        list_id = self.decision.list_id
        now = datetime.now(UTC)
        try:
            if action is MenuAction.REGISTER:
                return await self.register(list_id, now)
            if action is MenuAction.DELETE_NEWEST:
                removed = await self.db(lambda s: nuisance_repo.delete_newest(s, list_id))
                return [nuisance.DELETED_NEWEST if removed else nuisance.LIST_EMPTY]
            if action is MenuAction.DELETE_ALL:
                count = await self.db(lambda s: nuisance_repo.delete_all(s, list_id))
                return [nuisance.DELETED_ALL if count else nuisance.LIST_EMPTY]
            this, last = await self.db(lambda s: nuisance_repo.counts(s, list_id, now))
            return nuisance.count_prompts(this, last)
        except (StoreUnavailable, nuisance_repo.ListGone) as exc:
            log.warning("144 operation failed: %s", exc)
            return [nuisance.REGISTER_FAILED]

    async def register(self, list_id: int, now: datetime) -> list[str]:
        site = self.env.site.current
        info = site.numbers.get(self.decision.number)
        multi = bool(info and info.multi_channel_scope)
        calls = await self.db(lambda s: nuisance_repo.recent_calls(s, list_id))
        last = nuisance.select_last_caller(calls, now, multi)
        if last.key is None:
            log.info("cannot register", extra={"reason": last.refusal.value if last.refusal
                                                else ""})
            return [nuisance.CANNOT_IDENTIFY]
        key = last.key
        plan = await self.db(lambda s: nuisance_repo.register(s, list_id, key, False))
        if plan.outcome is Outcome.NEEDS_EVICTION_CONFIRM:
            answer = await self.ask([nuisance.LIST_FULL], EVICTION_WAIT_S)
            if not nuisance.on_eviction_answer(answer):
                return [nuisance.REGISTER_CANCELLED]
            plan = await self.db(lambda s: nuisance_repo.register(s, list_id, key, True))
        log.info("registered", extra={"outcome": plan.outcome.value})
        return [nuisance.REGISTERED]


async def run_menu(env: CallEnv, channel_id: str, decision: NuisanceMenu) -> None:
    menu = Menu(env, channel_id, decision)
    env.queues[channel_id] = menu.events
    try:
        await menu.run()
    except CallerGone:
        log.info("caller hung up during the 144 menu")
        return
    finally:
        env.queues.pop(channel_id, None)
    try:
        await env.ari.hangup(channel_id)
    except AriError:
        pass  # already gone
