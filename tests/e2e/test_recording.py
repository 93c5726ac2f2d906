"""Call recording over real SIP (SPEC §2–3, seed 000): which calls are recorded, what the file
and its row hold, which prefixed destinations are refused, capacity and disaster priority."""

from __future__ import annotations

import array
import hashlib
import math
import re
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from callguard.config import PROJECT_ROOT, Settings
from tests.e2e.sipp import CARRIER_OUT, CallResult, Phone, UacSpec, audio, uac

CLI = str(PROJECT_ROOT / ".venv" / "bin" / "callguard")
F1A, F1B, M1A, M1B = "127.0.1.1", "127.0.1.2", "127.0.1.5", "127.0.1.6"
PATH_RE = re.compile(r"^\d{4}/\d\d/\d\d/(F1|F2|M1)/\d{8}T\d{9}Z_(in|out)_[0-9.]+\.wav$")


def recordings(engine: Engine, wait_s: float = 12) -> list[dict[str, object]]:
    """Rows once none is still `recording` (a file is finished just after its call)."""
    deadline = time.monotonic() + wait_s
    while True:
        with engine.connect() as c:
            rows = [dict(r._mapping) for r in c.execute(text(
                "SELECT r.*, c.code AS contract FROM recordings r JOIN contracts c"
                " ON c.id = r.contract_id ORDER BY r.id"))]
        if all(r["status"] != "recording" for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def check_file(settings: Settings, row: dict[str, object], talk_s: float) -> float:
    """REC-FILE-1: a valid WAV at the SPEC path, the call's length, not silence, right hash."""
    rel = str(row["path"])
    assert PATH_RE.match(rel), rel
    path = settings.recordings_dir / rel
    data = path.read_bytes()
    assert row["status"] == "complete" and row["sha256"] == hashlib.sha256(data).hexdigest()
    assert row["bytes"] == len(data)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        seconds = w.getnframes() / 8000
        samples = array.array("h", w.readframes(w.getnframes()))
    rms = math.sqrt(sum(s * s for s in samples) / max(len(samples), 1))
    assert abs(seconds - talk_s) < 1.0, (seconds, talk_s)
    assert rms > 200, f"recording is silence (rms {rms:.0f})"
    return seconds


def talk_time(call: CallResult) -> float:
    ok, bye = call.first(status=200), call.first(method="BYE")
    assert ok is not None and bye is not None
    return call.seconds_between(ok, bye)


def outbound(work: Path, from_ip: str, dialed: str, extra: list[str] | None = None,
             seconds: float = 3) -> tuple[CallResult, Phone]:
    with Phone(CARRIER_OUT, work / "carrier", audio_s=seconds + 1) as carrier:
        call = uac(UacSpec(to=dialed, steps=[audio(seconds)], extra_headers=extra or []),
                   work / "phone", local_ip=from_ip)
        carrier.wait(5)
    return call, carrier


def test_fixed_prefixed_call_recorded(clean: Engine, settings: Settings, work: Path,
                                      figures: dict[str, object]) -> None:
    """REC-OUT-1: f1-a dials 0077-27 + 0612345678: the carrier gets 0612345678 from
    0312345678; one complete, non-silent recording of the conversation."""
    call, carrier = outbound(work, F1A, "0077270612345678")
    assert call.final_status() == 200
    invite = carrier.result().first(method="INVITE", sent=False)
    assert invite is not None and invite.first_line.startswith("INVITE sip:0612345678@")
    assert "<sip:0312345678@" in (invite.header("From") or "")
    [row] = recordings(clean)
    assert (row["contract"], row["direction"], row["number"], row["remote"]) == (
        "F1", "out", "0312345678", "0612345678")
    seconds = check_file(settings, row, talk_time(call))
    figures.update(recorded_s=round(seconds, 2), bytes=row["bytes"],
                   bytes_per_s=round(int(row["bytes"]) / seconds))  # type: ignore[call-overload]


def test_mobile_prefixed_call_presents_office_number(clean: Engine, settings: Settings,
                                                     work: Path) -> None:
    """REC-OUT-1: m1-a dials 0077-26 + 09012345678: the carrier sees 0311110001, recorded."""
    call, carrier = outbound(work, M1A, "00772609012345678")
    invite = carrier.result().first(method="INVITE", sent=False)
    assert invite is not None and "<sip:0311110001@" in (invite.header("From") or "")
    [row] = recordings(clean)
    check_file(settings, row, talk_time(call))


def test_without_prefix_not_recorded_mobile_presents_own_number(clean: Engine,
                                                                work: Path) -> None:
    """REC-OUT-3: no prefix: a normal, unrecorded call presenting the 090 number."""
    call, carrier = outbound(work, M1A, "0612345678", seconds=1)
    assert call.final_status() == 200
    invite = carrier.result().first(method="INVITE", sent=False)
    assert invite is not None and "<sip:09011110001@" in (invite.header("From") or "")
    assert recordings(clean) == []


@pytest.mark.parametrize("number", ["110", "118", "119"])
def test_emergency_without_prefix_always_connects(clean: Engine, work: Path,
                                                  number: str) -> None:
    """REC-OUT-3: 110/118/119 without prefix go to the carrier, untouched, unrecorded."""
    call, carrier = outbound(work, F1B, number, seconds=0.5)
    assert call.final_status() == 200 and carrier.rang()
    assert recordings(clean) == []


@pytest.mark.parametrize(("source", "dialed", "why"), [
    (F1A, "007727110", "emergency"), (F1A, "007727104", "1XY"),
    (F1A, "0077270033123456789", "00XY carrier code"), (F1A, "007727#8000", "# dialing"),
    (F1A, "00772712345678", "local number without area code"), (F1A, "0077272002", "extension"),
    (F1A, "0077270180123456", "other 0AB0"), (F1A, "0077270201234567", "other 0A0"),
    (F1A, "007727031234567", "wrong length"), (F1A, "0077260612345678", "mobile prefix"),
    (M1A, "0077270612345678", "fixed prefix"), (M1B, "0077260120123456", "0120 from 050"),
    (M1B, "0077260570123456", "0570 from 050"), (M1B, "00772608001234567", "0800 from 050"),
])
def test_refused_prefixed_calls(clean: Engine, work: Path, source: str, dialed: str,
                                why: str) -> None:
    """REC-OUT-2: spoken refusal as early media (183), released, never connected (no INVITE
    at the carrier), never recorded."""
    call, carrier = outbound(work, source, dialed, seconds=0.5)
    assert 183 in call.statuses(), (why, call.statuses())
    assert (call.final_status() or 0) >= 400 and 200 not in call.statuses()
    assert not carrier.rang(), why
    assert recordings(clean) == []


def test_roaming_mobile_call_not_recorded(clean: Engine, work: Path) -> None:
    """REC-OUT-4: a prefixed call made while roaming abroad (P-Visited-Network-ID)."""
    call, carrier = outbound(work, M1A, "0077260612345678",
                             extra=['P-Visited-Network-ID: "Visited network"'], seconds=1)
    assert call.final_status() == 200 and carrier.rang()
    assert recordings(clean) == []


def inbound(work: Path, to: str, phone_ip: str, caller: str = "0399990001",
            headers: list[str] | None = None, from_host: str | None = None,
            seconds: float = 3) -> CallResult:
    with Phone(phone_ip, work / "phone", audio_s=seconds + 1):
        return uac(UacSpec(to=to, from_user=caller, steps=[audio(seconds)],
                           extra_headers=headers or [], from_host=from_host), work / "carrier")


@pytest.mark.parametrize(("number", "phone"), [("0312345678", F1A), ("0312345679", F1B),
                                               ("0311110001", M1A), ("05011110002", M1B)])
def test_inbound_to_business_numbers_recorded(clean: Engine, settings: Settings, work: Path,
                                              number: str, phone: str) -> None:
    """REC-IN-1: calls to 0ABJ/050 numbers of recording contracts are recorded."""
    call = inbound(work, number, phone)
    [row] = recordings(clean)
    assert (row["direction"], row["number"], row["remote"]) == ("in", number, "0399990001")
    check_file(settings, row, talk_time(call))


def test_inbound_to_native_mobile_number_not_recorded(clean: Engine, work: Path) -> None:
    """REC-IN-1: a mobile's own 090 number is not recorded."""
    assert inbound(work, "09011110001", M1A, seconds=1).final_status() == 200
    assert recordings(clean) == []


def test_withheld_caller_recorded(clean: Engine, settings: Settings, work: Path) -> None:
    """REC-IN-2: 非通知 calls are recorded; the remote party is shown as presented."""
    call = inbound(work, "0312345679", F1B, caller="anonymous", from_host="anonymous.invalid",
                   headers=["P-Asserted-Identity: <sip:0399995555@127.0.0.2>", "Privacy: id"])
    [row] = recordings(clean)
    assert row["remote"] == "anonymous"
    check_file(settings, row, talk_time(call))


@pytest.fixture
def forwarding(clean: Engine) -> Iterator[None]:
    yield
    subprocess.run([CLI, "forwarding", "clear", "--number", "0311110001"], check=True)


def test_unconditional_forwarding_recorded(forwarding: None, clean: Engine, settings: Settings,
                                           work: Path) -> None:
    """REC-IN-2: a call this suite forwards to an outside number is recorded."""
    subprocess.run([CLI, "forwarding", "set", "--number", "0311110001", "--to", "0399998877",
                    "--mode", "unconditional"], check=True)
    time.sleep(2.5)  # the site snapshot refreshes every 2 s
    with Phone(CARRIER_OUT, work / "forwarded", audio_s=4) as target:
        call = uac(UacSpec(to="0311110001", steps=[audio(3)]), work / "carrier")
    invite = target.result().first(method="INVITE", sent=False)
    assert invite is not None and invite.first_line.startswith("INVITE sip:0399998877@")
    [row] = recordings(clean)
    check_file(settings, row, talk_time(call))


@pytest.fixture
def capacity_two(clean: Engine) -> Iterator[None]:
    subprocess.run([CLI, "recordings", "capacity", "--max", "2"], check=True,
                   capture_output=True)
    time.sleep(2.5)
    yield
    with clean.begin() as c:
        c.execute(text("DELETE FROM site_settings WHERE key = 'max_recordings'"))
    time.sleep(2.5)


def test_capacity_congestion_and_disaster_priority(capacity_two: None, clean: Engine,
                                                   work: Path) -> None:
    """REC-CAP-1: with 2 recordings running, an ordinary call gets congestion (503, no row);
    the disaster-priority line and a Resource-Priority call connect, unrecorded."""
    holders: list[CallResult] = []

    def hold(i: int) -> None:
        holders.append(uac(UacSpec(to="0312345678", from_user=f"039999000{i}",
                                   steps=[audio(20)]), work / f"hold{i}", timeout_s=40))

    with Phone(F1A, work / "phone", audio_s=22, calls=10):
        threads = [threading.Thread(target=hold, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        time.sleep(3)
        # Quick calls first: the ordinary one hears the congestion guidance for seconds.
        priority = uac(UacSpec(to="0312345678", from_user="0312340119", steps=[audio(1)]),
                       work / "priority")
        rp = uac(UacSpec(to="0312345678", from_user="0399990010", steps=[audio(1)],
                         extra_headers=["Resource-Priority: ets.0"]), work / "rp")
        ordinary = uac(UacSpec(to="0312345678", from_user="0399990009"), work / "ordinary")
        for t in threads:
            t.join(40)
    assert ordinary.final_status() == 503
    assert priority.final_status() == 200 and rp.final_status() == 200
    rows = recordings(clean)
    assert sorted(str(r["remote"]) for r in rows) == ["0399990000", "0399990001"]
