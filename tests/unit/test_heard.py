"""The "what the phone heard" matcher (tests/e2e/heard.py, issue 16) on audio built from the
prompt files through a G.711 µ-law round trip, the way a phone receives them: whole prompts
are found at their offsets; silence, a cut prompt, a gap, a wrong prompt or a wrong level
are not. And the tone bursts of the pause/resume confirmation (issue #14)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.e2e.heard import RATE, Signal, heard, prompt, sequence, tone_bursts

NAMES = ["menu", "registered", "register_failed", "reject", "times_1", "times_11",
         "count_this_month", "not_subscribed", "deleted_newest", "list_empty"]


def ulaw(x: Signal) -> Signal:
    """Encode and decode with G.711 µ-law (continuous companding, 8-bit quantised)."""
    mu = 255.0
    y = np.sign(x) * np.log1p(mu * np.minimum(np.abs(x), 1.0)) / np.log1p(mu)
    q = np.round(y * 127) / 127
    out: Signal = np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu
    return out


def silence(seconds: float) -> Signal:
    rng = np.random.default_rng(7)
    return rng.normal(0, 1e-4, int(seconds * RATE))


def line(*parts: Signal) -> Signal:
    return ulaw(np.concatenate(parts))


def test_two_plays_found_in_order_with_offsets() -> None:
    x = line(silence(0.3), prompt("reject"), silence(0.5), prompt("reject"), silence(0.2))
    found = heard(x, NAMES)
    assert sequence(found) == ["reject", "reject"]
    assert found[0].start == pytest.approx(0.3, abs=0.01)
    assert found[1].start == pytest.approx(0.3 + found[0].duration + 0.5, abs=0.01)
    assert all(m.score > 0.97 and abs(m.level_db) < 1 for m in found)


def test_back_to_back_prompts_and_the_spoken_number() -> None:
    x = line(prompt("count_this_month"), prompt("times_1"), silence(0.1))
    assert sequence(heard(x, NAMES)) == ["count_this_month", "times_1"]
    x = line(prompt("count_this_month"), prompt("times_11"), silence(0.1))
    assert sequence(heard(x, NAMES)) == ["count_this_month", "times_11"]


def test_silence_is_nothing() -> None:
    assert heard(line(silence(5.0)), NAMES) == []
    assert heard(np.zeros(RATE * 5), NAMES) == []


@pytest.mark.parametrize("kept", [0.5, 0.9, 0.97])
def test_cut_prompt_is_not_heard(kept: float) -> None:
    t = prompt("reject")
    x = line(silence(0.2), t[: int(len(t) * kept)], silence(1.0))
    assert heard(x, NAMES) == []


def test_gap_inside_a_prompt_is_not_heard() -> None:
    t = prompt("menu").copy()
    t[int(len(t) * 0.5): int(len(t) * 0.5) + RATE // 2] = 0.0  # half a second missing
    assert "menu" not in sequence(heard(line(t, silence(0.2)), NAMES))


def test_wrong_prompt_is_not_taken_for_another() -> None:
    x = line(prompt("register_failed"), silence(0.3))
    assert sequence(heard(x, NAMES)) == ["register_failed"]
    assert sequence(heard(x, ["registered"])) == []


@pytest.mark.parametrize("gain_db", [-8.0, 8.0])
def test_level_far_off_is_not_heard(gain_db: float) -> None:
    x = line(prompt("reject") * 10 ** (gain_db / 20), silence(0.2))
    assert heard(x, ["reject"]) == []


def test_small_level_change_is_still_heard() -> None:
    x = line(prompt("reject") * 10 ** (-1.5 / 20), silence(0.2))
    assert sequence(heard(x, ["reject"])) == ["reject"]


# ---- tone bursts (the pause/resume confirmation, issue #14) ----------------------------------

def sine(hz: float, seconds: float, amplitude: float = 0.22) -> Signal:
    t = np.arange(int(seconds * RATE)) / RATE
    out: Signal = amplitude * np.sin(2 * np.pi * hz * t)
    return out


def test_one_beep_and_two_beeps_found_at_their_places() -> None:
    # what the customer hears: the far end's 1000 Hz all along, the tones mixed in
    x = np.concatenate((silence(1.0), sine(400, 0.3), silence(1.0), sine(800, 0.12),
                        silence(0.08), sine(800, 0.12), silence(1.0)))
    x = ulaw(x + sine(1000, len(x) / RATE, 0.24))
    [low] = tone_bursts(x, 400)
    assert low.start == pytest.approx(1.0, abs=0.03) and low.duration == pytest.approx(
        0.3, abs=0.04)
    first, second = tone_bursts(x, 800)
    assert first.start == pytest.approx(2.3, abs=0.03)
    assert second.start - first.start == pytest.approx(0.2, abs=0.04)
    assert first.duration == pytest.approx(0.12, abs=0.04)
    assert tone_bursts(x, 600) == []


def test_a_neighbouring_tone_is_no_burst_with_long_windows() -> None:
    """A talker's 440 Hz is not a 400 Hz beep (0.2 s windows: 5 Hz resolution)."""
    x = ulaw(sine(440, 3.0, 0.244))
    assert tone_bursts(x, 400, window_s=0.2, hop_s=0.05) == []
    assert tone_bursts(x, 440, window_s=0.2, hop_s=0.05) != []
