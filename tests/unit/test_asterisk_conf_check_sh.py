"""What Asterisk logs reading its configuration fails `make run` after a fresh start as after a
reload (tools/stack.sh ast_conf_check, SEC-4, REL-4): a [callguard] section of
cli_permissions.conf whose account Asterisk's root cannot resolve is `cli.c: Unknown user
'callguard'` (main/cli.c ast_cli_perms_init, at the start as at `cli reload permissions`), and
the services' console would hold the whole CLI. Asterisk, supervisord and the log are stubs and
files in tmp_path (tests/shell.py)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from tests.shell import PROJECT_ROOT, STACK_SH, bash, functions

UNKNOWN = "[2026-12-07 21:29:02.301] WARNING[5922] cli.c: Unknown user 'callguard'"
CLEAN = "[2026-12-07 21:29:02.256] NOTICE[5922] loader.c: 96 modules will be loaded."


def script_lines(*names: str) -> str:
    lines = STACK_SH.read_text().splitlines()
    return "\n".join(next(line for line in lines if line.startswith(f"{name}="))
                     for name in names) + "\n"


def start(tmp_path: Path, logged: str, *, running: bool = False, root: bool = True,
          before: str = "") -> subprocess.CompletedProcess[str]:
    """stack.sh's ast_start: a fresh start (or, `running`, a reload) whose Asterisk logs
    `logged` into messages.log as it starts (or at `cli reload permissions`); `before`: what
    the log held already."""
    asterisk_root = tmp_path / "root" if root else None
    logs = (asterisk_root or tmp_path / "system") / "var" / "log" / "asterisk"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / "messages.log"
    log.write_text(before)
    (tmp_path / "asterisk.pid.root").write_text("4242\n")
    append = f"printf '%s\\n' {shlex.quote(logged)} >> {shlex.quote(str(log))}" if logged else ":"
    stubs = (
        "ast_install() { :; }\nsup_start() { :; }\nsup_any_up() { return 1; }\n"
        "sleep() { :; }\nast_ctl_group() { :; }\nast_ari_ready() { :; }\n"
        f"ast_running() {{ {'return 0' if running else 'return 1'}; }}\n"
        f'ast_pidfile() {{ echo "{tmp_path}/asterisk.pid.root"; }}\n'
        # supervisord starts Asterisk, which logs as it loads
        f'ctl() {{ [ "$1 $2" = "start asterisk" ] && {append}; '
        f'echo "ctl $*" >> "{tmp_path}/calls"; }}\n'
        # the console: a reload of the permissions logs what the start would have
        f'ast() {{ echo "ast $*" >> "{tmp_path}/calls"; '
        f'if [ "$2" = "cli reload permissions" ]; then {append}; fi; }}\n')
    code = (functions("say", "ast_log_size", "ast_logs_locked", "ast_reload", "ast_conf_check",
                      "ast_boot", "ast_start", "ast_log_mark", "ast_log_shift", "ast_log_new",
                      "ast_log_started", "ast_put", "etc_keep")
            + stubs
            + script_lines("AST_RELOAD_ERROR", "AST_RELOAD_IGNORED", "AST_START_MARK",
                           "AST_LOG_KEEP")
            + f'ASTERISK_ROOT="{asterisk_root or ""}"; AST_LOG_DIR="{logs}"\n'
              f'RUN="{tmp_path}"; LOG="{tmp_path}"; AST_USER=$(id -un); SVC_USER=callguard\n'
              'ETC_KEPT=""\nast_start\n')
    return bash(code, cwd=PROJECT_ROOT)


def test_a_fresh_start_fails_on_an_unknown_user(tmp_path: Path) -> None:
    r = start(tmp_path, UNKNOWN)
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == ("Asterisk reported errors loading its configuration in "
                        "asterisk_conf/cli_permissions.conf; it runs on without what it refused:")
    assert lines[1] == f"  {UNKNOWN}"
    assert lines[2] == (f"  (Asterisk finds no callguard in {tmp_path}/root/etc/passwd: the "
                        "services' console holds the whole CLI, SEC-4)")
    assert lines[-1].startswith("fix it and run make run again")
    assert "ctl start asterisk" in (tmp_path / "calls").read_text()
    assert (tmp_path / "asterisk.pid").read_text() == "4242\n"  # it runs: make status says so


def test_a_reload_fails_the_same_way(tmp_path: Path) -> None:
    r = start(tmp_path, UNKNOWN, running=True, before=f"{UNKNOWN}\n")
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == ("Asterisk reported errors reloading its configuration in "
                        "asterisk_conf/cli_permissions.conf; it runs on without what it refused:")
    assert lines[1:] == [f"  {UNKNOWN}", *start(tmp_path, UNKNOWN).stdout.splitlines()[2:]]


def test_a_clean_start_passes_and_an_earlier_runs_lines_do_not_count(tmp_path: Path) -> None:
    r = start(tmp_path, CLEAN)
    assert (r.returncode, r.stdout) == (0, ""), r.stdout + r.stderr
    # a system Asterisk's log is not moved aside at its start: read from where it was
    r = start(tmp_path, CLEAN, root=False, before=f"{UNKNOWN}\n")
    assert (r.returncode, r.stdout) == (0, ""), r.stdout + r.stderr
    r = start(tmp_path, UNKNOWN, root=False, before=f"{CLEAN}\n")
    assert r.returncode == 1 and r.stdout.splitlines()[1] == f"  {UNKNOWN}"
    # a reload after a start that logged it: only the reload's lines count
    r = start(tmp_path, CLEAN, running=True, before=f"{UNKNOWN}\n")
    assert (r.returncode, r.stdout) == (0, ""), r.stdout + r.stderr


def test_an_unknown_group_names_the_file_too(tmp_path: Path) -> None:
    line = "[2026-12-07 21:29:02.301] WARNING[5922] cli.c: Unknown group 'staff'"
    r = start(tmp_path, line)
    assert r.returncode == 1
    assert "in asterisk_conf/cli_permissions.conf;" in r.stdout.splitlines()[0]
    assert "finds no" not in r.stdout


def test_start_and_reload_share_one_check() -> None:
    """One function reads the log for both paths; the start checks under the log lock, as the
    reload does (no rotation between the offset and the read)."""
    reload_ = functions("ast_reload")
    boot = functions("ast_boot")
    assert re.search(r'^\s+ast_conf_check "\$off" reloading "\$out"$', reload_, re.MULTILINE)
    assert re.search(r'^\s+ast_conf_check "\$off" loading$', boot, re.MULTILINE)
    assert "AST_RELOAD_ERROR" not in reload_ + boot
    assert 'ast_logs_locked ast_boot "$start"' in functions("ast_start")
    # the offset is taken before supervisord is asked to start Asterisk
    assert boot.index("off=$(ast_log_size)") < boot.index("ctl start asterisk")


MISSING_MODULE = ("[2026-12-07 21:29:02.280] WARNING[5922] loader.c: Error loading module "
                  "'res_prometheus.so': cannot open shared object file")


def test_a_start_does_not_fail_on_a_module_this_asterisk_lacks(tmp_path: Path) -> None:
    """A system Asterisk built without an optional module warns at every start (loader.c);
    that is no configuration error (what needs the module fails its own check), whereas a
    reload never logs it, so there a loader.c line still counts."""
    r = start(tmp_path, MISSING_MODULE)
    assert (r.returncode, r.stdout) == (0, ""), r.stdout + r.stderr
    r = start(tmp_path, MISSING_MODULE, running=True)
    assert r.returncode == 1 and MISSING_MODULE in r.stdout, r.stdout + r.stderr
