"""WAV inspection and crash repair (REC-FILE-1/2)."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

from callguard.recording_files import (
    append_wav,
    finished_row_values,
    inspect_wav,
    prepare_dir,
    probe,
    repair_header,
)


def _wav(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00" * int(8000 * seconds))
    return path


def test_closed_file_reports_duration_and_hash(tmp_path: Path) -> None:
    info = inspect_wav(_wav(tmp_path / "a.wav", 2.5))
    assert info.closed
    assert abs(info.duration_s - 2.5) < 0.001
    assert len(info.sha256) == 64
    assert finished_row_values(info, None)["status"] == "complete"


def test_crashed_file_is_detected_and_repaired(tmp_path: Path) -> None:
    path = _wav(tmp_path / "b.wav", 1.0)
    with path.open("r+b") as f:  # what MixMonitor leaves when Asterisk dies: sizes still 0
        f.seek(4)
        f.write(struct.pack("<I", 0))
        f.seek(40)
        f.write(struct.pack("<I", 0))
    info = inspect_wav(path)
    assert not info.closed
    assert finished_row_values(info, None)["status"] == "failed"
    assert repair_header(path)
    repaired = inspect_wav(path)
    assert repaired.closed and abs(repaired.duration_s - 1.0) < 0.001
    assert not repair_header(path)  # idempotent


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    assert probe(tmp_path / "none.wav") == (None, "no recording file")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav at all" * 10)
    info, problem = probe(junk)
    assert info is None and problem
    assert finished_row_values(None, problem)["status"] == "failed"


def test_unanswered_call_is_complete_without_audio(tmp_path: Path) -> None:
    info = inspect_wav(_wav(tmp_path / "c.wav", 0))
    values = finished_row_values(info, None)
    assert values["status"] == "complete" and values["reason"]


def test_append_wav_joins_the_rest_of_a_transferred_call(tmp_path: Path) -> None:
    """Issue #14: the segment recorded after an attended transfer goes on in the same file."""
    main, rest = _wav(tmp_path / "a.wav", 2.0), _wav(tmp_path / "b.wav", 1.5)
    assert append_wav(main, rest) is None
    info = inspect_wav(main)
    assert info.closed and abs(info.duration_s - 3.5) < 1e-6
    with wave.open(str(main)) as w:
        assert w.getnframes() == 8000 * 35 // 10


def test_append_wav_refuses_another_format_and_leaves_both(tmp_path: Path) -> None:
    main = _wav(tmp_path / "a.wav", 1.0)
    stereo = tmp_path / "s.wav"
    with wave.open(str(stereo), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00" * 32000)
    before = main.read_bytes()
    assert "differs" in (append_wav(main, stereo) or "")
    assert "cannot append" in (append_wav(main, tmp_path / "missing.wav") or "")
    assert main.read_bytes() == before


def test_prepare_dir_makes_each_missing_level_group_writable(tmp_path: Path) -> None:
    """SEC-4: the services make a call's directory (2770) so Asterisk, another account,
    writes into it through the group; existing levels are left alone."""

    root = tmp_path / "rec"
    root.mkdir(mode=0o750)
    prepare_dir(root, "2026/12/02/F1/x_in_1.wav")
    d = root / "2026" / "12" / "02" / "F1"
    assert d.is_dir() and not (d / "x_in_1.wav").exists()
    for level in (d, d.parent, d.parent.parent, d.parent.parent.parent):
        assert level.stat().st_mode & 0o7777 == 0o2770, level
    assert root.stat().st_mode & 0o777 == 0o750
    prepare_dir(root, "2026/12/02/F1/y_in_2.wav")  # already there: nothing to do
