"""The 144 menu (NCR-*): guidance with barge-in, digit timeouts, three tries, then the chosen
operation on the line's list and its result guidance, then release.

Every rule comes from callguard.domain.nuisance (on_menu_input, select_last_caller,
count_prompts, on_eviction_answer, plan_registration inside the repo); storage is
callguard.db.nuisance_repo.AsyncLists (row-locked, REL-3). This file only sequences media:
`Menu` talks to ARI and the list store through two small interfaces, so it runs against fakes
in tests/unit/test_menu144.py and against Asterisk in tests/e2e/test_nuisance*.py.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from ari_app.client import AriError
from callguard import metrics
from callguard.db import nuisance_repo
from callguard.domain import nuisance
from callguard.domain.nuisance import MenuAction, Outcome, RegistrationPlan
from callguard.domain.routing import NuisanceMenu

if TYPE_CHECKING:
    from ari_app.calls import CallEnv

log = logging.getLogger("callguard.menu")

GONE_EVENTS = ("StasisEnd", "ChannelHangupRequest", "ChannelDestroyed")


@dataclass(frozen=True)
class MenuTimings:
    digit_wait_s: float = 5.0  # after the menu guidance has ended
    eviction_wait_s: float = 8.0  # after 「…よろしければ“0”…」 (NCR-REG-5)
    # A playback whose PlaybackFinished never comes must not hold the line for ever (REL-4);
    # the longest prompt (menu) is ~17 s.
    prompt_max_s: float = 60.0


class MenuAri(Protocol):
    async def answer(self, channel_id: str) -> None: ...
    async def play(self, channel_id: str, media: list[str], playback_id: str) -> None: ...
    async def stop_playback(self, playback_id: str) -> None: ...
    async def hangup(self, channel_id: str, reason: str = "normal") -> None: ...


class ListStore(Protocol):
    async def last_caller_candidates(self, list_id: int) -> list[nuisance.InboundCall]: ...
    async def register(self, list_id: int, caller_key: str,
                       evict_confirmed: bool) -> RegistrationPlan: ...
    async def delete_newest(self, list_id: int) -> bool: ...
    async def delete_all(self, list_id: int) -> int: ...
    async def counts(self, list_id: int, now: datetime) -> tuple[int, int | None]: ...


class CallerGone(Exception):
    """The caller hung up (or the channel left the app) during the menu."""


class Menu:
    """One 144 session on one channel. `events` receives that channel's ARI events."""

    def __init__(self, ari: MenuAri, lists: ListStore, channel_id: str,
                 decision: NuisanceMenu, multi_channel: bool,
                 timings: MenuTimings | None = None) -> None:
        self.ari = ari
        self.lists = lists
        self.channel_id = channel_id
        self.decision = decision
        self.multi_channel = multi_channel  # NCR-REG-3: the 60 s window applies
        self.timings = timings or MenuTimings()
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # 144 → 2 found nobody to register; its prompt alone cannot say so (a caller without
        # a number hears 「…登録に失敗しました。」, as on a storage failure): for the metrics.
        self.nobody_to_register = False

    # ---- media primitives ----------------------------------------------------------------
    async def _next_event(self, timeout: float) -> dict[str, Any] | None:
        try:
            event = await asyncio.wait_for(self.events.get(), timeout)
        except TimeoutError:
            return None
        if event.get("type") in GONE_EVENTS:
            raise CallerGone
        return event

    async def play(self, prompts: list[str], barge_in: bool) -> str | None:
        """Play prompts in order. With barge-in, a digit stops them and is returned (the
        source's スキップ機能); without, digits are ignored until the prompts end."""
        playback_id = uuid.uuid4().hex
        for name in prompts:
            log.info("prompt", extra={"prompt": name})
        await self.ari.play(self.channel_id, [f"sound:callguard/{p}" for p in prompts],
                            playback_id)
        deadline = asyncio.get_running_loop().time() + self.timings.prompt_max_s
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            event = await self._next_event(max(remaining, 0.0))
            if event is None:
                log.warning("no end of playback seen, going on", extra={"prompts": prompts})
                return None
            kind = event.get("type")
            if kind == "ChannelDtmfReceived" and barge_in:
                digit = str(event.get("digit", ""))
                try:
                    await self.ari.stop_playback(playback_id)
                except AriError:
                    pass  # it had just finished by itself
                log.info("digit", extra={"digit": digit, "barge_in": True})
                return digit
            playback = event.get("playback", {})
            if kind == "PlaybackFinished" and playback.get("id") == playback_id:
                if playback.get("state") == "failed":
                    log.warning("prompt failed to play", extra={"prompts": prompts})
                return None

    async def digit(self, timeout: float) -> str | None:
        """The next digit within `timeout` seconds, or None."""
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

    def discard_digits(self) -> None:
        """Drop what came while nothing was listening (digits pressed while the list store
        worked, a finished playback's event); a hang-up still counts. The AGI shell never
        sees such digits (Asterisk reads and drops them between commands): the same here, so
        a "2" pressed twice on a full list does not answer the question before it is asked."""
        while True:
            try:
                event = self.events.get_nowait()
            except asyncio.QueueEmpty:
                return
            if event.get("type") in GONE_EVENTS:
                raise CallerGone
            if event.get("type") == "ChannelDtmfReceived":
                log.info("digit discarded", extra={"digit": str(event.get("digit", ""))})

    async def ask(self, prompt: str, timeout: float) -> str | None:
        """A prompt that takes a digit during it (skip) or within `timeout` after it; digits
        pressed before it was asked are not its answer."""
        self.discard_digits()
        choice = await self.play([prompt], barge_in=True)
        return choice if choice is not None else await self.digit(timeout)

    # ---- the menu ------------------------------------------------------------------------
    async def run(self) -> None:
        """Answer, menu up to three times (NCR: invalid or no input repeats it), the chosen
        operation, its result guidance. The caller's release is run_menu's."""
        await self.ari.answer(self.channel_id)
        state, action = nuisance.start_menu()
        early: str | None = None  # a digit pressed during 「入力が正しくありません。」 (skip)
        while action is MenuAction.PLAY_MENU:
            choice = early if early is not None else await self.ask(
                nuisance.MENU, self.timings.digit_wait_s)
            state, action = nuisance.on_menu_input(state, choice)
            log.info("menu input", extra={"action": action.value, "tries": state.attempts})
            before = nuisance.guidance_after_input(choice, action)
            # A digit during 「入力が正しくありません。」 is the next try's choice (SPEC: DTMF
            # during any guidance interrupts it and counts as the choice). After the last try
            # there is no choice left: it plays whole, and the call is released.
            early = (await self.play(before, barge_in=action is MenuAction.PLAY_MENU)
                     if before else None)
        if action is MenuAction.HANGUP:
            metrics.menu144_done(action.value, [])
            return
        result = await self.perform(action)
        metrics.menu144_done(action.value, result, nobody_to_register=self.nobody_to_register)
        await self.play(result, barge_in=False)

    async def perform(self, action: MenuAction) -> list[str]:
        """The operation of a menu choice; its result guidance."""
        list_id = self.decision.list_id
        try:
            if action is MenuAction.REGISTER:
                return await self.register(list_id)
            if action is MenuAction.DELETE_NEWEST:  # NCR-DEL-1, NCR-DEL-3
                removed = await self.lists.delete_newest(list_id)
                return [nuisance.DELETED_NEWEST if removed else nuisance.LIST_EMPTY]
            if action is MenuAction.DELETE_ALL:  # NCR-DEL-2, NCR-DEL-3
                count = await self.lists.delete_all(list_id)
                return [nuisance.DELETED_ALL if count else nuisance.LIST_EMPTY]
            if action is MenuAction.READ_COUNTS:  # NCR-CNT-1
                this, last = await self.lists.counts(list_id, datetime.now(UTC))
                return nuisance.count_prompts(this, last)
        except (nuisance_repo.StorageFailed, nuisance_repo.ListGone) as exc:
            # NCR-REG-7: any failure, and the list is unchanged (the transaction rolled back);
            # only a registration says 「…登録に失敗しました。」 (source 004).
            log.warning("144 operation failed", extra={"action": action.value,
                                                       "error": str(exc)[:200]})
            return [nuisance.failure_prompt(action)]
        raise ValueError(f"not an operation: {action}")

    async def register(self, list_id: int) -> list[str]:
        """NCR-REG-1..6: the scope's last caller, then the row-locked registration; a full
        list asks 「…よろしければ“0”…」 first and only "0" evicts the oldest."""
        calls = await self.lists.last_caller_candidates(list_id)
        last = nuisance.select_last_caller(calls, datetime.now(UTC), self.multi_channel)
        if last.key is None:
            assert last.refusal is not None  # LastCaller holds exactly one of the two
            log.info("cannot register", extra={"reason": last.refusal.value})
            self.nobody_to_register = True
            return [nuisance.refusal_prompt(last.refusal)]
        plan = await self.lists.register(list_id, last.key, evict_confirmed=False)
        if plan.outcome is Outcome.NEEDS_EVICTION_CONFIRM:
            answer = await self.ask(nuisance.LIST_FULL, self.timings.eviction_wait_s)
            if not nuisance.on_eviction_answer(answer):
                log.info("registration cancelled", extra={"answered": answer is not None})
                return [nuisance.REGISTER_CANCELLED]
            # Re-planned on freshly locked rows: another session may have made room (REL-3).
            plan = await self.lists.register(list_id, last.key, evict_confirmed=True)
        log.info("registered", extra={"outcome": plan.outcome.value})
        return [nuisance.REGISTERED]


