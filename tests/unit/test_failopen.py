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
