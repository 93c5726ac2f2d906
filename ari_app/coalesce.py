"""One request shared by every caller waiting when it is sent.

Issue #14's transfer lookup lists all of Asterisk's channels once for each recorded outbound
call that ends without its transfer event. The listing grows with the calls up (~230 kB of
JSON at 600 channels, answered in 4-48 ms on a loaded core), and calls placed together end
together: at 300 concurrent recorded calls that was 300 listings within a few seconds, on the
core the remaining calls' audio needs (PERF-2; no effect on the lost audio was measurable in
three runs each way). Coalesced, the callers waiting at the same moment share one.

A caller never gets a result of a request sent before it asked: one that arrives while a
request is under way waits for the next one, which serves everyone who arrived meanwhile.
The next one goes out as soon as that one returns, or, with `every_s`, no sooner than
`every_s` after it went out: when calls keep ending (a few seconds at up to 60 calls/s after
a bench level), back-to-back listings would otherwise run for the whole time, each ~2.7 ms of
Asterisk's CPU at 300 channels (measured 6 Dec), on the core the calls still recording need.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalesced(Generic[T]):
    def __init__(self, fetch: Callable[[], Awaitable[T]], every_s: float = 0.0) -> None:
        self._fetch = fetch
        self._every_s = every_s  # at least this long from one request's start to the next
        self._last: float | None = None  # when the last request went out (loop time)
        self._next: asyncio.Future[T] | None = None  # what the next request will answer
        self._runner: asyncio.Task[None] | None = None

    async def get(self) -> T:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            # Retrieved here, so a round whose callers all went away logs no "never retrieved".
            self._next.add_done_callback(lambda f: f.cancelled() or f.exception())
        waiting = self._next
        if self._runner is None or self._runner.done():
            self._runner = asyncio.ensure_future(self._run())
        # shield: a caller that is cancelled leaves the others' round intact
        return await asyncio.shield(waiting)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._next is not None:
            try:
                if self._last is not None and self._every_s > 0:
                    # Callers arriving during this pause join the round: still a request
                    # sent after each of them asked.
                    await asyncio.sleep(self._last + self._every_s - loop.time())
            except asyncio.CancelledError:
                self._abandon(None)
                raise
            round_, self._next = self._next, None
            self._last = loop.time()
            try:
                result = await self._fetch()
            except asyncio.CancelledError:
                self._abandon(round_)
                raise
            except Exception as exc:  # every caller of this round gets it (AriError, ...)
                round_.set_exception(exc)
            else:
                round_.set_result(result)

    def _abandon(self, round_: asyncio.Future[T] | None) -> None:
        """The loop is going away: nobody waits for ever."""
        for pending in (round_, self._next):
            if pending is not None:
                pending.cancel()
        self._next = None
