"""SEC-4 (issue 19, item 2): Asterisk and the services run as their own non-root users, whose
uids belong to no other account of this host (the sid root's `asterisk` uid 101 is the host's
`postgres`); what each of them keeps is theirs, with nothing for others: recordings 0640,
journal 0600 (in a 0700 directory), secrets 0600. Over Asterisk's console socket the services'
account runs the astdb route map's commands and nothing else (asterisk_conf/cli_permissions.conf,
SEC-2)."""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine

from callguard.asterisk.console import console_command
from callguard.config import DEFAULT_ENV_FILE, PROJECT_ROOT, Settings
from tests.e2e.rec_helpers import F1B, inbound, recordings

RUN = PROJECT_ROOT / ".run"
AST_USER = "callguard-ast"
SVC_USER = "callguard"


def ids(pid: int) -> tuple[set[int], set[int], set[int]]:
    """Real/effective/saved/fs uids, the same for gids, and the supplementary groups."""
    lines = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                 .splitlines() if ":" in line)
    return ({int(u) for u in lines["Uid"].split()}, {int(g) for g in lines["Gid"].split()},
            {int(g) for g in lines["Groups"].split()})


def host_accounts_with(uid: int) -> list[str]:
    return [p.pw_name for p in pwd.getpwall() if p.pw_uid == uid]


def owner(path: Path) -> str:
    return pwd.getpwuid(path.stat().st_uid).pw_name


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_asterisk_runs_as_its_own_host_account(stack: Settings) -> None:
    root = Path(stack.asterisk_root)
    pid = int((root / "run" / "asterisk" / "asterisk.pid").read_text().split()[0])
    uids, gids, _groups = ids(pid)
    ast = pwd.getpwnam(AST_USER)
    assert uids == {ast.pw_uid}, uids  # real, effective, saved and fs uid: no way back to root
    assert gids == {ast.pw_gid}, gids
    assert host_accounts_with(ast.pw_uid) == [AST_USER]  # not postgres, not anyone else
    # Inside the root, Asterisk's account is the same uid (files it writes are its own).
    entry = next(line.split(":") for line in (root / "etc" / "passwd").read_text().splitlines()
                 if line.startswith("asterisk:"))
    assert (int(entry[2]), int(entry[3])) == (ast.pw_uid, ast.pw_gid)
    # Its configuration and state belong to it, nothing to the host's postgres (or others).
    for d in ("etc/asterisk", "var/lib/asterisk", "var/log/asterisk", "run/asterisk",
              "var/spool/asterisk"):
        assert owner(root / d) == AST_USER, d
        assert mode(root / d) & 0o007 == 0, (d, oct(mode(root / d)))
    postgres = pwd.getpwnam("postgres").pw_uid if "postgres" in {
        p.pw_name for p in pwd.getpwall()} else -1
    for dirpath, dirnames, filenames in os.walk(root / "etc" / "asterisk"):
        for name in [*dirnames, *filenames]:
            st = os.lstat(Path(dirpath) / name)
            assert st.st_uid not in (postgres, 0), (dirpath, name, st.st_uid)
            assert stat.S_IMODE(st.st_mode) & 0o007 == 0, (dirpath, name)
    for secret in ("ari_users.conf", "manager_users.conf", "extensions_agi_secret.conf"):
        assert mode(root / "etc" / "asterisk" / secret) == 0o600, secret


def test_services_run_as_callguard(stack: Settings) -> None:
    svc = pwd.getpwnam(SVC_USER)
    ast = pwd.getpwnam(AST_USER)
    assert host_accounts_with(svc.pw_uid) == [SVC_USER]
    for name in ("ari", "fastagi", "api"):
        pid = int((RUN / f"{name}.pid").read_text())
        uids, gids, groups = ids(pid)
        assert uids == {svc.pw_uid}, (name, uids)
        assert gids == {svc.pw_gid}, (name, gids)
        # Asterisk's group (to read the recordings it writes), nothing more.
        assert groups == {svc.pw_gid, ast.pw_gid}, (name, groups)


