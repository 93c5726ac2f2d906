"""Drive real SIP calls with sipp (Debian `sip-tester`) on loopback addresses only.

`uac()` builds a caller scenario (INVITE with optional extra headers, then steps after the
answer: audio, DTMF, pauses, hang-up or wait for the far end's BYE); `Phone` is a sipp UAS that
rings/answers/refuses on one of the site's customer addresses. Every run keeps sipp's message
log, parsed into `SipMessage`s so tests assert on what was really on the wire.
"""

from __future__ import annotations

import itertools
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tests.e2e import sip_messages as sip
from tests.e2e.rtp_pcap import dtmf_pcap, tone_pcap
from tests.processes import end, wait_or_kill

ASTERISK = "127.0.0.1:5060"
CARRIER_IN = "127.0.0.2"  # where inbound INVITEs come from (SPEC §8)
CARRIER_OUT = "127.0.0.3"  # where Asterisk sends outbound calls
# Stray BYEs a starting phone may meet, one per call an earlier test left unanswered.
STRAY_BYE_RETRIES = 3


# Ports handed to a sipp in this process, and when. A port is free from the kernel's side
# until its sipp binds it, so two callers started side by side could be handed the same one
# (CI of 5d9579f: two holders on 127.0.0.2, "Unable to bind video RTP socket … Address
# already in use", one call never placed). No port goes out twice within HANDED_OUT_S.
HANDED_OUT_S = 300.0
_handed_out: dict[tuple[str, int], float] = {}
_handed_out_lock = threading.Lock()


def _hand_out(ip: str, ports: range) -> bool:
    """Mark `ports` on `ip` as handed out, unless one of them already is."""
    now = time.monotonic()
    with _handed_out_lock:
        if any(now - _handed_out.get((ip, p), -HANDED_OUT_S) < HANDED_OUT_S for p in ports):
            return False
        for p in ports:
            _handed_out[(ip, p)] = now
        return True


def _kernel_free_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def free_port(ip: str) -> int:
    """A UDP port free on `ip` that no other caller of this process has been handed lately."""
    for _ in range(50):
        port = _kernel_free_port(ip)
        if _hand_out(ip, range(port, port + 1)):
            return port
    raise RuntimeError(f"no free port on {ip}")


def udp_bound(ip: str, port: int) -> bool:
    """Some process holds ip:port (UDP), read from /proc/net/udp without touching the port."""
    want = f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return True  # cannot tell: do not hold the test up
    return any(line.split()[1] == want for line in lines if len(line.split()) > 1)


def free_media_port(ip: str, sip_port: int | None = None) -> int:
    """An even port P with P and P+2 free on `ip`: sipp binds its audio socket on P and its
    video socket on P+2 and exits when either is taken (a socket Asterisk holds on 0.0.0.0
    counts), and a phone that is not there turns a test's call into a 480. Never around
    `sip_port`, the one sipp binds for SIP first: free now as well, the kernel may hand out the
    same port twice (CI of f1e385f: "Unable to bind audio RTP socket … Address already in use",
    the call never placed)."""
    for _ in range(50):
        port = _kernel_free_port(ip) & ~1
        if port + 2 > 65535 or (sip_port is not None and port <= sip_port <= port + 3):
            continue
        probes = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        try:
            probes[0].bind((ip, port))
            probes[1].bind((ip, port + 2))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        # The block P..P+3, as the check around `sip_port` above counts it.
        if _hand_out(ip, range(port, port + 4)):
            return port
    raise RuntimeError(f"no free media port pair on {ip}")


@dataclass(frozen=True)
class SipMessage:
    at: datetime
    sent: bool
    first_line: str
    text: str

    @property
    def status(self) -> int | None:
        m = re.match(r"SIP/2.0 (\d{3})", self.first_line)
        return int(m.group(1)) if m else None

    @property
    def method(self) -> str | None:
        m = re.match(r"([A-Z]+) sip:", self.first_line)
        return m.group(1) if m else None

    def header(self, name: str) -> str | None:
        m = re.search(rf"^{re.escape(name)}:\s*(.*)$", self.text, re.I | re.M)
        return m.group(1).strip() if m else None