async def run_menu(env: CallEnv, channel_id: str, decision: NuisanceMenu) -> None:
    """Run the 144 menu on a channel in Stasis; events come through env.queues."""
    info = env.site.current.numbers.get(decision.number)
    lists = nuisance_repo.AsyncLists(env.store.sessions, secret=env.settings.hmac_key)
    menu = Menu(env.ari, lists, channel_id, decision,
                multi_channel=bool(info and info.multi_channel_scope))
    env.queues[channel_id] = menu.events
    try:
        # The menu is a long session inside Stasis(): lift the dialplan's 1 s deadline (REL-7).
        await env.ari.set_variable(channel_id, "TIMEOUT(absolute)", "0")
        await menu.run()
    except CallerGone:
        log.info("caller hung up during the 144 menu")
        return
    except AriError as exc:
        if exc.status == 409:  # the deadline passed first: the fallback has the call
            log.warning("144 call left Stasis before the menu started (1 s deadline)")
            return
        if exc.status != 404:
            raise  # the app's handler continues the channel into the fallback (REL-1)
        # Hung up while we were busy (e.g. storing): the next request found no channel.
        log.info("caller hung up during the 144 menu")
        return
    finally:
        env.queues.pop(channel_id, None)
    try:
        await env.ari.hangup(channel_id)
    except AriError:
        pass  # already gone
