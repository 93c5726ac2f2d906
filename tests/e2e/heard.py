"""What a phone heard, as a list of prompts: `heard(wav)` → [(prompt, start, score), …].

A softphone's decoded receive audio (baresip's `sndfile` dump, 8 kHz 16-bit mono) is matched
against the prompt files in sounds/ja/ by normalised cross-correlation of each prompt's audible
part (its leading and trailing silence trimmed). A match counts only when

- the whole prompt correlates (score ≥ `min_score`, 1.0 = identical waveform),
- it arrived at the prompt's own level (within `max_level_db`), and
- it is complete: every 50 ms slice of the prompt that carries sound is there too, at its
  level and shape (a prompt cut short, or with a gap, fails on its missing slices),

so silence, a cut prompt or a different prompt is not a match. Overlapping candidates of
different prompts keep the best score. Pure functions over numpy arrays; no I/O except
`load_wav`.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from callguard.config import PROJECT_ROOT

RATE = 8000
PROMPTS_DIR = PROJECT_ROOT / "sounds" / "ja"
SLICE_S = 0.05  # completeness is checked slice by slice
Signal = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Match:
    prompt: str
    start: float  # seconds into what the phone heard
    score: float  # normalised cross-correlation of the whole prompt
    level_db: float  # heard level minus the prompt file's level
    duration: float  # seconds of the prompt's audible part

    @property
    def end(self) -> float:
        return self.start + self.duration

    def __str__(self) -> str:
        return (f"{self.prompt} at {self.start:.2f}–{self.end:.2f} s, score {self.score:.3f}, "
                f"level {self.level_db:+.1f} dB")


def load_wav(path: Path) -> Signal:
    """A 16-bit mono 8 kHz WAV as floats in [-1, 1)."""
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, RATE):
            raise ValueError(f"{path}: need 8 kHz 16-bit mono, got {w.getnchannels()} ch, "
                             f"{8 * w.getsampwidth()} bit, {w.getframerate()} Hz")
        frames = w.readframes(w.getnframes())
    return np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768.0


def audible(x: Signal, floor_db: float = -40.0) -> Signal:
    """`x` without its leading and trailing silence (20 ms frames below peak + floor_db)."""
    frame = RATE // 50
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.nonzero(rms > rms.max() * 10 ** (floor_db / 20))[0]
    if len(loud) == 0:
        return x[:0]
    return x[loud[0] * frame: (loud[-1] + 1) * frame]


@cache
def prompt(name: str) -> Signal:
    """The audible part of sounds/ja/<name>.wav."""
    return audible(load_wav(PROMPTS_DIR / f"{name}.wav"))


def prompt_names() -> list[str]:
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.wav"))


DECIMATE = 4  # the search runs at 2 kHz; each candidate is then scored at 8 kHz
COARSE_MARGIN = 0.2  # a 2 kHz score this far below min_score is still looked at closely


def _decimated(x: Signal) -> Signal:
    n = len(x) // DECIMATE
    out: Signal = x[: n * DECIMATE].reshape(n, DECIMATE).mean(axis=1)
    return out


@cache
def _prompt_spectrum(name: str, size: int) -> npt.NDArray[np.complex128]:
    return np.conj(np.fft.rfft(_decimated(prompt(name)), size))


def _ncc_at(x: Signal, t: Signal, k: int) -> float:
    window = x[k: k + len(t)]
    denom = float(np.sqrt(np.dot(window, window) * np.dot(t, t)))
    return float(np.dot(window, t)) / denom if denom > 1e-12 else 0.0


class _Spectrum:
    """One FFT of what was heard (at 2 kHz), shared by the search for every prompt."""

    def __init__(self, x: Signal, longest: int) -> None:
        self.x = x
        self.xd = _decimated(x)
        self.size = 1 << (len(self.xd) + longest // DECIMATE).bit_length()
        self.fx = np.fft.rfft(self.xd, self.size)
        self.csum = np.concatenate(([0.0], np.cumsum(self.xd * self.xd)))

    def candidates(self, name: str, min_score: float) -> dict[int, float]:
        """Offsets (8 kHz samples) where the prompt may start → their exact score."""
        t = prompt(name)
        td = _decimated(t)
        n, m = len(self.xd), len(td)
        if m == 0 or n < m:
            return {}
        corr = np.fft.irfft(self.fx * _prompt_spectrum(name, self.size), self.size)[: n - m + 1]
        window_energy = np.maximum(self.csum[m:] - self.csum[: n - m + 1], 0.0)
        denom = np.sqrt(window_energy * float(np.dot(td, td)))
        coarse = np.where(denom > 1e-12, corr / np.maximum(denom, 1e-12), 0.0)
        out: dict[int, float] = {}
        for kd in np.nonzero(coarse >= min_score - COARSE_MARGIN)[0].tolist():
            for k in range(max(kd * DECIMATE - DECIMATE, 0),
                           min(kd * DECIMATE + DECIMATE, len(self.x) - len(t)) + 1):
                if k not in out:
                    score = _ncc_at(self.x, t, k)
                    if score >= min_score:
                        out[k] = score
        return out


def _level_db(heard: Signal, ref: Signal) -> float:
    e_h, e_r = float(np.dot(heard, heard)), float(np.dot(ref, ref))
    if e_r <= 0:
        return 0.0
    if e_h <= 0:
        return -200.0
    return 10 * float(np.log10(e_h / e_r))


def complete(window: Signal, t: Signal, min_score: float = 0.8,
             max_level_db: float = 6.0) -> bool:
    """Every slice of the prompt that carries sound is in the heard window, in shape and
    level (the whole-prompt score alone would forgive a few missing tenths of a second)."""
    step = int(SLICE_S * RATE)
    loud = float(np.sqrt(np.mean(t * t))) * 0.03  # slices below -30 dB are pauses
    for i in range(0, len(t) - step // 2, step):
        ref, got = t[i: i + step], window[i: i + step]
        if float(np.sqrt(np.mean(ref * ref))) < loud:
            continue
        denom = float(np.sqrt(np.dot(ref, ref) * np.dot(got, got)))
        score = float(np.dot(ref, got)) / denom if denom > 0 else 0.0
        if score < min_score or abs(_level_db(got, ref)) > max_level_db:
            return False
    return True


def find(x: Signal, name: str, *, min_score: float = 0.9, max_level_db: float = 3.0,
         spectrum: _Spectrum | None = None) -> list[Match]:
    """Every complete play of prompt `name` in `x`."""
    t = prompt(name)
    if len(t) == 0 or len(x) < len(t):
        return []
    ncc = (spectrum or _Spectrum(x, len(t))).candidates(name, min_score)
    found: list[Match] = []
    # Strongest first; a peak suppresses the offsets within one prompt length of it.
    for k in sorted(ncc, key=lambda i: -ncc[i]):
        if any(abs(k - int(m.start * RATE)) < len(t) for m in found):
            continue
        window = x[k: k + len(t)]
        level = _level_db(window, t)
        if abs(level) > max_level_db or not complete(window, t):
            continue
        found.append(Match(name, k / RATE, float(ncc[k]), level, len(t) / RATE))
    return found


def heard(x: Signal | Path, names: list[str] | None = None, *, min_score: float = 0.9,
          max_level_db: float = 3.0) -> list[Match]:
    """The prompts heard in `x` (a signal or a WAV file), in time order. `names`: the prompts
    to look for (default: every prompt in sounds/ja/)."""
    signal = load_wav(x) if isinstance(x, Path) else x
    wanted = names if names is not None else prompt_names()
    if len(signal) == 0 or not wanted:
        return []
    spectrum = _Spectrum(signal, max(len(prompt(n)) for n in wanted))
    candidates: list[Match] = []
    for name in wanted:
        candidates += find(signal, name, min_score=min_score, max_level_db=max_level_db,
                           spectrum=spectrum)
    kept: list[Match] = []
    for m in sorted(candidates, key=lambda m: -m.score):
        overlap = any(min(m.end, k.end) - max(m.start, k.start)
                      > 0.2 * min(m.duration, k.duration) for k in kept)
        if not overlap:
            kept.append(m)
    return sorted(kept, key=lambda m: m.start)


def sequence(matches: list[Match]) -> list[str]:
    return [m.prompt for m in matches]


def expect(x: Signal | Path, expected: list[str], names: list[str] | None = None) -> list[Match]:
    """The complete prompts heard must be exactly `expected`, in order; returns the matches
    (AssertionError naming what was heard otherwise)."""
    found = heard(x, names)
    if sequence(found) != expected:
        shown = "; ".join(str(m) for m in found) or "no complete prompt"
        raise AssertionError(f"heard [{shown}], expected {expected}")
    return found


def without(x: Signal, match: Match) -> Signal:
    """`x` with the stretch of one match cut out (to prove a check fails without it)."""
    a, b = int(match.start * RATE), int(match.end * RATE)
    out: Signal = np.concatenate((x[:a], x[b:]))
    return out


# ---- tones ----------------------------------------------------------------------------------

TONE_FLOOR = 0.08  # amplitude (1.0 = full scale): Asterisk's tones come at 0.22 (-8 dB)


@dataclass(frozen=True)
class Burst:
    start: float  # seconds: centre of the first window where the tone is loud
    end: float  # centre of the last one (end - start ≈ the tone's length, ± one hop)

    @property
    def duration(self) -> float:
        return self.end - self.start


def tone_level(x: Signal, hz: float, window_s: float, hop_s: float) -> Signal:
    """Amplitude of `hz` in each window of `window_s`, one every `hop_s` (window i starts at
    i * hop_s): a single-bin DFT (Goertzel's value), 1.0 = a full-scale sine."""
    n, hop = int(window_s * RATE), max(int(hop_s * RATE), 1)
    if len(x) < n or n == 0:
        return np.zeros(0)
    starts = np.arange(0, len(x) - n + 1, hop)
    ref = np.exp(-2j * np.pi * hz * np.arange(n) / RATE)
    level: Signal = 2 * np.abs(x[starts[:, None] + np.arange(n)[None, :]] @ ref) / n
    return level


def tone_bursts(x: Signal, hz: float, *, floor: float = TONE_FLOOR, window_s: float = 0.04,
                hop_s: float = 0.02) -> list[Burst]:
    """The stretches where `hz` is at least `floor`, in time order. Short windows tell beeps
    and their gaps apart; long ones (0.2 s) tell a tone from a neighbour 40 Hz away."""
    loud = tone_level(x, hz, window_s, hop_s) >= floor
    out: list[Burst] = []
    i = 0
    while i < len(loud):
        if not loud[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(loud) and loud[j + 1]:
            j += 1
        out.append(Burst(i * hop_s + window_s / 2, j * hop_s + window_s / 2))
        i = j + 1
    return out
