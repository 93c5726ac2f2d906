"""REL-7: a handler that reaches a call late claims it from the dialplan's 1 s Stasis()
deadline before writing anything; if the deadline won, nothing is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from ari_app.calls import CallEnv, carry_out
from ari_app.client import AriError
from callguard.callflow import Bookkeeping
from callguard.callpath import CallPlan
from callguard.dialplan import target_for
from callguard.domain.routing import Refuse


class Ari:
    def __init__(self, claim_fails: bool) -> None:
        self.claim_fails = claim_fails
        self.requests: list[tuple[str, Any]] = []

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        if self.claim_fails:
            raise AriError(409, "Channel not in Stasis application")
        self.requests.append(("set", (name, value)))

    async def set_variables(self, channel_id: str, values: dict[str, str]) -> None:
        self.requests.append(("set_many", dict(values)))

    async def continue_in_dialplan(self, channel_id: str, context: str = "",
                                   extension: str = "s") -> None:
        self.requests.append(("continue", context))


class Store:
    def __init__(self) -> None:
        self.writes: list[list[Any]] = []

    async def write(self, ops: list[Any]) -> None:
        self.writes.append(ops)


def env(ari: Ari, store: Store) -> CallEnv:
    settings = SimpleNamespace(recordings_asterisk_dir="/var/spool/asterisk/callguard")
    return CallEnv(settings, ari, store, None, {}, {})  # type: ignore[arg-type]


def refused() -> CallPlan:
    decision = Refuse(21, "number_unknown")
    return CallPlan("ch", decision, Bookkeeping(), target_for(decision, "/rec"), {},
                    direction="out")


def stamp(ago_s: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=ago_s)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] \
        + "+0000"


async def test_on_time_no_extra_request() -> None:
    ari, store = Ari(claim_fails=True), Store()
    await carry_out(env(ari, store), refused(), created=stamp(0.01))
    assert ("set", ("TIMEOUT(absolute)", "0")) not in ari.requests
    assert ari.requests[-1] == ("continue", "cg-refuse")


async def test_late_call_is_claimed_first() -> None:
    ari, store = Ari(claim_fails=False), Store()
    await carry_out(env(ari, store), refused(), created=stamp(0.6))
    assert ari.requests[0] == ("set", ("TIMEOUT(absolute)", "0"))
    assert ari.requests[-1] == ("continue", "cg-refuse")


async def test_late_call_the_deadline_won_nothing_written() -> None:
    ari, store = Ari(claim_fails=True), Store()
    with pytest.raises(AriError):
        await carry_out(env(ari, store), refused(), created=stamp(0.95))
    assert ari.requests == [] and store.writes == []
