"""Transfer-proof recording over real SIP (issue #14): when the customer's phone transfers a
recorded call (blind REFER, or attended: a consult call then REFER with Replaces), the
recording goes on to the end of the conversation in one file and one row.

The carrier's caller talks at 440 Hz throughout; f1-a answers at 1000 Hz and transfers; the
transfer target answers at 1700 Hz. The file must cover the whole conversation (the carrier's
200 OK to its BYE), hold f1-a's tone before the transfer and the target's tone after it."""

from __future__ import annotations

import array
import hashlib
import wave
from pathlib import Path

from sqlalchemy import Engine

from callguard.config import Settings
from tests.e2e.rec_helpers import (
    CALLEE_HZ,
    CALLER_HZ,
    F1A,
    F1B,
    TONE_MIN,
    recordings,
    talk_time,
    tone_amplitude,
)
from tests.e2e.sipp import (
    CARRIER_OUT,
    PLAIN_CALL_ID,
    CallResult,
    Phone,
    ScenarioPhone,
    TransferPhone,
    UacSpec,
    final_sipfrag,
    run_uac_xml,
    tone,
    transfer_xml,
    uac,
    uas_hangs_up_xml,
)

M1A, M1B = "127.0.1.5", "127.0.1.6"  # m1-a and m1-b (extension 2002), contract M1 (mobile)
TARGET_HZ = 1700.0
CALLER_S = 12.0  # the carrier's caller talks this long, then hangs up
BEFORE_S = 3.0  # f1-a talks this long before it transfers


def samples(path: Path) -> array.array[int]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        return array.array("h", w.readframes(w.getnframes()))


def carrier_call(work: Path) -> CallResult:
    return uac(UacSpec(to="0312345678", from_user="0399990001",
                       steps=[tone(CALLER_S, CALLER_HZ)]), work / "carrier")


def check_one_recording(engine: Engine, settings: Settings, talk: float, direction: str = "in",
                        stays_hz: float = CALLER_HZ, leaves_hz: float = CALLEE_HZ,
                        contract: str = "F1") -> dict[str, float]:
    """One complete row and one file as long as the whole conversation (`talk`, as the party
    that stays saw it); the transferring phone's tone before the transfer, the target's after
    it (and the transferring phone's no longer); the party that stays throughout."""
    rows = recordings(engine, wait_s=30)
    assert len(rows) == 1, rows
    [row] = rows
    assert row["status"] == "complete" and row["reason"] is None, row
    assert row["direction"] == direction and row["contract"] == contract
    files = sorted(settings.recordings_dir.rglob("*.wav"))
    assert [f.relative_to(settings.recordings_dir).as_posix() for f in files] == [row["path"]]
    data = files[0].read_bytes()
    assert row["sha256"] == hashlib.sha256(data).hexdigest() and row["bytes"] == len(data)
    pcm = samples(files[0])
    seconds = len(pcm) / 8000
    assert abs(seconds - talk) < 1.0, (seconds, talk)
    assert abs(float(row["duration_s"]) - seconds) < 0.01  # type: ignore[arg-type]
    answered, ended = row["answered_at"], row["ended_at"]
    row_talk = (ended - answered).total_seconds()  # type: ignore[operator]
    # Before: [0.5 s, BEFORE_S - 0.5 s]; after: the last quarter of the call.
    before = pcm[4000:int((BEFORE_S - 0.5) * 8000)]
    after = pcm[int(seconds * 0.7 * 8000):int((seconds - 0.5) * 8000)]
    amp = {(part, hz): tone_amplitude(chunk, 8000, hz)
           for part, chunk in (("before", before), ("after", after))
           for hz in (stays_hz, leaves_hz, TARGET_HZ)}
    assert amp["before", stays_hz] > TONE_MIN and amp["before", leaves_hz] > TONE_MIN, amp
    assert amp["after", stays_hz] > TONE_MIN, amp
    assert amp["after", TARGET_HZ] > TONE_MIN, f"the transfer target is not in the file: {amp}"
    assert amp["after", leaves_hz] < TONE_MIN / 10, f"f1-a still heard after leaving: {amp}"
    assert abs(row_talk - talk) < 1.0, row
    return {"seconds": round(seconds, 2), "talk_s": round(talk, 2),
            **{f"{part}@{hz:g}": round(a) for (part, hz), a in amp.items()}}


def test_blind_transfer_keeps_recording(clean: Engine, settings: Settings, work: Path,
                                        figures: dict[str, object]) -> None:
    """Issue #14 transfer-proof, blind: a recorded inbound call to f1-a (0312345678); after
    3 s f1-a sends REFER (Refer-To: f1-b's 0312345679); f1-b rings, answers and talks until the
    caller hangs up. One row, complete; one file covering the whole conversation."""
    with Phone(F1B, work / "f1b", audio_s=CALLER_S, audio_hz=TARGET_HZ) as target, \
            TransferPhone(F1A, work / "f1a", "0312345679", BEFORE_S, CALLEE_HZ) as phone:
        call = carrier_call(work)
        phone.wait(10)
        target.wait(10)
    assert call.final_status() == 200, call.timeline()
    assert phone.sent_refer(), phone.result().timeline()
    assert phone.final_sipfrag() == "SIP/2.0 200 OK", phone.result().timeline()
    assert target.rang() and target.result().first(method="ACK") is not None
    assert not call.bye_from_far_end(), "the caller was dropped at the transfer"
    figures.update(blind=check_one_recording(clean, settings, talk_time(call)))


