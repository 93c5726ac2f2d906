"""Finishing a recording once its call is gone (REC-FILE-1/2): cheap close detection, crash
repair kept as `complete` with a reason, unreadable files failed with a reason, the FastAGI
answer time."""

from __future__ import annotations

import struct
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callguard.callflow import answered_at
from callguard.recording_files import (
    RECOVERED,
    header_closed,
    inspect_wav,
    probe,
    settled_row_values,
)


def _wav(path: Path, seconds: float, sample: int = 1000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<h", sample) * int(8000 * seconds))
    return path


def _cut_off(path: Path) -> Path:
    """What MixMonitor leaves when Asterisk dies mid-call: header sizes still 0."""
    with path.open("r+b") as f:
        f.seek(4)
        f.write(struct.pack("<I", 0))
        f.seek(40)
        f.write(struct.pack("<I", 0))
    return path


def test_header_closed_follows_the_sizes(tmp_path: Path) -> None:
    path = _wav(tmp_path / "a.wav", 1.0)
    assert header_closed(path)
    assert not header_closed(_cut_off(path))
    assert not header_closed(tmp_path / "missing.wav")
    (tmp_path / "short.wav").write_bytes(b"RIFF")
    assert not header_closed(tmp_path / "short.wav")


def test_closed_file_settles_complete_with_its_hash(tmp_path: Path) -> None:
    path = _wav(tmp_path / "b.wav", 2.0)
    values = settled_row_values(path)
    info = inspect_wav(path)
    assert values == {"bytes": info.bytes, "sha256": info.sha256, "duration_s": 2.0,
                      "status": "complete", "reason": None}


def test_crashed_file_is_repaired_and_kept_complete_with_reason(tmp_path: Path) -> None:
    """REC-FILE-2: no recording silently lost: the audio on disk stays usable."""
    path = _cut_off(_wav(tmp_path / "c.wav", 1.5))
    values = settled_row_values(path)
    assert values["status"] == "complete" and values["reason"] == RECOVERED
    assert values["duration_s"] == 1.5
    assert header_closed(path)
    assert values["sha256"] == inspect_wav(path).sha256  # the hash of the repaired file


def test_crashed_file_without_audio_is_no_conversation(tmp_path: Path) -> None:
    path = _cut_off(_wav(tmp_path / "d.wav", 0))
    values = settled_row_values(path)
    assert values["status"] == "complete" and values["reason"] == "no conversation (not answered)"


def test_missing_or_garbage_file_fails_with_reason(tmp_path: Path) -> None:
    assert settled_row_values(tmp_path / "none.wav") == {
        "status": "failed", "reason": "no recording file"}
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"x" * 100)
    values = settled_row_values(junk)
    assert values["status"] == "failed" and "RIFF" in str(values["reason"])


def test_unreadable_file_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    """Any OSError (here IsADirectoryError, which even root gets; EACCES when a shell runs as
    another user than Asterisk): the shell's finishing task gets a reason, not a crash."""
    (tmp_path / "f.wav").mkdir()
    info, problem = probe(tmp_path / "f.wav")
    assert info is None and problem and problem.startswith("cannot read recording file")
    assert settled_row_values(tmp_path / "f.wav")["status"] == "failed"


END = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("ms", "expected"), [
    ("3250", END - timedelta(milliseconds=3250)),
    ("0", None), ("", None), ("garbage", None), ("-5", None),
])
def test_answered_at_from_answeredtime_ms(ms: str, expected: datetime | None) -> None:
    """REC-FILE-1 answer time on the FastAGI path (Dial's ANSWEREDTIME_MS at hang-up)."""
    assert answered_at(END, ms) == expected
