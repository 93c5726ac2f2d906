"""A call that never gets past Stasis leaves no rows (NCR-REG-3, REC-CAP-1): the caller hung up
while the app was deciding (404 on the continue) or the fallback took the call (409). Before,
its rows were queued first: an inbound call stayed "in progress" until the app restarted, which
blocked 144 registrations in its scope, and a recording row stayed `recording`, holding a
capacity slot. A continue whose fate is unknown (no answer) still writes them, and a call's
end waits until its start rows are queued."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from asterisk.agi import AGIException, AGIHangup

from agi_scripts.fastagi import Fallback
from ari_app.app import CallguardApp
from ari_app.calls import CallEnv, Followed, carry_out
from ari_app.client import AriError
from callguard.callflow import FOLLOW_INBOUND, Bookkeeping
from callguard.callpath import CallPlan
from callguard.dialplan import target_for
from callguard.domain.routing import Connect
from callguard.journal import Op
from tests.unit.test_callpath_parity import LIMITS, SETTINGS, Call, FakeAGI, FakeKeeper

START = Op("inbound_call_started", {"channel_id": "ch", "list_id": 1, "number_id": 1,
                                    "caller_key": None, "rejected": False,
                                    "started_at": datetime(2026, 12, 4, tzinfo=UTC)})


class Ari:
    def __init__(self, status: int | None, gate: asyncio.Event | None = None) -> None:
        self.status = status  # the continue's error status; None: it succeeds
        self.gate = gate  # held: the continue waits for Asterisk's answer

    async def continue_in_dialplan(self, channel_id: str, context: str = "",
                                   extension: str = "s") -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.status is not None:
            raise AriError(self.status, "Channel not found")


class Store:
    def __init__(self) -> None:
        self.ops: list[str] = []

    async def write(self, ops: list[Op]) -> None:
        self.ops.extend(op.name for op in ops)


class Keeper:
    def __init__(self) -> None:
        self.recordings = 0

    def adjust_recordings(self, delta: int) -> None:
        self.recordings += delta


def env(ari: Ari, store: Store, keeper: Keeper) -> CallEnv:
    settings = SimpleNamespace(recordings_asterisk_dir="/var/spool/asterisk/callguard",
                               recordings_dir="/nonexistent")
    return CallEnv(settings, ari, store, SimpleNamespace(keeper=keeper),  # type: ignore[arg-type]
                   {}, {})


def connected(recordings_delta: int = 0) -> CallPlan:
    decision = Connect("PJSIP/f1-a", 30)
    return CallPlan("ch", decision, Bookkeeping([START], FOLLOW_INBOUND),
                    target_for(decision, "/rec"), {}, recordings_delta, "in", 1)


@pytest.mark.parametrize("status", [404, 409])
async def test_never_past_stasis_no_rows_and_the_slot_back(status: int) -> None:
    store, keeper = Store(), Keeper()
    with pytest.raises(AriError):
        await carry_out(env(Ari(status), store, keeper), connected(recordings_delta=1))
    assert store.ops == [] and keeper.recordings == 0


async def test_put_through_rows_written() -> None:
    store, keeper = Store(), Keeper()
    await carry_out(env(Ari(None), store, keeper), connected(recordings_delta=1))
    assert store.ops == ["inbound_call_started", "call_outcome"] and keeper.recordings == 1


async def test_unknown_fate_rows_written() -> None:
    """No answer from Asterisk (status 0): the continue may have taken effect, and then the
    call goes on and its end will need its rows."""
    store, keeper = Store(), Keeper()
    with pytest.raises(AriError):
        await carry_out(env(Ari(0), store, keeper), connected())
    assert store.ops == ["inbound_call_started", "call_outcome"]


async def test_end_waits_for_the_start_rows() -> None:
    """The call's end (its hangup handler's StasisStart) can be handled while the continue is
    still unanswered: its UPDATE must not reach the writer before the INSERT it closes."""
    gate, store, keeper = asyncio.Event(), Store(), Keeper()
    app = CallguardApp.__new__(CallguardApp)
    app.finishing = set()
    app.env = env(Ari(None, gate), store, keeper)
    deciding = asyncio.create_task(carry_out(app.env, connected()))
    await asyncio.sleep(0)
    ending = asyncio.create_task(app.call_ended("ch", Followed(FOLLOW_INBOUND)))
    await asyncio.sleep(0.01)
    assert store.ops == []  # neither: the continue is not answered yet
    gate.set()
    await asyncio.gather(deciding, ending)
    assert store.ops == ["inbound_call_started", "call_outcome", "inbound_call_ended"]
    assert app.env.queuing == {}



class HungUpAGI(FakeAGI):
    """The caller hung up while the fallback decided: Asterisk refuses the AGI commands."""

    def set_variable(self, name: str, value: str) -> None:
        raise AGIHangup("Channel went away", {})


def test_fallback_caller_gone_no_rows(tmp_path: Path) -> None:
    """The FastAGI shell, the same rule: rows only once the call's variables are set."""
    fb = Fallback.__new__(Fallback)
    keeper, written = FakeKeeper(), list[Op]()
    fb.settings = dataclasses.replace(SETTINGS, recordings_dir=tmp_path)
    fb.keeper, fb.limits = keeper, LIMITS  # type: ignore[assignment]
    fb.write = written.extend  # type: ignore[method-assign,assignment]
    call = Call("0312345678", "0399990000")  # recorded, nuisance scope: rows and a slot
    agi = call.agi("inbound")
    with pytest.raises(AGIException):
        fb.inbound(HungUpAGI(agi.env, agi.variables, agi.headers))  # type: ignore[arg-type]
    assert written == [] and keeper.delta == 0
    fb.inbound(agi)  # type: ignore[arg-type]
    assert [op.name for op in written] == ["inbound_call_started", "recording_started",
                                           "call_outcome"] and keeper.delta == 1


