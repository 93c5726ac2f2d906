"""Issue 13 over real SIP: where main differed from the sources (seeds 000 and 004) and what a
caller hears when something is wrong — the unallocated-number announcement both ways, the 144
menu's 「入力が正しくありません。」, 184/186 before a number, a G.722-only offer, a freephone
number terminating on a fixed line, and a listed caller's videophone and G.722 calls."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import pytest
from sqlalchemy import Engine

from callguard.config import PROJECT_ROOT, Settings
from callguard.domain.privacy import caller_key
from tests.e2e.conftest import AppLog
from tests.e2e.rec_helpers import (
    CALLEE_HZ,
    CLI,
    F1A,
    F1B,
    F2A,
    check_file,
    inbound,
    recordings,
    talk_time,
    wait_site_refresh,
    wav_files,
)
from tests.e2e.sipp import CARRIER_OUT, CallResult, Phone, UacSpec, dtmf, pause, tone, uac
from tests.e2e.test_nuisance import dial_144, fill, list_id, rejected, this_month_count

SOUNDS = PROJECT_ROOT / "sounds" / "ja"
SDP_HEAD = ("v=0\no=- 1 1 IN IP[local_ip_type] [local_ip]\ns=-\n"
            "c=IN IP[media_ip_type] [media_ip]\nt=0 0\n")
G722_ONLY = SDP_HEAD + "m=audio [media_port] RTP/AVP 9\na=rtpmap:9 G722/8000"
AUDIO_VIDEO = (SDP_HEAD + "m=audio [media_port] RTP/AVP 8 0\na=rtpmap:8 PCMA/8000\n"
               "a=rtpmap:0 PCMU/8000\nm=video [media_port+2] RTP/AVP 99\n"
               "a=rtpmap:99 H264/90000")


def prompt_s(name: str) -> float:
    with wave.open(str(SOUNDS / f"{name}.wav")) as w:
        return float(w.getnframes() / w.getframerate())


def announced_then(r: CallResult, status: int, prompt: str) -> None:
    """183 with SDP, the prompt as early media, then `status`; never answered."""
    early = r.first(status=183)
    assert early is not None, r.timeline()
    assert "application/sdp" in (early.header("Content-Type") or "")
    assert r.final_status() == status and 200 not in r.statuses(), r.statuses()
    final = next(m for m in r.received() if m.status == status)
    heard = r.seconds_between(early, final)
    assert prompt_s(prompt) - 0.3 < heard < prompt_s(prompt) + 2.0, heard


# ---- unallocated numbers -------------------------------------------------------------------
def test_inbound_to_unallocated_number_is_announced_then_404(clean: Engine, work: Path) -> None:
    """Carriers' convention: 「おかけになった電話番号は、現在使われておりません。」 as early
    media, then 404 (not a bare 404)."""
    r = uac(UacSpec(to="0399999999", hangup=False), work)
    announced_then(r, 404, "number_unknown")


def test_outbound_number_the_carrier_rejects_is_announced_then_404(clean: Engine,
                                                                   work: Path) -> None:
    """The carrier answers 404 to 0612340000: the caller hears the same announcement."""
    with Phone(CARRIER_OUT, work / "carrier", mode="unallocated") as carrier:
        r = uac(UacSpec(to="0612340000", hangup=False), work / "phone", local_ip=F2A)
    assert carrier.rang()
    announced_then(r, 404, "number_unknown")


# ---- the 144 menu ----------------------------------------------------------------------------
def test_wrong_key_in_the_144_menu_is_told_before_the_menu_repeats(clean: Engine,
                                                                    settings: Settings,
                                                                    work: Path) -> None:
    """NCR menu: "7" during the guidance → 「入力が正しくありません。」, the menu again, then "4"
    during it → the counts."""
    log = AppLog(settings)
    wait_ms = int((prompt_s("invalid_input") + 1.5) * 1000)
    r = dial_144(work, F1B, dtmf("7"), pause(wait_ms), dtmf("4"))
    assert log.prompts() == ["menu", "invalid_input", "menu", "count_this_month", "times_0"]
    assert r.first(method="BYE", sent=False) is not None


# ---- 184 / 186 -------------------------------------------------------------------------------
def _carrier_invite(work: Path, source: str, dialed: str) -> tuple[CallResult, Phone]:
    with Phone(CARRIER_OUT, work / "carrier", audio_s=1) as carrier:
        r = uac(UacSpec(to=dialed, steps=[tone(0.5, 440)]), work / "phone", local_ip=source)
        carrier.wait(5)
    return r, carrier


def test_184_withholds_the_number_towards_the_carrier(clean: Engine, work: Path) -> None:
    """184 + number: prefix stripped; From anonymous, the identity only in P-Asserted-Identity
    with Privacy: id (the carrier's trust domain)."""
    r, carrier = _carrier_invite(work, F2A, "1840612340000")
    assert r.final_status() == 200
    invite = carrier.result().first(method="INVITE", sent=False)
    assert invite is not None
    assert invite.first_line.startswith("INVITE sip:0612340000@")
    assert "0612345678" not in (invite.header("From") or "")
    assert "anonymous" in (invite.header("From") or "").lower()
    assert (invite.header("Privacy") or "").lower() == "id"
    assert "0612345678" in (invite.header("P-Asserted-Identity") or "")


def test_186_shows_the_number(clean: Engine, work: Path) -> None:
    r, carrier = _carrier_invite(work, F2A, "1860612340000")
    assert r.final_status() == 200
    invite = carrier.result().first(method="INVITE", sent=False)
    assert invite is not None
    assert invite.first_line.startswith("INVITE sip:0612340000@")
    assert "<sip:0612345678@" in (invite.header("From") or "")
    assert (invite.header("Privacy") or "none").lower() != "id"


def test_184_with_the_recording_prefix_is_refused_with_guidance(clean: Engine,
                                                                settings: Settings,
                                                                work: Path) -> None:
    """Source 000 lists what a prefixed call reaches; 184/186 is not among it: the spoken
    guidance (early media), 403, never at the carrier, never recorded."""
    with Phone(CARRIER_OUT, work / "carrier", timeout_s=20) as carrier:
        r = uac(UacSpec(to="0077271840612340000", hangup=False), work / "phone", local_ip=F1A)
    assert not carrier.rang()
    announced_then(r, 403, "rec_privacy_prefix")
    assert recordings(clean, wait_s=1) == [] and wav_files(settings) == []


# ---- G.722 -------------------------------------------------------------------------------------
def test_g722_only_offer_is_answered_transcoded_and_recorded_at_8khz(
        clean: Engine, settings: Settings, work: Path) -> None:
    """A wideband-only offer is accepted (G.722 in the answer, no 488), bridged to the
    G.711 phone, and recorded as 8 kHz WAV (check_file: 8000 Hz, the phone's tone in it)."""
    with Phone(F1A, work / "phone", audio_s=4, audio_hz=CALLEE_HZ) as phone:
        r = uac(UacSpec(to="0312345678", sdp_body=G722_ONLY, steps=[pause(3000)]),
                work / "call")
        phone.wait(5)
    assert r.final_status() == 200, r.statuses()
    ok = r.first(status=200)
    assert ok is not None and "G722/8000" in ok.text, ok.text if ok else r.timeline()
    assert phone.rang()
    [row] = recordings(clean)
    assert (row["contract"], row["direction"], row["number"]) == ("F1", "in", "0312345678")
    check_file(settings, row, talk_time(r), callee_hz=None)


# ---- freephone terminating on a fixed line ---------------------------------------------------
def test_freephone_number_on_a_fixed_line_is_provisioned_and_recorded(
        clean: Engine, settings: Settings, work: Path) -> None:
    """REC-IN-1 (source 000: 「フリーコール」の着信先回線となっている場合…も録音対象): a 0120
    number provisioned on f1-b; calls to it ring f1-b and are recorded."""
    number = "0120123456"
    add = subprocess.run([CLI, "numbers", "add", number, "--endpoint", "f1-b", "--role",
                          "freephone", "--no-nuisance"], capture_output=True, text=True,
                         check=False)
    assert add.returncode == 0, add.stderr
    try:
        wrong = subprocess.run([CLI, "numbers", "add", "0800123456", "--endpoint", "f1-b",
                                "--role", "representative"], capture_output=True, text=True,
                               check=False)
        assert wrong.returncode != 0  # a freephone number is only ever a freephone role
        wait_site_refresh()
        call = inbound(work, number, F1B)
        assert call.final_status() == 200, call.statuses()
        [row] = recordings(clean)
        assert (row["contract"], row["direction"], row["number"], row["remote"]) == (
            "F1", "in", number, "0399990001")
        check_file(settings, row, talk_time(call))
    finally:
        subprocess.run([CLI, "numbers", "delete", number], capture_output=True, check=False)
        wait_site_refresh()


# ---- a listed caller's videophone or wideband call (source 004, ■テレビ電話 ■高音質電話) -------
@pytest.mark.parametrize("offer", [AUDIO_VIDEO, G722_ONLY], ids=["video", "g722"])
def test_listed_callers_video_or_wideband_call_is_asked_to_call_again(
        clean: Engine, settings: Settings, work: Path, offer: str) -> None:
    """Source 004: for a videophone or high-quality (wideband) call the network asks the
    calling terminal to call again as a standard-quality voice call, and only that call gets
    the guidance (and is charged). Over SIP: 488 to the audio+video or G.722-only offer (not
    answered, no early media, not counted, never rung); the G.711 call that follows is
    rejected with the message and counted."""
    caller = "0399997777"
    lid = list_id(clean, "0312345679")
    fill(clean, lid, [caller_key(settings.hmac_key, caller)])
    with Phone(F1B, work / "phone") as phone:
        r = uac(UacSpec(to="0312345679", from_user=caller, sdp_body=offer), work / "offer")
    assert r.final_status() == 488, r.statuses()
    assert not {180, 183, 200} & set(r.statuses())
    assert not phone.rang()
    assert this_month_count(clean, lid) in (None, 0)
    seconds = rejected(work / "retry", "0312345679", F1B, caller=caller)
    assert seconds > 2 * prompt_s("reject") - 0.5
    assert this_month_count(clean, lid) == 1
