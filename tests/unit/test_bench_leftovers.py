"""PERF-4: channels a step leaves up (calls the load generator gave up on, still in a Stasis
app that fell behind) are hung up before the next step and named in the targets, so they
neither load later steps nor pass unseen."""

from __future__ import annotations

import pytest

from bench import run, state


def test_steps_with_leftovers_are_named_with_their_count() -> None:
    out = {"screening": {"steps": {
        "floor": [{"path": "floor", "rate": 200, "leftover_channels": 0},
                  {"path": "floor", "rate": 300, "leftover_channels": 1780}],
        "ari": [{"path": "ari", "rate": 20}]}},  # a result from before the count existed
        "recording": {"levels": [{"concurrent": 200, "leftover_channels": 3}]}}
    line = run._leftover_line(out)
    assert line == ("  channels still up 20 s after a step, hung up before the next: "
                    "screening floor 300/s: 1780, recording 200: 3")


def test_no_line_when_every_step_drained() -> None:
    assert run._leftover_line({}) is None
    clean = {"screening": {"steps": {"ari": [{"path": "ari", "rate": 20,
                                              "leftover_channels": 0}]}}}
    assert run._leftover_line(clean) is None


def test_drain_hangs_up_what_is_left_and_counts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    up = [132]
    sent: list[str] = []

    def cli(_settings: object, command: str) -> str:
        sent.append(command)
        if command == "channel request hangup all":
            up[0] = 0
        return ""

    monkeypatch.setattr(state, "active_channels", lambda _settings: up[0])
    monkeypatch.setattr(state, "cli", cli)
    assert state.drain_channels(None, wait_s=0.3) == 132  # type: ignore[arg-type]
    assert sent == ["channel request hangup all"] and up[0] == 0
    sent.clear()
    assert state.drain_channels(None, wait_s=0.3) == 0  # type: ignore[arg-type]
    assert sent == []  # nothing left: nothing hung up


def test_a_run_whose_asterisk_restarted_is_named_and_fails() -> None:
    """PERF-4 / REL-9: supervisord starts a crashed Asterisk again within a second, so a run
    can go on after a crash; the new PID says so, and the run is not a figure of the stack."""
    assert run._asterisk_restarted(4242, 4242) is None
    assert run._asterisk_restarted(None, 4242) is None  # no Asterisk when it began: nothing to say
    said = run._asterisk_restarted(4242, 5151)
    assert said is not None and "4242 -> 5151" in said and "crash" in said
    assert "none" in (run._asterisk_restarted(4242, None) or "")
    lines = run._targets({"asterisk_restarted": said})
    assert any("NOT a measurement" in line and "5151" in line for line in lines)
