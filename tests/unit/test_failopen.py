"""The fail-open/fallback WARNING lines of messages.log are counted by kind."""

from __future__ import annotations

from pathlib import Path

from callguard.failopen import count_branches, count_since_start

LOG = """\
[2026-12-02 03:50:01.123] WARNING[123][C-00000001] Ext. cg-fallback-inbound: callguard: ARI app unavailable (STASISSTATUS=FAILED) - FastAGI fallback for PJSIP/carrier-00000001
[2026-12-02 03:50:01.200] WARNING[124][C-00000002] Ext. cg-fallback-outbound: callguard: ARI app unavailable (STASISSTATUS=FAILED) - FastAGI fallback for PJSIP/f1-a-00000002
[2026-12-02 03:50:01.300] WARNING[124][C-00000002] Ext. cg-fallback-outbound: callguard: fallback server unavailable (AGISTATUS=FAILURE) for PJSIP/f1-a-00000002 - failing open
[2026-12-02 03:50:01.400] NOTICE[124] something: callguard: ARI app unavailable (quoted elsewhere)
"""  # noqa: E501


def test_counts_by_kind() -> None:
    assert count_branches(LOG.splitlines()) == {"fallback": 2, "failed_open": 1}


def test_missing_log_is_none(tmp_path: Path) -> None:
    assert count_since_start(tmp_path / "missing.log") is None
    (tmp_path / "m.log").write_text(LOG)
    assert count_since_start(tmp_path / "m.log") == {"fallback": 2, "failed_open": 1}


START = "[2026-12-02 03:00:00.000] NOTICE[0] tools/stack.sh: Asterisk started; the log " \
    "before is messages.log.1\n"
CONTINUED = "[2026-12-02 04:00:00.000] NOTICE[0] tools/stack.sh: log rotated at 20 MB; this " \
    "run's earlier lines are in messages.log.1\n"


def test_counts_since_the_start_across_size_rotations(tmp_path: Path) -> None:
    """tools/stack.sh moves messages.log aside at a deliberate start (the new file begins with
    the start mark) and when it grows too big (the new file says the run goes on in .1)."""
    log = tmp_path / "messages.log"
    log.write_text(CONTINUED + LOG)                        # this run, after a rotation by size
    (tmp_path / "messages.log.1").write_text(CONTINUED + LOG)  # and one before that
    (tmp_path / "messages.log.2").write_text(START + LOG)  # this run's start
    (tmp_path / "messages.log.3").write_text(START + LOG)  # the run before: not counted
    assert count_since_start(log) == {"fallback": 6, "failed_open": 3}


def test_a_fresh_start_counts_its_own_file_only(tmp_path: Path) -> None:
    log = tmp_path / "messages.log"
    log.write_text(START)
    (tmp_path / "messages.log.1").write_text(LOG)  # the last run, kept for the investigation
    assert count_since_start(log) == {"fallback": 0, "failed_open": 0}


def test_a_log_without_mark_counts_alone_and_a_missing_older_file_ends_the_count(
        tmp_path: Path) -> None:
    log = tmp_path / "messages.log"
    log.write_text(LOG)  # emptied at the start by an older tools/stack.sh
    (tmp_path / "messages.log.1").write_text(LOG)
    assert count_since_start(log) == {"fallback": 2, "failed_open": 1}
    log.write_text(CONTINUED + LOG)
    (tmp_path / "messages.log.1").unlink()  # older than the files kept
    assert count_since_start(log) == {"fallback": 2, "failed_open": 1}
