"""callguard.realtime: the call path's processes ask for Asterisk's SCHED_RR 10 (PERF-1/2) and
run on at normal priority, saying why, when the kernel refuses or it is turned off."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from callguard import realtime
from callguard.config import load_settings


def test_asks_for_asterisks_class_and_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int, int]] = []
    monkeypatch.setattr(os, "sched_setscheduler", lambda pid, policy, param: calls.append(
        (pid, policy, param.sched_priority)))
    assert realtime.share_asterisk_priority() is None
    assert calls == [(0, os.SCHED_RR, 10)]  # 0: this thread; the threads it starts inherit


def test_a_refusal_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pid: int, policy: int, param: os.sched_param) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    assert realtime.share_asterisk_priority(10) == "Operation not permitted"


def test_zero_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_setscheduler", lambda *a: pytest.fail("must not be called"))
    assert realtime.share_asterisk_priority(0) == "disabled (CALLGUARD_RT_PRIORITY=0)"


def test_the_setting_defaults_to_asterisks_priority(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "callguard.env"
    env.write_text("CALLGUARD_DATABASE_URL=postgresql://x/y\nCALLGUARD_RECORDINGS_DIR=/tmp/r\n"
                   "CALLGUARD_ARI_PASSWORD=p\nCALLGUARD_HMAC_KEY=00\nCALLGUARD_API_TOKEN=t\n"
                   "CALLGUARD_AGI_SECRET=s\n")
    for name in [k for k in os.environ if k.startswith("CALLGUARD_")]:
        monkeypatch.delenv(name)
    assert load_settings(env).rt_priority == realtime.ASTERISK_PRIORITY
    monkeypatch.setenv("CALLGUARD_RT_PRIORITY", "0")
    assert load_settings(env).rt_priority == 0
