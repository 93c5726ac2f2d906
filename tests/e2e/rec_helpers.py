"""Shared checks of the recording e2e tests (REC-*): rows once finished, and what a recorded
file must be (REC-FILE-1): at the SPEC path, a valid WAV as long as the conversation, not
silence, both parties in it, and the row's size and sha256 those of the file."""

from __future__ import annotations

import array
import hashlib
import math
import re
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, text

from callguard.config import PROJECT_ROOT, Settings
from tests.e2e.sipp import CARRIER_OUT, CallResult, Phone, UacSpec, tone, uac

CLI = str(PROJECT_ROOT / ".venv" / "bin" / "callguard")
F1A, F1B, F2A, M1A, M1B = "127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.5", "127.0.1.6"
# REC-FILE-1: YYYY/MM/DD/<contract>/<utc-stamp>_<dir>_<uniqueid>.wav
# The unique id: <epoch>.<seq>, with a cluster node's system name in front (n1-…, issue 12).
PATH_RE = re.compile(
    r"^(\d{4})/(\d\d)/(\d\d)/(F1|F2|M1)/(\d{8})T\d{9}Z_(in|out)_((?:n\d-)?[0-9.]+)\.wav$")
# The caller's and the called party's tones: both must be heard in the mix (REC-OUT-1).
CALLER_HZ = 440.0
CALLEE_HZ = 1000.0
RMS_MIN = 200.0  # well above A-law idle noise (0) and well below the 8000-amplitude tones
TONE_MIN = 1000.0  # estimated amplitude of each party's tone in the mix


def recordings(engine: Engine, wait_s: float = 15) -> list[dict[str, object]]:
    """All rows once none is still `recording` (a file is finished just after its call)."""
    deadline = time.monotonic() + wait_s
    while True:
        with engine.connect() as c:
            rows = [dict(r._mapping) for r in c.execute(text(
                "SELECT r.*, c.code AS contract FROM recordings r JOIN contracts c"
                " ON c.id = r.contract_id ORDER BY r.id"))]
        if all(r["status"] != "recording" for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def wav_files(settings: Settings) -> list[Path]:
    return sorted(settings.recordings_dir.rglob("*.wav"))


def tone_amplitude(samples: array.array[int], rate: int, hz: float) -> float:
    """Goertzel estimate of the amplitude of one frequency in the samples."""
    n = len(samples)
    if not n:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return 2 * math.sqrt(max(power, 0.0)) / n


def check_file(settings: Settings, row: dict[str, object], talk_s: float,
               callee_hz: float | None = CALLEE_HZ) -> float:
    """REC-FILE-1 for one finished row; returns the recorded seconds."""
    rel = str(row["path"])
    m = PATH_RE.match(rel)
    assert m, rel
    assert m.group(4) == row["contract"] and m.group(6) == row["direction"]
    assert m.group(7) == row["channel_id"], "the unique id in the path is the call's"
    started = row["started_at"]
    assert isinstance(started, datetime)
    assert m.group(5) == f"{started:%Y%m%d}" == "".join(m.group(1, 2, 3))
    path = settings.recordings_dir / rel
    data = path.read_bytes()
    assert row["status"] == "complete", (row["status"], row["reason"])
    assert row["reason"] is None, row["reason"]
    assert row["sha256"] == hashlib.sha256(data).hexdigest()
    assert row["bytes"] == len(data)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        seconds = w.getnframes() / 8000
        samples = array.array("h", w.readframes(w.getnframes()))
    assert abs(seconds - talk_s) < 1.0, (seconds, talk_s)
    assert abs(float(row["duration_s"]) - seconds) < 0.01  # type: ignore[arg-type]
    rms = math.sqrt(sum(s * s for s in samples) / max(len(samples), 1))
    assert rms > RMS_MIN, f"recording is silence (rms {rms:.0f})"
    if callee_hz is not None:
        # Both parties mixed (MixMonitor without r/t options): each one's tone is present.
        middle = samples[len(samples) // 4: 3 * len(samples) // 4]
        for who, hz in (("caller", CALLER_HZ), ("called party", callee_hz)):
            amp = tone_amplitude(middle, 8000, hz)
            assert amp > TONE_MIN, f"the {who}'s {hz:g} Hz tone is missing ({amp:.0f})"
    answered, ended = row["answered_at"], row["ended_at"]
    assert isinstance(answered, datetime) and isinstance(ended, datetime), row
    assert started <= answered <= ended
    assert abs((ended - answered).total_seconds() - seconds) < 1.0
    return float(seconds)


def talk_time(call: CallResult) -> float:
    """The conversation as the caller saw it: 200 OK to BYE."""
    ok, bye = call.first(status=200), call.first(method="BYE")
    assert ok is not None and bye is not None, call.statuses()
    return call.seconds_between(ok, bye)


def outbound(work: Path, from_ip: str, dialed: str, extra: list[str] | None = None,
             seconds: float = 3) -> tuple[CallResult, Phone]:
    """A customer call with `seconds` of the caller's tone; the carrier (127.0.0.3) answers
    and talks back at CALLEE_HZ."""
    with Phone(CARRIER_OUT, work / "carrier", audio_s=seconds + 1, audio_hz=CALLEE_HZ) as far:
        call = uac(UacSpec(to=dialed, steps=[tone(seconds, CALLER_HZ)],
                           extra_headers=extra or []), work / "phone", local_ip=from_ip)
        # A carrier that never rang while the call lasted gets one more second (a late INVITE
        # would still show), not the 5 s a carrier answering Asterisk's BYE may need.
        far.wait(5 if far.rang() else 1)
    return call, far


def inbound(work: Path, to: str, phone_ip: str, caller: str = "0399990001",
            headers: list[str] | None = None, from_host: str | None = None,
            seconds: float = 3) -> CallResult:
    """A carrier call (127.0.0.2) answered by the phone at `phone_ip`, talking back."""
    with Phone(phone_ip, work / "phone", audio_s=seconds + 1, audio_hz=CALLEE_HZ):
        return uac(UacSpec(to=to, from_user=caller, steps=[tone(seconds, CALLER_HZ)],
                           extra_headers=headers or [], from_host=from_host), work / "carrier")


def wait_site_refresh() -> None:
    """Both shells follow site changes (site_settings, forwardings) by LISTEN/NOTIFY within
    milliseconds (REL-5); the pause is ample margin on a loaded machine."""
    time.sleep(2.5)


_SAVED = text("SELECT key, value FROM site_settings"
              " WHERE key IN ('max_recordings', 'at_capacity_policy')")
_DROP = text("DELETE FROM site_settings WHERE key IN ('max_recordings', 'at_capacity_policy')")


@contextmanager
def capacity_restored(engine: Engine) -> Iterator[None]:
    """REC-CAP-1 knobs (site_settings rows) put back as they were, whatever a test set:
    another engineer's benchmark may keep its own value there."""
    with engine.connect() as c:
        before = {k: v for k, v in c.execute(_SAVED)}
    try:
        yield
    finally:
        with engine.begin() as c:
            c.execute(_DROP)
            for key, value in before.items():
                c.execute(text("INSERT INTO site_settings (key, value) VALUES (:k, :v)"),
                          {"k": key, "v": value})
        wait_site_refresh()
