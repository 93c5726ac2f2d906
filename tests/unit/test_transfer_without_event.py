"""Issue #14: an outbound recorded call whose phone blind-transfers it, when ARI's
BridgeBlindTransfer never reaches the app (Asterisk may drop the bridge's and the leaving
channel's subscriptions first). The app finds the channel that stays in cg-transfer by its
BLINDTRANSFER and follows it, so the row ends with the conversation, not when the phone left.
The ARI client is a fake that answers like Asterisk does."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest

from ari_app import app as app_module
from ari_app.app import CallguardApp
from ari_app.calls import CallEnv, Followed
from callguard.callflow import FOLLOW_RECORDING
from callguard.config import Settings

LEFT, LEFT_NAME = "n1-1.10", "PJSIP/f1-a-0000000a"
OUT_FILE = f"2026/12/02/F1/20261202T101558155Z_out_{LEFT}.wav"


class FakeAri:
    def __init__(self, channels: list[dict[str, Any]], blindtransfer: dict[str, str]) -> None:
        self.channels = channels
        self.blindtransfer = blindtransfer
        self.subscribed: list[str] = []

    async def request(self, method: str, path: str) -> object:
        return self.channels if path == "channels" else {"id": path.rpartition("/")[2]}

    async def get_variable(self, channel_id: str, name: str) -> str:
        assert name == "BLINDTRANSFER"
        return self.blindtransfer.get(channel_id, "")

    async def subscribe_channel(self, channel_id: str) -> None:
        self.subscribed.append(channel_id)


def app_on(ari: FakeAri) -> tuple[CallguardApp, list[str]]:
    """The app on a fake ARI, and the channels whose call it ended."""
    app = CallguardApp(cast(Settings, None))
    app.env = cast(CallEnv, SimpleNamespace(ari=ari, tracked={}))
    ended: list[str] = []

    async def call_ended(channel_id: str, followed: Followed, at: datetime | None = None,
                         answered_ms: str | None = None) -> None:
        ended.append(channel_id)

    app.call_ended = call_ended  # type: ignore[method-assign]
    return app, ended


def run_grace(ari: FakeAri, rel_path: str = OUT_FILE) -> tuple[CallguardApp, list[str]]:
    app, ended = app_on(ari)
    followed = Followed(FOLLOW_RECORDING, rel_path)
    asyncio.run(app.end_after_grace(LEFT, followed, datetime.now(UTC), LEFT_NAME))
    return app, ended


@pytest.fixture(autouse=True)
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "TRANSFER_GRACE_S", 0.0)


def test_the_transferee_is_followed_without_the_event() -> None:
    ari = FakeAri([{"id": "n1-1.11", "dialplan": {"context": "cg-transfer"}},
                   {"id": "n1-1.12", "dialplan": {"context": "cg-transfer"}},
                   {"id": "n1-1.13", "dialplan": {"context": "cg-connect"}}],
                  {"n1-1.11": "PJSIP/f1-b-00000003", "n1-1.12": LEFT_NAME})
    app, ended = run_grace(ari)
    assert ended == []  # the call goes on
    assert app.env.tracked == {"n1-1.12": Followed(FOLLOW_RECORDING, OUT_FILE, LEFT)}
    assert ari.subscribed == ["n1-1.12"]


def test_no_transferee_ends_the_call() -> None:
    ari = FakeAri([{"id": "n1-1.11", "dialplan": {"context": "cg-transfer"}}],
                  {"n1-1.11": "PJSIP/f1-b-00000003"})
    app, ended = run_grace(ari)
    assert ended == [LEFT] and app.env.tracked == {}


def test_inbound_recordings_are_not_looked_up() -> None:
    """Inbound, the recording runs on the carrier's leg, which stays: nothing to look up."""
    ari = FakeAri([{"id": "n1-1.12", "dialplan": {"context": "cg-transfer"}}],
                  {"n1-1.12": LEFT_NAME})
    app, ended = run_grace(ari, OUT_FILE.replace("_out_", "_in_"))
    assert ended == [LEFT] and app.env.tracked == {} and ari.subscribed == []


def test_calls_ending_together_share_one_channel_listing() -> None:
    """PERF-2: 300 recorded outbound calls that end within the same moment list Asterisk's
    channels once between them, not once each (~230 kB at 600 channels)."""
    ari = FakeAri([{"id": "n1-1.11", "dialplan": {"context": "cg-connect"}}], {})
    listings = 0
    plain = ari.request

    async def counting(method: str, path: str) -> object:
        nonlocal listings
        listings += path == "channels"
        await asyncio.sleep(0.01)
        return await plain(method, path)

    ari.request = counting  # type: ignore[method-assign]
    app, ended = app_on(ari)

    async def all_end() -> None:
        await asyncio.gather(*(
            app.end_after_grace(f"n1-1.{i}", Followed(FOLLOW_RECORDING, OUT_FILE.replace(
                LEFT, f"n1-1.{i}")), datetime.now(UTC), f"PJSIP/f1-a-{i:08x}")
            for i in range(100, 400)))

    asyncio.run(all_end())
    assert len(ended) == 300  # every call still ends
    assert listings == 1
