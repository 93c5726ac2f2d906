"""tools/stack.sh and tools/cluster.sh upkeep, their functions run alone against temporary
directories (tests/shell.py): nothing of the running stack is touched."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

from tests.shell import CLUSTER_SH, PROJECT_ROOT, STACK_SH, bash, functions


def script_lines(*names: str) -> str:
    """tools/stack.sh's top-level assignments of `names`, as written."""
    lines = STACK_SH.read_text().splitlines()
    return "\n".join(next(line for line in lines if line.startswith(f"{name}="))
                     for name in names) + "\n"


# ---- a cluster node's messages.log: moved aside at its start, never emptied (REL-9) ----------

LOG_FUNCTIONS = functions("ast_log_mark", "ast_logs_locked", "ast_log_shift", "ast_log_new",
                          "ast_log_started", "ast_put", "etc_keep")


def start_node(tmp_path: Path, root: Path, n: int) -> subprocess.CompletedProcess[str]:
    """cluster.sh's node_start for a node that is not running, Asterisk's launch a stub."""
    stubs = ('node_running() { return 1; }\n'
             f'ast_launch() {{ echo "$*" >> "{tmp_path}/launched"; }}\n'
             'nast() { :; }\nnode_conf() { echo "/etc/asterisk/nodes/n$1/asterisk.conf"; }\n')
    return bash(LOG_FUNCTIONS + functions("node_start", script=CLUSTER_SH) + stubs
                + script_lines("AST_LOG_KEEP", "AST_START_MARK", "ETC_KEPT")
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


# ---- a checkout whose path has spaces: the supervised commands (RUN-1) -----------------------

PROGRAM_FUNCTIONS = functions("shq", "rt_chrt", "svc_program", "ast_program",
                              "ast_logs_program", "prom_program")


def programs(top: Path, svc_bin: Path, run: Path) -> str:
    """The supervisord sections of the Asterisk, log loop, services and Prometheus programs."""
    r = bash(PROGRAM_FUNCTIONS +
             f'TOP="{top}"; RUN="{run}"; LOG="$RUN/log"; PROM_DIR="$RUN/prometheus"\n'
             f'SVC_BIN="{svc_bin}"; SVC_USER=callguard; ASTERISK_ROOT=/r; RT_PRIO=10\n'
             'chrt() { :; }  # the kernel grants SCHED_RR\n'
             'ast_program; ast_logs_program\n'
             'for s in ari api; do svc_program "$s" "$RUN/callguard.env" '
             '"echo \\$\\$ > $(shq "$RUN/$s.pid") && " "$LOG"; done\n'
             'prom_program "$PROM_DIR/prometheus.yml"\n')
    assert r.returncode == 0, r.stderr
    return r.stdout


def commands(sections: str) -> list[list[str]]:
    """Each `command = ...` as supervisord runs it (shlex.split, supervisor/options.py)."""
    return [shlex.split(line.split(" = ", 1)[1]) for line in sections.splitlines()
            if line.startswith("command = ")]


def stub(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def test_the_supervised_commands_run_from_a_path_with_spaces(tmp_path: Path) -> None:
    top = tmp_path / "it's a checkout"
    run = tmp_path / "state dir" / ".run"
    svc_bin = tmp_path / "svc venv" / "bin"
    (run / "prometheus").mkdir(parents=True)
    (run / "prometheus" / "listen").write_text("127.0.0.1:9460\n")
    out = tmp_path / "out"
    stubs = tmp_path / "stubs"
    stub(stubs / "chrt", 'shift 2; exec "$@"\n')  # chrt -r 10 cmd...
    stub(stubs / "setpriv", 'while [ "$1" != -- ]; do shift; done; shift; exec "$@"\n')
    stub(stubs / "prometheus", f'printf "%s\\n" "$@" > "{out}.prometheus"\n')
    stub(stubs / "sleep", f'[ ! -e "{out}.slept" ] && : > "{out}.slept"\n')  # once, then stop
    stub(top / "tools" / "stack.sh", f'echo "$@" >> "{out}.stack"\n')
    for s in ("ari", "api"):
        stub(svc_bin / f"callguard-{s}", f'echo "$0" > "{out}.{s}"\n')
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"}
    asterisk, loop, ari, api, prom = commands(programs(top, svc_bin, run))

    assert asterisk == [f"{top}/tools/stack.sh", "asterisk-exec"]
    assert loop[:2] == ["/bin/bash", "-c"]
    subprocess.run(loop, env=env, check=True, timeout=10)
    assert Path(f"{out}.stack").read_text() == "asterisk-logs-rotate\n"
    for name, argv in (("ari", ari), ("api", api)):
        assert argv[:2] == ["/bin/sh", "-c"]
        subprocess.run(argv, env=env, check=True, timeout=10)
        assert Path(f"{out}.{name}").read_text() == f"{svc_bin}/callguard-{name}\n"
        assert (run / f"{name}.pid").read_text().strip().isdigit()
    assert "chrt -r 10 setpriv" in ari[2]
    subprocess.run(prom, env=env, check=True, timeout=10)
    assert Path(f"{out}.prometheus").read_text().splitlines() == [
        f"--config.file={run}/prometheus/prometheus.yml",
        f"--storage.tsdb.path={run}/prometheus/data", "--storage.tsdb.retention.time=15d",
        "--web.listen-address=127.0.0.1:9460"]
    assert (run / "prometheus.pid").read_text().strip().isdigit()


def test_the_sections_for_a_plain_path_are_as_before(tmp_path: Path) -> None:
    """A program whose section changes is restarted by `make run` (supervisorctl update): for
    a path without spaces the commands are written as they always were, unquoted."""
    sections = programs(Path("/srv/callguard"), Path("/srv/callguard/.build/svc-venv/bin"),
                        Path("/srv/callguard/.run"))
    assert [line for line in sections.splitlines() if line.startswith("command = ")] == [
        "command = /srv/callguard/tools/stack.sh asterisk-exec",
        "command = /bin/bash -c 'while sleep 60; do /srv/callguard/tools/stack.sh "
        "asterisk-logs-rotate; done'",
        "command = /bin/sh -c 'echo $$ > /srv/callguard/.run/ari.pid && exec chrt -r 10 setpriv "
        "--reuid=callguard --regid=callguard --init-groups -- "
        "/srv/callguard/.build/svc-venv/bin/callguard-ari'",
        "command = /bin/sh -c 'echo $$ > /srv/callguard/.run/api.pid && exec "
        "/srv/callguard/.build/svc-venv/bin/callguard-api'",
        "command = /bin/sh -c 'echo $$ > /srv/callguard/.run/prometheus.pid && exec prometheus "
        "--config.file=/srv/callguard/.run/prometheus/prometheus.yml "
        "--storage.tsdb.path=/srv/callguard/.run/prometheus/data "
        "--storage.tsdb.retention.time=15d "
        "--web.listen-address=$(cat /srv/callguard/.run/prometheus/listen)'"]


def test_the_clusters_kamailio_command_from_a_path_with_spaces(tmp_path: Path) -> None:
    run = tmp_path / "state dir" / ".run"
    cl = run / "cluster"
    cl.mkdir(parents=True)
    stubs = tmp_path / "stubs"
    stub(stubs / "kamailio", "")
    r = bash(PROGRAM_FUNCTIONS + functions("cl_sup_conf", script=CLUSTER_SH) +
             f'RUN="{run}"; CL="{cl}"; CL_SUP_CONF="$CL/supervisord.conf"; NODES_DIR="$RUN/nodes"\n'
             'CL_SUP_PID="$CL/supervisord.pid"; KAM_CFG="$CL/kamailio.cfg"; PROM_DIR="$RUN/p"\n'
             'SVC_BIN=/b; SVC_USER=callguard; RT_PRIO=0; SERVICES="ari"; WAKEUP_CMD=true\n'
             'nodes() { echo 1; }\ncl_sup_conf\n',
             env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"})
    assert r.returncode == 0, r.stderr
    conf = configparser.RawConfigParser()
    conf.read(cl / "supervisord.conf")
    assert shlex.split(conf["program:kamailio"]["command"]) == [
        str(stubs / "kamailio"), "-f", f"{cl}/kamailio.cfg", "-DD", "-E", "-P",
        f"{cl}/kamailio.pid"]


def test_the_code_copys_launchers_from_a_path_with_spaces(tmp_path: Path) -> None:
    """A checkout out of others' reach runs a copy of the code in its state dir, named after
    the checkout: a #! line cannot hold a path with spaces, the launchers start the
    virtualenv's Python from a shell line, as pip's own do."""
    top = tmp_path / "check out"
    for module in ("ari_app/main.py", "agi_scripts/fastagi.py", "callguard/api/app.py"):
        (top / module).parent.mkdir(parents=True, exist_ok=True)
        (top / module).write_text("import sys\n\ndef main():\n"
                                  f"    print({module!r}, sys.argv[1:], sys.path[0])\n"
                                  "    return 3\n")
    venv = tmp_path / "state dir" / "svc-venv"
    stub(venv / "bin" / "python", 'exec python3 "$@"\n')
    code = tmp_path / "state dir" / "code"
    r = bash(functions("shq", "code_sync") +
             f'TOP="{top}"; SVC_VENV="{venv}"; CODE="{code}"\ncode_sync\n')
    assert r.returncode == 0, r.stderr
    for name, module in (("ari", "ari_app/main.py"), ("fastagi", "agi_scripts/fastagi.py"),
                         ("api", "callguard/api/app.py")):
        run = subprocess.run([str(code / "bin" / f"callguard-{name}"), "--an arg"],
                             capture_output=True, text=True, check=False, timeout=30)
        assert run.returncode == 3, run.stderr
        assert run.stdout == f"{module} ['--an arg'] {code}\n"


# ---- a system Asterisk's /etc/asterisk: what make run replaces is kept first (RUN-1) ---------

BACKUP = re.compile(r"asterisk\.callguard-backup-\d{14}(-\d+)?")


def keep(tmp_path: Path, script: str, root: str = "",
         date: str = "") -> subprocess.CompletedProcess[str]:
    """A run's etc_keep_begin, then `script` (ast_put ...), with a system Asterisk (ASTERISK_ROOT
    empty) whose etc directory is tmp_path/etc/asterisk; `date`: the time of the runs."""
    return bash(functions("say", "ast_put", "etc_keep_begin", "etc_keep", "etc_kept_say") +
                f'ast_etc() {{ printf %s "{tmp_path}/etc/asterisk"; }}\n'
                + (f"date() {{ echo {date}; }}\n" if date else "") +
                f'ASTERISK_ROOT="{root}"; AST_USER=$(id -un); SVC_USER=$AST_USER\n'
                'etc_keep_begin\n' + script)


def put(name: str, text: str) -> str:
    """The shell line ast_install uses for a generated file: TEXT piped into ast_put."""
    return f"printf '%s\\n' {shlex.quote(text)} | ast_put 0640 \"$(ast_etc)/{name}\"\n"


def test_a_file_replaced_in_a_system_asterisks_etc_is_kept(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "asterisk"
    etc.mkdir(parents=True)
    (etc / "pjsip.conf").write_text("; the PBX's own\n")
    (etc / "pjsip.conf").chmod(0o644)
    os.utime(etc / "pjsip.conf", (1_700_000_000, 1_700_000_000))
    (etc / "logger.conf").write_text("; callguard's already\n")
    (etc / "manager_on_demand.conf").write_text("enabled = yes\n")  # the services' switch
    (etc / "modules.conf").write_text("; the PBX's modules\n")
    r = keep(tmp_path, put("pjsip.conf", "; callguard")
             + put("logger.conf", "; callguard's already") + put("rtp.conf", "; new")
             + put("manager_on_demand.conf", "enabled = no") + put("modules.conf", "; callguard")
             + "etc_kept_say\n")
    assert r.returncode == 0, r.stderr
    backups = [p for p in (tmp_path / "etc").iterdir() if p.name != "asterisk"]
    assert len(backups) == 1 and BACKUP.fullmatch(backups[0].name), backups
    kept = backups[0]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    assert sorted(p.name for p in kept.iterdir()) == ["modules.conf", "pjsip.conf"]
    assert (kept / "pjsip.conf").read_text() == "; the PBX's own\n"
    assert stat.S_IMODE((kept / "pjsip.conf").stat().st_mode) == 0o644
    assert (kept / "pjsip.conf").stat().st_mtime == 1_700_000_000
    assert (etc / "pjsip.conf").read_text() == "; callguard\n"
    assert r.stdout == (f"asterisk: the files of {etc} replaced by callguard's are kept in "
                        f"{kept}/: modules.conf pjsip.conf\n")
    # the next run: nothing replaced, nothing kept, nothing said
    again = keep(tmp_path, put("pjsip.conf", "; callguard") + "etc_kept_say\n")
    assert again.returncode == 0 and again.stdout == "", again.stderr
    assert [p for p in (tmp_path / "etc").iterdir() if p.name != "asterisk"] == [kept]


def test_two_runs_in_the_same_second_keep_apart(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "asterisk"
    etc.mkdir(parents=True)
    (etc / "pjsip.conf").write_text("; 1\n")
    r = keep(tmp_path, put("pjsip.conf", "; 2") + "etc_keep_begin\n" + put("pjsip.conf", "; 3")
             + "etc_kept_say\n", date="20261207190000")
    assert r.returncode == 0, r.stderr
    base = tmp_path / "etc" / "asterisk.callguard-backup-20261207190000"
    assert (base / "pjsip.conf").read_text() == "; 1\n"
    assert (Path(f"{base}-1") / "pjsip.conf").read_text() == "; 2\n"
    assert r.stdout.startswith(f"asterisk: the files of {etc} replaced by callguard's are kept "
                               f"in {base}-1/: ")


def test_the_project_root_and_the_logs_keep_nothing(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "asterisk"
    etc.mkdir(parents=True)
    (etc / "pjsip.conf").write_text("; before\n")
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "messages.log").write_text("before\n")
    r = keep(tmp_path, put("pjsip.conf", "; after") + "etc_kept_say\n", root=str(tmp_path / "r"))
    assert r.returncode == 0 and r.stdout == "", r.stderr
    r = keep(tmp_path, f"echo after | ast_put 0640 '{logs}/messages.log'\netc_kept_say\n")
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["asterisk"]


def install_script(root: Path, run: Path, ports: str = "") -> str:
    """ast_install into `root` (taken for a system Asterisk's: etc_keep's project-root test
    taken out), its secrets in `run`; `ports`: shell assignments before it, under the
    defaults tools/stack.sh sets (ARI_PORT, AMI_PORT, FASTAGI_PORT)."""
    install = functions("say", "ast_etc", "ast_put", "etc_keep_begin", "etc_keep",
                        "etc_kept_say", "ami_switch", "ast_conf_ports", "ast_install")
    guard = '    [ -z "$ASTERISK_ROOT" ] || return 0\n'
    assert guard in functions("etc_keep_begin")
    install = install.replace(guard, "", 1)
    return (f'source "{PROJECT_ROOT / "tools" / "local_env.sh"}"\n{ports}\n'
            + install + script_lines("AST_GENERATED", "ARI_PORT", "AMI_PORT", "FASTAGI_PORT") +
            'users() { :; }\nroot_users() { :; }\nroot_svc_account() { :; }\n'
            'ast_owns() { :; }\n'
            f'ASTERISK_ROOT="{root}"; RUN="{run}"; AST_USER=$(id -un); SVC_USER=$AST_USER\n'
            'ast_install\n')


def test_ast_install_keeps_every_file_it_replaces(tmp_path: Path) -> None:
    """ast_install itself, into a temporary root taken for a system Asterisk's (etc_keep's
    project-root test taken out): every file it writes goes through the backup, generated ones
    too, and it says where; a second run replaces nothing and says nothing."""
    root = tmp_path / "root"
    etc = root / "etc" / "asterisk"
    etc.mkdir(parents=True)
    (root / "var" / "lib" / "asterisk").mkdir(parents=True)
    (etc / "pjsip.conf").write_text("; the PBX's\n")
    (etc / "ari_users.conf").write_text("; the PBX's ARI users\n")
    (etc / "logger.conf").write_bytes((PROJECT_ROOT / "asterisk_conf" / "logger.conf").read_bytes())
    run = tmp_path / "run"
    (run / "secrets").mkdir(parents=True)
    for name in ("ari.password", "agi.secret", "ami.password"):
        (run / "secrets" / name).write_text(f"{name}-secret\n")
    work = tmp_path / "work"  # asterisk_conf/ as the checkout's, no sounds
    work.mkdir()
    (work / "asterisk_conf").symlink_to(PROJECT_ROOT / "asterisk_conf")
    script = install_script(root, run)
    r = bash(script, cwd=work)
    assert r.returncode == 0, r.stderr
    kept = [p for p in (root / "etc").iterdir() if p.name.startswith("asterisk.")]
    assert len(kept) == 1 and BACKUP.fullmatch(kept[0].name)
    assert sorted(p.name for p in kept[0].iterdir()) == ["ari_users.conf", "pjsip.conf"]
    assert (kept[0] / "ari_users.conf").read_text() == "; the PBX's ARI users\n"
    assert r.stdout == (f"asterisk: the files of {etc} replaced by callguard's are kept in "
                        f"{kept[0]}/: ari_users.conf pjsip.conf\n")
    again = bash(script, cwd=work)
    assert again.returncode == 0 and again.stdout == "", again.stderr


# ---- Asterisk's ports (callguard.local.env's CALLGUARD_ARI_PORT, _AMI_PORT, _FASTAGI_PORT) ----

def installed(tmp_path: Path, ports: str) -> Path:
    """ast_install with `ports` (shell assignments) into a fresh root: its etc directory."""
    root = tmp_path / "root"
    (root / "etc" / "asterisk").mkdir(parents=True)
    (root / "var" / "lib" / "asterisk").mkdir(parents=True)
    run = tmp_path / "run"
    (run / "secrets").mkdir(parents=True)
    for name in ("ari.password", "agi.secret", "ami.password"):
        (run / "secrets" / name).write_text(f"{name}-secret\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "asterisk_conf").symlink_to(PROJECT_ROOT / "asterisk_conf")
    r = bash(install_script(root, run, ports), cwd=work, env={
        k: v for k, v in os.environ.items() if not k.endswith("_PORT")})
    assert r.returncode == 0, r.stderr
    return root / "etc" / "asterisk"


def test_the_defaults_install_asterisk_conf_as_it_is(tmp_path: Path) -> None:
    etc = installed(tmp_path, "")
    for f in (PROJECT_ROOT / "asterisk_conf").glob("*.conf"):
        assert (etc / f.name).read_bytes() == f.read_bytes(), f.name
    assert (etc / "extensions_agi_secret.conf").read_text() == \
        "CG_FASTAGI = agi://127.0.0.1:4573/agi.secret-secret\n"


def test_moved_ports_reach_the_installed_configuration_only(tmp_path: Path) -> None:
    """RUN-4: the ports move, the address stays 127.0.0.1; asterisk_conf/ keeps the defaults."""
    etc = installed(tmp_path, "CALLGUARD_ARI_PORT=8188\nCALLGUARD_AMI_PORT=5138\n"
                              "CALLGUARD_FASTAGI_PORT=4673\n")

    def lines(name: str) -> list[str]:
        return (etc / name).read_text().splitlines()

    assert "bindport = 8188" in lines("http.conf") and "bindaddr = 127.0.0.1" in lines("http.conf")
    assert "allowed_origins = http://127.0.0.1:8188" in lines("ari.conf")
    assert "port = 5138" in lines("manager.conf")
    assert "bindaddr = 127.0.0.1" in lines("manager.conf")
    assert "http://127.0.0.1:8188/metrics" in (etc / "prometheus.conf").read_text()
    assert lines("extensions_agi_secret.conf") == [
        "CG_FASTAGI = agi://127.0.0.1:4673/agi.secret-secret"]
    for f in (PROJECT_ROOT / "asterisk_conf").glob("*.conf"):
        text = (etc / f.name).read_text()
        assert not re.search(r"\b(8088|5038|4573)\b", text), f.name
    conf = PROJECT_ROOT / "asterisk_conf"
    assert "bindport = 8088" in (conf / "http.conf").read_text().splitlines()
    assert "port = 5038" in (conf / "manager.conf").read_text().splitlines()


def test_a_port_change_restarts_no_asterisk_but_is_reloaded_and_checked() -> None:
    """A running Asterisk gets the new ports at ast_start's reload (`module reload` reloads
    http.conf and manager.conf; Asterisk binds anew when the address changed), and ast_start
    then checks ARI answers on the port, after a reload as after a start."""
    start = functions("ast_start")
    assert "ast_logs_locked ast_reload" in start
    assert start.count("ast_ari_ready") == 1  # after the reload
    assert "ast_ari_ready" in functions("ast_boot")  # after a start
    assert "ast -rx 'module reload'" in functions("ast_reload")
    answers = functions("ast_ari_answers")
    assert "$ARI_PORT" in answers and "-K -" in answers  # the password never on a command line


def test_a_cluster_node_gets_its_own_ports_whatever_the_single_nodes_are(tmp_path: Path) -> None:
    """tools/cluster.sh node_install's rewrite of the copies ast_install made: the node's ports
    (8100+n, 5100+n) replace the single node's, moved or not."""
    text = CLUSTER_SH.read_text()
    seds = [line.strip() for line in text.splitlines()
            if re.match(r'\s*sed -i -e "s[/#]\^(bindport|port|allowed_origins) = ', line)]
    assert len(seds) == 3, seds
    for single in ("8088", "8188"):
        etc = tmp_path / single
        etc.mkdir()
        (etc / "http.conf").write_text(f"[general]\nbindaddr = 127.0.0.1\nbindport = {single}\n")
        (etc / "ari.conf").write_text(f"[general]\nallowed_origins = http://127.0.0.1:{single}\n")
        (etc / "manager.conf").write_text(f"[general](+)\nbindaddr = 127.0.0.1\nport = "
                                          f"{int(single) - 3050}\n")
        r = bash(f'n=2; etc="{etc}"\n' + "\n".join(seds) + "\n")
        assert r.returncode == 0, r.stderr
        assert "bindport = 8102" in (etc / "http.conf").read_text().splitlines()
        assert "allowed_origins = http://127.0.0.1:8102" in (etc / "ari.conf").read_text()
        assert "port = 5102" in (etc / "manager.conf").read_text().splitlines()


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


def test_root_knows_the_services_account_by_name(tmp_path: Path) -> None:
    """SEC-4: cli_permissions.conf's [callguard] is resolved in Asterisk's root: the account is
    added there with the host's uid/gid, once, renumbered when the host's changed, the root's
    other lines and the files' modes as they were."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                "asterisk:x:999:995:Asterisk:/var/lib/asterisk:/usr/sbin/nologin\n")
    (etc / "group").write_text("root:x:0:\nasterisk:x:995:\n")
    (etc / "passwd").chmod(0o644)
    ids = "id() { echo 4242; }\ngetent() { echo 'callguard:x:4343:'; }\n"
    script = (functions("root_svc_account", "root_account_line") + ids +
              f'ASTERISK_ROOT="{tmp_path}"; SVC_USER=callguard\nroot_svc_account\n')
    line = "callguard:x:4242:4343:callguard services:/nonexistent:/usr/sbin/nologin"
    for _ in range(2):
        r = bash(script)
        assert r.returncode == 0, r.stderr
        assert (etc / "passwd").read_text().splitlines()[-1] == line
        assert (etc / "passwd").read_text().count("callguard:") == 1
        assert (etc / "group").read_text() == "root:x:0:\nasterisk:x:995:\ncallguard:x:4343:\n"
    assert (etc / "passwd").read_text().startswith("root:x:0:0:root:/root:/bin/bash\nasterisk:")
    assert stat.S_IMODE((etc / "passwd").stat().st_mode) == 0o644
    r = bash(script.replace("echo 4242", "echo 4244"))
    assert r.returncode == 0, r.stderr
    assert [x for x in (etc / "passwd").read_text().splitlines() if x.startswith("callguard:")] \
        == [line.replace("4242", "4244")]
    assert sorted(p.name for p in etc.iterdir()) == ["group", "passwd"]


# ---- supervisord without the services' settings in its environment (RUN-4) -------------------

def launch_supervisord(tmp_path: Path, env_files: list[Path],
                       env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """stack.sh's sup_start for a supervisord that is not running, supervisord a stub that
    records its arguments and its environment: (arguments, environment)."""
    venv = tmp_path / "svc venv"
    (venv / "bin").mkdir(parents=True)
    stub = venv / "bin" / "supervisord"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/args"\n'
                    f'env -0 > "{tmp_path}/env"\n')
    stub.chmod(0o755)
    files = " ".join(shlex.quote(str(f)) for f in env_files)
    r = bash(f'source {shlex.quote(str(PROJECT_ROOT / "tools" / "local_env.sh"))}\n'
             + functions("say", "sup_launch", "sup_start") +
             'pidfiles() { :; }\ncode_sync() { :; }\nsup_conf() { :; }\n'
             f'alive() {{ return 1; }}\nsup_running() {{ [ -e "{tmp_path}/args" ]; }}\n'
             f'SVC_VENV={shlex.quote(str(venv))}; SUP_CONF="{tmp_path}/supervisord.conf"\n'
             f'LOG="{tmp_path}"; SUP_PID="{tmp_path}/pid"\n'
             f'ENV_FILE={shlex.quote(str(env_files[0]))}\n'
             + ("sup_start\n" if len(env_files) == 1 else
                f'sup_launch "$SUP_CONF" {files}\n'), env=env)
    assert r.returncode == 0, r.stderr
    args = (tmp_path / "args").read_text().splitlines()
    seen = dict(item.split("=", 1) for item in (tmp_path / "env").read_text().split("\0") if item)
    return args, seen


def test_supervisord_starts_without_the_services_settings(tmp_path: Path) -> None:
    """`CALLGUARD_API_PORT=9000 make run`, then 9001 in callguard.local.env: the services must
    take 9001 from .run/callguard.env, not 9000 from the supervisord that first run started
    (config.py lets the environment win)."""
    env_file = tmp_path / "callguard.env"
    env_file.write_text("CALLGUARD_DATABASE_URL=postgresql://x@/y\nCALLGUARD_API_PORT=9000\n"
                        "CALLGUARD_RECORDINGS_DIR=/srv/rec\n")
    env = {**os.environ, "CALLGUARD_API_PORT": "9000", "CALLGUARD_MAX_RECORDINGS": "5",
           "CALLGUARD_DATABASE_URL": "postgresql://old@/z", "CALLGUARD_RECORDINGS_DIR": "/a",
           "CALLGUARD_ASTERISK_LOG_MAX": "1000", "ASTERISK_ROOT": "/r", "KEEP_ME": "yes"}
    args, seen = launch_supervisord(tmp_path, [env_file], env)
    assert args == ["-c", str(tmp_path / "supervisord.conf")]
    for key in ("CALLGUARD_API_PORT", "CALLGUARD_MAX_RECORDINGS", "CALLGUARD_DATABASE_URL",
                "CALLGUARD_RECORDINGS_DIR"):
        assert key not in seen, key
    # what only tools/stack.sh reads (the log loop, Asterisk's start under supervisord) stays
    assert (seen["CALLGUARD_ASTERISK_LOG_MAX"], seen["ASTERISK_ROOT"], seen["KEEP_ME"]) == (
        "1000", "/r", "yes")
    assert seen["PATH"] == os.environ["PATH"]


def test_the_clusters_supervisord_starts_without_the_nodes_settings(tmp_path: Path) -> None:
    main = tmp_path / "callguard.env"
    main.write_text("CALLGUARD_API_PORT=8090\n")
    node = tmp_path / "n1 callguard.env"
    node.write_text("CALLGUARD_NODE=n1\nCALLGUARD_FASTAGI_PORT=4581\n")
    env = {**os.environ, "CALLGUARD_NODE": "n9", "CALLGUARD_FASTAGI_PORT": "4999",
           "CALLGUARD_PROMETHEUS_PORT": "9999", "KEEP_ME": "yes"}
    args, seen = launch_supervisord(tmp_path, [main, node, tmp_path / "missing.env"], env)
    assert args == ["-c", str(tmp_path / "supervisord.conf")]
    assert not {"CALLGUARD_NODE", "CALLGUARD_FASTAGI_PORT", "CALLGUARD_PROMETHEUS_PORT"} & set(seen)
    assert seen["KEEP_ME"] == "yes"


def test_every_supervisord_start_goes_through_sup_launch() -> None:
    """The single node's and the cluster's: no other line starts supervisord."""
    starts = [line.strip() for script in (STACK_SH, CLUSTER_SH)
              for line in script.read_text().splitlines()
              if re.search(r'bin/supervisord"? -c', line) and not line.lstrip().startswith("#")]
    assert starts == ['env "${unset[@]}" "$SVC_VENV/bin/supervisord" -c "$conf" '
                      '3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-'], starts
    cluster_up = functions("cluster_up", script=CLUSTER_SH)
    assert 'sup_launch "$CL_SUP_CONF" "${files[@]}"' in cluster_up
    assert 'files+=("$NODES_DIR/n$n/callguard.env")' in cluster_up
