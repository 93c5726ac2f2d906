"""RUN-5: every prompt of the manifest exists as 8 kHz 16-bit mono PCM WAV with speech in it."""

from __future__ import annotations

import array
import math
import wave
from pathlib import Path

import pytest

SOUNDS = Path(__file__).resolve().parents[2] / "sounds"


def manifest() -> dict[str, str]:
    rows = {}
    for line in (SOUNDS / "manifest.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, text = line.split("\t")
            rows[name] = text
    return rows


def test_manifest_has_the_seed_texts_verbatim() -> None:
    m = manifest()
    assert m["reject"] == "この電話はお受けできません。ご了承ください。"
    assert m["registered"] == "迷惑電話リストの登録が完了しました。"
    assert m["cannot_identify"] == "相手の電話番号が確認できないので、登録できません。"
    assert all(f"times_{n}" in m for n in range(100)) and "times_100_plus" in m


@pytest.mark.parametrize("name", sorted(manifest()))
def test_prompt_is_8khz_mono_speech(name: str) -> None:
    with wave.open(str(SOUNDS / "ja" / f"{name}.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.getcomptype() == "NONE"
        frames = w.readframes(w.getnframes())
        duration = w.getnframes() / 8000
    samples = array.array("h", frames)
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    assert 0.3 < duration < 20
    assert rms > 300, f"{name} is (nearly) silent: rms {rms:.0f}"


def test_rejection_message_length() -> None:
    with wave.open(str(SOUNDS / "ja" / "reject.wav")) as w:
        assert 3.0 < w.getnframes() / 8000 < 6.0
