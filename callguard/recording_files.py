"""Recording files on disk: inspect a finished WAV, repair one cut short (REC-FILE-1/2).

MixMonitor fills the RIFF and data sizes only when it closes the file; a file whose header
still says 0 (or less than is on disk) was not closed: Asterisk crashed or is still writing.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from callguard.recording_stereo import stereo_closed, wrap_stereo

log = logging.getLogger("callguard.recordings")

HEADER_BYTES = 44  # canonical PCM WAV header as MixMonitor writes it
# How long a shell waits after the call for MixMonitor to close the file.
FILE_CLOSE_WAIT_S = 10.0


@dataclass(frozen=True)
class WavInfo:
    bytes: int  # file size
    data_bytes: int  # audio bytes according to the header
    sample_rate: int
    channels: int
    bits: int
    closed: bool  # header sizes agree with the file: the writer finished
    sha256: str

    @property
    def duration_s(self) -> float:
        frame = self.channels * self.bits // 8
        if not self.sample_rate or not frame:
            return 0.0
        return self.data_bytes / frame / self.sample_rate


class NotAWav(ValueError):
    pass


def _read_header(head: bytes) -> tuple[int, int, int, int, int]:
    """(riff_size, rate, channels, bits, data_size) of a canonical 44-byte PCM header."""
    if len(head) < HEADER_BYTES or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise NotAWav("not a RIFF/WAVE file")
    if head[12:16] != b"fmt " or head[36:40] != b"data":
        raise NotAWav("unexpected WAV layout")
    riff_size = struct.unpack_from("<I", head, 4)[0]
    _fmt, channels, rate, _brate, _align, bits = struct.unpack_from("<HHIIHH", head, 20)
    data_size = struct.unpack_from("<I", head, 40)[0]
    return riff_size, rate, channels, bits, data_size


def inspect_wav(path: Path) -> WavInfo:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        head = f.read(HEADER_BYTES)
        digest.update(head)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    size = path.stat().st_size
    riff_size, rate, channels, bits, data_size = _read_header(head)
    closed = riff_size == size - 8 and data_size == size - HEADER_BYTES
    return WavInfo(size, data_size, rate, channels, bits, closed, digest.hexdigest())


def repair_header(path: Path) -> bool:
    """Write the sizes of what is on disk into the header; True if it changed anything.
    The file is Asterisk's (0640, SEC-4): the repaired copy is written aside, same mode, and
    renamed over it by the services, who own the recordings directories."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(HEADER_BYTES)
    riff_size, _rate, _ch, _bits, data_size = _read_header(head)
    # An odd trailing byte cannot be a 16-bit sample: leave it outside the data chunk.
    audio = (size - HEADER_BYTES) & ~1
    if riff_size == size - 8 and data_size == audio:
        return False
    tmp = path.with_name(path.name + ".repair")
    with path.open("rb") as src, tmp.open("wb") as out:
        shutil.copyfileobj(src, out)
        out.seek(4)
        out.write(struct.pack("<I", size - 8))
        out.seek(40)
        out.write(struct.pack("<I", audio))
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, path.stat().st_mode & 0o777)
    os.replace(tmp, path)
    return True


def prepare_dir(root: Path, rel_path: str) -> None:
    """Make the directory of a recording about to start (SEC-4): the services own the tree,
    Asterisk (another account) writes into it through the group, so each level is 2770.
    Best effort: if this fails, MixMonitor still creates the directory itself."""
    # Mostly the day's directory is there already: one stat, no Path objects (the ARI app
    # runs this between a call's decision and its continue, PERF-1).
    if os.path.isdir(os.path.dirname(os.path.join(root, rel_path))):
        return
    missing: list[Path] = []
    d = (root / rel_path).parent
    while d != root and d != d.parent and not d.exists():
        missing.append(d)
        d = d.parent
    try:
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                continue
            os.chmod(d, 0o2770)  # noqa: S103 (group: Asterisk; others: nothing)
    except OSError as exc:
        log.warning("cannot prepare the recording directory %s: %s", d, exc)


def finished_row_values(info: WavInfo | None, problem: str | None) -> dict[str, object]:
    """The recordings-row update for a finished call: complete, or failed with a reason."""
    if info is None:
        return {"status": "failed", "reason": problem or "no recording file"}
    values: dict[str, object] = {
        "bytes": info.bytes, "sha256": info.sha256, "duration_s": round(info.duration_s, 3),
    }
    if not info.closed:
        return {**values, "status": "failed", "reason": problem or "file not closed by Asterisk"}
    if info.data_bytes == 0:
        # A call released before it was bridged: MixMonitor ('b') wrote no audio.
        return {**values, "status": "complete", "reason": "no conversation (not answered)"}
    return {**values, "status": "complete", "reason": None}


