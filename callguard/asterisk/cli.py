"""Run Asterisk CLI commands on the local Asterisk (project chroot or system install)."""

from __future__ import annotations

import subprocess

from callguard.config import Settings


class AsteriskCliError(RuntimeError):
    pass


def run_cli(settings: Settings, command: str, timeout: float = 10.0) -> str:
    base = ["chroot", settings.asterisk_root] if settings.asterisk_root else []
    node = ["-C", settings.asterisk_conf] if settings.asterisk_conf else []  # a cluster node
    try:
        done = subprocess.run(
            [*base, "asterisk", *node, "-rx", command],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AsteriskCliError(f"asterisk -rx failed: {exc}") from exc
    if done.returncode != 0:
        raise AsteriskCliError(done.stderr.strip() or f"asterisk -rx exited {done.returncode}")
    return done.stdout
