"""AMI off until a pause needs it (PERF-1, issue #14): `ensure_enabled` writes the switch
and has ARI reload the manager only when AMI does not listen, against a fake ARI on
127.0.0.1 whose reload starts a fake AMI listener."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from callguard import ami
from callguard.asterisk.ari import AriReader, AsteriskUnavailable
from callguard.config import Settings, load_settings


class FakeAsterisk:
    """ARI `PUT /asterisk/modules/{name}`: `manager` starts listening on the AMI port."""

    def __init__(self) -> None:
        self.reloads: list[str] = []
        self.ami = socket.socket()
        self.ami.bind(("127.0.0.1", 0))  # the port is ours; listening only after a reload
        self.ami_port = self.ami.getsockname()[1]


def handler(fake: FakeAsterisk) -> type[BaseHTTPRequestHandler]:
    class Ari(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            name = self.path.removeprefix("/ari/asterisk/modules/")
            fake.reloads.append(name)
            if name == "manager":
                fake.ami.listen()
            self.send_response(204 if name == "manager" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass
    return Ari


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[FakeAsterisk, Settings]]:
    asterisk = FakeAsterisk()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(asterisk))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    etc = tmp_path / "etc" / "asterisk"
    etc.mkdir(parents=True)
    (etc / "manager_on_demand.conf").write_text("enabled = no\n")
    try:
        yield asterisk, dataclasses.replace(
            load_settings(), ari_url=f"http://127.0.0.1:{server.server_address[1]}",
            ari_user="u", ari_password="p", ami_port=asterisk.ami_port,
            asterisk_root=str(tmp_path), asterisk_conf="")
    finally:
        server.shutdown()
        server.server_close()
        asterisk.ami.close()


def test_off_is_switched_on_once(fake: tuple[FakeAsterisk, Settings]) -> None:
    asterisk, settings = fake
    assert not ami.reachable(settings)
    ami.ensure_enabled(settings, timeout_s=2)
    assert settings.ami_switch_file.read_text() == "enabled = yes\n"
    assert asterisk.reloads == ["manager"] and ami.reachable(settings)
    ami.ensure_enabled(settings, timeout_s=2)  # on already: nothing written, no reload
    assert asterisk.reloads == ["manager"]


def test_switch_file_follows_the_node(fake: tuple[FakeAsterisk, Settings]) -> None:
    _, settings = fake
    node = dataclasses.replace(settings, asterisk_conf="/etc/asterisk/nodes/n2/asterisk.conf")
    assert node.ami_switch_file == Path(settings.asterisk_root,
                                        "etc/asterisk/nodes/n2/manager_on_demand.conf")


def test_no_switch_file_is_an_ami_error(fake: tuple[FakeAsterisk, Settings]) -> None:
    asterisk, settings = fake
    settings.ami_switch_file.unlink()
    settings.ami_switch_file.parent.rmdir()
    with pytest.raises(ami.AmiError, match="cannot switch AMI on"):
        ami.ensure_enabled(settings, timeout_s=1)
    assert asterisk.reloads == []


def test_reload_of_an_unknown_module_is_unavailable(fake: tuple[FakeAsterisk, Settings]) -> None:
    _, settings = fake
    with pytest.raises(AsteriskUnavailable, match="no module"):
        AriReader(settings, timeout_s=2).reload_module("nosuch")