async def test_a_decided_or_failed_call_leaves_no_start_time_behind() -> None:
    """PERF-1: StasisEnd is not among the events Asterisk sends the app, so a call's StasisStart
    time cannot wait for it to be dropped: the handler's end drops it, sent or not (before,
    a handler that failed before its continue left the entry until the StasisEnd came)."""
    from ari_app.app import ALLOWED_EVENTS

    assert "StasisStart" in ALLOWED_EVENTS and "StasisEnd" not in ALLOWED_EVENTS
    app = CallguardApp.__new__(CallguardApp)
    app.tasks = set()
    app.env = env(Ari(None), Store(), Keeper())

    async def fails() -> None:
        raise RuntimeError("a handler bug")

    async def decides() -> None:
        app.env.started.pop("ok", None)  # what carry_out's decision does

    for channel_id, handler in (("bad", fails()), ("ok", decides())):
        app.env.started[channel_id] = (0.0, "in")
        with pytest.raises(RuntimeError) if channel_id == "bad" else contextlib.nullcontext():
            await app.deciding(handler, channel_id)
    assert app.env.started == {}


async def test_a_decision_that_fails_in_the_handler_goes_to_the_fallback(
        caplog: pytest.LogCaptureFixture) -> None:
    """PERF-1: a call is decided in the StasisStart handler itself (its continue leaves from
    there). If the decision raises, the event reader goes on; the call's task logs it and lets
    the channel continue into the dialplan's fallback, as a failure in the task always did."""
    continued: list[tuple[str, str | None]] = []

    class PlainAri:
        async def continue_in_dialplan(self, channel_id: str, context: str | None = None,
                                       extension: str = "s") -> None:
            continued.append((channel_id, context))

    app = CallguardApp.__new__(CallguardApp)
    app.tasks = set()
    app.env = env(PlainAri(), Store(), Keeper())  # type: ignore[arg-type]  # no site state
    channel = {"id": "c1", "dialplan": {"exten": "0312345678"},
               "caller": {"number": "0399990000"}}
    app.dispatch({"type": "StasisStart", "args": ["inbound", "0", "allowed", "(ulaw)"],
                  "channel": channel})
    await asyncio.gather(*app.tasks)
    assert continued == [("c1", None)]
    assert "call handler failed" in caplog.text and app.env.started == {}
