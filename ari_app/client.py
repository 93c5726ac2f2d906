"""A small ARI client: REST calls over lean keep-alive connections (`ari_app.http`, PERF-1)
and the event websocket on aiohttp, with reconnect (RUN-4).

Transport errors become AriError so handlers deal in one exception type.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from ari_app.http import HttpError, HttpPool, Ready
from callguard.dialplan import grouped_assignments

log = logging.getLogger("callguard.ari")
SLOW_REQUEST_S = 0.5


class AriError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"ARI {status}: {message}")
        self.status = status


def call_failure(exc: BaseException) -> str:
    """What an exception in a call's handler means for the call: `left-stasis` (409, or 400
    "Failed to execute function" when the channel left Stasis between ARI's lookup and the
    write: the dialplan's 1 s deadline won), `gone` (404: hung up), `unreachable` (no answer
    from Asterisk's HTTP side), else `bug`."""
    if not isinstance(exc, AriError):
        return "bug"
    if exc.status == 409 or (exc.status == 400 and "Failed to execute" in str(exc)):
        return "left-stasis"
    return {404: "gone", 0: "unreachable"}.get(exc.status, "bug")


class AriClient:
    def __init__(self, base_url: str, user: str, password: str, app: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self._auth = aiohttp.encode_basic_auth(user, password)
        self._session: aiohttp.ClientSession | None = None
        self._http: HttpPool | None = None

    async def __aenter__(self) -> AriClient:
        self._http = HttpPool(f"{self.base_url}/ari", {"Authorization": self._auth},
                              limit=64, timeout_s=10, connect_timeout_s=2)
        self._session = aiohttp.ClientSession(  # the event websocket only
            headers={"Authorization": self._auth},
            timeout=aiohttp.ClientTimeout(total=10, sock_connect=2),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            self._http.close()
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("AriClient used outside its context")
        return self._session

    async def request(
        self, method: str, path: str, params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        if self._http is None:
            raise RuntimeError("AriClient used outside its context")
        data = orjson.dumps(body) if body is not None else None
        return await self._answer(method, path, time.monotonic(), self._http.request(
            method, path, dict(params) if params else None, data,
            "application/json" if data is not None else None))

    def ready(self) -> Ready | None:
        """A connection to write a request on at once (`continue_on`), or None (PERF-1)."""
        return self._http.ready() if self._http is not None else None

    def unready(self, ready: Ready) -> None:
        if self._http is not None:
            self._http.unready(ready)

    async def _answer(self, method: str, path: str, started: float,
                      exchange: Coroutine[Any, Any, tuple[int, bytes]]) -> Any:
        """The body of a request's response; AriError for an error status or none."""
        try:
            status, raw = await exchange
            if status >= 400:
                try:
                    message = orjson.loads(raw).get("message", raw.decode())
                except (ValueError, AttributeError):
                    message = raw.decode(errors="replace")
                raise AriError(status, message)
            return orjson.loads(raw) if raw else None
        except HttpError as exc:
            raise AriError(0, f"{type(exc).__name__}: {exc}") from exc
        finally:
            elapsed = time.monotonic() - started
            if elapsed > SLOW_REQUEST_S:
                log.warning("slow ARI request %s %s: %.2fs", method, path.split("?")[0], elapsed)

    # Thin wrappers for the primitives callguard uses (one place each).
    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self.request("POST", f"channels/{channel_id}/variable",
                           {"variable": name, "value": value})

    async def set_variables(self, channel_id: str, values: dict[str, str]) -> None:
        """Several channel variables in one request (PERF-1) where ARRAY() can carry them;
        values it could split or unquote differently go one request each."""
        await asyncio.gather(*(self.set_variable(channel_id, k, v)
                               for k, v in grouped_assignments(values)))

    async def get_variable(self, channel_id: str, name: str) -> str:
        data = await self.request("GET", f"channels/{channel_id}/variable", {"variable": name})
        return str(data.get("value", "")) if isinstance(data, dict) else ""

    async def continue_in_dialplan(
        self, channel_id: str, context: str | None = None, extension: str = "s",
        priority: int = 1,
    ) -> None:
        params = {"context": context, "extension": extension, "priority": str(priority)} \
            if context else {}
        await self.request("POST", f"channels/{channel_id}/continue", params)

    def continue_on(self, ready: Ready, channel_id: str, context: str, extension: str,
                    ) -> Coroutine[Any, Any, None]:
        """`continue_in_dialplan`, written on `ready` before this returns; the coroutine
        (to be awaited) checks Asterisk's answer."""
        if self._http is None:
            raise RuntimeError("AriClient used outside its context")
        path = f"channels/{channel_id}/continue"
        return self._answer("POST", path, time.monotonic(), self._http.send_on(
            ready, "POST", path, {"context": context, "extension": extension,
                                  "priority": "1"}))

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"channels/{channel_id}/answer")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self.request("DELETE", f"channels/{channel_id}", {"reason": reason})

    async def play(self, channel_id: str, media: list[str], playback_id: str) -> None:
        await self.request("POST", f"channels/{channel_id}/play/{playback_id}",
                           {"media": ",".join(media), "lang": "ja"})

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"playbacks/{playback_id}")

    async def record_snoop(self, channel_id: str, name: str, role: str) -> str:
        """Issue #14: record what `channel_id` hears and says (a snoop channel in this app,
        StasisStart args [role]) as ARI recording `name` (wav, under Asterisk's recording
        directory) until that channel ends; the snoop channel's id."""
        snoop = await self.request("POST", f"channels/{channel_id}/snoop",
                                   {"spy": "both", "app": self.app, "appArgs": role})
        snoop_id = str(snoop["id"])
        for attempt in range(20):  # the snoop channel enters Stasis just after it exists
            try:
                await self.request("POST", f"channels/{snoop_id}/record", {
                    "name": name, "format": "wav", "ifExists": "overwrite", "beep": "false",
                    "terminateOn": "none", "maxDurationSeconds": "0"})
                return snoop_id
            except AriError as exc:
                if exc.status != 409 or attempt == 19:
                    raise
                await asyncio.sleep(0.02)
        return snoop_id

    async def delete_stored_recording(self, name: str) -> None:
        await self.request("DELETE", f"recordings/stored/{quote(name, safe='')}")

    async def subscribe_channel(self, channel_id: str) -> None:
        await self.subscribe(f"channel:{channel_id}")

    async def subscribe(self, source: str) -> None:
        """Events of `source` ("channel:ID", "bridge:ID") to this app until it ends."""
        await self.request("POST", f"applications/{self.app}/subscription",
                           {"eventSource": source})

    async def allow_events(self, types: Sequence[str]) -> None:
        """Ask Asterisk to send the app these event types only (an allow-list: a type
        Asterisk adds later, or one nobody thought of, stays away too; PERF-1)."""
        await self.request("PUT", f"applications/{self.app}/eventFilter",
                           body={"allowed": [{"type": t} for t in types]})

    async def set_global(self, name: str, value: str) -> None:
        await self.request("POST", "asterisk/variable", {"variable": name, "value": value})

    async def channels_in_app(self) -> list[str]:
        data = await self.request("GET", f"applications/{self.app}")
        return list(data.get("channel_ids", [])) if isinstance(data, dict) else []

    async def events(self, stop: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
        """Yield events for ever, reconnecting with capped exponential backoff."""
        ws_url = self.base_url.replace("http", "ws", 1) + "/ari/events"
        delay = 0.1
        while not stop.is_set():
            try:
                async with self.session.ws_connect(
                    ws_url, params={"app": self.app, "subscribeAll": "false"}, heartbeat=15,
                    timeout=aiohttp.ClientWSTimeout(ws_close=2),
                ) as ws:
                    log.info("ari connected", extra={"state": "connected", "app": self.app})
                    delay = 0.1
                    yield {"type": "_Connected"}
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            yield orjson.loads(msg.data)
                        elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                            break
                log.warning("ari disconnected", extra={"state": "disconnected"})
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("ari connect failed: %s; retry in %.1fs", exc, delay,
                            extra={"state": "retrying"})
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, 5.0)
