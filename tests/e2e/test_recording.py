"""Call recording over real SIP (SPEC §2–3, seed 000): which calls are recorded, what the file
and its row hold, which prefixed destinations are refused, capacity and disaster priority.

Every recorded call carries RTP both ways (the caller at 440 Hz, the called party at 1000 Hz);
rec_helpers.check_file checks the file against the call (REC-FILE-1)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from callguard.config import Settings
from tests.e2e.conftest import MessagesLog, clean_call_state
from tests.e2e.rec_helpers import (
    CALLEE_HZ,
    CALLER_HZ,
    CLI,
    F1A,
    F1B,
    F2A,
    M1A,
    M1B,
    capacity_restored,
    check_file,
    inbound,
    outbound,
    recordings,
    talk_time,
    wait_site_refresh,
    wav_files,
)
from tests.e2e.sipp import CARRIER_OUT, CallResult, Phone, UacCall, UacSpec, audio, tone, uac
from tests.e2e.test_reliability import rows as query_rows
from tests.waiting import wait_for


def carrier_invite(carrier: Phone) -> tuple[str, str]:
    """(Request-URI user, From user) of the INVITE the carrier received."""
    invite = carrier.result().first(method="INVITE", sent=False)
    assert invite is not None, "the carrier got no INVITE"
    uri_user = invite.first_line.split("sip:", 1)[1].split("@", 1)[0]
    from_user = (invite.header("From") or "").split("sip:", 1)[1].split("@", 1)[0]
    return uri_user, from_user


def test_fixed_prefixed_call_recorded(clean: Engine, settings: Settings, work: Path,
                                      figures: dict[str, object]) -> None:
    """REC-OUT-1, REC-FILE-1: f1-a dials 0077-27 + 0612345678: the carrier gets 0612345678
    from 0312345678; one complete recording of the conversation, both parties in it."""
    call, carrier = outbound(work, F1A, "0077270612345678")
    assert call.final_status() == 200
    assert carrier_invite(carrier) == ("0612345678", "0312345678")
    [row] = recordings(clean)
    assert (row["contract"], row["direction"], row["number"], row["remote"]) == (
        "F1", "out", "0312345678", "0612345678")
    seconds = check_file(settings, row, talk_time(call))
    assert len(wav_files(settings)) == 1  # REC-FILE-1: one file per call
    figures.update(recorded_s=round(seconds, 2), bytes=row["bytes"],
                   bytes_per_s=round(int(row["bytes"]) / seconds))  # type: ignore[call-overload]


def test_mobile_prefixed_call_presents_office_number(clean: Engine, settings: Settings,
                                                     work: Path) -> None:
    """REC-OUT-1: m1-a dials 0077-26 + 09012345678: the carrier sees 0311110001, recorded."""
    call, carrier = outbound(work, M1A, "00772609012345678")
    assert carrier_invite(carrier) == ("09012345678", "0311110001")
    [row] = recordings(clean)
    assert (row["contract"], row["number"], row["remote"]) == ("M1", "0311110001",
                                                               "09012345678")
    check_file(settings, row, talk_time(call))


# SPEC §2 "allowed" rows over SIP (NUM-1 with REC-OUT-1), one call per class.
@pytest.mark.parametrize(("source", "dialed", "presented", "row"), [
    (F1A, "0077270470221234", "0312345678", "0ABJ (fourth digit 0: 0470 Tateyama)"),
    (F1A, "00772701044201234567", "0312345678", "international 010"),
    (F1A, "00772705012345678", "0312345678", "IP phone 050"),
    (F1A, "00772707012345678", "0312345678", "PHS/mobile 070"),
    (M1A, "00772608012345678", "0311110001", "mobile 080"),
    (F1A, "0077270120123456", "0312345678", "freephone 0120"),
    (M1A, "0077260120123456", "0311110001", "freephone 0120 from a 0ABJ office number"),
    (F1B, "00772708001234567", "0312345679", "freephone 0800"),
    (F1A, "0077270570123456", "0312345678", "navi-dial 0570"),
    (M1B, "0077260312345678", "05011110002", "0ABJ from a 050 line"),
])
def test_allowed_destination_classes_recorded(clean: Engine, settings: Settings, work: Path,
                                              source: str, dialed: str, presented: str,
                                              row: str) -> None:
    """REC-OUT-1 / NUM-1: each allowed class reaches the carrier (prefix stripped, the
    office/fixed number presented) and is recorded."""
    call, carrier = outbound(work, source, dialed, seconds=2)
    assert call.final_status() == 200, (row, call.statuses())
    assert carrier_invite(carrier) == (dialed[6:], presented), row
    [rec] = recordings(clean)
    assert (rec["direction"], rec["number"], rec["remote"]) == ("out", presented, dialed[6:])
    check_file(settings, rec, talk_time(call))


@pytest.mark.parametrize(("source", "dialed", "presented"), [
    (M1A, "0612345678", "09011110001"),  # a mobile presents its native 090 number
    (F1A, "0612345678", "0312345678"),
])
def test_without_prefix_not_recorded(clean: Engine, settings: Settings, work: Path,
                                     source: str, dialed: str, presented: str) -> None:
    """REC-OUT-3: no prefix: a normal, unrecorded call."""
    call, carrier = outbound(work, source, dialed, seconds=1)
    assert call.final_status() == 200
    assert carrier_invite(carrier) == (dialed, presented)
    assert recordings(clean) == [] and wav_files(settings) == []


@pytest.mark.parametrize("number", ["110", "118", "119"])
def test_emergency_without_prefix_always_connects(clean: Engine, settings: Settings,
                                                  work: Path, number: str) -> None:
    """REC-OUT-3: 110/118/119 without prefix go to the carrier, untouched, unrecorded."""
    call, carrier = outbound(work, F1B, number, seconds=0.5)
    assert call.final_status() == 200
    assert carrier_invite(carrier)[0] == number
    assert recordings(clean) == [] and wav_files(settings) == []


def test_fixed_extension_call_records_the_receiving_line(clean: Engine, settings: Settings,
                                                         work: Path) -> None:
    """REC-OUT-4 (source 000: 「KDDI ビジネスコールダイレクト」による内線着信通話も録音対象):
    f1-a dials extension 2002: f1-b's side is recorded as an inbound call (remote: the
    calling extension); nothing is recorded as the calling side's outbound call."""
    with Phone(F1B, work / "callee", audio_s=4, audio_hz=CALLEE_HZ) as phone:
        call = uac(UacSpec(to="2002", steps=[tone(3, CALLER_HZ)]), work / "caller",
                   local_ip=F1A)
        phone.wait(5)
    assert call.final_status() == 200 and phone.rang()
    [row] = recordings(clean)
    assert (row["contract"], row["direction"], row["number"], row["remote"]) == (
        "F1", "in", "0312345679", "2001")
    check_file(settings, row, talk_time(call))
    assert len(wav_files(settings)) == 1


