"""Issue #15: one Asterisk adapter with one error convention (JSON, None for 404,
AsteriskUnavailable otherwise), against a real HTTP server on 127.0.0.1, and no other module
of callguard speaking to ARI itself."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from callguard.asterisk.ari import AriReader, AsteriskUnavailable
from callguard.config import PROJECT_ROOT, Settings, load_settings


class _Ari(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.headers.get("Authorization", "") != "Basic dTpw":  # u:p
            self.send_response(401)
            self.end_headers()
            return
        routes = {"/ari/asterisk/info": (200, {"system": {"version": "22.0.0"}}),
                  "/ari/channels/live.1": (200, {"id": "live.1"}),
                  "/ari/broken": (500, {"message": "oops"})}
        status, body = routes.get(self.path, (404, {"message": "not found"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ari() -> Iterator[Settings]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ari)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield dataclasses.replace(load_settings(), ari_url=f"http://127.0.0.1:"
                                  f"{server.server_address[1]}", ari_user="u", ari_password="p")
    finally:
        server.shutdown()
        server.server_close()


def test_one_convention(ari: Settings) -> None:
    reader = AriReader(ari, timeout_s=2)
    assert reader.info()["system"]["version"] == "22.0.0"
    assert reader.channel_exists("live.1") is True
    assert reader.channel_exists("gone.2") is False
    assert reader.get("endpoints/PJSIP/nobody") is None
    with pytest.raises(AsteriskUnavailable, match="HTTP 500"):
        reader.get("broken")
    with pytest.raises(AsteriskUnavailable, match="HTTP 401"):
        AriReader(dataclasses.replace(ari, ari_password="wrong")).info()


def test_unreachable_is_unavailable(ari: Settings) -> None:
    down = dataclasses.replace(ari, ari_url="http://127.0.0.1:9")  # discard: nothing listens
    with pytest.raises(AsteriskUnavailable):
        AriReader(down, timeout_s=1).channel_exists("x")


def test_no_other_module_speaks_to_ari() -> None:
    root = PROJECT_ROOT / "callguard"
    talkers = [p.relative_to(root) for p in root.rglob("*.py")
               if "urllib.request" in p.read_text() and p.parent.name != "asterisk"]
    assert not talkers, talkers