def parse_message_log(path: Path) -> list[SipMessage]:
    if not path.exists():
        return []
    out: list[SipMessage] = []
    blocks = re.split(r"^-{10,} (\d{4}-\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+)\s*$", path.read_text(
        errors="replace"), flags=re.M)
    for stamp, body in zip(blocks[1::2], blocks[2::2], strict=False):
        head, _, rest = body.strip().partition("\n")
        sent = "message sent" in head
        msg = rest.strip()
        first = msg.splitlines()[0].strip() if msg else ""
        out.append(SipMessage(datetime.fromisoformat(stamp.replace("  ", " ")), sent, first, msg))
    return out


@dataclass
class CallResult:
    returncode: int
    messages: list[SipMessage]
    log_dir: Path

    def received(self) -> list[SipMessage]:
        return [m for m in self.messages if not m.sent]

    def final_status(self) -> int | None:
        """The final response to our INVITE (first non-1xx)."""
        for m in self.received():
            if m.status is not None and m.status >= 200 and "INVITE" in (m.header("CSeq") or ""):
                return m.status
        return None

    def statuses(self) -> list[int]:
        return [m.status for m in self.received() if m.status is not None]

    def first(self, *, status: int | None = None, method: str | None = None,
              sent: bool | None = None) -> SipMessage | None:
        for m in self.messages:
            if status is not None and m.status != status:
                continue
            if method is not None and m.method != method:
                continue
            if sent is not None and m.sent != sent:
                continue
            return m
        return None

    def bye_from_far_end(self) -> bool:
        return any(m.method == "BYE" and not m.sent for m in self.messages)

    def seconds_between(self, a: SipMessage, b: SipMessage) -> float:
        return (b.at - a.at).total_seconds()

    def timeline(self) -> str:
        """One line per message ("22:41:25.096 > INVITE sip:…"), for assertion messages."""
        return "\n".join(f"{m.at:%H:%M:%S.%f} {'>' if m.sent else '<'} {m.first_line}"
                         for m in self.messages)


@dataclass
class Step:
    kind: str  # pause | dtmf | dtmf_rtp | audio | tone
    value: str | int | float


def pause(ms: int) -> Step:
    return Step("pause", ms)


def dtmf(digits: str) -> Step:
    return Step("dtmf", digits)


def audio(seconds: float) -> Step:
    return Step("audio", seconds)


def tone(seconds: float, hz: float) -> Step:
    """Like `audio()`, at another frequency: tells the two parties apart in a recording."""
    return Step("tone", f"{seconds:g}@{hz:g}")


def dtmf_rtp(digits: str) -> Step:
    """Digits as RFC 4733 telephone-events in the RTP stream (payload type 101), the way a
    desk phone sends them; `dtmf()` sends SIP INFO."""
    return Step("dtmf_rtp", digits)


@dataclass
class UacSpec:
    to: str  # Request-URI user (called number / dialed digits)
    from_user: str = "0399990000"
    from_host: str | None = None
    extra_headers: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    hangup: bool = True  # True: we send BYE after the steps; False: wait for the far end's BYE
    wait_bye_s: int = 30
    sdp: bool = True
    sdp_body: str | None = None  # replaces the audio offer (e.g. a data/video-only call)


_INFO_CSEQ = itertools.count(10)


