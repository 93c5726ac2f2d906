"""Stereo recordings (issue #14): MixMonitor's `D` option writes interleaved 16-bit 8 kHz
stereo as raw samples (`<base>.rec.raw` while writing, `<base>.raw` once its post-process
command has renamed the closed file). This turns that raw file into the row's `<base>.wav`
(a canonical 44-byte PCM header, 2 channels), so the rest of the recording code sees one WAV.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

RATE = 8000  # MixMonitor's .raw format is signed linear at 8 kHz
CHANNELS = 2
BITS = 16
FRAME = CHANNELS * BITS // 8
UNCLOSED = "recovered: MixMonitor did not close the stereo file (raw data kept)"


def _raw_paths(wav: Path) -> tuple[Path, Path]:
    base = wav.with_suffix("")
    return base.with_name(base.name + ".rec.raw"), base.with_name(base.name + ".raw")


def wav_header(data_bytes: int, channels: int = CHANNELS, rate: int = RATE,
               bits: int = BITS) -> bytes:
    align = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * align, align, bits)
            + b"data" + struct.pack("<I", data_bytes))


def stereo_closed(wav: Path) -> bool:
    """MixMonitor closed a stereo recording of this row (its post-process rename ran)."""
    return not wav.exists() and _raw_paths(wav)[1].exists()


def is_stereo_pending(wav: Path) -> bool:
    writing, closed = _raw_paths(wav)
    return not wav.exists() and (writing.exists() or closed.exists())


def wrap_stereo(wav: Path) -> str | None:
    """Write `<base>.wav` from the raw stereo file and remove the raw one. Returns a reason
    when the raw file was never closed by MixMonitor (crash: the data is kept all the same),
    None otherwise (also when there is nothing to do)."""
    writing, closed = _raw_paths(wav)
    if wav.exists():
        return None
    source, problem = (closed, None) if closed.exists() else (writing, UNCLOSED)
    if not source.exists():
        return None
    size = source.stat().st_size
    data = size - size % FRAME  # a torn last frame is dropped
    tmp = wav.with_name(wav.name + ".tmp")
    with source.open("rb") as src, tmp.open("wb") as out:
        out.write(wav_header(data))
        left = data
        while left:
            chunk = src.read(min(left, 1 << 20))
            if not chunk:
                break
            out.write(chunk)
            left -= len(chunk)
    os.chmod(tmp, source.stat().st_mode & 0o777)
    os.replace(tmp, wav)
    source.unlink()
    return problem
