"""REL-9 on a PBX host with systemd: the shipped units (tools/systemd/) run every service the
package installs, restart it at once whatever way it ended, and install for a checkout."""

from __future__ import annotations

import configparser
import re
import subprocess
import tomllib
from pathlib import Path

from callguard.config import PROJECT_ROOT

UNITS = PROJECT_ROOT / "tools" / "systemd"


def _unit(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(path.read_text())
    return cp


def test_units_install_and_restart_every_service(tmp_path: Path) -> None:
    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    services = {name for name in scripts if name != "callguard"}
    subprocess.run([str(UNITS / "install.sh"), "/opt/cg"], check=True, capture_output=True,
                   env={"SYSTEMD_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    installed = {p.name for p in tmp_path.iterdir()}
    assert installed == {f"{s}.service" for s in services} | {"callguard.target"}
    target = _unit(tmp_path / "callguard.target")
    assert set(target["Unit"]["Wants"].split()) == {f"{s}.service" for s in services}
    for name in services:
        unit = _unit(tmp_path / f"{name}.service")
        svc = unit["Service"]
        assert svc["ExecStart"] == f"/opt/cg/.build/svc-venv/bin/{name}"
        assert svc["Restart"] == "always"
        assert svc["RestartSec"].endswith("ms") and int(svc["RestartSec"][:-2]) <= 1000
        assert unit["Unit"]["StartLimitIntervalSec"] == "0"  # never gives up restarting
        assert "@TOP@" not in (tmp_path / f"{name}.service").read_text()


def test_every_service_runs_as_its_own_non_root_user() -> None:
    """SEC-4: no unit runs its service as root (systemd's default without User=); the account
    is the one supervisord drops the services to (tools/stack.sh SVC_USER), and what they
    create is not world-readable (supervisord's umask 027)."""
    stack = (PROJECT_ROOT / "tools" / "stack.sh").read_text()
    svc_user = re.search(r"^SVC_USER=(\S+)$", stack, re.MULTILINE)
    assert svc_user is not None
    units = sorted(UNITS.glob("*.service"))
    assert units
    for path in units:
        svc = _unit(path)["Service"]
        assert svc.get("User") == svc_user.group(1), path.name
        assert svc.get("Group") == svc_user.group(1), path.name
        assert svc.get("DynamicUser", "no") == "no", path.name
        assert int(svc.get("UMask", "0022"), 8) & 0o007 == 0o007, path.name
        assert "CapabilityBoundingSet" not in svc and "AmbientCapabilities" not in svc