def _steps_xml(steps: list[Step], work: Path, hold: bool = True) -> str:
    """The scenario lines of `steps`. hold=False: audio starts and the scenario goes on at once
    (a phone waiting for the BYE while it talks) instead of pausing for the audio's length."""
    parts: list[str] = []
    events = 0  # RFC 4733 digits so far in this scenario
    for step in steps:
        if step.kind == "pause":
            parts.append(f'<pause milliseconds="{int(step.value)}"/>')
        elif step.kind == "dtmf":
            # SIP INFO (application/dtmf-relay): sipp's RFC 4733 pcaps all carry the same RTP
            # timestamps, so a second digit in one call looks like a repeat of the first.
            for digit in str(step.value):
                cseq = next(_INFO_CSEQ)
                info = sip.request("INFO", "[next_url]", cseq,
                                   content_type="application/dtmf-relay",
                                   body=f"Signal={digit}\nDuration=160")
                parts.append(f'{info}\n  <recv response="200" optional="false"/>')
                parts.append('<pause milliseconds="300"/>')
        elif step.kind == "dtmf_rtp":
            for digit in str(step.value):
                # A fresh, increasing timestamp per digit of the call (see dtmf_pcap).
                events += 1
                name = {"*": "star", "#": "pound"}.get(digit, digit)
                pcap = dtmf_pcap(work / f"dtmf_{events}_{name}.pcap", digit,
                                 timestamp=events * 16000, seq=events * 100, ssrc=0x4733)
                parts.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
                parts.append('<pause milliseconds="400"/>')
        elif step.kind == "audio":
            seconds = float(step.value)
            pcap = tone_pcap(work.parent / f"tone_{seconds:g}s.pcap", seconds)
            parts.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
            if hold:
                parts.append(f'<pause milliseconds="{int(seconds * 1000)}"/>')
        elif step.kind == "tone":
            secs_text, _, hz_text = str(step.value).partition("@")
            seconds, hz = float(secs_text), float(hz_text)
            pcap = tone_pcap(work.parent / f"tone_{seconds:g}s_{hz:g}hz.pcap", seconds, hz)
            parts.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
            if hold:
                parts.append(f'<pause milliseconds="{int(seconds * 1000)}"/>')
    return "\n  ".join(parts)


SDP = sip.sdp()


def uac_xml(spec: UacSpec, work: Path) -> str:
    from_host = spec.from_host or "[local_ip]"
    # No blank line may appear among the headers: it would end them (and drop the SDP).
    body = (spec.sdp_body or SDP) if spec.sdp else ""
    ending = (
        sip.request("BYE", "[next_url]", 9999, attrs=' retrans="500"')
        + '\n  <recv response="200" crlf="true"/>'
        if spec.hangup
        else f'<recv request="BYE" timeout="{spec.wait_bye_s * 1000}"/>\n  '
        + sip.reply("200 OK")
    )
    invite = sip.request(
        "INVITE", "sip:[service]@[remote_ip]:[remote_port]", 1,
        f"From: <sip:{spec.from_user}@{from_host}>;tag=[pid]SIPpTag[call_number]\n"
        "To: <sip:[service]@[remote_ip]:[remote_port]>\nCall-ID: [call_id]",
        contact=f"<sip:{spec.from_user}@[local_ip]:[local_port]>", extra=spec.extra_headers,
        content_type="application/sdp" if spec.sdp else "", body=body, attrs=' retrans="500"')
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callguard uac">
  {invite}
  {sip.provisional_recvs()}
  {sip.failure_recvs()}
  <recv response="200" rrs="true"/>
  {sip.request("ACK", "[next_url]", 1)}
  {_steps_xml(spec.steps, work)}
  {ending}
  <nop next="done"/>
  <label id="failed"/>
  {sip.ACK_FAILURE}
  <label id="done"/>
