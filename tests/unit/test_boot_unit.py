"""`make boot-unit` (tools/boot_unit.sh, RUN-3): a systemd unit that runs the checkout's `make
run` at boot and its `make down` at shutdown. Written into tmp_path only (BOOT_UNIT_DIR), with
whether systemd runs given by BOOT_UNIT_SYSTEMD and systemctl a stub: never /etc/systemd."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.shell import PROJECT_ROOT

BOOT_SH = PROJECT_ROOT / "tools" / "boot_unit.sh"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
MAKE = shutil.which("make") or "/usr/bin/make"


def checkout(tmp_path: Path, name: str = "it's a 100% $HOME checkout") -> Path:
    """A checkout at an awkward path: only the script, which finds the checkout from its own."""
    top = tmp_path / name
    (top / "tools").mkdir(parents=True)
    shutil.copy2(BOOT_SH, top / "tools" / "boot_unit.sh")
    return top.resolve()


def run(top: Path, tmp_path: Path, *args: str, systemd: bool = False,
        uid: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
    """tools/boot_unit.sh ARGS with the unit directory in tmp_path, systemd running or not, and
    `id -u` and `systemctl` stubs (what systemctl was asked goes to tmp_path/systemctl)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    (stubs / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> "{tmp_path}/systemctl"\n')
    (stubs / "id").write_text(f'#!/bin/sh\necho {uid}\n')
    for s in ("systemctl", "id"):
        (stubs / s).chmod(0o755)
    sd = tmp_path / "run-systemd-system"
    if systemd:
        sd.mkdir(exist_ok=True)
    full = {k: v for k, v in os.environ.items() if k != "BOOT_UNIT"}
    full.update(PATH=f"{stubs}:{os.environ['PATH']}", BOOT_UNIT_DIR=str(tmp_path / "units"),
                BOOT_UNIT_SYSTEMD=str(sd), **env)
    return subprocess.run([str(top / "tools" / "boot_unit.sh"), *args], env=full,
                          capture_output=True, text=True, check=False, timeout=30)


def unit(text: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, strict=True)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(text)
    return cp


def systemd_argv(line: str) -> list[str]:
    """A command line as systemd splits it, for what sdq writes (double quotes, \\ escapes,
    %% and $$): the shell's split of the same, the doubled % and $ undone."""
    return shlex.split(line.replace("%%", "%").replace("$$", "$"))


def test_the_unit_runs_the_checkouts_make_run_once_at_boot(tmp_path: Path) -> None:
    top = checkout(tmp_path)
    r = run(top, tmp_path, "text")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert run(top, tmp_path, "text").stdout == text  # deterministic
    cp = unit(text)
    svc = cp["Service"]
    assert (svc["Type"], svc["RemainAfterExit"]) == ("oneshot", "yes")
    assert svc["KillMode"] == "process"  # a failed start kills no PostgreSQL, no Asterisk
    assert systemd_argv(svc["ExecStart"]) == [MAKE, "-C", str(top), "run"]
    assert systemd_argv(svc["ExecStop"]) == [MAKE, "-C", str(top), "down"]
    assert svc["TimeoutStartSec"] == "30min"  # a first build: apt's lock wait, debootstrap
    assert cp["Unit"]["After"] == cp["Unit"]["Wants"] == "network-online.target"
    assert cp["Install"]["WantedBy"] == "multi-user.target"
    assert "%%" in cp["Unit"]["Description"]  # a specifier otherwise


def test_a_plain_path_is_written_unquoted(tmp_path: Path) -> None:
    top = checkout(tmp_path, "callguard")
    svc = unit(run(top, tmp_path, "text").stdout)["Service"]
    assert svc["ExecStart"] == f"{MAKE} -C {top} run"


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="no systemd-analyze")
@pytest.mark.parametrize("name", ["callguard", "it's a 100% $HOME \"checkout\" \\ here"])
def test_systemd_analyze_verifies_the_unit(tmp_path: Path, name: str) -> None:
    """systemd's own parser, without systemd running: no warning at all (a bad line is only
    `ignoring` and exit 0), nor an unbalanced quote (exit 1)."""
    top = checkout(tmp_path, name)
    path = tmp_path / "callguard-verify.service"
    path.write_text(run(top, tmp_path, "text").stdout)
    assert SYSTEMD_ANALYZE is not None
    r = subprocess.run([SYSTEMD_ANALYZE, "verify", str(path)], capture_output=True, text=True,
                       check=False, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_install_without_systemd_writes_it_enabled_and_says_so(tmp_path: Path) -> None:
    top = checkout(tmp_path)
    r = run(top, tmp_path, "install")
    assert r.returncode == 0, r.stderr
    units = tmp_path / "units"
    path = units / "callguard.service"
    assert path.read_text() == run(top, tmp_path, "text").stdout
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    link = units / "multi-user.target.wants" / "callguard.service"
    assert os.readlink(link) == str(path)
    assert "systemd is not running here" in r.stdout
    assert "nothing starts the stack at boot until systemd runs this machine" in r.stdout
    assert not (tmp_path / "systemctl").exists()
    # again: the same file, no error
    assert run(top, tmp_path, "install").returncode == 0
    r = run(top, tmp_path, "remove")
    assert r.returncode == 0, r.stderr
    assert not path.exists() and not link.exists()
    r = run(top, tmp_path, "remove")
    assert (r.returncode, r.stdout.startswith("boot-unit: no ")) == (0, True)


def test_install_with_systemd_reloads_and_enables_under_its_name(tmp_path: Path) -> None:
    top = checkout(tmp_path)
    r = run(top, tmp_path, "install", systemd=True, BOOT_UNIT="callguard-foo")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "units" / "callguard-foo.service").is_file()
    assert (tmp_path / "systemctl").read_text() == "daemon-reload\nenable callguard-foo.service\n"
    assert "enabled" in r.stdout
    r = run(top, tmp_path, "remove", systemd=True, BOOT_UNIT="callguard-foo.service")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "units" / "callguard-foo.service").exists()
    assert (tmp_path / "systemctl").read_text().splitlines()[2:] == [
        "disable callguard-foo.service", "daemon-reload"]


def test_only_root_and_only_its_own_file(tmp_path: Path) -> None:
    top = checkout(tmp_path)
    for cmd in ("install", "remove"):
        r = run(top, tmp_path, cmd, uid=1000)
        assert r.returncode == 1
        assert r.stderr.count("\n") == 1 and "root" in r.stderr, r.stderr
    assert not (tmp_path / "units").exists()
    units = tmp_path / "units"
    units.mkdir()
    foreign = units / "callguard-ari.service"  # e.g. tools/systemd/'s, installed
    foreign.write_text("[Service]\nExecStart=/bin/true\n")
    for cmd in ("install", "remove"):
        r = run(top, tmp_path, cmd, BOOT_UNIT="callguard-ari")
        assert r.returncode == 1 and "make boot-unit did not write it" in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1
    assert foreign.read_text() == "[Service]\nExecStart=/bin/true\n"
    r = run(top, tmp_path, "install", BOOT_UNIT="../etc/evil")
    assert r.returncode == 2 and "not a unit name" in r.stderr


def test_make_lists_both_targets() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    for target in ("boot-unit", "boot-unit-remove"):
        assert re.search(rf"^{target}:.*## \S", makefile, re.MULTILINE), target
        assert re.search(rf"^\.PHONY:.* {target}( |$)", makefile, re.MULTILINE), target
