"""PERF-1: the lean keep-alive HTTP client of ARI's REST side, against a scripted server on
loopback (127.0.0.1, a port the kernel picks): what it sends, how it cuts responses, when it
keeps a connection, and how it fails (a clear HttpError, never a hang or a mixed-up body)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ari_app.client import AriClient, AriError
from ari_app.http import ClosedUnanswered, HttpError, HttpPool

Reply = Callable[[bytes], bytes | None]  # the request's bytes -> response bytes, None: close


class Server:
    """Answers each request on a connection with `reply`; records requests and connections."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.reply(request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/ari"


Serve = Callable[[Reply], Awaitable["Server"]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(reply: Reply) -> Server:
        s = Server(reply)
        s.server = await asyncio.start_server(s.handle, "127.0.0.1", 0)
        servers.append(s.server)
        return s

    yield start
    for srv in servers:
        srv.close()


def ok(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nServer: Asterisk\r\n{extra}Content-Length: {len(body)}"
            "\r\n\r\n").encode() + body


async def test_requests_share_one_kept_connection(serve: Serve) -> None:
    server = await serve(lambda req: ok(b'{"value":"x"}'))
    pool = HttpPool(server.url, {"Authorization": "Basic dTpw"})
    for _ in range(3):
        assert await pool.request("GET", "channels/1.2/variable", {"variable": "A B"}) == \
            (200, b'{"value":"x"}')
    assert server.connections == 1
    first = server.requests[0].decode()
    assert first.startswith("GET /ari/channels/1.2/variable?variable=A%20B HTTP/1.1\r\n")
    assert "Authorization: Basic dTpw\r\n" in first and "Content-Length: 0\r\n" in first
    pool.close()


async def test_a_body_is_sent_with_its_type_and_length(serve: Serve) -> None:
    server = await serve(lambda req: ok(b"", "204 No Content"))
    pool = HttpPool(server.url, {})
    assert await pool.request("PUT", "applications/a/eventFilter", None, b'{"allowed":[]}',
                              "application/json") == (204, b"")
    sent = server.requests[0].decode()
    assert "Content-Type: application/json\r\nContent-Length: 14\r\n\r\n" in sent
    assert sent.endswith('{"allowed":[]}')
    pool.close()


async def test_a_response_in_pieces_is_joined(serve: Serve) -> None:
    body = b'{"message":"Channel not found"}' * 300

    class Slow(Server):
        async def handle(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            whole = ok(body, "404 Not Found")
            for i in range(0, len(whole), 7):  # a head cut mid-line, then the body in bits
                writer.write(whole[i:i + 7])
                await writer.drain()
                await asyncio.sleep(0)
            writer.close()

    slow = Slow(lambda req: None)
    srv = await asyncio.start_server(slow.handle, "127.0.0.1", 0)
    slow.server = srv
    pool = HttpPool(slow.url, {})
    assert await pool.request("DELETE", "channels/9") == (404, body)
    srv.close()
    pool.close()


async def test_connection_close_is_honoured(serve: Serve) -> None:
    server = await serve(lambda req: ok(b"{}", extra="Connection: close\r\n"))
    pool = HttpPool(server.url, {})
    assert (await pool.request("GET", "a"))[0] == 200
    assert (await pool.request("GET", "b"))[0] == 200
    assert server.connections == 2
    pool.close()


def once_per_connection() -> Reply:
    """Every second request arrives on a connection the server then drops unanswered, as
    Asterisk does when its keep-alive time runs out just as a request is written."""
    answered = 0

    def reply(req: bytes) -> bytes | None:
        nonlocal answered
        answered += 1
        return ok(b"{}") if answered % 2 else None

    return reply


async def test_a_kept_connection_closed_by_the_server_is_replaced(serve: Serve) -> None:
    server = await serve(once_per_connection())
    pool = HttpPool(server.url, {})
    assert await pool.request("POST", "channels/1/continue") == (200, b"{}")
    assert await pool.request("POST", "channels/2/continue") == (200, b"{}")
    assert server.connections == 2 and len(server.requests) == 3
    pool.close()


async def test_a_fresh_connection_closed_unanswered_is_an_error(serve: Serve) -> None:
    server = await serve(lambda req: None)
    pool = HttpPool(server.url, {})
    with pytest.raises(ClosedUnanswered):
        await pool.request("POST", "channels/1/continue")
    assert len(server.requests) == 1  # sent once: a new connection is not retried
    pool.close()


async def test_a_silent_server_times_out(serve: Serve) -> None:
    hold = asyncio.Event()

    class Silent(Server):
        async def handle(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
            await hold.wait()
            writer.close()

    silent = Silent(lambda req: None)
    srv = await asyncio.start_server(silent.handle, "127.0.0.1", 0)
    silent.server = srv
    pool = HttpPool(silent.url, {}, timeout_s=0.2)
    with pytest.raises(HttpError, match="no response"):
        await pool.request("GET", "channels")
    hold.set()
    srv.close()
    pool.close()


@pytest.mark.parametrize("garbage", [b"SIP/2.0 200 OK\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n",
                                     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"])
async def test_what_is_not_an_ari_response_is_an_error(serve: Serve, garbage: bytes) -> None:
    server = await serve(lambda req: garbage)
    pool = HttpPool(server.url, {})
    with pytest.raises(HttpError, match="not an HTTP response"):
        await pool.request("GET", "channels")
    pool.close()


async def test_nothing_listening_is_an_ari_error_0(serve: Serve) -> None:
    server = await serve(lambda req: None)
    url = server.url
    assert server.server is not None
    server.server.close()
    await server.server.wait_closed()
    async with AriClient(url.removesuffix("/ari"), "u", "p", "callguard") as ari:
        with pytest.raises(AriError) as caught:
            await ari.continue_in_dialplan("1.2", "cg-connect", "v1")
    assert caught.value.status == 0


async def test_the_client_maps_ari_answers(serve: Serve) -> None:
    def answer(req: bytes) -> bytes:
        if b"/continue" in req:
            return ok(b'{"message":"Channel not in Stasis application"}', "409 Conflict")
        return ok(b'{"value":"42"}')

    server = await serve(answer)
    async with AriClient(server.url.removesuffix("/ari"), "u", "p", "callguard") as ari:
        assert await ari.get_variable("1.2", "CG_X") == "42"
        with pytest.raises(AriError) as caught:
            await ari.continue_in_dialplan("1.2", "cg-connect", "v1,2")
    assert caught.value.status == 409 and "not in Stasis" in str(caught.value)
    sent = server.requests[1].decode()
    assert sent.startswith("POST /ari/channels/1.2/continue?context=cg-connect&extension=v1%2C2"
                           "&priority=1 HTTP/1.1")


def test_the_pool_works_on_uvloop() -> None:
    """The service runs on uvloop (ari_app/main.py), whose transports are not
    asyncio.Transport subclasses: the pool must not depend on that."""
    import uvloop

    async def scenario() -> tuple[tuple[int, bytes], int]:
        server = Server(lambda req: ok(b'{"a":1}'))
        server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        pool = HttpPool(server.url, {})
        try:
            await pool.request("GET", "asterisk/info")
            return await pool.request("GET", "asterisk/info"), server.connections
        finally:
            pool.close()
            server.server.close()

    assert uvloop.run(scenario()) == ((200, b'{"a":1}'), 1)


async def test_a_request_written_at_once_on_a_kept_connection(serve: Serve) -> None:
    """PERF-1: `ready` + `send_on` write the request before anything is awaited (a call's
    continue from the StasisStart handler itself); the response comes as from `request`."""
    server = await serve(lambda req: ok(b"", "204 No Content"))
    pool = HttpPool(server.url, {})
    assert pool.ready() is None  # no kept connection yet: `request` opens one
    assert await pool.request("GET", "asterisk/info") == (204, b"")
    ready = pool.ready()
    assert ready is not None and pool.ready() is None  # the only kept connection is taken
    answer = pool.send_on(ready, "POST", "channels/1.2/continue", {"context": "cg-reject"})
    assert ready.conn.response is not None  # written: the response is awaited, not the write
    assert await answer == (204, b"")
    assert server.requests[-1].startswith(b"POST /ari/channels/1.2/continue?context=cg-reject ")
    again = pool.ready()  # back in the pool once answered
    assert again is not None
    pool.unready(again)
    assert (await pool.request("GET", "x"))[0] == 204 and server.connections == 1
    pool.close()


async def test_written_at_once_retries_a_connection_closed_unanswered(serve: Serve) -> None:
    server = await serve(once_per_connection())
    pool = HttpPool(server.url, {})
    await pool.request("GET", "a")
    ready = pool.ready()
    assert ready is not None
    assert await pool.send_on(ready, "POST", "channels/2/continue") == (200, b"{}")
    assert server.connections == 2 and len(server.requests) == 3
    pool.close()


async def test_the_limit_holds_for_both_ways_of_sending(serve: Serve) -> None:
    """At most `limit` requests in flight: `ready` says no while they are, `request` waits
    for a slot, and a slot given back goes to the waiter."""
    release = asyncio.Event()

    class Held(Server):
        async def handle(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                while True:
                    await reader.readuntil(b"\r\n\r\n")
                    await release.wait()
                    writer.write(ok(b"{}"))
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

    held = Held(lambda req: None)
    held.server = await asyncio.start_server(held.handle, "127.0.0.1", 0)
    pool = HttpPool(held.url, {}, limit=1)
    release.set()
    await pool.request("GET", "warm")  # one kept connection
    release.clear()
    ready = pool.ready()
    assert ready is not None
    first = asyncio.create_task(pool.send_on(ready, "GET", "one"))
    second = asyncio.create_task(pool.request("GET", "two"))
    await asyncio.sleep(0.05)
    assert pool.ready() is None and not second.done()  # the one slot is in use
    release.set()
    assert await first == (200, b"{}") and await second == (200, b"{}")
    pool.close()
    held.server.close()
