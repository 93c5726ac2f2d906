"""The 144 menu over AGI (REL-7, NCR-*): ari_app.menu144's very Menu — same steps, same
domain rules, same log records ("prompt", "digit", "menu input", "registered") — with its
two media primitives done by pyst2 on the FastAGI connection: STREAM FILE with every digit as
an escape digit for barge-in, WAIT FOR DIGIT for the digit timeouts.

pyst2 is blocking; the menu runs in the AGI handler thread's own event loop
(`asyncio.run`), so nothing else waits on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from asterisk.agi import AGIAppError, AGIException, AGIHangup

from ari_app.menu144 import CallerGone, ListStore, Menu, MenuTimings
from callguard.domain.routing import NuisanceMenu

log = logging.getLogger("callguard.menu")
DIGITS = "0123456789*#"
T = TypeVar("T")


def _on_channel(call: Callable[[], T]) -> T:
    try:
        return call()
    except AGIException as exc:  # hung up (AGIResultHangup) or the connection went away
        raise CallerGone from exc


class AgiMedia:
    """MenuAri over AGI: answer and hang up the AGI channel (playback is AgiMenu.play's)."""

    def __init__(self, agi: Any) -> None:
        self.agi = agi

    async def answer(self, channel_id: str) -> None:
        _on_channel(self.agi.answer)

    async def play(self, channel_id: str, media: list[str], playback_id: str) -> None:
        raise NotImplementedError("AgiMenu.play streams the files itself")

    async def stop_playback(self, playback_id: str) -> None:
        return None  # STREAM FILE stopped at the escape digit

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        _on_channel(self.agi.hangup)


class AgiMenu(Menu):
    def __init__(self, agi: Any, lists: ListStore, channel_id: str, decision: NuisanceMenu,
                 multi_channel: bool, timings: MenuTimings | None = None) -> None:
        super().__init__(AgiMedia(agi), lists, channel_id, decision, multi_channel, timings)
        self.agi = agi

    async def play(self, prompts: list[str], barge_in: bool) -> str | None:
        for name in prompts:
            log.info("prompt", extra={"prompt": name})
        escape = DIGITS if barge_in else ""
        for name in prompts:
            try:
                digit = self.agi.stream_file(f"callguard/{name}", escape)
            except AGIHangup as exc:
                raise CallerGone from exc
            except AGIAppError as exc:
                # `200 result=-1`: the prompt could not be played (missing or unreadable
                # file) or the caller hung up; pyst2 cannot tell which. Asterisk can: a channel
                # still there is "prompt failed, go on", as the ARI shell does with a failed
                # playback (REL-4); a hung-up one answers HANGUP or result=-1 (CallerGone).
                if _on_channel(self.agi.channel_status) < 0:
                    raise CallerGone from exc
                log.warning("prompt failed to play", extra={"prompts": [name]})
                continue
            except AGIException as exc:  # the connection went away
                raise CallerGone from exc
            if digit:
                log.info("digit", extra={"digit": digit, "barge_in": True})
                return str(digit)
        return None

    async def digit(self, timeout: float) -> str | None:
        digit = _on_channel(lambda: self.agi.wait_for_digit(int(timeout * 1000)))
        if not digit:
            return None
        log.info("digit", extra={"digit": digit, "barge_in": False})
        return str(digit)


async def run_agi_menu(agi: Any, lists: ListStore, channel_id: str, decision: NuisanceMenu,
                       multi_channel: bool) -> None:
    """Answer, the menu, its result guidance, release (as ari_app.menu144.run_menu)."""
    menu = AgiMenu(agi, lists, channel_id, decision, multi_channel)
    try:
        await menu.run()
    except CallerGone:
        log.info("caller hung up during the 144 menu")
        return
    try:
        await menu.ari.hangup(channel_id)
    except CallerGone:
        pass