</scenario>
"""


def _sipp(xml: str, work: Path, local_ip: str, port: int, extra: list[str]) -> list[str]:
    scen = work / "scenario.xml"
    scen.write_text(xml)
    sipp = shutil.which("sipp")
    assert sipp, "sipp is not installed (Debian package sip-tester; `make deps`)"
    return [sipp, "-sf", str(scen), "-i", local_ip, "-p", str(port), "-nostdin",
            "-trace_msg", "-message_file", str(work / "messages.log"),
            "-trace_err", "-error_file", str(work / "errors.log"),
            "-mi", local_ip, "-mp", str(free_media_port(local_ip, port)), *extra]


class UacCall:
    """One call placed in the background; `.result()` waits for it to finish. Calls placed
    this way run side by side (tests whose calls only differ in what is dialed)."""

    def __init__(self, spec: UacSpec, work: Path, local_ip: str = CARRIER_IN,
                 timeout_s: int = 60, target: str = ASTERISK) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.work, self.timeout_s = work, timeout_s
        cmd = _sipp(uac_xml(spec, work), work, local_ip, free_port(local_ip),
                    ["-s", spec.to, "-m", "1", "-l", "1", "-timeout", f"{timeout_s}s",
                     "-timeout_error", "-recv_timeout", f"{timeout_s * 1000}", target])
        self._out = (work / "sipp.out").open("w")
        self.proc = subprocess.Popen(cmd, cwd=work, stdout=self._out,
                                     stderr=subprocess.STDOUT, text=True)

    def result(self) -> CallResult:
        try:
            wait_or_kill(self.proc, self.timeout_s + 15)
        finally:
            self._out.close()
        return CallResult(self.proc.returncode, parse_message_log(self.work / "messages.log"),
                          self.work)


def uac(spec: UacSpec, work: Path, local_ip: str = CARRIER_IN, timeout_s: int = 60,
        target: str = ASTERISK) -> CallResult:
    """Place one call and wait for it to finish."""
    return UacCall(spec, work, local_ip, timeout_s, target).result()


def cancel_xml(from_user: str, after_ms: int) -> str:
    """A caller that gives up: INVITE, then CANCEL `after_ms` after Asterisk's 100 Trying,
    and the ACK of the 487. [branch-N] is the branch of the message N steps back: the CANCEL
    and the ACK belong to the INVITE's transaction."""
    invite_headers = (f"From: <sip:{from_user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag"
                      "[call_number]\nTo: <sip:[service]@[remote_ip]:[remote_port]>\n"
                      "Call-ID: [call_id]")
    ruri = "sip:[service]@[remote_ip]:[remote_port]"
    acked = invite_headers.replace("[remote_port]>", "[remote_port]>[peer_tag_param]")
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callguard caller who gives up">
  {sip.request("INVITE", ruri, 1, invite_headers,
               contact=f"<sip:{from_user}@[local_ip]:[local_port]>",
               content_type="application/sdp", body=SDP, attrs=' retrans="500"')}
  <recv response="100"/>
  <pause milliseconds="{after_ms}"/>
  {sip.request("CANCEL", ruri, 1, invite_headers, via=sip.VIA.replace("[branch]", "[branch-3]"))}
  <recv response="200"/>
  <recv response="487"/>
  {sip.request("ACK", ruri, 1, acked, via=sip.VIA.replace("[branch]", "[branch-6]"))}
</scenario>
"""


def cancelled_call(to: str, work: Path, from_user: str = "0399990000", after_ms: int = 20,
                   local_ip: str = CARRIER_IN, timeout_s: int = 20) -> CallResult:
    """One call the caller abandons before an answer (see cancel_xml)."""
    return run_uac_xml(cancel_xml(from_user, after_ms), work, local_ip, timeout_s,
                       ["-s", to, "-timeout_error"])


UAS_ANSWER = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callguard phone">
  <recv request="INVITE" crlf="true"/>
  {sip.ringing()}
  {{before_answer}}
</scenario>
"""


def _answer(delay_ms: int, audio_xml: str) -> str:
    return f"""<pause milliseconds="{delay_ms}"/>
  {sip.answer(SDP)}
  <recv request="ACK" crlf="true"/>
  {audio_xml}
  <recv request="BYE"/>
  {sip.reply("200 OK")}"""


def _refuse(status: str) -> str:
    return f"""{sip.reply(status, to=sip.TAGGED_TO)}
  <recv request="ACK"/>"""


_NO_ANSWER = f"""<recv request="CANCEL"/>
  {sip.reply("200 OK")}
  {sip.reply("487 Request Terminated", to=sip.TAGGED_TO, cseq="CSeq: [cseq] INVITE")}
  <recv request="ACK"/>"""


