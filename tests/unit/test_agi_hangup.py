"""REL-1: a caller who hangs up while the FastAGI fallback decides. Asterisk writes `HANGUP`
ahead of the next answer (or closes the connection); the fallback must see a hangup (an
AGIException: logged as "channel went away", not as a failure), give back the recording slot
it had counted, and write no row for a call that never went on."""

from __future__ import annotations

import base64
import contextvars
import io
import socket

import pytest
from asterisk.agi import AGIException

import agi_scripts.fastagi as fastagi
from agi_scripts.fastagi import Fallback, QuietAGI
from callguard.callpath import plan_inbound
from callguard.journal import Op
from tests.unit.test_agi_environment import ENV_HEAD, ENV_TAIL
from tests.unit.test_callpath_parity import (
    LIMITS,
    STATE,
    FakeKeeper,
    FrozenClock,
    fallback,
)

CALLED, CALLER = "0312345678", "0399990000"  # a recorded number, a caller on no list


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# The answer to the fallback's one read of an inbound call's facts (Fallback.inbound_facts):
# called, caller, presentation, Resource-Priority, audio and (empty) video format.
FACTS = "200 result=1 ({})\n".format(",".join(
    b64(f"x{v}") for v in (CALLED, CALLER, "allowed_not_screened", "0", "ulaw", "")))


@pytest.fixture(autouse=True)
def frozen_and_no_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastagi, "datetime", FrozenClock)
    monkeypatch.setattr(fastagi, "prepare_dir", lambda root, rel_path: None)


def agi_over(answers: str) -> QuietAGI:
    return QuietAGI(io.StringIO(ENV_HEAD + f"agi_extension: {CALLED}\n" + ENV_TAIL + answers),
                    io.StringIO())


@pytest.mark.parametrize("after_facts", ["HANGUP\n200 result=1\n", ""],
                         ids=["HANGUP", "connection closed"])
def test_a_hangup_while_deciding_frees_the_slot_and_writes_nothing(after_facts: str) -> None:
    keeper, written = FakeKeeper(), list[Op]()
    fb = fallback(keeper, written)
    facts = agi_over(FACTS)
    assert plan_inbound(Fallback.inbound_facts(facts, FrozenClock.now()), STATE,
                        LIMITS).recordings_delta == 1  # the call would take a recording slot
    facts.finish()
    agi = agi_over(FACTS + after_facts)
    with pytest.raises(AGIException):
        fb.inbound(agi)
    assert keeper.delta == 0, "the recording slot counted for the call is free again"
    assert written == []
    with pytest.raises(AGIException):  # and so is every command after it
        agi.get_variable("CG_FOLLOW")
    agi.finish()


def test_answers_before_the_hangup_still_read_as_answers() -> None:
    agi = agi_over("200 result=1 (prohib)\nHANGUP\n")
    assert agi.get_variable("CALLERID(pres)") == "prohib"
    with pytest.raises(AGIException):
        agi.set_variable("CG_NEXT", "cg-connect")
    agi.finish()


def test_the_handler_logs_a_hangup_as_a_channel_gone_not_a_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    """Handler.handle over a socket, as Asterisk connects: the pyst2 ValueError this replaces
    went to log.exception("fallback failed; the dialplan fails open") with a traceback, 169
    times in one overloaded bench step (5 Dec)."""
    keeper = FakeKeeper()
    fb = fallback(keeper, [], agi_secret="s3cret")  # the secret ENV_HEAD's script names

    class Handler(fastagi.Handler):
        fallback = fb

    asterisk, script = socket.socketpair()
    with asterisk, script:
        asterisk.sendall((ENV_HEAD + f"agi_extension: {CALLED}\n" + ENV_TAIL + FACTS
                          + "HANGUP\n").encode())
        with caplog.at_level("INFO", logger="callguard.fastagi"):
            # In a context of its own, as on the server's thread per connection: the
            # handler names the call in the log's channel variable.
            contextvars.copy_context().run(Handler, script, ("127.0.0.1", 4573),
                                           None)  # type: ignore[arg-type]
    assert "channel went away during AGI: the channel hung up (HANGUP)" in caplog.text
    assert "fallback failed" not in caplog.text
    assert keeper.delta == 0
