"""DTMF pause/resume codes from the customer's side (issue #14): the API process listens on
AMI for DTMFEnd events (its AMI user reads `dtmf` only, filtered to DTMFEnd), keeps the last
digits per channel, and on a contract's pause / resume code mutes or unmutes that call's
MixMonitor (callguard.recording_pause), keeping the interval on the row, and the customer
hears a tone confirming it (pause: one low beep; resume: two higher ones).

Customer side: the digits arrive on a channel of one of the contract's own endpoints
(`PJSIP/<endpoint>-…`), never on the carrier's. The call's recording row is the one whose
channel is the call's Linkedid (the first channel of the call, where MixMonitor runs)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callguard import ami
from callguard.config import Settings
from callguard.db.models import Endpoint, Recording, RecordingOptions
from callguard.domain.pause import dtmf_action
from callguard.recording_pause import play_pause_tone, set_paused
from callguard.services.base import AdminError

log = logging.getLogger("callguard.recordings")
RETRY_S = 2.0
MAX_TRACKED = 2000  # channels with digits in the buffer; older ones are forgotten


def endpoint_of(channel: str) -> str:
    """`PJSIP/f1-a-0000002a` → `f1-a`; "" for anything else."""
    tech, _, rest = channel.partition("/")
    return rest.rpartition("-")[0] if tech == "PJSIP" else ""


@dataclass
class DtmfPause:
    settings: Settings
    sessions: sessionmaker[Session]
    buffers: dict[str, str] = field(default_factory=dict)
    tone: Callable[[Settings, str, str], bool] = play_pause_tone

    def on_digit(self, channel: str, uniqueid: str, linkedid: str, digit: str) -> str | None:
        """One received digit; returns the action taken, if any (runs in a worker thread).
        A pause or resume done is confirmed by a tone on the channel the digits came from,
        once the transaction is committed (best effort: `play_pause_tone`)."""
        action = self._apply(channel, uniqueid, linkedid, digit)
        if action is not None:
            try:
                self.tone(self.settings, uniqueid, action)
            except Exception as exc:  # the pause is done: no failure of the tone undoes it
                log.warning("no %s tone: %s: %s", action, type(exc).__name__, exc)
        return action

    def _apply(self, channel: str, uniqueid: str, linkedid: str, digit: str) -> str | None:
        endpoint = endpoint_of(channel)
        if not endpoint:
            return None
        with self.sessions.begin() as session:
            found = session.execute(
                select(Recording.id, RecordingOptions.pause_code, RecordingOptions.resume_code)
                .join(Endpoint, Endpoint.contract_id == Recording.contract_id)
                .join(RecordingOptions, RecordingOptions.contract_id == Recording.contract_id)
                .where(Endpoint.name == endpoint, Recording.channel_id == linkedid,
                       Recording.status == "recording",
                       RecordingOptions.pause_code.is_not(None))).first()
            if found is None:
                return None
            rec_id, pause_code, resume_code = found
            if pause_code is None or resume_code is None:
                return None
            if len(self.buffers) > MAX_TRACKED:
                self.buffers.clear()
            buf, action = dtmf_action(self.buffers.get(uniqueid, ""), digit, pause_code,
                                      resume_code)
            self.buffers[uniqueid] = buf
            if action is None:
                return None
            try:
                set_paused(session, self.settings, rec_id, action == "pause", datetime.now(UTC))
            except AdminError as exc:
                log.info("DTMF %s of recording %s not done: %s", action, rec_id, exc)
                return None
            log.info("recording %s %s by DTMF from the customer's side", rec_id,
                     "paused" if action == "pause" else "resumed")
            return action

    def ami_wanted(self) -> bool:
        """AMI is on, or some contract has pause codes and it has just been switched on
        (AMI is off until a pause needs it: callguard.ami). Runs in a worker thread."""
        if ami.reachable(self.settings):
            return True
        with self.sessions.begin() as session:
            if session.scalar(select(RecordingOptions.contract_id)
                              .where(RecordingOptions.pause_code.is_not(None)).limit(1)) is None:
                return False
        ami.ensure_enabled(self.settings)
        return True

    async def run(self) -> None:
        """Listen on AMI for the life of the process, reconnecting after a failure; while no
        contract has pause codes and AMI is off, only look again every RETRY_S."""
        while True:
            try:
                if await asyncio.to_thread(self.ami_wanted):
                    await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("AMI DTMF listener: %s: %s; retrying in %.0f s",
                            type(exc).__name__, exc, RETRY_S)
            await asyncio.sleep(RETRY_S)

    async def _listen(self) -> None:
        s = self.settings
        reader, writer = await asyncio.open_connection("127.0.0.1", s.ami_port)
        try:
            await reader.readline()  # banner
            writer.write(f"Action: Login\r\nUsername: {s.ami_user}\r\nSecret: "
                         f"{s.ami_password}\r\nEvents: dtmf\r\n\r\n".encode())
            await writer.drain()
            while True:
                msg: dict[str, str] = {}
                while (line := (await reader.readuntil(b"\r\n")).strip()):
                    key, _, value = line.decode(errors="replace").partition(":")
                    msg[key.strip()] = value.strip()
                if msg.get("Response") == "Error":
                    raise ConnectionError(f"AMI login refused: {msg.get('Message')}")
                if msg.get("Event") == "DTMFEnd" and msg.get("Direction") == "Received":
                    await asyncio.to_thread(
                        self.on_digit, msg.get("Channel", ""), msg.get("Uniqueid", ""),
                        msg.get("Linkedid", ""), msg.get("Digit", ""))
        finally:
            writer.close()