@pytest.mark.parametrize(("source", "dialed", "callee"), [(M1A, "2002", M1B)])
def test_extension_call_not_recorded(clean: Engine, settings: Settings, work: Path,
                                     source: str, dialed: str, callee: str) -> None:
    """REC-OUT-4: on a mobile contract neither side of an extension call is recorded."""
    with Phone(callee, work / "callee", audio_s=2, audio_hz=CALLEE_HZ) as phone:
        call = uac(UacSpec(to=dialed, steps=[audio(1)]), work / "caller", local_ip=source)
        phone.wait(5)
    assert call.final_status() == 200 and phone.rang()
    assert recordings(clean) == [] and wav_files(settings) == []


# SPEC §2 "refused" rows over SIP, and the other REC-OUT-2 refusals.
REFUSED = [
    (F1A, "007727110", "emergency"), (F1A, "007727104", "1XY"),
    (F1A, "0077270033123456789", "00XY carrier code"), (F1A, "007727#8000", "# dialing"),
    (F1A, "00772712345678", "local number without area code"), (F1A, "0077272002", "extension"),
    (F1A, "0077270180123456", "other 0AB0"), (F1A, "0077270201234567", "other 0A0"),
    (F1A, "00772751234567890", "not starting with 0"),
    (F1A, "0077260612345678", "mobile prefix from a fixed line"),
    (M1A, "0077270612345678", "fixed prefix from a mobile"),
    (F2A, "0077270312345678", "contract without the recording add-on"),
    (M1B, "0077260120123456", "0120 from 050"), (M1B, "0077260570123456", "0570 from 050"),
    (M1B, "00772608001234567", "0800 from 050"),
]
# A misdial after the prefix is none of source 000's refused destinations: what the same typo
# gets without the prefix, 「おかけになった電話番号は、現在使われておりません。」 and 404 (cause
# 1), not the refusal's 「…プレフィックスを付けずに、おかけ直しください。」. Same batch.
MISDIALED = [
    (F1A, "007727031234567", "too few digits"), (F1A, "00772703123456789", "too many digits"),
    (M1A, "007726", "prefix without a number"), (F1A, "007727010", "010 without a number"),
]


