"""tools/stack.sh and tools/cluster.sh upkeep, their functions run alone against temporary
directories (tests/shell.py): nothing of the running stack is touched."""

from __future__ import annotations

from pathlib import Path

from tests.shell import bash, functions

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
