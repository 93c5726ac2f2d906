"""REL-1/SEC-4 audit: a call that takes the FastAGI fallback, or fails open because the
fallback is down too, leaves a WARNING with its channel in messages.log, and `callguard
status` counts those since Asterisk started. A prefixed (recorded) call never fails open."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from callguard.config import PROJECT_ROOT, Settings
from tests.e2e.conftest import MessagesLog
from tests.e2e.rec_helpers import CALLER_HZ, F1A, F1B, inbound
from tests.e2e.sipp import CARRIER_OUT, Phone, UacCall, UacSpec, tone
from tests.e2e.test_reliability import app_connected
from tests.waiting import wait_for

STACK = str(PROJECT_ROOT / "tools" / "stack.sh")
CLI = str(PROJECT_ROOT / ".venv" / "bin" / "callguard")


def counts() -> dict[str, int]:
    out = subprocess.run([CLI, "status", "--json"], capture_output=True, text=True).stdout
    fail_open: dict[str, int] = json.loads(out)["fail_open"]
    return fail_open


@pytest.fixture
def services_stopped(clean: Engine) -> Iterator[list[str]]:
    stopped: list[str] = []
    try:
        yield stopped
    finally:
        for name in reversed(stopped):
            subprocess.run([STACK, "app-start", name], check=True)
        assert wait_for(app_connected, 30)


def test_fallback_and_fail_open_are_logged_and_counted(services_stopped: list[str],
                                                       settings: Settings,
                                                       work: Path) -> None:
    before = counts()
    for name in ("ari",):
        subprocess.run([STACK, "app-stop", name], check=True)
        services_stopped.append(name)
    assert wait_for(lambda: not app_connected(), 5)
    log = MessagesLog(settings)
    call = inbound(work / "fallback", "0312345679", F1B)
    assert call.final_status() == 200
    warned = [ln for ln in log.lines() if re.search(
        r"WARNING\[.*callguard: ARI app unavailable .* for PJSIP/carrier-[0-9a-f]+", ln)]
    assert len(warned) == 1, log.lines()
    assert counts()["fallback"] == before["fallback"] + 1

    subprocess.run([STACK, "app-stop", "fastagi"], check=True)
    services_stopped.append("fastagi")
    log = MessagesLog(settings)
    call = inbound(work / "open", "0312345679", F1B)
    assert call.final_status() == 200  # unscreened but never dropped
    failed_open = [ln for ln in log.lines() if re.search(
        r"WARNING\[.*callguard: fallback server unavailable .* PJSIP/carrier-[0-9a-f]+ - "
        r"failing open", ln)]
    assert len(failed_open) == 1, log.lines()
    after = counts()
    assert after == {"fallback": before["fallback"] + 2,
                     "failed_open": before["failed_open"] + 1}

    # A prefixed call does not fail open: nothing could record it, and the carrier must never
    # see the prefix (REC-OUT-1/2, source 000), also behind 184 or with a # the dial string
    # would drop. Congestion prompt as early media, 503 (34); not counted as failed open.
    refused_in_fail_open(settings, work / "open-rec", "prefixed call refused",
                         ("0077270612345678", "1840077270612345678", "#0077270612345678"))
    # Each took the fallback branch first (the app is down), but none failed open.
    assert counts() == {"fallback": after["fallback"] + 3, "failed_open": after["failed_open"]}


def refused_in_fail_open(settings: Settings, work: Path, logged: str,
                         dial_forms: tuple[str, ...]) -> None:
    """f1-a dials each form with both apps down, side by side (each hears ~8 s of prompt): the
    congestion prompt as early media, 503 (cause 34), the carrier never rings, and one
    WARNING `... - <logged>` per call."""
    log = MessagesLog(settings)
    with Phone(CARRIER_OUT, work / "carrier", calls=len(dial_forms), timeout_s=60) as carrier:
        placed: dict[str, UacCall] = {}
        try:
            for i, dialed in enumerate(dial_forms):
                placed[dialed] = UacCall(UacSpec(to=dialed, steps=[tone(0.5, CALLER_HZ)]),
                                         work / f"call-{i}", local_ip=F1A)
                time.sleep(0.3)  # spreads the sipp start-ups
        finally:  # also after a failed start: no caller is left running
            calls = {dialed: call.result() for dialed, call in placed.items()}
        carrier.wait(1)
    for dialed, call in calls.items():
        progress = call.first(status=183)
        assert progress is not None, (dialed, call.statuses())
        assert "application/sdp" in (progress.header("Content-Type") or ""), dialed
        assert call.final_status() == 503 and 200 not in call.statuses(), (dialed,
                                                                           call.statuses())
    assert not carrier.rang(), carrier.invites()
    refused = [ln for ln in log.lines() if re.search(
        r"WARNING\[.*callguard: fallback server unavailable .* PJSIP/f1-a-[0-9a-f]+ - "
        + re.escape(logged), ln)]
    assert len(refused) == len(dial_forms), log.lines()


def test_144_never_fails_open(services_stopped: list[str], settings: Settings,
                              work: Path) -> None:
    """NCR-*, REL-7: with both apps down nothing can run the 144 menu, and the carrier must
    never get the service code as a call, also with a * or # the dial string would drop or
    behind 184. Congestion prompt as early media, 503 (34); taken as a fallback, not counted
    as failed open (tests/unit/test_dialplan_failopen.py walks the same branch)."""
    for name in ("ari", "fastagi"):
        subprocess.run([STACK, "app-stop", name], check=True)
        services_stopped.append(name)
    assert wait_for(lambda: not app_connected(), 5)
    before = counts()
    dial_forms = ("144", "*144", "144#", "184144")
    refused_in_fail_open(settings, work / "open-144", "144 refused", dial_forms)
    assert counts() == {"fallback": before["fallback"] + len(dial_forms),
                        "failed_open": before["failed_open"]}