def probe(path: Path) -> tuple[WavInfo | None, str | None]:
    """One full look at a recording (hashes it): (info, problem)."""
    try:
        return inspect_wav(path), None
    except FileNotFoundError:
        return None, "no recording file"
    except NotAWav as exc:
        return None, str(exc)
    except OSError as exc:
        # e.g. the shell runs as another user than Asterisk and may not read the file.
        return None, f"cannot read recording file: {exc.strerror or exc}"


def header_closed(path: Path) -> bool:
    """Cheap poll (44 bytes and a stat, no hash): has the writer closed the file?"""
    if stereo_closed(path):
        return True  # issue #14: a closed raw stereo file, wrapped by settled_row_values
    try:
        with path.open("rb") as f:
            riff_size, _rate, _ch, _bits, data_size = _read_header(f.read(HEADER_BYTES))
        size = path.stat().st_size
    except (OSError, NotAWav):
        return False
    return riff_size == size - 8 and data_size == size - HEADER_BYTES


def append_wav(path: Path, segment: Path) -> str | None:
    """Issue #14: append the audio of `segment` (a closed WAV of the same format, e.g. the
    rest of a call recorded after an attended transfer) to the closed WAV at `path` and fix
    its header. None when done; otherwise why not (both files left as they were)."""
    try:
        with path.open("rb") as f:
            _riff, rate, channels, bits, _data = _read_header(f.read(HEADER_BYTES))
        with segment.open("rb") as f:
            _sriff, srate, schannels, sbits, sdata = _read_header(f.read(HEADER_BYTES))
            if (srate, schannels, sbits) != (rate, channels, bits):
                return (f"segment format {srate} Hz/{schannels} ch/{sbits} bit differs from "
                        f"{rate} Hz/{channels} ch/{bits} bit")
            audio = f.read(sdata)
    except (OSError, NotAWav) as exc:
        return f"cannot append segment: {exc}"
    audio = audio[:len(audio) & ~1]
    # The file is Asterisk's (0640, SEC-4): the joined copy is written aside and renamed over
    # it, as repair_header does.
    tmp = path.with_name(path.name + ".append")
    with path.open("rb") as src, tmp.open("wb") as out:
        shutil.copyfileobj(src, out)
        end = out.tell()
        if (end - HEADER_BYTES) % 2:
            end -= 1  # an odd trailing byte is not a sample
            out.seek(end)
            out.truncate()
        out.write(audio)
        total = end + len(audio)
        out.seek(4)
        out.write(struct.pack("<I", total - 8))
        out.seek(40)
        out.write(struct.pack("<I", total - HEADER_BYTES))
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, path.stat().st_mode & 0o777)
    os.replace(tmp, path)
    return None


RECOVERED = "recovered: Asterisk did not close the file (header repaired)"


def settled_row_values(path: Path) -> dict[str, object]:
    """The row update once nothing writes the file any more (the call ended and the shell
    waited FILE_CLOSE_WAIT_S, or the reconciler found the channel gone): a file left
    unclosed by a crash gets its header repaired and is kept, never silently lost
    (REC-FILE-2)."""
    try:
        stereo_problem = wrap_stereo(path)  # issue #14: raw stereo from MixMonitor's D option
    except OSError as exc:
        return finished_row_values(None, f"stereo file could not be wrapped: {exc}")
    info, problem = probe(path)
    if stereo_problem is not None and info is not None:
        return {**finished_row_values(info, None), "reason": stereo_problem}
    if info is not None and not info.closed:
        try:
            repair_header(path)
        except (OSError, NotAWav) as exc:
            return finished_row_values(info, f"header repair failed: {exc}")
        info, problem = probe(path)
        if info is not None and info.closed and info.data_bytes:
            return {**finished_row_values(info, None), "reason": RECOVERED}
    return finished_row_values(info, problem)


class OutsideRecordings(ValueError):
    """A recording path handed in from outside does not name a WAV file under the root."""


@functools.lru_cache(maxsize=16)
def _resolved(root: Path) -> Path:
    """The recordings root, resolved once per process: it is set up before the services start,
    and every ended recorded call checks its file against it (PERF-1)."""
    return root.resolve()


def confined(root: Path, rel_path: str) -> Path:
    """`root / rel_path` resolved, refused unless it is a `.wav` file inside `root` (SEC-4):
    `..`, absolute paths, symlinks leading out and NUL bytes all raise OutsideRecordings."""
    if not rel_path or "\0" in rel_path or rel_path.startswith("/"):
        raise OutsideRecordings(f"not a relative recording path: {rel_path!r}")
    base = _resolved(root)
    path = (base / rel_path).resolve()
    if path == base or not path.is_relative_to(base) or path.suffix != ".wav":
        raise OutsideRecordings(f"outside the recordings root: {rel_path!r}")
    return path
