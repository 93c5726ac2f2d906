"""The one AMI action callguard uses: MixMonitorMute (issue #14 recording pause/resume).

ARI has no MixMonitor resource and the dialplan has no MixMonitor mute, so this is the way
to silence a running MixMonitor while the call goes on. A short synchronous session per
action (login, action, logoff) on 127.0.0.1; transport and refusals become AmiError.

AMI is off until a pause needs it (asterisk_conf/manager.conf: ~0.5 ms of Asterisk CPU on
every call while it is on, PERF-1): `ensure_enabled` switches it on, once per Asterisk run."""

from __future__ import annotations

import socket
import time

from callguard.asterisk.ari import AriReader, AsteriskUnavailable
from callguard.config import Settings


class AmiError(Exception):
    pass


class _Session:
    def __init__(self, settings: Settings, timeout_s: float) -> None:
        try:
            self.sock = socket.create_connection(("127.0.0.1", settings.ami_port), timeout_s)
        except OSError as exc:
            raise AmiError(f"cannot reach AMI: {exc}") from exc
        self.buf = b""
        self._line()  # "Asterisk Call Manager/x.y.z"
        self.send({"Action": "Login", "Username": settings.ami_user,
                   "Secret": settings.ami_password})

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AmiError("AMI closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _response(self, action_id: str) -> dict[str, str]:
        """The Response message of this action (events in between are skipped)."""
        while True:
            msg: dict[str, str] = {}
            while line := self._line():
                key, _, value = line.decode(errors="replace").partition(":")
                msg[key.strip()] = value.strip()
            if "Response" in msg and msg.get("ActionID") == action_id:
                return msg

    def send(self, fields: dict[str, str]) -> dict[str, str]:
        action_id = f"cg-{id(fields)}"
        for value in fields.values():
            if "\r" in value or "\n" in value:
                raise AmiError("AMI field with a line break")
        text = "".join(f"{k}: {v}\r\n" for k, v in {**fields, "ActionID": action_id}.items())
        try:
            self.sock.sendall(text.encode() + b"\r\n")
            reply = self._response(action_id)
        except OSError as exc:
            raise AmiError(f"AMI: {exc}") from exc
        if reply.get("Response") != "Success":
            raise AmiError(reply.get("Message", "refused"))
        return reply

    def close(self) -> None:
        try:
            self.sock.sendall(b"Action: Logoff\r\n\r\n")
        except OSError:
            pass
        self.sock.close()


def reachable(settings: Settings, timeout_s: float = 0.5) -> bool:
    """AMI listens (it is on in this Asterisk)."""
    try:
        socket.create_connection(("127.0.0.1", settings.ami_port), timeout_s).close()
    except OSError:
        return False
    return True


def ensure_enabled(settings: Settings, timeout_s: float = 5.0) -> None:
    """Switch AMI on if it is off: `enabled = yes` in its switch file (nothing else: the
    include comes before manager.conf's other keys), then ARI reloads the manager. Asterisk
    keeps it on until it restarts; `make run` writes the switch off again."""
    if reachable(settings):
        return
    try:
        settings.ami_switch_file.write_text("enabled = yes\n")
    except OSError as exc:
        raise AmiError(f"cannot switch AMI on: {exc}") from exc
    try:
        AriReader(settings, timeout_s).reload_module("manager")
    except AsteriskUnavailable as exc:
        raise AmiError(f"cannot reload AMI: {exc}") from exc
    deadline = time.monotonic() + timeout_s
    while not reachable(settings):
        if time.monotonic() > deadline:
            raise AmiError("AMI did not come up after its reload")
        time.sleep(0.05)


def mixmonitor_mute(settings: Settings, channel: str, muted: bool,
                    timeout_s: float = 3.0) -> None:
    """Mute (or unmute) both directions of the MixMonitor on `channel` (name or unique id)."""
    if not settings.ami_password:
        raise AmiError("AMI is not configured (CALLGUARD_AMI_PASSWORD_FILE)")
    ensure_enabled(settings)
    session = _Session(settings, timeout_s)
    try:
        session.send({"Action": "MixMonitorMute", "Channel": channel, "Direction": "both",
                      "State": "1" if muted else "0"})
    finally:
        session.close()
