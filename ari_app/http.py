"""A lean HTTP/1.1 keep-alive client for ARI's REST side (PERF-1).

A call's one `continue` request went through aiohttp's client (URL objects, multidicts,
tracing hooks, a response object and a context manager per request); on this path that was
the largest single share of the app's CPU per call. Asterisk's HTTP server answers every ARI
request with a status line, a few headers and a `Content-Length` body, so a protocol that
writes one request and cuts one response out of its buffer is all that is needed.

One request at a time per connection (no pipelining); idle connections are kept for reuse
and dropped before Asterisk's own keep-alive limit (`session_keep_alive`, 15 s) closes them.

`ready()` + `send_on()` write a request without awaiting anything first (PERF-1): a call's
`continue` leaves from the StasisStart handler itself instead of a task's first step, one
pass of the event loop later.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any, cast
from urllib.parse import quote, urlsplit

IDLE_KEEP_S = 10.0  # below Asterisk's session_keep_alive default (15 s)
MAX_HEAD = 64 * 1024
_PATH_SAFE = "/%@:+=,;-._~!$&'()*"


class HttpError(Exception):
    """No usable response: refused, reset, timed out or not HTTP."""


class ClosedUnanswered(HttpError):
    """The server closed the connection before one byte of the response came."""


class _Connection(asyncio.Protocol):
    """One connection; `response` is the future of the request in flight, if any."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.response: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False
        self.reusable = True
        self.used_at = time.monotonic()
        self._length: int | None = None  # body length once the head is parsed
        self._head_end = -1
        self._status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport does not subclass asyncio.Transport, so no isinstance check.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        waiter = self.response
        if waiter is None or waiter.done():
            return
        if self._head_end >= 0 and self._length is None:
            # No Content-Length: the body ran to the close.
            waiter.set_result((self._status, bytes(self.buffer[self._head_end:])))
        elif not self.buffer:
            waiter.set_exception(ClosedUnanswered(f"connection closed: {exc or 'by the server'}"))
        else:
            waiter.set_exception(HttpError(f"connection closed mid-response: {exc or 'EOF'}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.response
        if waiter is None or waiter.done():
            return
        try:
            if self._head_end < 0 and not self._parse_head():
                return
        except (ValueError, IndexError) as exc:
            self.reusable = False
            waiter.set_exception(HttpError(f"not an HTTP response: {exc}"))
            self.close()
            return
        if self._length is None:
            return  # read to the close
        end = self._head_end + self._length
        if len(self.buffer) >= end:
            body = bytes(self.buffer[self._head_end:end])
            del self.buffer[:end]
            waiter.set_result((self._status, body))

    def _parse_head(self) -> bool:
        cut = self.buffer.find(b"\r\n\r\n")
        if cut < 0:
            if len(self.buffer) > MAX_HEAD:
                raise ValueError("header too long")
            return False
        lines = self.buffer[:cut].decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        if not version.startswith("HTTP/1."):
            raise ValueError(lines[0][:40])
        self._status = int(status)
        length: int | None = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                self.reusable = False
            elif name == "transfer-encoding":
                raise ValueError(f"unsupported transfer-encoding {value.strip()}")
        if length is None and (self._status in (204, 304) or 100 <= self._status < 200):
            length = 0
        if length is None:
            self.reusable = False
        self._length = length
        self._head_end = cut + 4
        return True

    def send(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.response = asyncio.get_running_loop().create_future()
        self._length = None
        self._head_end = -1
        self._status = 0
        self.transport.write(data)
        return self.response

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class _Slots:
    """At most `limit` requests in flight; unlike asyncio.Semaphore, one can be taken
    without awaiting (`try_take`). A slot given back goes straight to the longest waiter."""

    def __init__(self, limit: int) -> None:
        self.free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_take(self) -> bool:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        if self.try_take():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot just as it was cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


class Ready:
    """A slot and a kept connection, taken for one request about to be written."""

    __slots__ = ("conn",)

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn


class HttpPool:
    """Requests to one `http://host:port`, over up to `limit` keep-alive connections."""

    def __init__(self, base_url: str, headers: dict[str, str], limit: int = 64,
                 timeout_s: float = 10.0, connect_timeout_s: float = 2.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http:// URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        fixed = {"Host": f"{self.host}:{self.port}", **headers}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._idle: list[_Connection] = []
        self._slots = _Slots(limit)
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s

    def encode(self, method: str, path: str, params: dict[str, str] | None,
               body: bytes | None, content_type: str | None) -> bytes:
        target = quote(f"{self.prefix}/{path.lstrip('/')}", safe=_PATH_SAFE)
        if params:
            target += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}"
                                     for k, v in params.items())
        head = f"{method} {target} HTTP/1.1\r\n{self._fixed}"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        head += f"Content-Length: {len(body) if body else 0}\r\n\r\n"
        return head.encode("latin-1") + body if body else head.encode("latin-1")

    async def request(self, method: str, path: str, params: dict[str, str] | None = None,
                      body: bytes | None = None, content_type: str | None = None,
                      ) -> tuple[int, bytes]:
        """(status, body); HttpError when no response came."""
        data = self.encode(method, path, params, body, content_type)
        await self._slots.take()
        try:
            conn = self._take_idle()
            if conn is None:
                return await self._exchange(await self._open(), data)
            return await self._kept(conn, conn.send(data), data)
        finally:
            self._slots.give()

    def ready(self) -> Ready | None:
        """A slot and a kept connection for a request to be written at once (`send_on`), or
        None when either would have to be waited for (then `request`). Taken: it must go
        to `send_on` or back through `unready`."""
        if not self._slots.try_take():
            return None
        conn = self._take_idle()
        if conn is None:
            self._slots.give()
            return None
        return Ready(conn)

    def unready(self, ready: Ready) -> None:
        """Give back what `ready` took, unused (its idle time runs on from its last use)."""
        self._idle.append(ready.conn)
        self._slots.give()

    def send_on(self, ready: Ready, method: str, path: str,
                params: dict[str, str] | None = None, body: bytes | None = None,
                content_type: str | None = None,
                ) -> Coroutine[Any, Any, tuple[int, bytes]]:
        """Write the request now; the coroutine returned awaits its response, like
        `request` (it must be awaited: it gives the slot back)."""
        try:
            data = self.encode(method, path, params, body, content_type)
        except BaseException:
            self.unready(ready)
            raise
        return self._sent(ready.conn, ready.conn.send(data), data)

    async def _sent(self, conn: _Connection, response: asyncio.Future[tuple[int, bytes]],
                    data: bytes) -> tuple[int, bytes]:
        try:
            return await self._kept(conn, response, data)
        finally:
            self._slots.give()

    async def _kept(self, conn: _Connection, response: asyncio.Future[tuple[int, bytes]],
                    data: bytes) -> tuple[int, bytes]:
        """The response on a kept connection, the request already written to it."""
        try:
            return await self._await(conn, response)
        except ClosedUnanswered:
            # A kept connection the server closed just as we wrote (its keep-alive
            # limit): Asterisk answers every request it reads, so this one never
            # reached it and is sent once more on a new connection.
            return await self._exchange(await self._open(), data)

    async def _exchange(self, conn: _Connection, data: bytes) -> tuple[int, bytes]:
        return await self._await(conn, conn.send(data))

    async def _await(self, conn: _Connection,
                     response: asyncio.Future[tuple[int, bytes]]) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(self.timeout_s):
                status, body = await response
        except TimeoutError as exc:
            conn.close()
            raise HttpError(f"no response in {self.timeout_s:.0f}s") from exc
        except BaseException:
            conn.close()
            raise
        if conn.reusable and not conn.closed and not conn.buffer:
            conn.used_at = time.monotonic()
            conn.response = None
            self._idle.append(conn)
        else:
            conn.close()
        return status, body

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and not conn.buffer and now - conn.used_at < IDLE_KEEP_S:
                return conn
            conn.close()
        return None

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(_Connection, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise HttpError(f"connect to {self.host}:{self.port}: {exc or type(exc).__name__}"
                            ) from exc
        return conn

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
