"""SEC-4/SEC-2: secrets, the journal and recordings are not world-readable; the ARI password
is stored crypted in Asterisk's configuration."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import Engine

from callguard.config import PROJECT_ROOT, Settings
from tests.e2e.rec_helpers import F1B, inbound, recordings

RUN = PROJECT_ROOT / ".run"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_owner_only(stack: Settings) -> None:
    assert mode(RUN / "secrets") == 0o700
    for secret in (RUN / "secrets").iterdir():
        assert mode(secret) == 0o600, secret
    assert mode(RUN / "callguard.env") == 0o600
    etc = Path(f"{stack.asterisk_root}/etc/asterisk")
    users = (etc / "ari_users.conf").read_text()
    assert mode(etc / "ari_users.conf") == 0o600
    assert mode(etc / "extensions_agi_secret.conf") == 0o600
    # In clear, like the AMI and SIP secrets: Asterisk checks it on every ARI request, and a
    # crypt there cost 0.5-0.8 ms of the call path per request (PERF-1); only its owner reads it.
    assert "password_format = plain" in users and stack.ari_password in users
    owner = (etc / "ari_users.conf").stat().st_uid
    assert owner == (etc / "pjsip.conf").stat().st_uid != 0  # Asterisk's own user (SEC-4)


def test_journal_directory_is_private(stack: Settings) -> None:
    assert mode(stack.journal_dir) == 0o700
    for journal in stack.journal_dir.iterdir():
        assert mode(journal) & 0o077 == 0, journal


def test_recordings_are_not_world_readable(clean: Engine, settings: Settings,
                                           work: Path) -> None:
    assert inbound(work, "0312345679", F1B, seconds=1).final_status() == 200
    [row] = recordings(clean)
    wav = settings.recordings_dir / str(row["path"])
    assert mode(wav) == 0o640, oct(mode(wav))
    d = wav.parent
    while d != settings.recordings_dir.parent:
        assert mode(d) & 0o007 == 0, (d, oct(mode(d)))
        d = d.parent