def test_secrets_journal_recordings_owned_and_private(clean: Engine, settings: Settings,
                                                     work: Path) -> None:
    assert owner(RUN / "secrets") == SVC_USER and mode(RUN / "secrets") == 0o700
    for secret in (RUN / "secrets").iterdir():
        assert (owner(secret), mode(secret)) == (SVC_USER, 0o600), secret
    assert (owner(RUN / "callguard.env"), mode(RUN / "callguard.env")) == (SVC_USER, 0o600)
    journal = settings.journal_dir
    assert (owner(journal), mode(journal)) == (SVC_USER, 0o700)
    for f in journal.iterdir():
        assert (owner(f), mode(f)) == (SVC_USER, 0o600), f

    # A recorded call: Asterisk writes the file as itself, 0640, in a directory the ARI app
    # made; the app (another user, in Asterisk's group) reads it to finish the row.
    assert inbound(work, "0312345679", F1B, seconds=1).final_status() == 200
    [row] = recordings(clean)
    assert row["status"] == "complete" and row["sha256"], row
    wav = settings.recordings_dir / str(row["path"])
    st = wav.stat()
    assert (pwd.getpwuid(st.st_uid).pw_name, stat.S_IMODE(st.st_mode)) == (AST_USER, 0o640)
    assert st.st_gid == pwd.getpwnam(AST_USER).pw_gid
    d = wav.parent
    while d != settings.recordings_dir.parent:
        assert mode(d) & 0o007 == 0 and owner(d) == SVC_USER, (d, oct(mode(d)), owner(d))
        d = d.parent


# In the services' own process context (their uid, gid and groups: `setpriv`, as supervisord
# starts them), each command through callguard.asterisk.console with their own settings.
AS_SERVICES = """
import json, sys
from callguard.asterisk.console import console_command
from callguard.config import load_settings
settings = load_settings()
print(json.dumps({c: console_command(settings, c) for c in sys.argv[1:]}))
"""


def console_as_services(*commands: str) -> dict[str, str]:
    out = subprocess.run(
        ["setpriv", f"--reuid={SVC_USER}", f"--regid={SVC_USER}", "--init-groups", "--",
         sys.executable, "-c", AS_SERVICES, *commands],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(PROJECT_ROOT),
             "CALLGUARD_ENV": os.environ.get("CALLGUARD_ENV", str(DEFAULT_ENV_FILE))})
    answers: dict[str, str] = json.loads(out.stdout)
    return answers


def refused(output: str) -> bool:
    return "You don't have permissions to run" in output  # main/cli.c ast_cli_command_full


def test_services_console_is_the_route_map_only(stack: Settings) -> None:
    """SEC-2, SEC-4: the console socket is group-writable for the services (astdb_sync), but
    Asterisk lets their account run only `database show|get|put|del` on callguard's families;
    root keeps the whole CLI (stack.sh, these tests)."""
    allowed = ["database show callguard_route", "database show callguard_cid",
               "database get callguard_route 0000000000",
               "database get callguard_meta map_hash"]
    denied = ["core show version", "core show uptime", "module show like res_ari",
              "database show",  # every family, not only ours
              "database deltree callguard_route",  # `database del` as a prefix would let it
              "database show callguard_bench",
              "dialplan show callguard-inbound",
              # a rule is a regular expression found anywhere in the line unless anchored
              "core show help database put callguard_route"]
    out = console_as_services(*allowed, *denied)
    for command in allowed:
        assert not refused(out[command]), (command, out[command])
    assert "results found" in out["database show callguard_route"], out
    for command in denied:
        assert refused(out[command]), (command, out[command])
    # root (uid 0: default_perm = permit) over the same socket
    assert "Asterisk" in console_command(stack, "core show version")
