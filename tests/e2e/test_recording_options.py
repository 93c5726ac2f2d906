"""Per-contract recording options over real SIP (issue #14): stereo (each party on its own
channel), the recording announcement per direction, set with `callguard recordings options`.

Every recorded call carries RTP both ways (caller 440 Hz, called party 1000 Hz)."""

from __future__ import annotations

import array
import hashlib
import io
import json
import math
import subprocess
import threading
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrage
import pytest
from pyrage import x25519
from sqlalchemy import Engine, text

from callguard import ami
from callguard.config import Settings
from callguard.recording_dtmf import RETRY_S
from tests.e2e.conftest import AppLog, MessagesLog, ari_get
from tests.e2e.heard import load_wav, tone_bursts
from tests.e2e.rec_helpers import (
    CALLEE_HZ,
    CALLER_HZ,
    CLI,
    F1A,
    inbound,
    outbound,
    recordings,
    talk_time,
    tone_amplitude,
    wait_site_refresh,
)
from tests.e2e.sipp import CARRIER_OUT, CallResult, Phone, UacSpec, dtmf, tone, uac
from tests.e2e.softphone import Softphone
from tests.e2e.test_asterisk_restart import STACK, connected
from tests.e2e.test_bench_config import ast
from tests.e2e.test_recording_housekeeping import add_row, write_wav
from tests.e2e.test_ui_session import cookies as ui_cookies
from tests.e2e.test_ui_session import request as ui_request
from tests.waiting import wait_for

ANNOUNCEMENT_S = 2.35  # sounds/ja/rec_notice.wav (「この通話は録音されています。」)


def options(*args: str) -> None:
    subprocess.run([CLI, "recordings", "options", "F1", *args], check=True,
                   capture_output=True, text=True)


@pytest.fixture
def f1_options(clean: Engine) -> Iterator[Engine]:
    """F1's options as a test sets them, back to all off afterwards."""
    try:
        yield clean
    finally:
        options("--stereo", "off", "--announce-in", "off", "--announce-out", "off",
                "--no-public-key", "--no-pause-codes")
        wait_site_refresh()


def channels(path: Path) -> tuple[array.array[int], array.array[int]]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        frames = array.array("h", w.readframes(w.getnframes()))
    return frames[0::2], frames[1::2]