def test_attended_transfer_keeps_recording(clean: Engine, settings: Settings, work: Path,
                                           figures: dict[str, object]) -> None:
    """Issue #14 transfer-proof, attended: f1-a answers the recorded inbound call, after 3 s
    consults an outside number (unrecorded: no prefix) for 1.5 s, then REFERs the caller to
    it with Replaces. The caller and the outside party talk on; one row, one file, to the end."""
    with Phone(CARRIER_OUT, work / "outside", audio_s=CALLER_S, audio_hz=TARGET_HZ) as target, \
            TransferPhone(F1A, work / "f1a", "0312349999", BEFORE_S, CALLEE_HZ,
                          consult_s=1.5) as phone:
        call = carrier_call(work)
        phone.wait(10)
        target.wait(10)
    assert call.final_status() == 200, call.timeline()
    assert phone.sent_refer(), phone.result().timeline()
    assert phone.final_sipfrag() == "SIP/2.0 200 OK", phone.result().timeline()
    assert target.rang()
    assert not call.bye_from_far_end(), "the caller was dropped at the transfer"
    figures.update(attended=check_one_recording(clean, settings, talk_time(call)))


def test_outbound_blind_transfer_keeps_recording(clean: Engine, settings: Settings, work: Path,
                                                 figures: dict[str, object]) -> None:
    """Issue #14 transfer-proof, outbound: f1-a's prefixed (recorded) call to 0612345678; the
    called party answers; after 3 s f1-a REFERs it to f1-b (0312345679) and leaves. The
    recording ran on f1-a's leg: it goes on from the called party's leg into the same file, and
    the row ends when the called party hangs up (12 s), not when f1-a left."""
    far_xml = uas_hangs_up_xml(CALLER_S, CALLEE_HZ, work / "far")
    with Phone(F1B, work / "f1b", audio_s=CALLER_S, audio_hz=TARGET_HZ) as target, \
            ScenarioPhone(CARRIER_OUT, work / "far", far_xml) as far:
        phone = run_uac_xml(transfer_xml(work / "f1a", "0312345679", BEFORE_S, CALLER_HZ,
                                         dialed="0077270612345678"), work / "f1a", F1A)
        far.wait(20)
        target.wait(10)
    assert any(m.method == "REFER" and m.sent for m in phone.messages), phone.timeline()
    assert any(m.status == 202 for m in phone.received()), phone.timeline()
    seen = far.result()
    ok = next(m for m in seen.messages if m.sent and m.status == 200)
    bye = seen.first(method="BYE")
    assert bye is not None and bye.sent, seen.timeline()
    assert target.rang()
    figures.update(outbound_blind=check_one_recording(
        clean, settings, seen.seconds_between(ok, bye), "out", CALLEE_HZ, CALLER_HZ))


def test_outbound_attended_transfer_keeps_recording(clean: Engine, settings: Settings,
                                                    work: Path,
                                                    figures: dict[str, object]) -> None:
    """Issue #14 transfer-proof, outbound attended: m1-a's prefixed (recorded) call to
    0612345678; the called party answers; after 3 s m1-a consults its extension 2002 (m1-b;
    a mobile contract's extension call is not recorded) for 1.5 s, then REFERs the called
    party to it with Replaces and leaves. The recording ran on m1-a's leg: it goes on into the
    same file and row until the called party hangs up (12 s), m1-b's voice after the transfer."""
    far_xml = uas_hangs_up_xml(CALLER_S, CALLEE_HZ, work / "far")
    with Phone(M1B, work / "m1b", audio_s=CALLER_S, audio_hz=TARGET_HZ) as target, \
            ScenarioPhone(CARRIER_OUT, work / "far", far_xml) as far:
        phone = run_uac_xml(transfer_xml(work / "m1a", "2002", BEFORE_S, CALLER_HZ,
                                         dialed="0077260612345678", consult_s=1.5),
                            work / "m1a", M1A, extra=PLAIN_CALL_ID)
        far.wait(20)
        target.wait(10)
    assert any(m.method == "REFER" and m.sent for m in phone.messages), phone.timeline()
    assert final_sipfrag(phone) == "SIP/2.0 200 OK", phone.timeline()
    seen = far.result()
    ok = next(m for m in seen.messages if m.sent and m.status == 200)
    bye = seen.first(method="BYE")
    assert bye is not None and bye.sent, seen.timeline()
    assert target.rang() and target.result().first(method="ACK") is not None
    figures.update(outbound_attended=check_one_recording(
        clean, settings, seen.seconds_between(ok, bye), "out", CALLEE_HZ, CALLER_HZ, "M1"))
