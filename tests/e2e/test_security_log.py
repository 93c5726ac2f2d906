"""SEC-4: Asterisk's security log channel is on, and the shipped fail2ban filter
(tools/fail2ban/) finds the source address of a refused SIP request in it."""

from __future__ import annotations

import configparser
import re
import subprocess
import time
from pathlib import Path

from callguard.config import PROJECT_ROOT, Settings

FILTER = PROJECT_ROOT / "tools" / "fail2ban" / "filter.d" / "callguard-asterisk.conf"
STRANGER = "127.0.9.9"  # no endpoint identifies this address


def failregex() -> re.Pattern[str]:
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(FILTER.read_text())
    pattern = cp["Definition"]["failregex"].strip()
    # fail2ban's <HOST> tag, as a Python group
    return re.compile(pattern.replace("<HOST>", r"(?P<host>[0-9A-Fa-f.:]+)"))


def test_refused_source_is_in_security_log_for_fail2ban(stack: Settings, tmp_path: Path) -> None:
    log = Path(f"{stack.asterisk_root}/var/log/asterisk/security.log")
    offset = log.stat().st_size if log.exists() else 0
    subprocess.run(["sipp", "-sn", "uac", "-i", STRANGER, "-p", "5099", "-s", "0312345678",
                    "-m", "1", "-timeout", "5", "-timeout_error", "127.0.0.1:5060"],
                   cwd=tmp_path, capture_output=True, timeout=30, check=False)
    rx = failregex()
    hosts: list[str] = []
    deadline = time.monotonic() + 5
    while not hosts and time.monotonic() < deadline:
        with log.open("rb") as f:
            f.seek(offset)
            new = f.read().decode(errors="replace")
        hosts = [m["host"] for m in map(rx.search, new.splitlines()) if m]
        time.sleep(0.2)
    assert STRANGER in hosts, new
