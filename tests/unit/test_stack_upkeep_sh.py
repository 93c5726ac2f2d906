"""tools/stack.sh and tools/cluster.sh upkeep, their functions run alone against temporary
directories (tests/shell.py): nothing of the running stack is touched."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

from tests.shell import CLUSTER_SH, STACK_SH, bash, functions


def script_lines(*names: str) -> str:
    """tools/stack.sh's top-level assignments of `names`, as written."""
    lines = STACK_SH.read_text().splitlines()
    return "\n".join(next(line for line in lines if line.startswith(f"{name}="))
                     for name in names) + "\n"


# ---- a cluster node's messages.log: moved aside at its start, never emptied (REL-9) ----------

LOG_FUNCTIONS = functions("ast_log_mark", "ast_logs_locked", "ast_log_shift", "ast_log_new",
                          "ast_log_started", "ast_put")


def start_node(tmp_path: Path, root: Path, n: int) -> subprocess.CompletedProcess[str]:
    """cluster.sh's node_start for a node that is not running, Asterisk's launch a stub."""
    stubs = ('node_running() { return 1; }\n'
             f'ast_launch() {{ echo "$*" >> "{tmp_path}/launched"; }}\n'
             'nast() { :; }\nnode_conf() { echo "/etc/asterisk/nodes/n$1/asterisk.conf"; }\n')
    return bash(LOG_FUNCTIONS + functions("node_start", script=CLUSTER_SH) + stubs
                + script_lines("AST_LOG_KEEP", "AST_START_MARK")
                + f'ASTERISK_ROOT="{root}"; RUN="{tmp_path}"; AST_USER=$(id -un)\n'
                  f'AST_RUN_USER=asterisk\nnode_start {n}\n')


def test_a_cluster_nodes_start_keeps_its_last_log_aside(tmp_path: Path) -> None:
    root = tmp_path / "root with space"
    logs = root / "var" / "log" / "asterisk-n2"
    logs.mkdir(parents=True)
    (logs / "messages.log").write_text("the incident\n")
    for i in range(1, 6):
        (logs / f"messages.log.{i}").write_text(f"older {i}\n")
    r = start_node(tmp_path, root, 2)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "launched").read_text().startswith("/var/lib/asterisk-n2/cores -C ")
    assert (logs / "messages.log.1").read_text() == "the incident\n"
    assert [(logs / f"messages.log.{i}").read_text() for i in range(2, 6)] == [
        "older 1\n", "older 2\n", "older 3\n", "older 4\n"]  # older 5 dropped, as the node's
    first = (logs / "messages.log").read_text()
    assert re.fullmatch(r"\[[-0-9 :.]+\] NOTICE\[0\] tools/stack.sh: Asterisk started; the log "
                        r"before is messages.log.1\n", first), first
    assert stat.S_IMODE((logs / "messages.log").stat().st_mode) == 0o640
    # the next start keeps this run's log in turn
    (logs / "messages.log").write_text(first + "this run\n")
    assert start_node(tmp_path, root, 2).returncode == 0
    assert (logs / "messages.log.1").read_text() == first + "this run\n"
    assert (logs / "messages.log.2").read_text() == "the incident\n"


def test_the_cluster_uses_the_single_nodes_function() -> None:
    body = functions("node_start", script=CLUSTER_SH)
    assert "ast_log_started" in body and ": >" not in body


# ---- the services restarted when their settings changed (callguard.local.env) ---------------

def apps_start(tmp_path: Path) -> str:
    r = bash(functions("say", "settings_fingerprint", "apps_start") +
             'sup_start() { :; }\ncode_fingerprint() { echo code-1; }\n'
             'sup_any_up() { return 0; }\ncode_sync() { :; }\nctl() { :; }\n'
             'svc_restart_all() { echo "(restarted)"; }\nast_app_connected() { :; }\n'
             f'RUN="{tmp_path}"; ENV_FILE="$RUN/callguard.env"; CODE_FP="$RUN/services.code"\n'
             'SETTINGS_FP="$RUN/services.settings"; SERVICES="fastagi ari api"; ASTERISK_ROOT=""\n'
             'apps_start\n')
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_services_restart_when_their_settings_changed(tmp_path: Path) -> None:
    env_file = tmp_path / "callguard.env"
    (tmp_path / "services.code").write_text("code-1\n")
    env_file.write_text("CALLGUARD_MAX_RECORDINGS=200\n")
    assert apps_start(tmp_path) == ""  # none recorded (a stack from before): recorded only
    assert apps_start(tmp_path) == ""
    env_file.write_text("CALLGUARD_MAX_RECORDINGS=300\n")
    assert apps_start(tmp_path) == (
        f"services: their settings ({env_file}) changed since they started; restarting them "
        "(fastagi ari api)\n(restarted)\n")
    assert apps_start(tmp_path) == ""
    env_file.write_text("CALLGUARD_MAX_RECORDINGS=400\n")
    (tmp_path / "services.code").write_text("code-0\n")  # both: one restart
    assert apps_start(tmp_path).count("(restarted)") == 1
