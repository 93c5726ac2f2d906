"""ADM-1, RUN-2: `callguard db upgrade|downgrade` with the database unreachable is one line on
stderr and exit 1, like every other command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from callguard import cli


@pytest.fixture
def unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "callguard.env"
    env.write_text("CALLGUARD_DATABASE_URL=postgresql+psycopg://callguard@/callguard"
                   "?host=/nonexistent&port=1\nCALLGUARD_RECORDINGS_DIR=/tmp/r\n"
                   "CALLGUARD_ARI_PASSWORD=p\nCALLGUARD_HMAC_KEY=00\nCALLGUARD_API_TOKEN=t\n"
                   "CALLGUARD_AGI_SECRET=s\n")
    for name in [k for k in os.environ if k.startswith("CALLGUARD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CALLGUARD_ENV", str(env))


@pytest.mark.parametrize("argv", [["db", "upgrade"], ["db", "downgrade", "base"]])
def test_db_commands_without_a_database_say_one_line(
        unreachable: None, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("callguard: database unavailable: "), err
