"""Issue #14 recording options, pure parts: options into the routing decision and the
dialplan variables, stereo raw → WAV, DTMF code matching, pause intervals, purge schedule,
key and code validation."""

from __future__ import annotations

import dataclasses
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callguard.dialplan import target_for
from callguard.domain.pause import PauseConflict, closed_at_end, dtmf_action, is_paused, toggled
from callguard.domain.recording_options import (
    ANNOUNCEMENT,
    InvalidOption,
    RecordingOptions,
    check_codes,
    check_public_key,
    mixmonitor_variables,
)
from callguard.domain.routing import Connect, decide_inbound, decide_outbound
from callguard.domain.site import SiteSnapshot
from callguard.recording_files import header_closed, settled_row_values
from callguard.recording_stereo import UNCLOSED, wrap_stereo
from callguard.recording_worker import DEFAULT_PURGE_INTERVAL_S, purge_due, purge_interval
from tests.unit.test_routing import ROOM, SITE, inbound, outbound

ROOT = "/var/spool/asterisk/callguard"
T0 = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)


def with_options(site: SiteSnapshot, **opts: object) -> SiteSnapshot:
    f1 = dataclasses.replace(site.contracts["F1"], rec_options=RecordingOptions(**opts))  # type: ignore[arg-type]
    return dataclasses.replace(site, contracts={**site.contracts, "F1": f1})


def test_options_off_by_default_leave_the_call_as_before() -> None:
    d = decide_inbound(SITE, inbound("0312345678"), blocked=False, capacity=ROOM)
    assert isinstance(d, Connect) and d.record is not None
    assert (d.record.stereo, d.record.announce) == (False, False)
    v = target_for(d, ROOT).variables
    assert v["CG_REC_FILE"].endswith(".wav") and v["CG_REC_OPTS"] == "b"
    assert v["CG_REC_POST"] == v["CG_ANNOUNCE"] == v["CG_ANNOUNCE_DIR"] == ""


def test_stereo_records_raw_and_renames_it_when_closed() -> None:
    site = with_options(SITE, stereo=True)
    d = decide_inbound(site, inbound("0312345678"), blocked=False, capacity=ROOM)
    assert isinstance(d, Connect) and d.record is not None and d.record.stereo
    assert d.record.rel_path.endswith(".wav")  # the row names the final WAV
    v = target_for(d, ROOT).variables
    base = f"{ROOT}/{d.record.rel_path[:-4]}"
    assert v["CG_REC_FILE"] == f"{base}.rec.raw" and v["CG_REC_OPTS"] == "bD"
    assert v["CG_REC_POST"] == f"/bin/mv -f {base}.rec.raw {base}.raw"


def test_announcement_per_direction() -> None:
    site = with_options(SITE, announce_in=True)
    d_in = decide_inbound(site, inbound("0312345678"), blocked=False, capacity=ROOM)
    d_out = decide_outbound(site, outbound("f1-a", "0077270612345678"), capacity=ROOM)
    v_in, v_out = target_for(d_in, ROOT).variables, target_for(d_out, ROOT).variables
    assert (v_in["CG_ANNOUNCE"], v_in["CG_ANNOUNCE_DIR"]) == (ANNOUNCEMENT, "in")
    assert (v_out["CG_ANNOUNCE"], v_out["CG_ANNOUNCE_DIR"]) == ("", "")
    site = with_options(SITE, announce_out=True)
    d_out = decide_outbound(site, outbound("f1-a", "0077270612345678"), capacity=ROOM)
    assert target_for(d_out, ROOT).variables["CG_ANNOUNCE_DIR"] == "out"


def test_unrecorded_calls_get_no_option() -> None:
    """Options belong to the recording: an unprefixed call has none of them."""
    site = with_options(SITE, stereo=True, announce_out=True)
    d = decide_outbound(site, outbound("f1-a", "0612345678"), capacity=ROOM)
    v = target_for(d, ROOT).variables
    assert v["CG_REC_FILE"] == v["CG_ANNOUNCE"] == v["CG_REC_POST"] == ""
    assert mixmonitor_variables("", True)["CG_REC_OPTS"] == ""


