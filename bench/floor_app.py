"""PERF-4 floor: the least any Stasis application can do — one `continue` per call.

`python -m bench.floor_app` connects to ARI as the app `callguard-floor` and answers every
StasisStart with a single `POST /channels/{id}/continue` into [bench-baseline] (the same
media work as the pure-dialplan baseline). No database, no decision, no other request: the
difference between this path and the baseline is what Stasis itself costs on this Asterisk,
and the difference between the ARI path and this one is what callguard's app adds.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import uvloop

from ari_app.client import AriClient, AriError
from callguard.config import load_settings
from callguard.realtime import share_asterisk_priority

APP = "callguard-floor"
CONTEXT = "bench-baseline"
# The one event the floor acts on. callguard's app asks Asterisk for an allow-list of the
# events it uses (ari_app.app.ALLOWED_EVENTS); the floor does the same with the least list,
# so Asterisk builds and sends it nothing else either (PERF-4: a setting that lowers the
# floor applies to every ARI path alike).
ALLOWED = ("StasisStart",)


async def _filter(ari: AriClient) -> None:
    try:
        await ari.allow_events(ALLOWED)
    except AriError as exc:
        print(f"floor app: event filter not set: {exc}", flush=True)


async def _continue(ari: AriClient, channel: dict[str, Any]) -> None:
    exten = str(channel.get("dialplan", {}).get("exten", ""))
    try:
        await ari.continue_in_dialplan(str(channel["id"]), CONTEXT, exten)
    except AriError:
        pass  # the caller hung up meanwhile; nothing to undo


async def run(stop: asyncio.Event) -> None:
    """The same client, event loop (uvloop) and JSON parser (orjson) as callguard's app, so
    the floor differs from it only in what the app does per call."""
    settings = load_settings()
    tasks: set[asyncio.Task[None]] = set()
    async with AriClient(settings.ari_url, settings.ari_user, settings.ari_password,
                         APP) as ari:
        async for event in ari.events(stop):
            kind = event.get("type")
            if kind == "_Connected":  # (again after a reconnection: a new session)
                print("floor app connected", flush=True)
                task = asyncio.create_task(_filter(ari))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif kind == "StasisStart":
                task = asyncio.create_task(_continue(ari, event["channel"]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    # The same scheduling as callguard's app (callguard.realtime), or the floor would be
    # measured at a disadvantage beside a real-time Asterisk.
    refused = share_asterisk_priority(load_settings().rt_priority)
    if refused:
        print(f"floor app at normal scheduling: {refused}", flush=True)
    stop = asyncio.Event()

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        consume = asyncio.create_task(run(stop))
        await stop.wait()
        consume.cancel()  # the event stream waits on the websocket; stop it there
        try:
            await consume
        except asyncio.CancelledError:
            pass

    uvloop.run(runner())


if __name__ == "__main__":
    main()
