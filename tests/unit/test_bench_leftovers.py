"""PERF-4: channels a step leaves up (calls the load generator gave up on, still in a Stasis
app that fell behind) are hung up before the next step and named in the targets, so they
neither load later steps nor pass unseen."""

from __future__ import annotations

from bench import run


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
