"""callguard.local.env (tools/local_env.sh): the sysadmin's settings kept across runs, read by
tools/stack.sh at every command under make's environment; malformed lines stop `make run` with
FILE:LINE, keys it does not take are warnings; the services' keys reach .run/callguard.env
(RUN-3, RUN-4, SEC-2: never a value in a message, the file ignored by git)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from callguard.config import load_settings
from tests.shell import PROJECT_ROOT, STACK_SH, bash, functions

LOCAL_ENV_SH = PROJECT_ROOT / "tools" / "local_env.sh"
EXAMPLE = PROJECT_ROOT / "callguard.local.env.example"
SECRET = "s3cr3t-Pa55"


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any key the file takes (make's environment is the test's
    to give)."""
    keys = set(keys_of())
    env = {k: v for k, v in os.environ.items() if k not in keys}
    env.update(extra)
    return env


def keys_of(reader: str = "") -> list[str]:
    out = subprocess.run(["bash", "-c", f'source "{LOCAL_ENV_SH}"; local_env_keys {reader}'],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def load(file: Path, show: str, env: dict[str, str] | None = None,
         warn: bool = False) -> subprocess.CompletedProcess[str]:
    """local_env_load FILE, then `show` (bash) in the same shell."""
    return bash(f'source "{LOCAL_ENV_SH}"\nlocal_env_load "{file}" {"warn" if warn else ""}\n'
                f"{show}", env=env if env is not None else clean_env())


def stack_ports() -> str:
    """tools/stack.sh's lines that set Asterisk's ports (ARI_PORT, AMI_PORT, FASTAGI_PORT) from
    the keys, as written there."""
    lines = [line for line in STACK_SH.read_text().splitlines()
             if re.match(r"^(ARI|AMI|FASTAGI)_PORT=", line)]
    assert len(lines) == 3, lines
    return "\n".join(lines) + "\n"


def test_values_comments_quotes_and_line_ends(tmp_path: Path) -> None:
    f = tmp_path / "callguard.local.env"
    f.write_bytes(
        b"# the sysadmin's settings\n"
        b"   # an indented comment\n"
        b"\n"
        b"DATABASE_URL=postgresql://cg:" + SECRET.encode() + b"@db.example:5432/callguard\n"
        b"  CALLGUARD_MAX_RECORDINGS = 200  \n"
        b"CALLGUARD_AT_CAPACITY_POLICY=\"unrecorded\"\n"
        b"CALLGUARD_RECORDINGS_DIR='/srv/call guard/rec'\n"
        b"CALLGUARD_API_PORT=8090\r\n"          # a line written on Windows
        b"ASTERISK_ROOT=\n"                      # empty: the system Asterisk
        b"CALLGUARD_RT_PRIORITY=0")              # no newline at the end
    f.chmod(0o600)
    r = load(f, 'printf "%s|" "$DATABASE_URL" "$CALLGUARD_MAX_RECORDINGS" '
                '"$CALLGUARD_AT_CAPACITY_POLICY" "$CALLGUARD_RECORDINGS_DIR" '
                '"$CALLGUARD_API_PORT" "${ASTERISK_ROOT-unset}" "$CALLGUARD_RT_PRIORITY" '
                '"$LOCAL_ENV_FROM_FILE"', warn=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.split("|")[:8] == [
        f"postgresql://cg:{SECRET}@db.example:5432/callguard", "200", "unrecorded",
        "/srv/call guard/rec", "8090", "", "0",
        "DATABASE_URL CALLGUARD_MAX_RECORDINGS CALLGUARD_AT_CAPACITY_POLICY "
        "CALLGUARD_RECORDINGS_DIR CALLGUARD_API_PORT ASTERISK_ROOT CALLGUARD_RT_PRIORITY"]


def test_makes_environment_wins_over_the_file(tmp_path: Path) -> None:
    f = tmp_path / "callguard.local.env"
    f.write_text("CALLGUARD_MAX_RECORDINGS=200\nCALLGUARD_PG_PORT=55433\n"
                 "CALLGUARD_MAX_RECORDINGS=300\n")
    r = load(f, 'echo "$CALLGUARD_MAX_RECORDINGS $CALLGUARD_PG_PORT|$LOCAL_ENV_FROM_ENV"',
             env=clean_env(CALLGUARD_MAX_RECORDINGS="7"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "7 55433|CALLGUARD_MAX_RECORDINGS"


def test_values_are_this_shells_only_never_exported(tmp_path: Path) -> None:
    """A supervisord started from tools/stack.sh must not keep a value the file no longer says
    (the services read theirs from .run/callguard.env, which each `make run` writes anew)."""
    f = tmp_path / "callguard.local.env"
    f.write_text("CALLGUARD_MAX_RECORDINGS=200\n")
    r = load(f, 'echo "$CALLGUARD_MAX_RECORDINGS"; env | grep -c CALLGUARD_MAX_RECORDINGS || true')
    assert r.stdout.split() == ["200", "0"]


@pytest.mark.parametrize(("text", "line", "why"), [
    ("CALLGUARD_API_PORT=8090\nthis is not a setting\n", 2, "not KEY=VALUE"),
    ("# ok\n\nexport CALLGUARD_API_PORT=8090\n", 3, "not KEY=VALUE"),
    ("9PORT=1\n", 1, "not KEY=VALUE"),
    ("CALLGUARD-API-PORT=1\n", 1, "not KEY=VALUE"),
    ("CALLGUARD_API_PORT=8090 # the API\n", 1, "a value with spaces must be quoted"),
    (f"DATABASE_URL=\"postgresql://cg:{SECRET}@db/cg\n", 1, "must end with its quote"),
    (f"DATABASE_URL='postgresql://cg:{SECRET}@db/cg' # ours\n", 1, "must end with its quote"),
    (f"DATABASE_URL=postgres://cg:{SECRET}@db/cg\n", 1, "DATABASE_URL must be a postgresql:// URL"),
    ("CALLGUARD_API_PORT=0\n", 1, "CALLGUARD_API_PORT must be a port"),
    ("CALLGUARD_PG_PORT=65536\n", 1, "CALLGUARD_PG_PORT must be a port"),
    ("CALLGUARD_METRICS_ARI_PORT=\n", 1, "must be a port"),
    ("CALLGUARD_MAX_RECORDINGS=-1\n", 1, "CALLGUARD_MAX_RECORDINGS must be a whole number"),
    ("CALLGUARD_RING_TIMEOUT=30s\n", 1, "CALLGUARD_RING_TIMEOUT must be a whole number"),
    ("CALLGUARD_ASTERISK_LOG_MAX=20MB\n", 1, "must be a whole number"),
    ("CALLGUARD_RT_PRIORITY=100\n", 1, "CALLGUARD_RT_PRIORITY must be 0 (off) to 99"),
    ("CALLGUARD_AT_CAPACITY_POLICY=busy\n", 1, "must be congestion or unrecorded"),
    ("CALLGUARD_RECORDINGS_DIR=recordings\n", 1, "must be an absolute path"),
    ("ASTERISK_ROOT=.build/asterisk-root\n", 1, "or empty for the system Asterisk"),
])
def test_a_malformed_line_fails_with_one_line_naming_file_and_line(
        tmp_path: Path, text: str, line: int, why: str) -> None:
    f = tmp_path / "callguard.local.env"
    f.write_text(text)
    r = load(f, "echo loaded")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"{f}:{line}: "), r.stderr
    assert why in r.stderr
    assert SECRET not in r.stderr  # never the value: DATABASE_URL's password


def test_unknown_keys_are_warnings_and_ignored(tmp_path: Path) -> None:
    f = tmp_path / "callguard.local.env"
    f.write_text("CALLGUARD_MAX_RECORDING=5\n"          # a typo
                 "CALLGUARD_DATABASE_URL=postgresql://x@/y\n"
                 "CALLGUARD_ARI_URL=http://127.0.0.1:8100\n"  # generated, tied to http.conf
                 "CALLGUARD_MAX_RECORDINGS=9\n"
                 "CALLGUARD_MAX_RECORDINGS=10\n")
    r = load(f, 'echo "${CALLGUARD_MAX_RECORDING-unset} ${CALLGUARD_DATABASE_URL-unset} '
                '${CALLGUARD_ARI_URL-unset} $CALLGUARD_MAX_RECORDINGS"', warn=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "unset unset unset 10"
    warnings = r.stderr.splitlines()
    assert [w.split(": warning: ")[0] for w in warnings] == [f"{f}:{n}" for n in (1, 2, 3, 5)]
    assert "CALLGUARD_MAX_RECORDING is not a key this file takes" in warnings[0]
    assert "(DATABASE_URL is)" in warnings[1]
    assert "CALLGUARD_MAX_RECORDINGS again (line 4)" in warnings[3]
    quiet = load(f, "true")  # tools/stack.sh's own reading: the check said it already
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_no_file_is_no_setting(tmp_path: Path) -> None:
    r = load(tmp_path / "callguard.local.env", 'echo "${CALLGUARD_PG_PORT-unset}"')
    assert r.returncode == 0 and r.stdout.strip() == "unset" and r.stderr == ""
    check = subprocess.run([str(LOCAL_ENV_SH), "check", str(tmp_path / "callguard.local.env")],
                           capture_output=True, text=True, check=False, env=clean_env())
    assert (check.returncode, check.stdout, check.stderr) == (0, "", "")


def test_check_says_what_is_in_effect_and_warns_of_a_readable_password(tmp_path: Path) -> None:
    f = tmp_path / "callguard.local.env"
    f.write_text(f"DATABASE_URL=postgresql://cg:{SECRET}@db/cg\nCALLGUARD_RT_PRIORITY=0\n")
    f.chmod(0o644)
    r = subprocess.run([str(LOCAL_ENV_SH), "check", str(f)], capture_output=True, text=True,
                       check=False, env=clean_env(CALLGUARD_RT_PRIORITY="5"))
    assert r.returncode == 0
    assert r.stdout == (f"{f}: DATABASE_URL (from make's environment instead: "
                        "CALLGUARD_RT_PRIORITY)\n")
    assert r.stderr == f"{f}: warning: every user may read it and DATABASE_URL holds a " \
                       f"password: chmod 600 {f}\n"
    f.chmod(0o600)
    r = subprocess.run([str(LOCAL_ENV_SH), "check", str(f)], capture_output=True, text=True,
                       check=False, env=clean_env())
    assert r.stderr == "" and SECRET not in r.stdout


def checkout(tmp_path: Path) -> tuple[Path, Path]:
    """The real tools/stack.sh and local_env.sh in a checkout of their own (a path with a
    space), its state already "relocated" into tmp_path (symlinks), so nothing the script does
    first can reach /var/lib/callguard, whatever the test finds: (checkout, its state dir)."""
    top = tmp_path / "checkout with space"
    state = tmp_path / "state"
    (top / "tools").mkdir(parents=True)
    (top / ".build").mkdir()
    (state / "run").mkdir(parents=True)
    (state / "svc-venv").mkdir()
    (top / ".run").symlink_to(state / "run")
    (top / ".build" / "svc-venv").symlink_to(state / "svc-venv")
    for name in ("stack.sh", "local_env.sh"):
        (top / "tools" / name).write_bytes((PROJECT_ROOT / "tools" / name).read_bytes())
        (top / "tools" / name).chmod(0o755)
    return top, state


def test_tools_stack_sh_stops_at_a_malformed_line_before_anything_else(tmp_path: Path) -> None:
    """The real script: it reads the file first, so a bad line stops a command that sets up
    (here the state dir's set-up every command does first) before it makes or moves any state
    (nothing in .run)."""
    top, state = checkout(tmp_path)
    (top / "callguard.local.env").write_text("CALLGUARD_PG_PORT=55432\nCALLGUARD_PG_PORT 1\n")
    r = subprocess.run([str(top / "tools" / "stack.sh"), "relocate"], capture_output=True,
                       text=True, check=False, env=clean_env())
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f"{top}/callguard.local.env:2: not KEY=VALUE (a comment is a line " \
                       "of its own starting with #)\n"
    assert list((state / "run").iterdir()) == []


def test_stopping_and_looking_go_on_past_a_malformed_line(tmp_path: Path) -> None:
    """A typo must not keep the stack from stopping (RUN-3): make down's and make status's
    commands, tools/cluster.sh's too, say the line (FILE:LINE) and go on with the defaults."""
    top, _ = checkout(tmp_path)
    (top / "tools" / "cluster.sh").write_bytes((PROJECT_ROOT / "tools" / "cluster.sh").read_bytes())
    (top / "tools" / "cluster.sh").chmod(0o755)
    root = tmp_path / "root"
    (root / "run" / "asterisk").mkdir(parents=True)
    env_file = top / "callguard.local.env"
    env_file.write_text(f"ASTERISK_ROOT='{root}'\nCALLGUARD_PG_PORT 1\n")
    warning = (f"{env_file}:2: not KEY=VALUE (a comment is a line of its own starting with #); "
               "line ignored")
    for script, command in [("stack.sh", ["status"]), ("stack.sh", ["app-stop", "ari"]),
                            ("cluster.sh", ["status"]), ("cluster.sh", ["down"])]:
        r = subprocess.run([str(top / "tools" / script), *command], capture_output=True,
                           text=True, check=False, env=clean_env())
        assert r.returncode == 0, (script, command, r.stderr)
        assert r.stderr.splitlines() == [warning], (script, command)
        if command == ["status"] and script == "stack.sh":
            assert "postgres   down" in r.stdout and "asterisk   down" in r.stdout


def test_supervisords_own_commands_skip_a_malformed_line(tmp_path: Path) -> None:
    """Asterisk's start after a crash (asterisk-exec) and the log loop (asterisk-logs-rotate)
    run the script on their own, under supervisord: a line being edited must not keep a
    crashed Asterisk down (REL-9). They say it and go on with the file's other lines."""
    top, state = checkout(tmp_path)
    root = tmp_path / "root"
    (root / "var" / "log" / "asterisk").mkdir(parents=True)
    (top / "callguard.local.env").write_text(f"ASTERISK_ROOT='{root}'\nCALLGUARD_PG_PORT 1\n"
                                             "CALLGUARD_ASTERISK_LOG_MAX=20MB\n")
    r = subprocess.run([str(top / "tools" / "stack.sh"), "asterisk-logs-rotate"],
                       capture_output=True, text=True, check=False, env=clean_env())
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        f"{top}/callguard.local.env:2: not KEY=VALUE (a comment is a line of its own starting "
        "with #); line ignored",
        f"{top}/callguard.local.env:3: CALLGUARD_ASTERISK_LOG_MAX must be a whole number; "
        "line ignored"]
    assert sorted(p.name for p in (state / "run").iterdir()) == ["asterisk-logs.lock", "log"]


def test_lenient_reading_keeps_the_good_lines(tmp_path: Path) -> None:
    f = tmp_path / "callguard.local.env"
    f.write_text("CALLGUARD_MAX_RECORDINGS=200\nnot a line\nCALLGUARD_API_PORT=0\n"
                 "CALLGUARD_PG_PORT=55433\n")
    r = bash(f'source "{LOCAL_ENV_SH}"\nlocal_env_load "{f}" lenient\n'
             'echo "$CALLGUARD_MAX_RECORDINGS ${CALLGUARD_API_PORT-unset} $CALLGUARD_PG_PORT"',
             env=clean_env())
    assert r.returncode == 0 and r.stdout.strip() == "200 unset 55433"
    assert [line.split(": ")[0] for line in r.stderr.splitlines()] == [f"{f}:2", f"{f}:3"]


def test_the_services_settings_reach_callguard_env(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """stack.sh's secrets() with the file's values and make's environment: what the services
    and the CLI read (callguard/config.py) has them, make's environment winning; the
    project-local database's socket directory, spaces and all, survives the URL."""
    run = tmp_path / "state dir" / ".run"
    (run / "log").mkdir(parents=True)
    f = tmp_path / "callguard.local.env"
    f.write_text("CALLGUARD_MAX_RECORDINGS=200\nCALLGUARD_AT_CAPACITY_POLICY=unrecorded\n"
                 "CALLGUARD_API_PORT=8090\nCALLGUARD_PG_PORT=55499\n"
                 "CALLGUARD_ASTERISK_LOG_MAX=1000\n")
    stubs = "users() { :; }\nsvc_owns() { :; }\n"
    r = bash(f'source "{LOCAL_ENV_SH}"\nlocal_env_load "{f}"\n{stubs}'
             + functions("secrets") +
             f'RUN="{run}"; LOG="$RUN/log"; PG_DIR="$RUN/pg"; ENV_FILE="$RUN/callguard.env"\n'
             'ASTERISK_ROOT=/srv/root; PG_PORT=${CALLGUARD_PG_PORT:-55432}\n'
             + stack_ports() + 'secrets\n',
             env=clean_env(CALLGUARD_API_PORT="8091"))
    assert r.returncode == 0, r.stderr
    env_file = run / "callguard.env"
    text = env_file.read_text()
    assert "CALLGUARD_ASTERISK_LOG_MAX" not in text  # tools/stack.sh's own, not the services'
    for key in [k for k in os.environ if k.startswith("CALLGUARD_")]:
        monkeypatch.delenv(key)
    s = load_settings(env_file)
    assert (s.max_recordings, s.at_capacity_policy, s.api_port) == (200, "unrecorded", 8091)
    assert s.recordings_dir == Path("/srv/root/var/spool/asterisk/callguard")
    from sqlalchemy.engine import make_url
    url = make_url(s.sync_database_url)
    assert url.query["host"] == str(run / "pg") and url.query["port"] == "55499"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"


def test_the_keys_are_those_the_code_reads() -> None:
    """No key invented: each services key is a callguard/config.py setting, each stack key a
    variable tools/stack.sh reads."""
    config = (PROJECT_ROOT / "callguard" / "config.py").read_text()
    read = {f"CALLGUARD_{m}" for m in re.findall(r'get(?:_int)?\("([A-Z_]+)"', config)}
    stack = STACK_SH.read_text()
    for key in keys_of("services"):
        assert key in read, key
    for key in keys_of("stack"):
        assert re.search(rf"\$\{{{key}[:+}}-]|local_env_port {key} ", stack), key


def test_the_example_documents_every_key_and_passes_the_check(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    documented = re.findall(r"^#([A-Z_]+)=", text, flags=re.M)
    assert sorted(set(documented)) == sorted(keys_of())
    assert not re.search(r"^[A-Z_]+=", text, flags=re.M)  # every one commented out
    f = tmp_path / "callguard.local.env"
    f.write_text(re.sub(r"^#([A-Z_]+=)", r"\1", text, flags=re.M))
    f.chmod(0o600)
    r = subprocess.run([str(LOCAL_ENV_SH), "check", str(f)], capture_output=True, text=True,
                       check=False, env=clean_env())
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.split(": ", 1)[1].split() == keys_of()


def test_the_file_is_ignored_by_git() -> None:
    r = subprocess.run(["git", "check-ignore", "-q", "callguard.local.env"], cwd=PROJECT_ROOT,
                       check=False)
    assert r.returncode == 0
    r = subprocess.run(["git", "check-ignore", "-q", "callguard.local.env.example"],
                       cwd=PROJECT_ROOT, check=False)
    assert r.returncode == 1


# ---- Asterisk's ports (CALLGUARD_ARI_PORT, _AMI_PORT, _FASTAGI_PORT) and port clashes ---------

def ports_check(file: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """local_env_load FILE then local_env_ports_check FILE, as tools/stack.sh's `make run` does."""
    return load(file, f'local_env_ports_check "{file}"\necho ok', env=env)


def test_asterisks_ports_are_keys_of_the_stack() -> None:
    for key in ("CALLGUARD_ARI_PORT", "CALLGUARD_AMI_PORT", "CALLGUARD_FASTAGI_PORT"):
        assert key in keys_of("stack")
    assert "CALLGUARD_ARI_PORT" not in keys_of("services")


@pytest.mark.parametrize(("text", "env", "said"), [
    ("CALLGUARD_API_PORT=8090\nCALLGUARD_AMI_PORT=8090\n", {},
     "{f}:2: CALLGUARD_AMI_PORT=8090: CALLGUARD_API_PORT has that port too"),
    ("CALLGUARD_AMI_PORT=8090\n\nCALLGUARD_API_PORT=8090\n", {},
     "{f}:3: CALLGUARD_API_PORT=8090: CALLGUARD_AMI_PORT has that port too"),
    ("# the API's default\nCALLGUARD_ARI_PORT=8089\n", {},
     "{f}:2: CALLGUARD_ARI_PORT=8089: CALLGUARD_API_PORT (its default) has that port too"),
    ("CALLGUARD_FASTAGI_PORT=4673\n", {"CALLGUARD_ARI_PORT": "4673"},
     "make's environment: CALLGUARD_ARI_PORT=4673: CALLGUARD_FASTAGI_PORT has that port too"),
    ("", {"CALLGUARD_METRICS_API_PORT": "04573"},
     "make's environment: CALLGUARD_METRICS_API_PORT=4573: CALLGUARD_FASTAGI_PORT (its default)"),
    ("", {"CALLGUARD_AMI_PORT": "ami"},
     "make's environment: CALLGUARD_AMI_PORT must be a port"),
])
def test_two_keys_on_one_port_stop_with_one_line_naming_the_key(
        tmp_path: Path, text: str, env: dict[str, str], said: str) -> None:
    f = tmp_path / "callguard.local.env"
    f.write_text(text)
    r = ports_check(f, clean_env(**env))
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(said.format(f=f)), r.stderr
    # and `make local-env` (make run's first step) says the same
    c = subprocess.run([str(LOCAL_ENV_SH), "check", str(f)], capture_output=True, text=True,
                       env=clean_env(**env), check=False)
    assert c.returncode == 2 and c.stderr.startswith(said.format(f=f)), c.stderr


def test_moved_ports_that_do_not_clash_pass(tmp_path: Path) -> None:
    f = tmp_path / "callguard.local.env"
    f.write_text("CALLGUARD_ARI_PORT=8188\nCALLGUARD_AMI_PORT=5138\nCALLGUARD_FASTAGI_PORT=4673\n"
                 "CALLGUARD_PG_PORT=8088\n")  # the database's is a unix socket's: no clash
    r = ports_check(f)
    assert r.returncode == 0 and r.stdout == "ok\n" and r.stderr == "", r.stderr
    assert ports_check(tmp_path / "none").stdout == "ok\n"  # no file: the defaults


def test_the_port_in_effect_is_a_plain_number_or_the_default() -> None:
    show = ('printf "%s " "$(local_env_port CALLGUARD_ARI_PORT 8088)" '
            '"$(local_env_port CALLGUARD_AMI_PORT 5038)" '
            '"$(local_env_port CALLGUARD_FASTAGI_PORT 4573)"')
    r = bash(f'source "{LOCAL_ENV_SH}"\n{show}',
             env=clean_env(CALLGUARD_ARI_PORT="08188", CALLGUARD_AMI_PORT="99999"))
    assert r.returncode == 0 and r.stdout.split() == ["8188", "5038", "4573"], r.stderr


def test_asterisks_ports_reach_callguard_env(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """secrets(): the ARI app (CALLGUARD_ARI_URL), the API's AMI client, the FastAGI server and
    Prometheus's scrape of Asterisk (callguard/prometheus_conf.py) follow the moved ports."""
    run = tmp_path / ".run"
    (run / "log").mkdir(parents=True)
    f = tmp_path / "callguard.local.env"
    f.write_text("CALLGUARD_ARI_PORT=8188\nCALLGUARD_FASTAGI_PORT=4673\n")
    r = bash(f'source "{LOCAL_ENV_SH}"\nlocal_env_load "{f}"\n'
             'users() { :; }\nsvc_owns() { :; }\n' + functions("secrets") +
             f'RUN="{run}"; LOG="$RUN/log"; PG_DIR="$RUN/pg"; ENV_FILE="$RUN/callguard.env"\n'
             'ASTERISK_ROOT=/srv/root; PG_PORT=55432\n' + stack_ports() + 'secrets\n',
             env=clean_env(CALLGUARD_AMI_PORT="5138"))
    assert r.returncode == 0, r.stderr
    env_file = run / "callguard.env"
    text = env_file.read_text()
    assert "CALLGUARD_ARI_URL=http://127.0.0.1:8188\n" in text
    assert "CALLGUARD_AMI_PORT=5138\n" in text and "CALLGUARD_FASTAGI_PORT=4673\n" in text
    for key in [k for k in os.environ if k.startswith("CALLGUARD_")]:
        monkeypatch.delenv(key)
    s = load_settings(env_file)
    assert (s.ari_url, s.ami_port, s.fastagi_port) == ("http://127.0.0.1:8188", 5138, 4673)
    from callguard.prometheus_conf import _targets
    assert _targets(s)["asterisk"] == "127.0.0.1:8188"


def test_the_clash_checks_defaults_are_the_codes() -> None:
    """LOCAL_ENV_TCP_PORTS' defaults are those callguard/config.py and tools/stack.sh apply, and
    every port key the file takes but PostgreSQL's (a unix socket) is checked."""
    out = bash(f'source "{LOCAL_ENV_SH}"\nprintf "%s\\n" "${{LOCAL_ENV_TCP_PORTS[@]}}"').stdout
    table = dict(line.split(":") for line in out.split())
    config = (PROJECT_ROOT / "callguard" / "config.py").read_text()
    read = {f"CALLGUARD_{k}": v for k, v in re.findall(r'get_int\("([A-Z_]+_PORT)", (\d+)\)',
                                                       config)}
    read["CALLGUARD_ARI_PORT"] = re.search(r'get\("ARI_URL", "http://127\.0\.0\.1:(\d+)"',
                                           config)[1]  # type: ignore[index]
    assert table == read
    for key, default in table.items():
        if key in ("CALLGUARD_ARI_PORT", "CALLGUARD_AMI_PORT", "CALLGUARD_FASTAGI_PORT"):
            assert f"local_env_port {key} {default})" in STACK_SH.read_text(), key
    ports = [k for k in keys_of() if k.endswith("_PORT") and k != "CALLGUARD_PG_PORT"]
    assert sorted(ports) == sorted(table)
