"""PERF-4: the bench waits for an Asterisk too busy to answer its CLI, and gives up at once on
one that is gone (bench/state.py `cli`)."""

from __future__ import annotations

import subprocess
from typing import cast

import pytest

from bench import state
from callguard.asterisk.cli import AsteriskCliError
from callguard.config import Settings

SETTINGS = cast(Settings, object())  # the scripted run_cli never reads it


def _timeout() -> AsteriskCliError:
    exc = AsteriskCliError("asterisk -rx failed: timed out")
    exc.__cause__ = subprocess.TimeoutExpired(["asterisk"], 20)
    return exc


def _script(monkeypatch: pytest.MonkeyPatch, answers: list[str | AsteriskCliError]
            ) -> list[str]:
    sent: list[str] = []

    def fake_run_cli(settings: Settings, command: str, timeout: float = 10.0) -> str:
        sent.append(command)
        answer = answers.pop(0)
        if isinstance(answer, AsteriskCliError):
            raise answer
        return answer

    monkeypatch.setattr(state, "run_cli", fake_run_cli)
    return sent


def test_a_busy_asterisk_is_asked_again_until_it_answers(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    sent = _script(monkeypatch, [_timeout(), _timeout(), "1 active channel\n"])
    assert state.active_channels(SETTINGS) == 1
    assert sent == ["core show channels count"] * 3
    assert capsys.readouterr().out.count("did not answer") == 2


def test_a_gone_asterisk_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = AsteriskCliError("Unable to connect to remote asterisk")
    sent = _script(monkeypatch, [gone, "never asked"])
    with pytest.raises(AsteriskCliError, match="Unable to connect"):
        state.cli(SETTINGS, "channel request hangup all")
    assert sent == ["channel request hangup all"]


def test_patience_runs_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "CLI_PATIENCE_S", 0.0)
    sent = _script(monkeypatch, [_timeout(), "never asked"])
    with pytest.raises(AsteriskCliError, match="timed out"):
        state.cli(SETTINGS, "core show channels count")
    assert sent == ["core show channels count"]