def write_raw(path: Path, frames: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # left = 1000, right = -1000, plus a torn half frame at the end
    path.write_bytes((b"\xe8\x03\x18\xfc" * frames) + b"\x01\x02")


def test_wrap_stereo_closed_raw(tmp_path: Path) -> None:
    wav = tmp_path / "2026/12/02/F1/x_out_1.1.wav"
    write_raw(wav.with_name("x_out_1.1.raw"), 8000)
    assert header_closed(wav)
    values = settled_row_values(wav)
    assert values["status"] == "complete" and values["reason"] is None
    assert values["duration_s"] == 1.0
    assert not list(tmp_path.rglob("*.raw"))
    with wave.open(str(wav)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, 8000)
        assert w.readframes(1) == b"\xe8\x03\x18\xfc"


def test_wrap_stereo_never_closed_is_kept_with_a_reason(tmp_path: Path) -> None:
    wav = tmp_path / "y_in_2.2.wav"
    write_raw(tmp_path / "y_in_2.2.rec.raw", 800)
    assert not header_closed(wav)
    values = settled_row_values(wav)
    assert values["status"] == "complete" and values["reason"] == UNCLOSED
    assert wav.exists() and not (tmp_path / "y_in_2.2.rec.raw").exists()


def test_wrap_stereo_without_a_file_is_nothing(tmp_path: Path) -> None:
    assert wrap_stereo(tmp_path / "none.wav") is None
    assert settled_row_values(tmp_path / "none.wav")["status"] == "failed"


@pytest.mark.parametrize(("digits", "actions"), [
    ("*1", [None, "pause"]),
    ("*2", [None, "resume"]),
    ("9*1*2", [None, None, "pause", None, "resume"]),
    ("1*", [None, None]),
    ("**1", [None, None, "pause"]),
])
def test_dtmf_code_matching(digits: str, actions: list[str | None]) -> None:
    buf, seen = "", []
    for d in digits:
        buf, action = dtmf_action(buf, d, "*1", "*2")
        seen.append(action)
    assert seen == actions


def test_pause_intervals() -> None:
    one = toggled([], True, T0)
    assert is_paused(one)
    with pytest.raises(PauseConflict):
        toggled(one, True, T0)
    two = toggled(one, False, T0 + timedelta(seconds=3))
    assert two == [{"from": T0.isoformat(), "until": (T0 + timedelta(seconds=3)).isoformat()}]
    with pytest.raises(PauseConflict):
        toggled(two, False, T0)
    end = T0 + timedelta(seconds=9)
    assert closed_at_end(one, end) == [{"from": T0.isoformat(), "until": end.isoformat()}]
    assert closed_at_end(two, end) == two


def test_codes_and_key_validation() -> None:
    assert check_codes("*1", "*2") == ("*1", "*2")
    assert check_codes(None, None) == (None, None)
    for pause, resume in (("*1", None), ("*1", "*1"), ("1", "*1"), ("*12345", "2"),
                          ("a", "b"), ("", "1")):
        with pytest.raises(InvalidOption):
            check_codes(pause, resume)
    key = "age1c2y4t07txlxd38kpssyl70zftmyy6gs5dg40v7ytvgktcdef6fvsdtrlxh"
    assert check_public_key(f" {key}\n") == key
    for bad in ("age1xyz", "AGE-SECRET-KEY-1" + "Q" * 58, key + "q", "ssh-ed25519 AAAA"):
        with pytest.raises(InvalidOption):
            check_public_key(bad)


def test_purge_schedule() -> None:
    assert purge_interval(None) == DEFAULT_PURGE_INTERVAL_S == 86400
    assert purge_interval("5") == 5
    assert purge_interval("0") == purge_interval("-3") == purge_interval("x") == 86400
    assert purge_due(None, 0.0, 86400)
    assert not purge_due(100.0, 200.0, 86400)
    assert purge_due(100.0, 100.0 + 86400, 86400)
