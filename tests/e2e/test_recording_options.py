"""Per-contract recording options over real SIP (issue #14): stereo (each party on its own
channel), the recording announcement per direction, set with `callguard recordings options`.

Every recorded call carries RTP both ways (caller 440 Hz, called party 1000 Hz)."""

from __future__ import annotations

import array
import hashlib
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from callguard.config import Settings
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
                "--no-public-key")
        wait_site_refresh()


class AsteriskLog:
    """Asterisk's messages.log (notice and up) since this object was made."""

    def __init__(self, settings: Settings) -> None:
        self.path = Path(settings.asterisk_root) / "var/log/asterisk/messages.log"
        self.offset = self.path.stat().st_size

    def text(self) -> str:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")


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
    log = AsteriskLog(settings)
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
    log = AsteriskLog(settings)
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
    log2 = AsteriskLog(settings)
    inbound(work / "in", "0312345678", F1A, seconds=1)
    assert "recording announcement" not in log2.text()
