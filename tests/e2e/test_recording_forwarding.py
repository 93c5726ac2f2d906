"""Calls this suite forwards are recorded (REC-IN-2; source: 着信転送/一括転送/バックアップ転送
も録音対象), per forwarding mode set with `callguard forwarding` (ADM-1)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from callguard.config import Settings
from tests.e2e.rec_helpers import (
    CALLEE_HZ,
    CALLER_HZ,
    CLI,
    F1A,
    M1A,
    check_file,
    recordings,
    talk_time,
    wait_site_refresh,
)
from tests.e2e.sipp import CARRIER_OUT, CallResult, Phone, UacSpec, tone, uac

TARGET = "0399998877"  # the outside number calls are forwarded to


@pytest.fixture
def forwarding(clean: Engine) -> Iterator[list[str]]:
    """Numbers a test forwards; cleared through the CLI afterwards (the `clean` fixture also
    empties the table before each test)."""
    numbers: list[str] = []
    yield numbers
    for number in numbers:
        subprocess.run([CLI, "forwarding", "clear", "--number", number], check=True)
    with clean.begin() as c:
        c.execute(text("DELETE FROM site_settings WHERE key = 'ring_timeout_s'"))
    wait_site_refresh()


def set_forwarding(numbers: list[str], number: str, mode: str, *extra: str) -> None:
    subprocess.run([CLI, "forwarding", "set", "--number", number, "--to", TARGET, "--mode",
                    mode, *extra], check=True, capture_output=True)
    numbers.append(number)
    listed = json.loads(subprocess.run([CLI, "forwarding", "list", "--json"], check=True,
                                       capture_output=True, text=True).stdout)
    assert {"number": number, "mode": mode, "to": TARGET}.items() <= next(
        f for f in listed["items"] if f["number"] == number).items()
    wait_site_refresh()


def forwarded_call(work: Path, number: str) -> tuple[CallResult, Phone]:
    """The carrier calls `number`; the forward target (at the carrier, 127.0.0.3) answers."""
    with Phone(CARRIER_OUT, work / "target", audio_s=4, audio_hz=CALLEE_HZ) as target:
        call = uac(UacSpec(to=number, from_user="0399990001", steps=[tone(3, CALLER_HZ)]),
                   work / "carrier", timeout_s=40)
        target.wait(5)
    return call, target


def check_forwarded(clean: Engine, settings: Settings, call: CallResult, target: Phone,
                    number: str) -> None:
    assert call.final_status() == 200, call.statuses()
    invite = target.result().first(method="INVITE", sent=False)
    assert invite is not None and invite.first_line.startswith(f"INVITE sip:{TARGET}@")
    # The caller's identity goes along with the forwarded call.
    assert "<sip:0399990001@" in (invite.header("From") or "")
    [row] = recordings(clean)
    assert (row["direction"], row["number"], row["remote"]) == ("in", number, "0399990001")
    check_file(settings, row, talk_time(call))


def test_unconditional_forwarding_recorded(forwarding: list[str], clean: Engine,
                                           settings: Settings, work: Path) -> None:
    """REC-IN-2 (一括転送): every call to 0311110001 goes straight to the outside number,
    the phone never rings, and the call is recorded."""
    set_forwarding(forwarding, "0311110001", "unconditional")
    with Phone(M1A, work / "phone") as phone:
        call, target = forwarded_call(work, "0311110001")
    assert not phone.rang()
    check_forwarded(clean, settings, call, target, "0311110001")


def test_no_answer_forwarding_recorded(forwarding: list[str], clean: Engine,
                                       settings: Settings, work: Path) -> None:
    """REC-IN-2 (着信転送): f1-a rings for 2 s unanswered, then the call goes to the outside
    number and is recorded (only the conversation: MixMonitor 'b' skips the ringing)."""
    set_forwarding(forwarding, "0312345678", "no-answer", "--after", "2")
    with Phone(F1A, work / "phone", mode="noanswer") as phone:
        call, target = forwarded_call(work, "0312345678")
    assert phone.rang()
    assert phone.result().first(method="CANCEL", sent=False) is not None
    check_forwarded(clean, settings, call, target, "0312345678")


def test_unreachable_forwarding_recorded(forwarding: list[str], clean: Engine,
                                         settings: Settings, work: Path) -> None:
    """REC-IN-2 (バックアップ転送): nothing answers at m1-b's address; after the ring timeout
    (3 s here) the call to 05011110002 goes to the outside number and is recorded."""
    with clean.begin() as c:
        c.execute(text("INSERT INTO site_settings (key, value) VALUES ('ring_timeout_s', '3')"
                       " ON CONFLICT (key) DO UPDATE SET value = '3'"))
    set_forwarding(forwarding, "05011110002", "unreachable")
    call, target = forwarded_call(work, "05011110002")
    check_forwarded(clean, settings, call, target, "05011110002")
