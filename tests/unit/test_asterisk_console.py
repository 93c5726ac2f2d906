"""SEC-4, issue 12: the services reach Asterisk's console through its control socket (they may
not chroot to run `asterisk -rx`), the one their asterisk.conf names (a cluster node's own). A
fake Asterisk speaks the console protocol of main/asterisk.c on a unix socket."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from callguard.asterisk.cli import AsteriskCliError
from callguard.asterisk.console import (
    console_command,
    control_socket,
    control_socket_location,
)
from callguard.config import Settings, load_settings

ASTERISK_CONF = """; callguard
[directories](!)
astetcdir => /etc/asterisk
astrundir => /run/asterisk   ; the socket's directory
[options]
highpriority = yes
[files]
astctlpermissions = 0660
"""


def test_location_from_asterisk_conf() -> None:
    assert control_socket_location(ASTERISK_CONF) == ("/run/asterisk", "asterisk.ctl")
    node = ASTERISK_CONF.replace("astrundir => /run/asterisk", "astrundir => /run/asterisk-n2")
    assert control_socket_location(node + "astctl = n2.ctl\n") == ("/run/asterisk-n2", "n2.ctl")
    assert control_socket_location("") == ("/run/asterisk", "asterisk.ctl")


class FakeConsole:
    """Greets, reads one `cli quit after <command>\\0`, answers and closes, as netconsole does;
    a verbose message (level marker byte first) comes before the answer."""

    def __init__(self, path: Path, answer: dict[str, str], silent: bool = False) -> None:
        self.answer, self.silent = answer, silent
        self.received: list[bytes] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"vm/20958/22.10.1\n")
                data = b""
                while not data.endswith(b"\0"):
                    chunk = conn.recv(512)
                    if not chunk:
                        break
                    data += chunk
                self.received.append(data)
                if self.silent:
                    conn.recv(1)  # until the client gives up
                    continue
                command = data.removeprefix(b"cli quit after ").rstrip(b"\0").decode()
                conn.sendall(b"\xfd    -- a verbose line\n" + self.answer[command].encode())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, Settings]]:
    etc = tmp_path / "etc" / "asterisk"
    (etc / "nodes" / "n2").mkdir(parents=True)
    (etc / "asterisk.conf").write_text(ASTERISK_CONF)
    (etc / "nodes" / "n2" / "asterisk.conf").write_text(
        ASTERISK_CONF.replace("/run/asterisk", "/run/asterisk-n2"))
    (tmp_path / "run" / "asterisk").mkdir(parents=True)
    (tmp_path / "run" / "asterisk-n2").mkdir(parents=True)
    yield tmp_path, dataclasses.replace(load_settings(), asterisk_root=str(tmp_path),
                                        asterisk_conf="")


def test_socket_of_the_node_the_settings_name(root: tuple[Path, Settings]) -> None:
    path, settings = root
    assert control_socket(settings) == path / "run" / "asterisk" / "asterisk.ctl"
    node = dataclasses.replace(settings, asterisk_conf="/etc/asterisk/nodes/n2/asterisk.conf")
    assert control_socket(node) == path / "run" / "asterisk-n2" / "asterisk.ctl"


def test_an_unreadable_asterisk_conf_is_an_error_not_the_default_socket(
        root: tuple[Path, Settings]) -> None:
    """A cluster node whose asterisk.conf is missing must not fall back to /run/asterisk:
    that is the main Asterisk's console, and its astdb is not this node's to write."""
    path, settings = root
    fake = FakeConsole(path / "run" / "asterisk" / "asterisk.ctl",
                       {"database show callguard_route": "0 results found.\n"})
    node = dataclasses.replace(settings, asterisk_conf="/etc/asterisk/nodes/n9/asterisk.conf")
    try:
        with pytest.raises(AsteriskCliError, match=r"cannot read .*n9/asterisk\.conf"):
            control_socket(node)
        with pytest.raises(AsteriskCliError, match=r"cannot read .*n9/asterisk\.conf"):
            console_command(node, "database show callguard_route")
    finally:
        fake.close()
    assert fake.received == []  # the main Asterisk was never asked


def test_a_command_and_its_output(root: tuple[Path, Settings]) -> None:
    path, settings = root
    fake = FakeConsole(path / "run" / "asterisk" / "asterisk.ctl",
                       {"database get callguard_route 0612345679": "Value: 0612345679@f2-b\n"})
    try:
        out = console_command(settings, "database get callguard_route 0612345679")
    finally:
        fake.close()
    assert out == "Value: 0612345679@f2-b\n"  # the verbose line dropped, as asterisk -rx does
    assert fake.received == [b"cli quit after database get callguard_route 0612345679\0"]


def test_no_asterisk_is_an_asterisk_cli_error(root: tuple[Path, Settings]) -> None:
    _, settings = root
    with pytest.raises(AsteriskCliError, match=r"asterisk\.ctl"):
        console_command(settings, "database show callguard_route")


def test_an_asterisk_that_never_answers_costs_the_timeout(root: tuple[Path, Settings]) -> None:
    path, settings = root
    fake = FakeConsole(path / "run" / "asterisk" / "asterisk.ctl", {}, silent=True)
    try:
        with pytest.raises(AsteriskCliError, match=r"in time|timed out"):
            console_command(settings, "database show callguard_route", timeout=0.3)
    finally:
        fake.close()


@pytest.mark.parametrize("command", ["database show x\ncore stop now", "a\0b", "x" * 600])
def test_one_command_only(root: tuple[Path, Settings], command: str) -> None:
    _, settings = root
    with pytest.raises(ValueError):
        console_command(settings, command)