@dataclass
class RefusedCalls:
    calls: dict[tuple[str, str], CallResult]  # by (source, dialed)
    carrier_invites: list[str]  # Request-URIs the carrier received
    rows: list[dict[str, object]]
    files: list[Path]


@pytest.fixture(scope="module")
def refused_calls(engine: Engine, stack: Settings,
                  tmp_path_factory: pytest.TempPathFactory) -> RefusedCalls:
    """Every REFUSED and MISDIALED call placed side by side: each hears its refusal for
    ~8 s, so one after the other they took ~160 s of the suite; together ~15 s. Then what
    the carrier saw and what was written, for the whole batch."""
    clean_call_state(engine, stack)
    work = tmp_path_factory.mktemp("refused")
    with Phone(CARRIER_OUT, work / "carrier", audio_s=1.5, audio_hz=CALLEE_HZ,
               calls=len(REFUSED) + len(MISDIALED), timeout_s=120) as carrier:
        placed: dict[tuple[str, str], UacCall] = {}
        try:
            for i, (source, dialed, _) in enumerate(REFUSED + MISDIALED):
                placed[source, dialed] = UacCall(
                    UacSpec(to=dialed, steps=[tone(0.5, CALLER_HZ)]), work / f"call-{i:02d}",
                    local_ip=source)
                # Ports are unique by sipp.py's register; the spacing spreads 19 sipp
                # start-ups so they do not compete with the calls already ringing.
                time.sleep(0.3)
        finally:  # also after a failed start: no caller is left running
            calls = {key: call.result() for key, call in placed.items()}
        carrier.wait(1)
    return RefusedCalls(calls, carrier.invites(), recordings(engine, wait_s=1),
                        wav_files(stack))


@pytest.mark.parametrize(("source", "dialed", "why"), REFUSED)
def test_refused_prefixed_calls(refused_calls: RefusedCalls, source: str, dialed: str,
                                why: str) -> None:
    """REC-OUT-2: spoken refusal as early media (183 with SDP), then 403 (cause 21);
    never connected (no INVITE at the carrier), never recorded (no row, no file)."""
    call = refused_calls.calls[source, dialed]
    progress = call.first(status=183)
    assert progress is not None, (why, call.statuses())
    assert "application/sdp" in (progress.header("Content-Type") or ""), why
    assert call.final_status() == 403 and 200 not in call.statuses(), (why, call.statuses())
    # The batch's: a refused call that reached the carrier or was recorded shows by its number.
    assert refused_calls.carrier_invites == [], why
    assert refused_calls.rows == [] and refused_calls.files == [], why


