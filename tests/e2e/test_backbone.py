"""Backbone routing over real SIP (issue 2; SITE-*, RUN-*): carrier → number → endpoint with
the right SIP result for answer/busy/no-answer/unknown, customer → carrier with its configured
caller ID, extension calls inside a contract, unknown sources refused (SEC-1)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.e2e.sipp import CARRIER_OUT, Phone, UacSpec, audio, uac


def test_inbound_call_rings_the_endpoint_and_connects(clean: Engine, work: Path) -> None:
    # SITE: carrier 127.0.0.2 calls 0312345679 (f1-b, 127.0.1.2); the phone answers.
    with Phone("127.0.1.2", work / "phone", audio_s=0) as phone:
        call = uac(UacSpec(to="0312345679", steps=[audio(1)]), work / "carrier")
        phone.wait(10)
    assert call.final_status() == 200, call.statuses()
    assert phone.rang()


def test_inbound_busy_gives_486(clean: Engine, work: Path) -> None:
    with Phone("127.0.1.3", work / "phone", mode="busy") as phone:
        call = uac(UacSpec(to="0612345678"), work / "carrier")
    assert call.final_status() == 486
    assert phone.rang()


def test_inbound_unknown_number_gives_404(clean: Engine, work: Path) -> None:
    call = uac(UacSpec(to="0399999999"), work / "carrier")
    assert call.final_status() == 404


def test_customer_call_goes_to_carrier_with_configured_caller_id(clean: Engine,
                                                                 work: Path) -> None:
    # REC-OUT-3 / SEC-1: f2-a (127.0.1.3) dials without prefix; its From claims another
    # number, the carrier must still see 0612345678.
    with Phone(CARRIER_OUT, work / "carrier", audio_s=0) as carrier:
        call = uac(UacSpec(to="0311112222", from_user="0312345678", steps=[audio(1)]),
                   work / "phone", local_ip="127.0.1.3")
        carrier.wait(10)
    assert call.final_status() == 200
    invite = carrier.result().first(method="INVITE", sent=False)
    assert invite is not None
    assert invite.first_line.startswith("INVITE sip:0311112222@127.0.0.3")
    assert "<sip:0612345678@" in (invite.header("From") or "")


def test_extension_call_rings_the_other_endpoint(clean: Engine, work: Path) -> None:
    # f1-a dials 2002 → f1-b (REC-OUT-4: inside the contract).
    with Phone("127.0.1.2", work / "callee", audio_s=0) as callee:
        call = uac(UacSpec(to="2002", steps=[audio(1)]), work / "caller", local_ip="127.0.1.1")
        callee.wait(10)
    assert call.final_status() == 200
    assert callee.rang()


def test_unknown_source_address_is_refused(clean: Engine, work: Path) -> None:
    # SEC-1: 127.0.9.9 is no endpoint: never routed to the carrier.
    with Phone(CARRIER_OUT, work / "carrier", timeout_s=8) as carrier:
        call = uac(UacSpec(to="0311112222"), work / "intruder", local_ip="127.0.9.9",
                   timeout_s=10)
    assert call.final_status() in (401, 403, 404), call.statuses()
    assert not carrier.rang()


@pytest.fixture
def short_ring(clean: Engine) -> Iterator[None]:
    """Ring for 3 s instead of the default 30 (site_settings, read within ~2 s)."""
    with clean.begin() as conn:
        conn.execute(text("INSERT INTO site_settings (key, value) VALUES ('ring_timeout_s', '3')"
                          " ON CONFLICT (key) DO UPDATE SET value = '3'"))
    time.sleep(2.5)
    yield
    with clean.begin() as conn:
        conn.execute(text("DELETE FROM site_settings WHERE key = 'ring_timeout_s'"))
    time.sleep(2.5)


def test_inbound_no_answer_gives_480(short_ring: None, work: Path) -> None:
    with Phone("127.0.1.3", work / "phone", mode="noanswer") as phone:
        call = uac(UacSpec(to="0612345678"), work / "carrier")
    assert call.final_status() == 480
    assert phone.rang()


def test_inbound_unreachable_phone_gives_480(short_ring: None, work: Path) -> None:
    # Nothing listens at f2-b (127.0.1.4): the INVITE goes unanswered.
    call = uac(UacSpec(to="0612345679"), work / "carrier")
    assert call.final_status() == 480
