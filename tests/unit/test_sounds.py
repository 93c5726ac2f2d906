"""RUN-5: every prompt of sounds/manifest.tsv exists as sounds/ja/<name>.wav, an 8 kHz 16-bit
mono PCM WAV (what Asterisk's format_wav reads) with speech in it, rendered from the manifest's
current text (tools/make_sounds.sh, `make sounds`)."""

from __future__ import annotations

import array
import hashlib
import math
import re
import struct
import sys
import wave
from functools import cache
from pathlib import Path

import pytest

SOUNDS = Path(__file__).resolve().parents[2] / "sounds"
RATE = 8000

# Texts from the seed (NTT 迷惑電話おことわりサービス guide) and SPEC §3/§4. The digit keys of
# the seed's “2” are written 「2」 in the manifest so Open JTalk reads them as digits.
SEED_TEXTS = {
    "menu": "迷惑電話おことわりサービスの設定を行います。迷惑電話リストへの登録は“2”、"
    "最新登録番号の削除は“3”、登録番号一括削除は“9”、効果の確認をする時は“4”を押してください。",
    "registered": "迷惑電話リストの登録が完了しました。",
    "cannot_identify": "相手の電話番号が確認できないので、登録できません。",
    "list_full": "登録件数が30件を超えますので最も古い電話番号を削除します。"
    "よろしければ“0”、そうでなければ“0以外”を押してください。",
    "register_failed": "迷惑電話リストの登録に失敗しました。",
    "register_cancelled": "迷惑電話リストへの登録を取りやめました。",
    "deleted_newest": "最新登録番号の削除が完了しました。",
    "deleted_all": "登録電話番号の一括削除が完了しました。",
    "list_empty": "迷惑電話リストに登録されている電話番号はありません。",
    "not_subscribed": "この電話番号は、迷惑電話おことわりサービスをご利用いただけません。",
    "count_this_month": "今月、メッセージ応答した回数は",
    "count_last_month": "前月、メッセージ応答した回数は",
    "times_100_plus": "100回以上です。",
    "reject": "この電話はお受けできません。ご了承ください。",
    "rec_notice": "この通話は録音されています。",  # issue #14 recording announcement
    "rec_refused_destination": "この番号には、通話録音サービスをご利用になって、"
    "おかけになれません。プレフィックスを付けずに、おかけ直しください。",
    "rec_not_subscribed": "通話録音サービスは、ご契約いただいておりません。",
    "rec_wrong_prefix": "このプレフィックスは、ご利用いただけません。",
    "congestion": "ただいま、大変混み合っております。しばらくたってから、おかけ直しください。",
    "number_unknown": "おかけになった電話番号は、現在使われておりません。",
    "invalid_input": "入力が正しくありません。",
    # Not from a seed: 184/186 with the recording prefix (source 000 lists no such dialing).
    "rec_privacy_prefix": "通話録音サービスのプレフィックスを付けた通話では、“184”、“186”は、"
    "ご利用いただけません。プレフィックスを付けずに、おかけ直しください。",
} | {f"times_{n}": f"{n}回です。" for n in range(100)}


@cache
def manifest() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in (SOUNDS / "manifest.tsv").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        name, text = line.split("\t")  # exactly one TAB
        assert re.fullmatch(r"[a-z0-9_]+", name), name
        assert name not in rows, f"{name} listed twice"
        assert text.strip(), f"{name} has no text"
        rows[name] = text
    return rows


@cache
def pcm(name: str) -> tuple[int, array.array[int]]:
    """(frame count, samples) of sounds/ja/<name>.wav, after checking the RIFF header by hand."""
    data = (SOUNDS / "ja" / f"{name}.wav").read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", "not RIFF/WAVE"
    assert struct.unpack_from("<I", data, 4)[0] + 8 == len(data), "RIFF size != file size"
    chunks: dict[bytes, bytes] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        chunks.setdefault(cid, data[pos + 8 : pos + 8 + size])
        pos += 8 + size + (size & 1)
    assert b"fmt " in chunks and b"data" in chunks
    tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", chunks[b"fmt "])
    # format_wav accepts format tag 1 (plain PCM) only, not WAVE_FORMAT_EXTENSIBLE.
    assert (tag, channels, rate, byte_rate, align, bits) == (1, 1, RATE, 2 * RATE, 2, 16)
    with wave.open(str(SOUNDS / "ja" / f"{name}.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        assert w.getcomptype() == "NONE"
        frames = w.readframes(w.getnframes())
        nframes = w.getnframes()
    assert len(frames) == len(chunks[b"data"]) == 2 * nframes
    samples = array.array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()
    return nframes, samples


def rms(samples: array.array[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


def test_manifest_has_every_prompt_with_the_seed_text() -> None:
    m = manifest()
    assert set(m) == set(SEED_TEXTS)
    for name, text in SEED_TEXTS.items():
        # the seed's “N” quotes may be written 「N」 for the synthesiser
        assert m[name].replace("「", "“").replace("」", "”") == text, name


def test_every_prompt_has_a_wav_and_no_wav_is_orphaned() -> None:
    wavs = {p.stem for p in (SOUNDS / "ja").glob("*.wav")}
    assert wavs == set(manifest())


def test_wavs_were_rendered_from_the_current_manifest_text() -> None:
    """tools/make_sounds.sh records sha256(text) per prompt; a mismatch means the manifest was
    edited without running `make sounds`."""
    recorded = {}
    for line in (SOUNDS / "ja" / ".manifest.sha256").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            digest, name = line.split("  ")
            recorded[name] = digest
    expected = {n: hashlib.sha256(t.encode()).hexdigest() for n, t in manifest().items()}
    stale = sorted(n for n in expected if recorded.get(n) != expected[n])
    assert not stale, f"run `make sounds`: {stale}"
    assert set(recorded) == set(expected)


@pytest.mark.parametrize("name", sorted(manifest()))
def test_prompt_is_8khz_mono_pcm_speech(name: str) -> None:
    nframes, samples = pcm(name)
    duration = nframes / RATE
    assert 0.3 < duration < 20, f"{name}: {duration:.2f} s"
    level = rms(samples)
    assert level > 300, f"{name} is (nearly) silent: rms {level:.0f}"
    assert max(abs(s) for s in samples) < 32000, f"{name} clips"
    # silence trimmed, ~0.2 s padding kept at both ends
    edge = int(0.15 * RATE)
    assert rms(samples[:edge]) < 30 and rms(samples[-edge:]) < 30, f"{name}: no quiet padding"
    loud = [i for i, s in enumerate(samples) if abs(s) > 328]  # 1 % of full scale
    assert loud[0] / RATE < 0.5, f"{name}: leading silence not trimmed"
    assert (nframes - loud[-1]) / RATE < 0.6, f"{name}: trailing silence not trimmed"


def test_rejection_message_length() -> None:
    nframes, _ = pcm("reject")
    assert 3.0 < nframes / RATE < 6.0


def test_count_prompts_fit_a_short_announcement() -> None:
    """「今月、メッセージ応答した回数は」+「N回です。」 is played back to back."""
    for n in (0, 7, 99):
        total = pcm("count_this_month")[0] + pcm(f"times_{n}")[0]
        assert total / RATE < 6.0
