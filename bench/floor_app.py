"""PERF-4 floor: the least any Stasis application can do — one `continue` per call.

`python -m bench.floor_app` connects to ARI as the app `callguard-floor` and answers every
StasisStart with a single `POST /channels/{id}/continue` into [bench-baseline] (the same
media work as the pure-dialplan baseline). No database, no decision, no other request: the
difference between this path and the baseline is what Stasis itself costs on this Asterisk,
and the difference between the ARI path and this one is what callguard's app adds.
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any
from urllib.parse import quote

import aiohttp

from callguard.config import load_settings

APP = "callguard-floor"
CONTEXT = "bench-baseline"


async def _continue(session: aiohttp.ClientSession, base: str, channel: dict[str, Any]) -> None:
    exten = str(channel.get("dialplan", {}).get("exten", ""))
    url = (f"{base}/ari/channels/{quote(str(channel['id']), safe='')}/continue"
           f"?context={CONTEXT}&extension={quote(exten, safe='')}&priority=1")
    try:
        async with session.post(url) as resp:
            await resp.read()
    except (aiohttp.ClientError, TimeoutError):
        pass  # the caller hung up meanwhile; nothing to undo


async def run(stop: asyncio.Event) -> None:
    settings = load_settings()
    base = settings.ari_url
    auth = aiohttp.encode_basic_auth(settings.ari_user, settings.ari_password)
    ws_url = base.replace("http", "ws", 1) + f"/ari/events?app={APP}"
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:
        async with session.ws_connect(ws_url, heartbeat=30) as ws:
            print("floor app connected", flush=True)
            waiter = asyncio.ensure_future(stop.wait())
            while not stop.is_set():
                receive = asyncio.ensure_future(ws.receive())
                done, _ = await asyncio.wait({receive, waiter},
                                             return_when=asyncio.FIRST_COMPLETED)
                if receive not in done:
                    receive.cancel()
                    break
                msg = receive.result()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                event = json.loads(msg.data)
                if event.get("type") == "StasisStart":
                    task = asyncio.create_task(_continue(session, base, event["channel"]))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            waiter.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    stop = asyncio.Event()

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await run(stop)

    asyncio.run(runner())


if __name__ == "__main__":
    main()
