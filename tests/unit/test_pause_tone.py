"""The tone confirming a DTMF pause/resume to the customer (issue #14): which tone for which
action (pure), the API process's ARI requests (a whispering snoop channel into the ARI app,
against a fake ARI on 127.0.0.1), the DTMF listener's best effort (the pause stands without
a tone), and the ARI app playing the tone on the snoop channel and always hanging it up
(a fake ARI client)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest

from ari_app import app as app_module
from ari_app.app import CallguardApp
from ari_app.calls import CallEnv
from ari_app.client import AriError
from callguard.asterisk.ari import AriReader
from callguard.config import Settings, load_settings
from callguard.domain.pause import (
    PAUSE_TONE_ROLE,
    PAUSE_TONES,
    tone_action,
    tone_app_args,
    tone_media,
    tone_ms,
)
from callguard.recording_dtmf import DtmfPause
from callguard.recording_pause import play_pause_tone

CUSTOMER = "1733600000.42"  # the customer's channel (AMI Uniqueid = ARI channel id)


# ---- pure -------------------------------------------------------------------------------------

def test_pause_and_resume_tones_differ_and_play_once() -> None:
    assert tone_media("pause") == "tone:!400/300"
    assert tone_media("resume") == "tone:!800/120|!0/80|!800/120"
    assert (tone_ms("pause"), tone_ms("resume")) == (300, 320)
    # every part marked `!`: Asterisk plays the list once instead of repeating it
    assert all(part.startswith("!") for a in PAUSE_TONES
               for part in tone_media(a).removeprefix("tone:").split("|"))
    heard = {a: {hz for hz, _ in PAUSE_TONES[a] if hz} for a in PAUSE_TONES}
    assert heard == {"pause": {400}, "resume": {800}}
    # ARI splits `media` at commas: a comma would make the rest of the list a second medium
    assert not any("," in tone_media(a) for a in PAUSE_TONES)


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_app_args_round_trip(action: str) -> None:
    args = tone_app_args(action)
    assert args == f"{PAUSE_TONE_ROLE},{action}"
    assert tone_action(args.split(",")) == action  # Stasis splits appArgs on commas


@pytest.mark.parametrize("args", [[], [PAUSE_TONE_ROLE], [PAUSE_TONE_ROLE, "stop"],
                                  ["xfer-snoop", "pause"], [PAUSE_TONE_ROLE, "pause", "x"]])
def test_other_args_name_no_tone(args: list[str]) -> None:
    assert tone_action(args) is None


def test_no_tone_for_an_unknown_action() -> None:
    with pytest.raises(ValueError):
        tone_app_args("stop")


# ---- the API process: ARI requests ------------------------------------------------------------

@dataclasses.dataclass
class FakeAri:
    registered: bool = True
    snoop_status: int = 200
    requests: list[tuple[str, str, dict[str, list[str]]]] = dataclasses.field(
        default_factory=list)


def handler(fake: FakeAri) -> type[BaseHTTPRequestHandler]:
    class Ari(BaseHTTPRequestHandler):
        def reply(self, status: int, body: object) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            fake.requests.append(("GET", url.path, parse_qs(url.query)))
            if url.path == "/ari/applications/callguard" and fake.registered:
                self.reply(200, {"name": "callguard", "channel_ids": []})
            else:
                self.reply(404, {"message": "Application not found"})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            fake.requests.append(("POST", url.path, parse_qs(url.query)))
            if fake.snoop_status == 200:
                self.reply(200, {"id": "1733600000.99", "name": "Snoop/x-00000001"})
            else:
                self.reply(fake.snoop_status, {"message": "Channel not found"})

        def log_message(self, *args: object) -> None:
            pass
    return Ari


@pytest.fixture
def ari() -> Iterator[tuple[FakeAri, Settings]]:
    fake = FakeAri()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(fake))
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield fake, dataclasses.replace(
            load_settings(), ari_url=f"http://127.0.0.1:{server.server_address[1]}",
            ari_user="u", ari_password="p", ari_app="callguard")
    finally:
        server.shutdown()
        server.server_close()


def test_the_tone_is_a_whisper_to_the_customers_channel_only(
        ari: tuple[FakeAri, Settings]) -> None:
    fake, settings = ari
    assert play_pause_tone(settings, CUSTOMER, "pause") is True
    assert fake.requests == [
        ("GET", "/ari/applications/callguard", {}),
        ("POST", f"/ari/channels/{CUSTOMER}/snoop",
         {"spy": ["none"], "whisper": ["out"], "app": ["callguard"],
          "appArgs": ["pause-tone,pause"]})]


def test_no_snoop_while_the_ari_app_is_away(ari: tuple[FakeAri, Settings],
                                            caplog: pytest.LogCaptureFixture) -> None:
    """Fallback mode: no snoop channel (Stasis would refuse it), one INFO line."""
    fake, settings = ari
    fake.registered = False
    caplog.set_level(logging.INFO, logger="callguard.recordings")
    assert play_pause_tone(settings, CUSTOMER, "resume") is False
    assert [r[0] for r in fake.requests] == ["GET"]
    [record] = caplog.records
    assert record.levelno == logging.INFO and "not connected" in record.getMessage()


@pytest.mark.parametrize("status, says", [(404, "gone"), (500, "HTTP 500")])
def test_a_refused_snoop_is_an_info_line(ari: tuple[FakeAri, Settings],
                                         caplog: pytest.LogCaptureFixture,
                                         status: int, says: str) -> None:
    fake, settings = ari
    fake.snoop_status = status
    caplog.set_level(logging.INFO, logger="callguard.recordings")
    assert play_pause_tone(settings, CUSTOMER, "pause") is False
    [record] = caplog.records
    assert record.levelno == logging.INFO and says in record.getMessage()


def test_asterisk_not_answering_is_an_info_line(caplog: pytest.LogCaptureFixture) -> None:
    settings = dataclasses.replace(load_settings(), ari_url="http://127.0.0.1:9")
    caplog.set_level(logging.INFO, logger="callguard.recordings")
    reader = AriReader(settings, timeout_s=0.5)
    assert play_pause_tone(settings, CUSTOMER, "pause", reader) is False
    assert [r.levelno for r in caplog.records] == [logging.INFO]


# ---- the DTMF listener --------------------------------------------------------------------

def listener(action: str | None, tone: Any) -> DtmfPause:
    pause = DtmfPause(cast(Settings, None), cast(Any, None), tone=tone)
    pause._apply = lambda *a: action  # type: ignore[method-assign]
    return pause


def recorder(played: list[tuple[str, str]]) -> Any:
    def tone(settings: Settings, channel: str, action: str) -> bool:
        played.append((channel, action))
        return True
    return tone


def test_a_pause_done_by_dtmf_is_confirmed_on_the_pressers_channel() -> None:
    played: list[tuple[str, str]] = []
    pause = listener("pause", recorder(played))
    assert pause.on_digit("PJSIP/f1-a-0000002a", CUSTOMER, "1733600000.41", "1") == "pause"
    assert played == [(CUSTOMER, "pause")]


def test_no_action_no_tone() -> None:
    played: list[tuple[str, str]] = []
    pause = listener(None, recorder(played))
    assert pause.on_digit("PJSIP/f1-a-0000002a", CUSTOMER, "1733600000.41", "*") is None
    assert played == []


def test_a_failing_tone_leaves_the_pause_done(caplog: pytest.LogCaptureFixture) -> None:
    def broken(settings: Settings, channel: str, action: str) -> bool:
        raise RuntimeError("boom")

    caplog.set_level(logging.INFO, logger="callguard.recordings")
    assert listener("resume", broken).on_digit("PJSIP/f1-a-1", CUSTOMER, "x", "2") == "resume"
    assert "no resume tone" in caplog.text


# ---- the ARI app ------------------------------------------------------------------------------

SNOOP = "1733600000.99"


class FakeClient:
    def __init__(self, play_fails: bool = False, play_hangs: bool = False) -> None:
        self.play_fails, self.play_hangs = play_fails, play_hangs
        self.calls: list[tuple[str, ...]] = []

    async def play(self, channel_id: str, media: list[str], playback_id: str) -> None:
        self.calls.append(("play", channel_id, *media))
        if self.play_hangs:
            await asyncio.Event().wait()
        if self.play_fails:
            raise AriError(404, "Channel not found")

    async def stop_playback(self, playback_id: str) -> None:
        self.calls.append(("stop", playback_id))

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        self.calls.append(("hangup", channel_id))

    async def continue_in_dialplan(self, channel_id: str, *args: object) -> None:
        self.calls.append(("continue", channel_id))


def stasis_start(args: list[str]) -> dict[str, Any]:
    return {"type": "StasisStart", "args": args,
            "channel": {"id": SNOOP, "name": f"Snoop/{CUSTOMER}-00000001",
                        "dialplan": {"exten": ""}}}


def run_app(client: FakeClient, args: list[str]) -> float:
    """StasisStart of a snoop channel through dispatch; seconds until every task ended."""
    async def main() -> float:
        app = CallguardApp(cast(Settings, None))
        app.env = cast(CallEnv, SimpleNamespace(ari=client, started={}, tracked={}))
        loop = asyncio.get_running_loop()
        began = loop.time()
        app.dispatch(stasis_start(args))
        while app.tasks:
            await asyncio.gather(*app.tasks)
        return loop.time() - began
    return asyncio.run(main())


@pytest.fixture(autouse=True)
def short_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "PAUSE_TONE_TAIL_S", 0.01)


@pytest.mark.parametrize("action, media", [("pause", "tone:!400/300"),
                                           ("resume", "tone:!800/120|!0/80|!800/120")])
def test_the_app_plays_the_tone_then_hangs_the_snoop_up(action: str, media: str) -> None:
    client = FakeClient()
    took = run_app(client, [PAUSE_TONE_ROLE, action])
    # stopped before the hangup: else Asterisk warns "Playback failed" for every tone
    assert client.calls == [("play", SNOOP, media), ("stop", f"{SNOOP}-tone"),
                            ("hangup", SNOOP)]
    assert took >= tone_ms(action) / 1000  # not cut short: hung up after the tone's length


def test_a_refused_playback_still_hangs_the_snoop_up() -> None:
    client = FakeClient(play_fails=True)
    run_app(client, [PAUSE_TONE_ROLE, "pause"])
    assert client.calls == [("play", SNOOP, "tone:!400/300"), ("hangup", SNOOP)]


def test_a_playback_request_that_never_answers_is_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "PAUSE_TONE_MAX_S", 0.05)
    client = FakeClient(play_hangs=True)
    took = run_app(client, [PAUSE_TONE_ROLE, "resume"])
    assert client.calls[-1] == ("hangup", SNOOP) and took < 1.0


def test_a_pause_tone_snoop_with_bad_args_is_hung_up_not_continued() -> None:
    client = FakeClient()
    run_app(client, [PAUSE_TONE_ROLE, "stop"])
    assert client.calls == [("hangup", SNOOP)]
