"""PERF-2 / issue #14: the transfer lookup's channel listing, shared by the calls that end
together (ari_app/coalesce.py), never a listing sent before a caller asked."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest
import uvloop

from ari_app.coalesce import Coalesced


class Source:
    """A fetch that answers with how many requests came before it, when released."""

    def __init__(self) -> None:
        self.sent = 0
        self.release = asyncio.Event()

    async def fetch(self) -> int:
        self.sent += 1
        n = self.sent
        await self.release.wait()
        self.release.clear()
        return n


def test_callers_waiting_together_share_one_request() -> None:
    async def scenario() -> tuple[list[int], int]:
        src = Source()
        shared = Coalesced(src.fetch)
        callers = [asyncio.ensure_future(shared.get()) for _ in range(300)]
        await asyncio.sleep(0)
        src.release.set()
        return await asyncio.gather(*callers), src.sent

    results, sent = asyncio.run(scenario())
    assert sent == 1 and set(results) == {1}


def test_a_caller_arriving_during_a_request_gets_the_next_one() -> None:
    async def scenario() -> tuple[int, list[int], int]:
        src = Source()
        shared = Coalesced(src.fetch)
        first = asyncio.ensure_future(shared.get())
        await asyncio.sleep(0)  # the first request is out
        late = [asyncio.ensure_future(shared.get()) for _ in range(5)]
        await asyncio.sleep(0)
        assert src.sent == 1  # the late callers wait; nothing more is sent meanwhile
        src.release.set()
        got_first = await first
        await asyncio.sleep(0)
        src.release.set()
        return got_first, await asyncio.gather(*late), src.sent

    got_first, late, sent = asyncio.run(scenario())
    assert got_first == 1 and late == [2] * 5 and sent == 2


def test_a_failure_reaches_its_round_and_the_next_round_works() -> None:
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("Asterisk away")
        return "listing"

    async def scenario() -> list[BaseException | str]:
        shared = Coalesced(fetch)
        first = await asyncio.gather(shared.get(), shared.get(), return_exceptions=True)
        return [*first, await shared.get()]

    out = asyncio.run(scenario())
    assert [type(x) for x in out[:2]] == [ConnectionError, ConnectionError]
    assert out[2] == "listing"


def test_a_cancelled_caller_leaves_the_others_round_intact() -> None:
    async def scenario() -> int:
        src = Source()
        shared = Coalesced(src.fetch)
        gone = asyncio.ensure_future(shared.get())
        stays = asyncio.ensure_future(shared.get())
        await asyncio.sleep(0)
        gone.cancel()
        src.release.set()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await stays

    assert asyncio.run(scenario()) == 1


def test_it_runs_on_uvloop() -> None:
    async def scenario() -> list[int]:
        src = Source()
        shared = Coalesced(src.fetch)
        callers = [asyncio.ensure_future(shared.get()) for _ in range(3)]
        await asyncio.sleep(0)
        src.release.set()
        return await asyncio.gather(*callers)

    assert uvloop.run(scenario()) == [1, 1, 1]


def test_callers_are_not_left_waiting_when_the_request_is_cancelled() -> None:
    async def scenario() -> list[bool]:
        src = Source()
        shared = Coalesced(src.fetch)
        first = asyncio.ensure_future(shared.get())
        await asyncio.sleep(0)
        late = asyncio.ensure_future(shared.get())  # waits for the next round
        await asyncio.sleep(0)
        assert shared._runner is not None
        shared._runner.cancel()  # e.g. the app shutting down mid-request
        done = await asyncio.gather(first, late, return_exceptions=True)
        return [isinstance(x, asyncio.CancelledError) for x in done]

    assert asyncio.run(scenario()) == [True, True]


def test_rounds_are_spaced_while_callers_keep_coming() -> None:
    """PERF-2: calls that keep ending for a second (one every 10 ms, as after a bench level)
    share a listing every `every_s`, not one back to back with the next; each caller still
    gets a listing sent after it asked."""
    async def scenario() -> tuple[list[float], list[tuple[float, float]]]:
        loop = asyncio.get_running_loop()
        starts: list[float] = []

        async def fetch() -> float:
            starts.append(loop.time())
            await asyncio.sleep(0.005)
            return starts[-1]

        shared = Coalesced(fetch, every_s=0.25)

        async def caller() -> tuple[float, float]:
            asked = loop.time()
            return asked, await shared.get()

        callers = []
        for _ in range(100):
            callers.append(asyncio.ensure_future(caller()))
            await asyncio.sleep(0.01)
        return starts, await asyncio.gather(*callers)

    starts, answered = asyncio.run(scenario())
    # The callers ask over >= 1 s (100 sleeps of 10 ms; longer on a busy machine): a round
    # every 0.25 s of that span, plus the first one and the one serving the last callers
    # (100 rounds without the spacing).
    span = answered[-1][0] - answered[0][0]
    assert 4 <= len(starts) <= span / 0.25 + 2
    assert all(b - a >= 0.25 - 0.01 for a, b in pairwise(starts))
    assert all(sent >= asked for asked, sent in answered)


def test_a_caller_after_a_quiet_spell_is_not_held_back() -> None:
    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        src = Source()
        src.release.set()
        shared = Coalesced(src.fetch, every_s=0.25)
        await shared.get()
        await asyncio.sleep(0.3)
        src.release.set()
        asked = loop.time()
        await shared.get()
        return loop.time() - asked

    assert asyncio.run(scenario()) < 0.1


def test_callers_waiting_out_the_spacing_are_not_left_waiting_when_cancelled() -> None:
    async def scenario() -> bool:
        src = Source()
        src.release.set()
        shared = Coalesced(src.fetch, every_s=10.0)
        await shared.get()
        late = asyncio.ensure_future(shared.get())  # waits out the spacing
        await asyncio.sleep(0.01)
        assert shared._runner is not None
        shared._runner.cancel()
        done = await asyncio.gather(late, return_exceptions=True)
        return isinstance(done[0], asyncio.CancelledError)

    assert asyncio.run(scenario())