@pytest.mark.parametrize(("source", "dialed", "why"), MISDIALED)
def test_misdialed_prefixed_calls(refused_calls: RefusedCalls, source: str, dialed: str,
                                  why: str) -> None:
    """REC-OUT-2: the unallocated-number prompt as early media (183 with SDP), then 404
    (cause 1); never connected, never recorded (the batch's, as above)."""
    call = refused_calls.calls[source, dialed]
    progress = call.first(status=183)
    assert progress is not None, (why, call.statuses())
    assert "application/sdp" in (progress.header("Content-Type") or ""), why
    assert call.final_status() == 404 and 200 not in call.statuses(), (why, call.statuses())
    assert refused_calls.carrier_invites == [], why
    assert refused_calls.rows == [] and refused_calls.files == [], why


@pytest.fixture
def m1a_roaming(clean: Engine) -> Iterator[None]:
    """m1-a marked abroad in the database (the handset's own P-Visited-Network-ID is not
    trusted, SEC-4)."""
    subprocess.run([CLI, "endpoints", "update", "m1-a", "--roaming"], check=True,
                   capture_output=True)
    try:
        wait_site_refresh()
        yield
    finally:
        subprocess.run([CLI, "endpoints", "update", "m1-a", "--no-roaming"], check=True,
                       capture_output=True)
        wait_site_refresh()


def test_roaming_mobile_call_not_recorded(m1a_roaming: None, clean: Engine,
                                          settings: Settings, work: Path) -> None:
    """REC-OUT-4: a prefixed call made while roaming abroad (the endpoint's roaming flag)
    still goes out with the office number, unrecorded."""
    call, carrier = outbound(work, M1A, "0077260612345678", seconds=1)
    assert call.final_status() == 200
    assert carrier_invite(carrier) == ("0612345678", "0311110001")
    assert recordings(clean) == [] and wav_files(settings) == []


@pytest.mark.parametrize(("number", "phone"), [("0312345678", F1A), ("0312345679", F1B),
                                               ("0311110001", M1A), ("05011110002", M1B)])
def test_inbound_to_business_numbers_recorded(clean: Engine, settings: Settings, work: Path,
                                              number: str, phone: str) -> None:
    """REC-IN-1: calls to 0ABJ/050 numbers of recording contracts are recorded (fixed:
    representative and dial-in; mobile: office numbers)."""
    call = inbound(work, number, phone)
    assert call.final_status() == 200
    [row] = recordings(clean)
    assert (row["direction"], row["number"], row["remote"]) == ("in", number, "0399990001")
    check_file(settings, row, talk_time(call))


def test_caller_hangs_up_first_without_errors(clean: Engine, settings: Settings,
                                            work: Path) -> None:
    """REL-8: the carrier hanging up recorded calls first (the usual order) leaves nothing
    for the called leg's hangup handler to pass on, and no ERROR in messages.log. It logged
    one whenever the caller's channel was gone before that handler ran: a race, lost on
    every call of `make bench` and on about one call in five here, hence several calls.
    A CHANNEL_EXISTS check before the write still lost it once in CI; the handler now
    writes only cause 44, which a leg the caller hung up never has."""
    log = MessagesLog(settings)
    for i in range(6):
        call = inbound(work / str(i), "0312345678", F1A, seconds=0.5)
        assert call.final_status() == 200
        assert call.first(method="BYE", sent=True) is not None  # the carrier hangs up
    rows = recordings(clean)
    assert [r["status"] for r in rows] == ["complete"] * 6
    errors = [ln for ln in log.lines() if "ERROR[" in ln]
    assert errors == [], errors


def test_inbound_to_native_mobile_number_not_recorded(clean: Engine, settings: Settings,
                                                      work: Path) -> None:
    """REC-IN-1: a mobile's own 090 number is not recorded."""
    assert inbound(work, "09011110001", M1A, seconds=1).final_status() == 200
    assert recordings(clean) == [] and wav_files(settings) == []


