"""One Asterisk CLI command over Asterisk's control socket, as `asterisk -rx` sends it, without
the `asterisk` binary.

`callguard.asterisk.cli.run_cli` runs `chroot <root> asterisk -rx`: right for the tools, which
run as root, but the services run as their own account (SEC-4), which may not chroot. They
reach the same console through the socket itself, `<root><astrundir>/<astctl>` of the
asterisk.conf the settings name (a cluster node's own, issue 12), which Asterisk makes
read-writable for its group (asterisk_conf/asterisk.conf `astctlpermissions`), the services'
supplementary group.

The protocol (main/asterisk.c, netconsole and ast_remotecontrol): Asterisk greets with one line
`<host>/<pid>/<version>`; the client sends `cli quit after <command>` and a NUL; Asterisk
writes the command's output and closes the connection. Verbose messages a console may be sent
meanwhile start with a byte of 0x80 or more (the level's marker) and are dropped, as
`asterisk -rx` drops them.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from callguard.asterisk.cli import AsteriskCliError
from callguard.config import Settings

DEFAULT_CONF = "/etc/asterisk/asterisk.conf"
# When asterisk.conf names none: ours (asterisk_conf/asterisk.conf). Debian's
# /var/run/asterisk is the same directory, but in the project root /var/run is a link to
# /run that the host would resolve to its own.
DEFAULT_RUN_DIR = "/run/asterisk"
DEFAULT_CTL = "asterisk.ctl"
# Asterisk reads a console command into a 512-byte buffer (netconsole's inbuf).
MAX_COMMAND = 511 - len("cli quit after ")


def control_socket_location(conf_text: str) -> tuple[str, str]:
    """asterisk.conf → (astrundir, astctl): `[directories]` (also as the `(!)` template our
    file makes it) and `[files]`, `=>` or `=`, `;` comments."""
    section = ""
    run_dir, ctl = DEFAULT_RUN_DIR, DEFAULT_CTL
    for raw in conf_text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            section = line[1:].split("]", 1)[0].strip().lower()
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, value = key.strip().lower(), value.removeprefix(">").strip()
        if section == "directories" and key == "astrundir" and value:
            run_dir = value
        elif section == "files" and key == "astctl" and value:
            ctl = value
    return run_dir, ctl


def control_socket(settings: Settings) -> Path:
    """Where this process's Asterisk listens for consoles (the root's path on the host).
    AsteriskCliError when its asterisk.conf cannot be read: no guess at the default socket,
    which on a cluster node is the main Asterisk's (issue 12), whose astdb this process must
    never write."""
    conf = Path(f"{settings.asterisk_root}{settings.asterisk_conf or DEFAULT_CONF}")
    try:
        text = conf.read_text(errors="replace")
    except OSError as exc:
        raise AsteriskCliError(
            f"cannot read {conf} to find Asterisk's console socket: {exc}") from exc
    run_dir, ctl = control_socket_location(text)
    return Path(f"{settings.asterisk_root}{run_dir}") / ctl


def _printable(raw: bytes) -> str:
    lines = raw.split(b"\n")
    kept = [line for line in lines if not (line and line[0] >= 0x80)]
    return b"\n".join(kept).decode("utf-8", errors="replace")


def console_command(settings: Settings, command: str, timeout: float = 10.0) -> str:
    """The output of `command`, as `asterisk -rx` prints it; AsteriskCliError when Asterisk
    cannot be reached (down, socket refused) or does not finish within `timeout` seconds."""
    if "\0" in command or "\n" in command or len(command.encode()) > MAX_COMMAND:
        raise ValueError(f"not one console command: {command[:80]!r}")
    return _exchange(control_socket(settings), command, timeout)


def _exchange(path: Path, command: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            while b"\n" not in buf:  # the greeting
                chunk = sock.recv(512)
                if not chunk:
                    raise AsteriskCliError(f"Asterisk closed its console {path} at once")
                buf += chunk
                _left(deadline, sock)
            buf = buf.partition(b"\n")[2]
            sock.sendall(b"cli quit after " + command.encode() + b"\0")
            while True:
                _left(deadline, sock)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except AsteriskCliError:
        raise
    except OSError as exc:  # refused, no such file, permission, timeout
        raise AsteriskCliError(f"Asterisk console {path}: {exc}") from exc
    return _printable(buf)


def _left(deadline: float, sock: socket.socket) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no complete answer in time")
    sock.settimeout(left)