class Phone:
    """A sipp UAS on a customer address (or the carrier's 127.0.0.3), port 5060.

    mode: answer (after `answer_ms`, sends `audio_s` of tone), busy (486), unallocated (404),
    noanswer (rings until CANCEL). Use as a context manager; `.result()` after the exit gives
    what it saw.
    """

    def __init__(self, ip: str, work: Path, mode: str = "answer", answer_ms: int = 0,
                 audio_s: float = 0.0, calls: int = 1, timeout_s: int = 60,
                 audio_hz: float | None = None) -> None:
        self.ip, self.work, self.calls, self.timeout_s = ip, work, calls, timeout_s
        work.mkdir(parents=True, exist_ok=True)
        if mode == "answer":
            # audio_hz: the phone's tone at another frequency than the caller's 440 Hz.
            step = tone(audio_s, audio_hz) if audio_hz else audio(audio_s)
            # The tone plays on its own thread while the phone already waits for the BYE: a
            # BYE inside a <pause> is "unexpected" to sipp, which aborts that call, and the
            # BYE's retransmission then reaches whichever phone listens on the port next.
            audio_xml = _steps_xml([step], work / "x", hold=False) if audio_s else ""
            tail = _answer(answer_ms, audio_xml)
        elif mode == "busy":
            tail = _refuse("486 Busy Here")
        elif mode == "unallocated":  # the carrier: no such number
            tail = _refuse("404 Not Found")
        elif mode == "noanswer":
            tail = _NO_ANSWER
        else:
            raise ValueError(mode)
        self.xml = UAS_ANSWER.replace("{before_answer}", tail)
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Phone:
        self.work.mkdir(parents=True, exist_ok=True)
        cmd = _sipp(self.xml, self.work, self.ip, 5060,
                    ["-m", str(self.calls), "-timeout", f"{self.timeout_s}s"])
        for _ in range(STRAY_BYE_RETRIES + 1):
            with (self.work / "sipp.err").open("w") as err:
                self.proc = subprocess.Popen(cmd, cwd=self.work, stdout=subprocess.DEVNULL,
                                             stderr=err, text=True)
            # Listening before any INVITE can arrive: on a busy machine sipp may take longer
            # than any fixed pause, and an INVITE to a port nobody holds comes back a 480.
            deadline = time.monotonic() + 10
            while self.proc.poll() is None and not udp_bound(self.ip, 5060) \
                    and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.proc.poll() is None:
                return self
            # A BYE that Asterisk retransmits for an earlier call whose phone never answered it
            # (up to 32 s) counts as this phone's call: sipp answers it and ends. Answered, it
            # stops coming: start again.
            if "unexpected BYE" not in (self.work / "sipp.err").read_text():
                break
        # A phone that is not there would only show as a 480 or 408 far from the cause.
        raise RuntimeError(f"phone sipp on {self.ip} exited at start: "
                           f"{(self.work / 'sipp.err').read_text()[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None and self.rang():
            # The caller's side may be done before Asterisk's BYE reaches this phone. Killed
            # then, the phone leaves the BYE unanswered, and its retransmission 0.5 s later
            # aborts whichever phone listens on this address next (CI: a 480 two calls on).
            # A phone that rang ends by itself once its calls are hung up.
            self.wait(5)
        if self.proc is not None:
            end(self.proc)

    def wait(self, timeout_s: float = 30) -> None:
        """Until the phone's scenario ended (or the timeout: the test asserts on the log)."""
        if self.proc is not None:
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass

    def result(self) -> CallResult:
        rc = self.proc.returncode if self.proc is not None and self.proc.returncode is not None \
            else -1
        return CallResult(rc, parse_message_log(self.work / "messages.log"), self.work)

    def invites(self) -> list[str]:
        """The request lines of the INVITEs it received."""
        return [m.first_line for m in self.result().messages
                if m.method == "INVITE" and not m.sent]

    def rang(self) -> bool:
        return bool(self.invites())


@dataclass
class LoadResult:
    """Outcome of a sipp load run, counted per Call-ID from the message log."""

    returncode: int
    attempted: int
    answered: int
    failed_codes: dict[int, int]
    unanswered: int  # no final response at all
    log_dir: Path

    @property
    def failed(self) -> int:
        return sum(self.failed_codes.values()) + self.unanswered


def count_calls(messages: list[SipMessage]) -> tuple[int, int, dict[int, int], int]:
    """(attempted, answered, failures by code, without final response) per Call-ID."""
    finals: dict[str, int] = {}
    invites: set[str] = set()
    for m in messages:
        call_id = m.header("Call-ID") or ""
        if m.sent and m.method == "INVITE":
            invites.add(call_id)
        elif not m.sent and m.status is not None and m.status >= 200 \
                and "INVITE" in (m.header("CSeq") or ""):
            finals.setdefault(call_id, m.status)
    codes: dict[int, int] = {}
    for call_id in invites:
        code = finals.get(call_id)
        if code is not None and code != 200:
            codes[code] = codes.get(code, 0) + 1
    answered = sum(1 for c in invites if finals.get(c) == 200)
    return len(invites), answered, codes, sum(1 for c in invites if c not in finals)


class Load:
    """A background sipp UAC placing `count` calls at `rate` calls/s (bounded in count and
    time); `.result()` after `.wait()` counts them."""

    def __init__(self, spec: UacSpec, work: Path, rate: float, count: int,
                 local_ip: str = CARRIER_IN, limit: int = 200, timeout_s: int = 120) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        self.cmd = _sipp(uac_xml(spec, work), work, local_ip, free_port(local_ip),
                         ["-s", spec.to, "-r", str(rate), "-m", str(count), "-l", str(limit),
                          "-timeout", f"{timeout_s}s", "-recv_timeout", "30000", ASTERISK])
        self.timeout_s = timeout_s
        self.proc = subprocess.Popen(self.cmd, cwd=work, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def wait(self) -> LoadResult:
        wait_or_kill(self.proc, self.timeout_s + 15)
        attempted, answered, codes, unanswered = count_calls(
            parse_message_log(self.work / "messages.log"))
        return LoadResult(self.proc.returncode, attempted, answered, codes, unanswered,
                          self.work)


# ---- a customer phone that transfers a call (issue #14 transfer-proof recording) ----

# After its own BYE(s) the phone stays 3 s to answer Asterisk's BYE on a leg Asterisk ended at
# the same time: unanswered, Asterisk would retransmit it into the next test's phone.
_LINGER = f"""<label id="linger"/>
  <recv request="BYE" timeout="3000" ontimeout="lingered"/>
  {sip.reply("200 OK", attrs=' next="linger"')}
  <label id="lingered"/>"""


@dataclass(frozen=True)
class _Leg:
    """How the transferring phone addresses one of its dialogs with Asterisk."""

    ruri: str  # Request-URI of in-dialog requests
    from_: str  # our side, with our tag
    to: str  # Asterisk's side, with its tag
    routes: str = ""  # "[routes]\n" on the dialog the phone placed with the first INVITE

    @property
    def dialog(self) -> str:
        return f"From: {self.from_}\nTo: {self.to}\n{self.routes}Call-ID: [call_id]"


def _answered_leg() -> _Leg:
    return _Leg(f"sip:asterisk@{ASTERISK}",
                "<sip:f1@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]",
                f"<sip:asterisk@{ASTERISK}>;tag=[$ftag]")


def _placed_leg(dialed: str) -> _Leg:
    return _Leg("[next_url]", "<sip:f1@[local_ip]>;tag=[pid]SIPpTag[call_number]",
                f"<sip:{dialed}@{ASTERISK}>;tag=[$ttag]", "[routes]\n")


# The consult call of an attended transfer: the same Call-ID as the first dialog, our own tag
# (so one sipp call sees both dialogs), Asterisk's tag in ctag.
_CONSULT_LEG = _Leg(f"sip:asterisk@{ASTERISK}",
                    "<sip:f1@[local_ip]:[local_port]>;tag=consult[call_number]",
                    f"<sip:asterisk@{ASTERISK}>;tag=[$ctag]")


def _bye(leg: _Leg, cseq: int, label: str) -> str:
    """A BYE on one dialog; 200, or 481 when Asterisk already ended that leg (a BYE of
    Asterisk's crossing ours is answered)."""
    return f"""{sip.request("BYE", leg.ruri, cseq, leg.dialog, attrs=' retrans="500"')}
  <recv request="BYE" optional="true" next="{label}x"/>
  <recv response="200" optional="true" next="{label}"/>
  <recv response="481" next="{label}"/>
  <label id="{label}x"/>
  {sip.reply("200 OK")}
  <recv response="200" optional="true" next="{label}"/>
  <recv response="481"/>
  <label id="{label}"/>"""


def _invite(ruri: str, from_: str, to: str, cseq: int) -> str:
    invite = sip.request("INVITE", ruri, cseq, f"From: {from_}\nTo: {to}\nCall-ID: [call_id]",
                         contact="<sip:f1@[local_ip]:[local_port]>",
                         content_type="application/sdp", body=SDP, attrs=' retrans="500"')
    return f"{invite}\n  {sip.provisional_recvs((100, 180, 183, 180))}"


def _ack(leg: _Leg, cseq: int) -> str:
    return sip.request("ACK", leg.ruri, cseq, leg.dialog)


def _tag_of(header: str, var: str) -> str:
    return (f'<action><ereg regexp=";tag=([^;> ]+)" search_in="hdr" header="{header}:" '
            f'check_it="true" assign_to="{var[0]}t,{var}"/></action>')


_ANSWER_FIRST = f"""<recv request="INVITE" crlf="true">
    {_tag_of("From", "ftag")}
  </recv>
  {sip.ringing()}
  {sip.answer(SDP)}
  <recv request="ACK" crlf="true"/>"""


def transfer_xml(work: Path, target: str, talk_s: float, hz: float, *,
                 dialed: str | None = None, consult_s: float | None = None) -> str:
    """A customer phone that transfers its call to `target` after talking `talk_s` at `hz`.

    dialed None: the phone answers a call Asterisk sends it (inbound); otherwise it places the
    call to `dialed` itself (outbound). consult_s None: blind transfer (REFER with Refer-To:
    target). Otherwise attended: a consult call to `target` from the same phone (a second
    dialog, see _CONSULT_LEG), `consult_s` on it, then REFER on the first dialog with
    Refer-To: target?Replaces=<consult dialog>. Then the phone waits for the NOTIFY carrying
    the final sipfrag (RFC 3515), answering any BYE of Asterisk's meanwhile (it may end the
    consult leg first), up to 10 s without a message, and hangs up its leg(s), as a desk phone
    does."""
    work.mkdir(parents=True, exist_ok=True)
    talk = _steps_xml([tone(talk_s, hz)], work / "x")
    if dialed is None:
        leg, cseq, tag = _answered_leg(), 100, "ft"
        first = _ANSWER_FIRST
    else:
        leg, cseq, tag = _placed_leg(dialed), 0, "tt"
        first = (_invite(f"sip:{dialed}@{ASTERISK}",
                         "<sip:f1@[local_ip]>;tag=[pid]SIPpTag[call_number]",
                         f"<sip:{dialed}@{ASTERISK}>", 1)
                 + f'\n  <recv response="200" rrs="true">\n    {_tag_of("To", "ttag")}\n'
                 "  </recv>\n  " + _ack(leg, 1))
    refer_to = f"<sip:{target}@{ASTERISK}>"
    consult, hangup, refs = "", _bye(leg, cseq + 3, "d1"), f"frag,{tag}"
    if consult_s is not None:
        refer_to = (f"<sip:{target}@{ASTERISK}?Replaces=[call_id]"
                    "%3Bto-tag%3D[$ctag]%3Bfrom-tag%3Dconsult[call_number]>")
        consult = (_invite(f"sip:{target}@{ASTERISK}",
                           "<sip:f1@[local_ip]>;tag=consult[call_number]",
                           f"<sip:{target}@{ASTERISK}>", 201)
                   + f'\n  <recv response="200">\n    {_tag_of("To", "ctag")}\n  </recv>\n  '
                   + _ack(_Leg(f"sip:{target}@{ASTERISK}",
                               "<sip:f1@[local_ip]>;tag=consult[call_number]",
                               f"<sip:{target}@{ASTERISK}>;tag=[$ctag]"), 201)
                   + f'\n  <pause milliseconds="{int(consult_s * 1000)}"/>')
        hangup += "\n  " + _bye(_CONSULT_LEG, 202, "d2")
        refs += ",ct"
    contact = "<sip:f1@[local_ip]:[local_port]>"
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callguard transferring phone">
  {first}
  {talk}
  {consult}
  {sip.request("REFER", leg.ruri, cseq + 2, leg.dialog, contact=contact,
               extra=[f"Refer-To: {refer_to}", f"Referred-By: {contact}"],
               attrs=' retrans="500"')}
  <recv response="202"/>
  <label id="notify"/>
  <recv request="BYE" optional="true" next="byed" timeout="10000" ontimeout="hangup"/>
  <recv request="NOTIFY" crlf="true">
    <action>
      <ereg regexp="SIP/2.0 ([0-9][0-9][0-9])" search_in="msg" check_it="false"
            assign_to="frag,fragcode"/>
      <todouble assign_to="fragnum" variable="fragcode"/>
      <test assign_to="provisional" variable="fragnum" compare="less_than" value="200"/>
    </action>
  </recv>
  {sip.reply("200 OK", contact=contact, attrs=' next="notify" test="provisional"')}
  <nop next="hangup"/>
  <label id="byed"/>
  {sip.reply("200 OK", attrs=' next="notify"')}
  <label id="hangup"/>
  {hangup}
  {_LINGER}
  <Reference variables="{refs}"/>
</scenario>
"""


class TransferPhone(Phone):
    """A customer phone (sipp UAS on its address, port 5060) that answers one call, talks,
    and transfers it: blind (`consult_s` None) or attended (a consult call first)."""

    def __init__(self, ip: str, work: Path, target: str, talk_s: float, hz: float,
                 consult_s: float | None = None, timeout_s: int = 60) -> None:
        super().__init__(ip, work, timeout_s=timeout_s)
        self.xml = transfer_xml(work, target, talk_s, hz, consult_s=consult_s)

    def __enter__(self) -> TransferPhone:
        super().__enter__()
        return self

    def sent_refer(self) -> bool:
        return any(m.method == "REFER" and m.sent for m in self.result().messages)

    def final_sipfrag(self) -> str | None:
        return final_sipfrag(self.result())


def final_sipfrag(result: CallResult) -> str | None:
    """The sipfrag status line of the last NOTIFY Asterisk sent about the transfer."""
    frags = [re.search(r"SIP/2.0 \d{3}[^\r\n]*", m.text.split("\n\n", 1)[-1])
             for m in result.received() if m.method == "NOTIFY"]
    found = [f.group(0).strip() for f in frags if f]
    return found[-1] if found else None


def uas_hangs_up_xml(talk_s: float, hz: float, work: Path) -> str:
    """A called party that answers, talks `talk_s` at `hz` and hangs up (sends BYE)."""
    talk = _steps_xml([tone(talk_s, hz)], work)
    bye = sip.request("BYE", f"sip:asterisk@{ASTERISK}", 2,
                      "From: [$tohdr];tag=[pid]SIPpTag01[call_number]\nTo: [$fromhdr]\n"
                      "Call-ID: [call_id]", attrs=' retrans="500"')
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callguard party that hangs up">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="^ *(.*)$" search_in="hdr" header="From:" check_it="true"
            assign_to="fh,fromhdr"/>
      <ereg regexp="^ *(.*)$" search_in="hdr" header="To:" check_it="true"
            assign_to="th,tohdr"/>
    </action>
  </recv>
  {sip.answer(SDP)}
  <recv request="ACK" crlf="true"/>
  {talk}
  {bye}
  <recv response="200"/>
  <Reference variables="fh,th"/>
</scenario>
"""


class ScenarioPhone(Phone):
    """A sipp UAS on `ip`:5060 running a given scenario (see the *_xml builders above)."""

    def __init__(self, ip: str, work: Path, xml: str, timeout_s: int = 60) -> None:
        super().__init__(ip, work, timeout_s=timeout_s)
        self.xml = xml


# A Call-ID without "@" (sipp's default is number-pid@ip): an attended transfer's Refer-To
# carries the consult dialog's Call-ID inside a URI (?Replaces=...), where "@" must not appear.
PLAIN_CALL_ID = ["-cid_str", "%u-%p-callguard"]


def run_uac_xml(xml: str, work: Path, local_ip: str, timeout_s: int = 60,
                extra: list[str] | None = None) -> CallResult:
    """Run one UAC scenario from a customer address and wait for it."""
    work.mkdir(parents=True, exist_ok=True)
    cmd = _sipp(xml, work, local_ip, free_port(local_ip),
                ["-m", "1", "-timeout", f"{timeout_s}s", *(extra or []), ASTERISK])
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True,
                          timeout=timeout_s + 15, check=False)
    (work / "sipp.out").write_text(done.stdout[-20000:] + done.stderr[-5000:])
    return CallResult(done.returncode, parse_message_log(work / "messages.log"), work)