def test_withheld_caller_recorded(clean: Engine, settings: Settings, work: Path) -> None:
    """REC-IN-2: 非通知 calls are recorded; the remote party is shown as presented."""
    call = inbound(work, "0312345679", F1B, caller="anonymous", from_host="anonymous.invalid",
                   headers=["P-Asserted-Identity: <sip:0399995555@127.0.0.2>", "Privacy: id"])
    [row] = recordings(clean)
    assert row["remote"] == "anonymous"
    check_file(settings, row, talk_time(call))


@pytest.fixture
def capacity_two(clean: Engine) -> Iterator[None]:
    """REC-CAP-1 maximum set low through the CLI; whatever was configured before (another
    engineer's benchmark may have its own value) is restored afterwards."""
    with capacity_restored(clean):
        subprocess.run([CLI, "recordings", "capacity", "--max", "2", "--policy",
                        "congestion"], check=True, capture_output=True)
        wait_site_refresh()
        yield


def test_capacity_congestion_policy_and_disaster_priority(
        capacity_two: None, clean: Engine, settings: Settings, work: Path) -> None:
    """REC-CAP-1: with 2 recordings running, an ordinary call hears the congestion guidance
    (183) and gets 503, no row; the disaster-priority line and a Resource-Priority call
    connect, unrecorded; with `--policy unrecorded` an ordinary call connects unrecorded."""
    holders: dict[str, CallResult] = {}

    def hold(i: int) -> None:
        caller = f"039999000{i}"
        holders[caller] = uac(UacSpec(to="0312345678", from_user=caller, steps=[audio(25)]),
                              work / f"hold{i}", timeout_s=50)

    with Phone(F1A, work / "phone", audio_s=27, calls=10, timeout_s=60, audio_hz=CALLEE_HZ):
        threads = [threading.Thread(target=hold, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        # Both holders recording before the third call; without them the ordinary call would
        # rightly connect, and the test would blame the wrong thing. A row is written when its
        # call is decided (the phone answers at once); an inbound row's answered_at only comes
        # with the call's end (ANSWEREDTIME_MS, PERF-1), so it cannot be the signal.
        def recording() -> int:
            return len(query_rows(clean,
                                  "SELECT 1 FROM recordings WHERE status = 'recording'"))
        assert wait_for(lambda: recording() == 2, 10), \
            f"{recording()} holders recording after 10 s (see {work}/hold*)"
        threading.Event().wait(0.5)  # answered, as the phone answers at once
        # Quick calls first: the ordinary one hears the congestion guidance for seconds.
        priority = uac(UacSpec(to="0312345678", from_user="0312340119", steps=[audio(1)]),
                       work / "priority")
        rp = uac(UacSpec(to="0312345678", from_user="0399990010", steps=[audio(1)],
                         extra_headers=["Resource-Priority: ets.0"]), work / "rp")
        ordinary = uac(UacSpec(to="0312345678", from_user="0399990009"), work / "ordinary")
        subprocess.run([CLI, "recordings", "capacity", "--policy", "unrecorded"], check=True,
                       capture_output=True)
        wait_site_refresh()
        unrecorded = uac(UacSpec(to="0312345678", from_user="0399990011", steps=[audio(1)]),
                         work / "unrecorded")
        for t in threads:
            t.join(50)
    assert ordinary.final_status() == 503 and 183 in ordinary.statuses()
    assert priority.final_status() == 200 and rp.final_status() == 200
    assert unrecorded.final_status() == 200
    rows = recordings(clean)
    assert sorted(str(r["remote"]) for r in rows) == ["0399990000", "0399990001"]
    assert len(wav_files(settings)) == 2
    for row in rows:
        # The holders play one tone (440 Hz) against the phone's 1000 Hz.
        check_file(settings, row, talk_time(holders[str(row["remote"])]))
