"""A real softphone in the end-to-end suite: baresip 1.0 (Debian `baresip-core`, installed by
`make deps`) on one loopback address, port 5060, no registration — the way a desk phone of a
line is set up (README "A desk phone or softphone on a line").

Driven through its `ctrl_tcp` module (netstring-framed JSON commands on <address>:4444:
`dial`, `accept`, `sndcode` = one RFC 4733 telephone-event, `hangup`; events such as
`CALL_INCOMING`, `CALL_ESTABLISHED`, `CALL_CLOSED` come back on the same connection). It sends
a WAV file (`aufile`), plays what it receives into `aubridge` (no sound card), and its `sndfile`
module writes what it heard, decoded at 8 kHz, one WAV per call: `heard()` returns that file
for tests/e2e/heard.py. `jitter_buffer_delay 0-0` so the last tenth of a second before a hang-up
is not lost.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import wave
from pathlib import Path
from typing import Any

from tests.e2e.sipp import udp_bound
from tests.processes import end

CTRL_PORT = 4444
ASTERISK = "127.0.0.1:5060"


def tone_wav(path: Path, seconds: float = 120.0, hz: float = 440.0) -> Path:
    """What the softphone's microphone says: a sine (8 kHz mono, amplitude 8000 like the sipp
    phones' tones), long enough for any test call (aufile stops at the end of its file)."""
    if not path.exists():
        import math

        path.parent.mkdir(parents=True, exist_ok=True)
        n = int(seconds * 8000)
        period = [int(8000 * math.sin(2 * math.pi * hz * i / 8000)) for i in range(8000)]
        frame = b"".join(v.to_bytes(2, "little", signed=True) for v in period)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(frame * (n // 8000))
    return path


CONFIG = """\
poll_method epoll
net_interface {ip}
sip_listen {ip}:5060
audio_player aubridge,heard
audio_alert aubridge,alert
audio_source aufile,{source}
ausrc_srate 8000
auplay_srate 8000
ausrc_channels 1
auplay_channels 1
audio_level no
jitter_buffer_delay 0-0
rtp_ports 20000-39999
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module aubridge.so
module sndfile.so
module_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen {ip}:{ctrl}
snd_path {dumps}
ringback_disabled yes
statmode_default off
"""


class SoftphoneError(RuntimeError):
    pass


class Softphone:
    """baresip as the phone of `user` on `ip` (e.g. f1-a: 0312345678 on 127.0.1.1).

    `auto_answer`: incoming calls are answered at once (answermode=auto); otherwise they ring
    until `accept()`. Use as a context manager; the process is ended by its PID on exit."""

    def __init__(self, ip: str, user: str, work: Path, *, auto_answer: bool = True,
                 tone_hz: float = 440.0, source: Path | None = None) -> None:
        self.ip, self.user, self.work = ip, user, work
        self.auto_answer = auto_answer
        self.dumps = work / "heard"
        self.source = source or tone_wav(work / f"mic_{tone_hz:g}hz.wav", hz=tone_hz)
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.events: list[dict[str, Any]] = []
        self._dumps_before: set[Path] = set()  # heard-files of earlier calls
        self._calls = 0
        self._responses: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    # ---- process ---------------------------------------------------------------------------
    def __enter__(self) -> Softphone:
        exe = shutil.which("baresip")
        if exe is None:
            raise SoftphoneError("baresip is not installed (Debian baresip-core; `make deps`)")
        if udp_bound(self.ip, 5060):
            raise SoftphoneError(f"{self.ip}:5060 is taken: one phone per address")
        conf = self.work / "baresip"
        conf.mkdir(parents=True, exist_ok=True)
        self.dumps.mkdir(parents=True, exist_ok=True)
        (conf / "config").write_text(CONFIG.format(ip=self.ip, source=self.source,
                                                   ctrl=CTRL_PORT, dumps=self.dumps))
        mode = "auto" if self.auto_answer else "manual"
        (conf / "accounts").write_text(
            f"<sip:{self.user}@{self.ip}>;regint=0;audio_codecs=PCMU,PCMA;"
            f"answermode={mode}\n")
        with (self.work / "baresip.log").open("wb") as log:
            self.proc = subprocess.Popen([exe, "-f", str(conf)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SoftphoneError(f"baresip on {self.ip} exited at start:\n{self.log()}")
            if udp_bound(self.ip, 5060):
                try:
                    self.sock = socket.create_connection((self.ip, CTRL_PORT), timeout=1)
                    break
                except OSError:
                    pass
            time.sleep(0.05)
        if self.sock is None:
            self.close()
            raise SoftphoneError(f"baresip on {self.ip} not ready:\n{self.log()}")
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        if self.proc is not None:
            end(self.proc)
        if self._reader is not None:
            self._reader.join(2)

    def log(self) -> str:
        path = self.work / "baresip.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # ---- ctrl_tcp ---------------------------------------------------------------------------
    def _read(self) -> None:
        """Netstrings `<len>:<json>,` from baresip: responses and events."""
        buf = b""
        while self.sock is not None:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while True:
                head, sep, rest = buf.partition(b":")
                if not sep or not head.isdigit() or len(rest) < int(head) + 1:
                    break
                body, buf = rest[: int(head)], rest[int(head) + 1:]
                try:
                    msg = json.loads(body)
                except ValueError:
                    continue
                with self._cond:
                    if msg.get("response"):
                        self._responses.append(msg)
                    elif msg.get("event"):
                        msg["at"] = time.monotonic()
                        self.events.append(msg)
                    self._cond.notify_all()

    def command(self, command: str, params: str = "", timeout_s: float = 5.0) -> str:
        """Send one command; its response's data (raises when baresip says not ok)."""
        assert self.sock is not None, "softphone not started"
        token = f"{command}-{time.monotonic_ns()}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for resp in self._responses:
                    if resp.get("token") == token:
                        self._responses.remove(resp)
                        if not resp.get("ok"):
                            raise SoftphoneError(f"{command} {params}: {resp.get('data')}")
                        return str(resp.get("data", ""))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SoftphoneError(f"no response to {command} {params}")
                self._cond.wait(left)

    def wait_event(self, *types: str, timeout_s: float = 15.0, after: int = 0) -> dict[str, Any]:
        """The first event (index ≥ `after`) of one of these types, e.g. CALL_ESTABLISHED."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for ev in self.events[after:]:
                    if ev.get("type") in types:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [e.get("type") for e in self.events[after:]]
                    raise SoftphoneError(f"{self.ip}: no {types} within {timeout_s} s; "
                                         f"events: {seen}\n{self.log()}")
                self._cond.wait(left)

    def mark(self) -> int:
        """An index into the events: wait_event(after=mark) ignores what came before."""
        with self._cond:
            return len(self.events)

    # ---- a call -----------------------------------------------------------------------------
    def dial(self, user: str, target: str = ASTERISK) -> int:
        """Call sip:<user>@<target> (Asterisk by default); returns the events mark."""
        mark = self.mark()
        self._dumps_before = set(self.dumps.glob("dump-*-dec.wav"))
        self.command("dial", f"sip:{user}@{target}")
        return mark

    def expect_call(self) -> None:
        """Get ready to take a call (remembers which heard-files exist already)."""
        self._dumps_before = set(self.dumps.glob("dump-*-dec.wav"))

    def accept(self) -> None:
        self.command("accept")

    def press(self, digits: str, gap_s: float = 0.4) -> None:
        """Each digit as an RFC 4733 telephone-event on the RTP stream, `gap_s` apart."""
        for digit in digits:
            self.command("sndcode", digit)
            time.sleep(gap_s)

    def hangup(self) -> None:
        self.command("hangup")

    def heard(self, timeout_s: float = 5.0) -> Path:
        """The WAV of what the phone heard on its last call (after CALL_CLOSED), renamed to
        `call-NN-heard.wav`: sndfile writes `dump-<second>-dec.wav` per call (a later call in
        the same second would reuse the name) and completes its header at the call's end."""
        deadline = time.monotonic() + timeout_s
        while True:
            new = sorted(set(self.dumps.glob("dump-*-dec.wav")) - self._dumps_before)
            if new:
                try:
                    with wave.open(str(new[-1]), "rb") as w:
                        done = w.getnframes() > 0
                except (EOFError, wave.Error):
                    done = False
                if done:
                    self._calls += 1
                    return new[-1].rename(self.dumps / f"call-{self._calls:02d}-heard.wav")
            if time.monotonic() > deadline:
                raise SoftphoneError(f"{self.ip}: no heard audio in {self.dumps}: "
                                     f"{sorted(p.name for p in self.dumps.iterdir())}")
            time.sleep(0.1)
