"""SEC-1 / SEC-2 / NCR-PRIV-1: loopback-only services, no credentials in git, registered
numbers never in clear in the database, its dumps or the logs."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from sqlalchemy import Engine, text

from callguard.config import PROJECT_ROOT, Settings
from callguard.domain.privacy import caller_key, unseal_key
from tests.e2e.sipp import Phone, UacSpec, uac
from tests.e2e.test_reliability import rows, wait_for

OUR_PROCESSES = ("asterisk", "callguard", "postgres")


def test_services_listen_on_loopback_only(stack: Settings) -> None:
    """SEC-2: ARI/HTTP, SIP, FastAGI and the API are bound to 127.0.0.0/8; PostgreSQL has
    no TCP listener at all (unix socket in .run/pg)."""
    out = subprocess.run(["ss", "-ltnupH"], capture_output=True, text=True, check=True).stdout
    ours = [line for line in out.splitlines()
            if any(f'(("{p}' in line for p in OUR_PROCESSES)]
    listening = [line for line in ours if "LISTEN" in line or ":5060 " in line]
    assert any(":8088 " in line for line in listening), out
    assert any(":5060 " in line for line in listening), out
    for line in listening:
        local = line.split()[4]
        assert local.startswith("127."), f"not loopback: {line}"
    assert not any("postgres" in line for line in listening), "PostgreSQL listens on TCP"


def test_no_credentials_in_git(stack: Settings) -> None:
    """SEC-2: the generated secrets, and anything shaped like a password, are not tracked."""
    files = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    secrets = [s.read_text().strip() for s in (PROJECT_ROOT / ".run" / "secrets").iterdir()]
    assert all(len(s) >= 32 for s in secrets)
    assigned = re.compile(r"^\s*(password|secret|token)\s*[=:]\s*\S{6,}", re.I | re.M)
    for name in files:
        path = PROJECT_ROOT / name
        if not path.is_file() or path.suffix in (".wav", ".pcap"):
            continue
        body = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in body, f"a generated secret is committed in {name}"
        if name.startswith("asterisk_conf/"):
            assert not assigned.search(body), f"a credential is set in {name}"
    ignored = subprocess.run(["git", "check-ignore", ".run/secrets/ari.password",
                              "asterisk_conf/ari_users.conf"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, check=False).stdout
    assert ".run/secrets/ari.password" in ignored and "ari_users.conf" in ignored


def test_registered_number_never_in_clear(clean: Engine, settings: Settings,
                                          work: Path) -> None:
    """NCR-PRIV-1: after a caller has called in and been put on a list, and then been
    rejected, its number appears nowhere: not in a full database dump, not in any log."""
    number = "0399994321"
    with Phone("127.0.1.3", work / "f2a", mode="busy"):
        first = uac(UacSpec(to="0612345678", from_user=number), work / "first")
    assert first.final_status() == 486
    # The call's row is written by the app just after the caller's 486.
    assert wait_for(lambda: rows(clean, "SELECT 1 FROM inbound_calls"), 10)
    with clean.begin() as conn:
        list_id = conn.execute(text(
            "SELECT list_id FROM inbound_calls ORDER BY id DESC LIMIT 1")).scalar_one()
        sealed, channel = conn.execute(text(
            "SELECT caller_key, channel_id FROM inbound_calls ORDER BY id DESC LIMIT 1")).one()
        key = unseal_key(settings.hmac_key, channel, sealed)  # the call log seals it (SEC-3)
        assert key == caller_key(settings.hmac_key, number)
        conn.execute(text("INSERT INTO nuisance_entries (list_id, caller_key) VALUES (:l, :k)"),
                     {"l": list_id, "k": key})
    # Calls are decided from memory (REL-5): the entry reaches it by the list's NOTIFY.
    time.sleep(1.0)
    rejected = uac(UacSpec(to="0612345679", from_user=number, hangup=False), work / "again")
    assert rejected.final_status() == 200 and rejected.bye_from_far_end()
    url = settings.database_url
    dump = subprocess.run(["pg_dump", "--data-only", url], capture_output=True, text=True,
                          check=True).stdout
    assert "nuisance_entries" in dump and key in dump
    assert number not in dump
    logs = [settings.log_dir / "ari.log", settings.log_dir / "fastagi.log",
            Path(settings.asterisk_root) / "var/log/asterisk/messages.log"]
    for log in logs:
        if log.exists():
            assert number not in log.read_text(errors="replace"), f"number in {log}"