def test_stereo_puts_each_party_on_its_own_channel(f1_options: Engine, settings: Settings,
                                                    work: Path,
                                                    figures: dict[str, object]) -> None:
    """Issue #14 stereo: f1-a's prefixed call with F1 set to stereo: one complete row, a
    2-channel WAV (16 kB/s per channel) with the caller's 440 Hz on channel 1 and the
    called party's 1000 Hz on channel 2 (energy per channel), the row's sha256 the file's."""
    options("--stereo", "on")
    wait_site_refresh()
    call, _ = outbound(work, F1A, "0077270612345678", seconds=4)
    assert call.final_status() == 200
    [row] = recordings(f1_options)
    assert row["status"] == "complete" and row["reason"] is None, row
    path = settings.recordings_dir / str(row["path"])
    data = path.read_bytes()
    assert row["sha256"] == hashlib.sha256(data).hexdigest() and row["bytes"] == len(data)
    assert not list(path.parent.glob("*.raw")), "the raw stereo file is left behind"
    left, right = channels(path)
    seconds = len(left) / 8000
    assert abs(seconds - talk_time(call)) < 1.0
    mid = slice(len(left) // 4, 3 * len(left) // 4)
    amp = {(ch, hz): tone_amplitude(samples[mid], 8000, hz)
           for ch, samples in ((1, left), (2, right)) for hz in (CALLER_HZ, CALLEE_HZ)}
    assert amp[1, CALLER_HZ] > 1000 and amp[2, CALLEE_HZ] > 1000, amp
    # Each party is (nearly) absent from the other's channel.
    assert amp[1, CALLEE_HZ] < amp[1, CALLER_HZ] / 10, amp
    assert amp[2, CALLER_HZ] < amp[2, CALLEE_HZ] / 10, amp
    figures.update(stereo_s=round(seconds, 2), bytes_per_s_per_channel=round(
        (len(data) - 44) / seconds / 2), amplitudes={f"ch{c}@{h:g}": round(a)
                                                     for (c, h), a in amp.items()})


def test_stereo_off_stays_mono(f1_options: Engine, settings: Settings, work: Path) -> None:
    """Off by default: the same call with the option off is a mono WAV."""
    options("--stereo", "off")
    wait_site_refresh()
    outbound(work, F1A, "0077270612345678", seconds=2)
    [row] = recordings(f1_options)
    with wave.open(str(settings.recordings_dir / str(row["path"]))) as w:
        assert w.getnchannels() == 1


def test_announcement_to_inbound_caller(f1_options: Engine, settings: Settings,
                                        work: Path) -> None:
    """Issue #14 announcement, inbound: the carrier's caller gets early media (183) and hears
    「この通話は録音されています。」 before f1-a rings: the INVITE reaches the phone at least
    the prompt's length after the 183; the dialplan logs the prompt played; still recorded."""
    options("--announce-in", "on")
    wait_site_refresh()
    log = MessagesLog(settings)
    call = inbound(work, "0312345678", F1A)
    assert call.final_status() == 200
    progress = call.first(status=183)
    assert progress is not None, call.timeline()
    ringing = call.first(status=180) or call.first(status=200)
    assert ringing is not None
    assert call.seconds_between(progress, ringing) >= ANNOUNCEMENT_S - 0.3, call.timeline()
    played = log.text().split("recording announcement played to the caller")
    assert len(played) == 2 and played[1].split("\n")[0].endswith("SUCCESS"), log.text()
    [row] = recordings(f1_options)
    assert row["status"] == "complete"


def test_announcement_to_outbound_called_party(f1_options: Engine, settings: Settings,
                                               work: Path) -> None:
    """Issue #14 announcement, outbound: the carrier side answers and hears the prompt
    before the bridge: the caller's 200 OK comes at least the prompt's length after the
    carrier's 200 OK; the dialplan logs it; inbound stays without (per direction)."""
    options("--announce-out", "on")
    wait_site_refresh()
    log = MessagesLog(settings)
    call, carrier = outbound(work, F1A, "0077270612345678", seconds=2)
    assert call.final_status() == 200
    carrier_ok = carrier.result().first(status=200, sent=True)
    caller_ok = call.first(status=200)
    assert carrier_ok is not None and caller_ok is not None
    waited = (caller_ok.at - carrier_ok.at).total_seconds()
    assert waited >= ANNOUNCEMENT_S - 0.3, (waited, call.timeline())
    played = log.text().split("recording announcement played to the called party")
    assert len(played) == 2 and played[1].split("\n")[0].endswith("SUCCESS"), log.text()
    # Per direction: an inbound call of the same contract gets no announcement.
    log2 = MessagesLog(settings)
    inbound(work / "in", "0312345678", F1A, seconds=1)
    assert "recording announcement" not in log2.text()


def api(settings: Settings, method: str, path: str, body: dict[str, object] | None = None,
        ) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(
        f"http://{settings.api_host}:{settings.api_port}/api/v1{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {settings.api_token}",
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(), dict(exc.headers)


def wait_row(engine: Engine, what: str, ok: Callable[[dict[str, object]], bool],
             wait_s: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + wait_s
    while True:
        [row] = recordings(engine)
        if ok(row):
            return row
        assert time.monotonic() < deadline, f"{what}: {row}"
        time.sleep(0.2)


def test_encrypted_recording_round_trip(f1_options: Engine, settings: Settings,
                                        work: Path) -> None:
    """Issue #14 encryption at rest: F1 registers an age public key through the API; its
    recorded call ends up as an age file only (no plaintext left), the row says encrypted
    with sha256/bytes of the ciphertext, the API serves the ciphertext as a download, and the
    test's private key (which the server never had) decrypts it to the conversation."""
    identity = x25519.Identity.generate()
    status, body, _ = api(settings, "PUT", "/contracts/F1/recording-options",
                          {"public_key": "age1notakey"})
    assert status == 400, body
    status, body, _ = api(settings, "PUT", "/contracts/F1/recording-options",
                          {"public_key": str(identity.to_public())})
    assert status == 200 and json.loads(body)["encrypted"] is True, body
    call, _ = outbound(work, F1A, "0077270612345678", seconds=3)
    assert call.final_status() == 200
    row = wait_row(f1_options, "not encrypted", lambda r: bool(r["encrypted"]))
    assert row["status"] == "complete" and str(row["path"]).endswith(".wav.age"), row
    path = settings.recordings_dir / str(row["path"])
    cipher = path.read_bytes()
    assert cipher.startswith(b"age-encryption.org/v1\n")
    assert row["sha256"] == hashlib.sha256(cipher).hexdigest() and row["bytes"] == len(cipher)
    assert not path.with_suffix("").exists(), "the plaintext WAV is still on disk"
    assert not list(path.parent.glob("*.wav")), "a plaintext WAV is still on disk"
    plain = pyrage.decrypt(cipher, [identity])
    with wave.open(io.BytesIO(plain)) as w:
        assert (w.getnchannels(), w.getframerate()) == (1, 8000)
        samples = array.array("h", w.readframes(w.getnframes()))
        assert abs(w.getnframes() / 8000 - talk_time(call)) < 1.0
    mid = samples[len(samples) // 4: 3 * len(samples) // 4]
    assert tone_amplitude(mid, 8000, CALLER_HZ) > 1000
    assert tone_amplitude(mid, 8000, CALLEE_HZ) > 1000
    status, listed, _ = api(settings, "GET", f"/recordings/{row['id']}")
    meta = json.loads(listed)
    assert (meta["encrypted"], meta["sha256_of"], meta["sha256"]) == (
        True, "age ciphertext", row["sha256"])
    status, served, headers = api(settings, "GET", f"/recordings/{row['id']}/audio")
    assert status == 200 and served == cipher
    assert headers["Content-Type"] == "application/octet-stream"
    assert "attachment" in headers["Content-Disposition"]
    assert ".wav.age" in headers["Content-Disposition"]
    # The contract's page offers the encrypted download and says why it cannot play it.
    made = json.loads(subprocess.run(
        [CLI, "tokens", "create", "--contract", "F1", "--label", "e2e recopts", "--json"],
        capture_output=True, text=True, check=True).stdout)
    try:
        # Signed in as a person would: the page's own session (SEC-4), not the raw token.
        _, jar, _ = ui_request(settings, "GET", "/ui/login")
        csrf = ui_cookies(jar)["cg_csrf"].value
        _, jar, _ = ui_request(settings, "POST", "/ui/login",
                                   {"token": made["token"], "csrf": csrf},
                                   {"Cookie": f"cg_csrf={csrf}"})
        session = ui_cookies(jar)["cg_session"].value
        _, _, doc = ui_request(settings, "GET", "/ui/recordings",
                               headers={"Cookie": f"cg_session={session}",
                                        "Accept-Language": "en"})
    finally:
        subprocess.run([CLI, "tokens", "revoke", str(made["id"])], capture_output=True,
                       check=False)
    assert f'id="download-{row["id"]}"' in doc and "cannot decrypt or play it" in doc
    assert f'id="audio-{row["id"]}"' not in doc
    path.unlink()  # `clean` removes *.wav only


def test_purge_runs_by_itself(f1_options: Engine, settings: Settings) -> None:
    """Issue #14 scheduled retention (REC-FILE-3): with no command run, the API process's
    worker purges a recording past F1's retention (set to 1 day) once the purge interval
    (site setting purge_interval_s, daily by default; 1 s here) has passed, and logs it;
    `callguard recordings purge --dry-run` showed it due before."""
    root = settings.recordings_dir
    old = add_row(f1_options, "F1", "1700000000.901", datetime.now(UTC) - timedelta(days=3),
                  status="complete")
    write_wav(root / old, 1.0)
    with f1_options.connect() as c:
        retention = c.execute(text(
            "SELECT retention_days FROM recording_subscriptions s JOIN contracts c"
            " ON c.id = s.contract_id WHERE c.code = 'F1'")).scalar_one()
    log = AppLog(settings, "api.log")
    try:
        with f1_options.begin() as c:
            c.execute(text("UPDATE recording_subscriptions SET retention_days = 1 WHERE"
                           " contract_id = (SELECT id FROM contracts WHERE code = 'F1')"))
        dry = json.loads(subprocess.run([CLI, "recordings", "purge", "--dry-run", "--json"],
                                        check=True, capture_output=True, text=True).stdout)
        assert dry["rows"] == 1 and (root / old).exists()
        with f1_options.begin() as c:
            c.execute(text("INSERT INTO site_settings (key, value) VALUES"
                           " ('purge_interval_s', '1') ON CONFLICT (key) DO UPDATE"
                           " SET value = EXCLUDED.value"))
        deadline = time.monotonic() + 20
        # The file goes first, the row with the worker's commit just after.
        while ((root / old).exists() or recordings(f1_options)) and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        assert not (root / old).exists(), "the scheduled purge did not run"
        assert recordings(f1_options) == []
        assert "purge: contract F1 recording" in log.text()
        assert "scheduled purge: 1 recording(s), 1 file(s)" in log.text()
    finally:
        with f1_options.begin() as c:
            c.execute(text("DELETE FROM site_settings WHERE key = 'purge_interval_s'"))
            c.execute(text("UPDATE recording_subscriptions SET retention_days = :d WHERE"
                           " contract_id = (SELECT id FROM contracts WHERE code = 'F1')"),
                      {"d": retention})


def rms_between(samples: array.array[int], start_s: float, end_s: float) -> float:
    part = samples[int(start_s * 8000): int(end_s * 8000)]
    assert len(part) > 800, (start_s, end_s, len(samples))
    return math.sqrt(sum(x * x for x in part) / len(part))


def assert_one_muted_interval(engine: Engine, settings: Settings, *, after_s: float,
                              longest_s: float) -> None:
    """The one recording is complete with one muted interval, starting more than `after_s`
    after the answer and 2 s to `longest_s` long; its file is silent there and has both
    parties' audio before and after."""
    [row] = recordings(engine)
    assert row["status"] == "complete", row
    muted_rows = row["muted"]
    assert isinstance(muted_rows, list) and len(muted_rows) == 1, muted_rows
    interval: dict[str, str] = muted_rows[0]
    answered = row["answered_at"]
    assert isinstance(answered, datetime)
    start = (datetime.fromisoformat(interval["from"]) - answered).total_seconds()
    end = (datetime.fromisoformat(interval["until"]) - answered).total_seconds()
    assert after_s < start < end and 2.0 < end - start < longest_s, (start, end)
    with wave.open(str(settings.recordings_dir / str(row["path"]))) as w:
        samples = array.array("h", w.readframes(w.getnframes()))
    total = len(samples) / 8000
    before = rms_between(samples, 0.3, start - 0.3)
    muted = rms_between(samples, start + 0.3, end - 0.3)
    after = rms_between(samples, end + 0.3, total - 0.3)
    assert muted < 50 < 1000 < min(before, after), (before, muted, after)


def test_pause_and_resume_through_the_api(clean: Engine, settings: Settings,
                                          work: Path) -> None:
    """Issue #14 pause/resume: during a recorded call, the contract's own API token pauses
    (MixMonitorMute) and resumes the recording; the call goes on; the row keeps the muted
    interval; the file holds silence for it and both parties' audio before and after.
    A second pause answers 409 while paused; after the call, 409 (not in progress)."""
    done: list[CallResult] = []
    caller = threading.Thread(target=lambda: done.append(
        outbound(work, F1A, "0077270612345678", seconds=9)[0]))
    caller.start()
    try:
        deadline = time.monotonic() + 15
        while True:
            rows = recordings(clean, wait_s=0)
            if rows and rows[0]["answered_at"] is not None:
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.1)
        rec_id = rows[0]["id"]
        time.sleep(2.0)  # audio before the pause
        status, body, _ = api(settings, "POST", f"/recordings/{rec_id}/pause")
        assert status == 200 and json.loads(body)["paused"] is True, body
        status, body, _ = api(settings, "POST", f"/recordings/{rec_id}/pause")
        assert status == 409, body
        time.sleep(2.5)
        status, body, _ = api(settings, "POST", f"/recordings/{rec_id}/resume")
        assert status == 200 and json.loads(body)["paused"] is False, body
    finally:
        caller.join(60)
    [call] = done
    assert call.final_status() == 200 and call.first(method="BYE", sent=True) is not None
    assert_one_muted_interval(clean, settings, after_s=1.5, longest_s=4.0)
    status, _, _ = api(settings, "POST", f"/recordings/{rec_id}/resume")
    assert status == 409


def snoop_channels(settings: Settings) -> list[str]:
    """The names of the snoop channels Asterisk has now (ARI)."""
    listed = ari_get(settings, "channels")
    assert isinstance(listed, list), listed
    return [str(c["name"]) for c in listed if str(c.get("name", "")).startswith("Snoop/")]


def test_dtmf_codes_from_the_customer_pause_and_resume(f1_options: Engine,
                                                       settings: Settings,
                                                       work: Path) -> None:
    """Issue #14 pause/resume by DTMF: F1 sets *1 / *2; f1-a (the customer, a real softphone
    sending RFC 4733 digits like a desk phone) presses *1 during its recorded call, talks on,
    presses *2: the row keeps one muted interval and the file is silent for it with both
    parties' audio around it; the call went on throughout.

    The customer hears each one confirmed, decoded from what its phone received: one 400 Hz
    beep (~0.3 s) shortly after *1, two 800 Hz beeps (0.12 s, 0.08 s apart) shortly after *2,
    nothing else at those pitches. The tones are whispered to the customer's channel only:
    the carrier (a softphone too) heard neither, the recording holds neither, and the snoop
    channel playing a tone is gone once it has played (no snoop left during or after the
    call)."""
    options("--pause-codes", "*1,*2")
    messages, ari_log, api_log = MessagesLog(settings), AppLog(settings), AppLog(settings,
                                                                                  "api.log")
    with Softphone(F1A, "0312345678", work / "f1-a", tone_hz=CALLER_HZ) as phone, \
            Softphone(CARRIER_OUT, "0612345678", work / "carrier", tone_hz=CALLEE_HZ) as far:
        far.expect_call()
        rung = far.mark()
        mark = phone.dial("0077270612345678")
        established = float(phone.wait_event("CALL_ESTABLISHED", after=mark)["at"])
        far.wait_event("CALL_ESTABLISHED", after=rung)
        time.sleep(2.6)
        pause_at = time.monotonic() - established  # "*" now, "1" 0.4 s later
        phone.press("*1")
        time.sleep(2.2)
        during = snoop_channels(settings)  # the pause tone's snoop, hung up once played
        resume_at = time.monotonic() - established
        phone.press("*2")
        time.sleep(2.6)
        phone.hangup()
        phone.wait_event("CALL_CLOSED", after=mark)
        far.wait_event("CALL_CLOSED", after=rung)
        customer, carrier = load_wav(phone.heard()), load_wav(far.heard())
    assert during == [], during
    assert_one_muted_interval(f1_options, settings, after_s=2.0, longest_s=4.5)

    # The customer heard the far end all along, and each confirmation once, after its code.
    assert tone_bursts(customer, CALLEE_HZ, window_s=0.2, hop_s=0.05), "no far end heard"
    # (from 1 s on: a ringback before the answer would be Japan's 400 Hz too; none is
    # expected, the carrier answers at once)
    low = [b for b in tone_bursts(customer, 400) if b.start > 1.0]
    high = [b for b in tone_bursts(customer, 800) if b.start > 1.0]
    assert len(low) == 1, f"pause tone: {low}"
    assert pause_at - 0.3 < low[0].start < pause_at + 2.5, (pause_at, low)
    assert 0.2 < low[0].duration < 0.45, low
    assert len(high) == 2, f"resume tone: {high}"
    assert resume_at - 0.3 < high[0].start < resume_at + 2.5, (resume_at, high)
    assert all(0.06 < b.duration < 0.2 for b in high), high
    assert 0.14 < high[1].start - high[0].start < 0.3, high

    # Whispered to the customer only: not at the carrier, not in the recording.
    assert tone_bursts(carrier, CALLER_HZ, window_s=0.2, hop_s=0.05), "the carrier heard nothing"
    [row] = recordings(f1_options)
    recorded = load_wav(settings.recordings_dir / str(row["path"]))
    for who, heard_there in (("the carrier", carrier), ("the recording", recorded)):
        for hz in (400, 800):
            found = tone_bursts(heard_there, hz, window_s=0.2, hop_s=0.05)
            assert found == [], f"{who} has the {hz} Hz confirmation: {found}"

    # No snoop channel left, nothing refused on the way.
    assert snoop_channels(settings) == []
    assert not [line for line in messages.lines() if "Snoop" in line or "tone" in line.lower()
                or "Stasis app" in line], messages.text()[-3000:]
    assert "tone not played" not in ari_log.text()
    assert "no pause tone" not in api_log.text() and "no resume tone" not in api_log.text()


def test_dtmf_codes_from_the_carrier_side_do_nothing(f1_options: Engine,
                                                      settings: Settings,
                                                      work: Path) -> None:
    """Only the customer's side may pause: an inbound caller pressing *1 changes nothing."""
    options("--pause-codes", "*1,*2")
    with Phone(F1A, work / "phone", audio_s=6, audio_hz=CALLEE_HZ):
        call = uac(UacSpec(to="0312345678", from_user="0399990001",
                           steps=[tone(1.5, CALLER_HZ), dtmf("*1"), tone(2, CALLER_HZ)]),
                   work / "carrier")
    assert call.final_status() == 200
    [row] = recordings(f1_options)
    assert row["status"] == "complete" and row["muted"] == [], row


def test_ami_is_off_until_pause_codes_need_it(f1_options: Engine, settings: Settings) -> None:
    """PERF-1 with issue #14: AMI costs every call ~0.5 ms of Asterisk CPU while it is on, so
    Asterisk starts with it off (its switch file as `make run` writes it). It stays off while
    no contract has pause codes; setting some switches it on within the DTMF listener's next
    look, and the listener logs in (the DTMF test above then works as before)."""
    settings.ami_switch_file.write_text("enabled = no\n")
    subprocess.run([STACK, "supervisorctl", "restart", "asterisk"], check=True,
                   capture_output=True)
    assert wait_for(connected, 30), "the ARI app did not reconnect after the restart"
    time.sleep(RETRY_S + 1)  # the listener has looked: no pause codes, so it left AMI off
    assert not ami.reachable(settings)
    options("--pause-codes", "*1,*2")
    assert wait_for(lambda: "1 users connected" in ast("manager show connected"), 10), \
        "the DTMF listener is not logged in"
    assert settings.ami_switch_file.read_text() == "enabled = yes\n"
