"""sipp on loopback for the bench: a carrier UAC whose caller numbers come from a CSV (one per
call, in order), a UAS that answers at once, and per-call timings from sipp's message log.

Timings come from the message log's microsecond timestamps: sipp's own response-time statistics
move in coarse (ms, often 4 ms) steps. Both are stamped by sipp's single event loop, so when sipp
itself is saturated its stamps lag too (the same for both paths under test).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.procs import Child
from tests.e2e import sip_messages as sip

ASTERISK = "127.0.0.1:5060"
SDP = sip.sdp(pcmu=False)
# The carrier's side of its dialog: the caller number from the CSV, to the dialed service;
# the INVITE has neither the far end's tag nor a route set yet, the ACK and BYE have both.
_FROM = "From: <sip:[field0]@[local_ip]>;tag=[pid]SIPpTag[call_number]"
_TO = "To: <sip:[service]@[remote_ip]:[remote_port]>"
_INVITE_DIALOG = f"{_FROM}\n{_TO}\nCall-ID: [call_id]"
_DIALOG = f"{_FROM}\n{_TO}[peer_tag_param]\n[routes]\nCall-ID: [call_id]"


def uac_xml(hold_ms: int, audio: Path | None = None) -> str:
    """INVITE (caller = CSV field 0), wait for 200, ACK, [send audio], hold, BYE.

    `audio` is bare A-law (`tone_alaw`), sent with sipp's `rtp_stream` from its ordinary media
    socket. Not `play_pcap_audio`: that opens a raw IPPROTO_UDP socket per call, bound to the
    caller's address, and the kernel hands every UDP packet to that address to each of them;
    on loopback that work runs on the sender's CPU, so every packet Asterisk sent to the
    callers cost the stack's core ~3 µs more with 250 calls up (measured alone; ~3-4 % of
    the core at 250 concurrent recordings): the load generator's cost, billed to the stack
    (PERF-4).

    The carrier sends audio from the answer on, as a real caller does: Asterisk's Answer()
    waits up to 500 ms for the caller's first media frame before it plays anything. A
    re-INVITE during the hold (a connected-line update from Asterisk) is answered and the
    hold starts again, as a real carrier would not drop the call over it; one crossing our
    BYE gets 481.
    """
    # Audio starts as an action of the 200 itself: a step between the ACK and the re-INVITE
    # wait would leave a window in which an early re-INVITE counts as unexpected.
    media = (f'<action><exec rtp_stream="{audio},1,8"/></action>' if audio else "")
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench uac">
  {sip.request("INVITE", "sip:[service]@[remote_ip]:[remote_port]", 1, _INVITE_DIALOG,
               contact="<sip:[field0]@[local_ip]:[local_port]>",
               content_type="application/sdp", body=SDP, attrs=' retrans="500"')}
  {sip.provisional_recvs()}
  {sip.failure_recvs()}
  <recv response="200" rrs="true">{media}</recv>
  {sip.request("ACK", "[next_url]", 1, _DIALOG)}
  <label id="hold"/>
  <recv request="INVITE" timeout="{hold_ms}" ontimeout="hangup"/>
  {sip.reply("200 OK", contact="<sip:[field0]@[local_ip]:[local_port]>", body=SDP)}
  <recv request="ACK" timeout="5000" ontimeout="hold" next="hold"/>
  <label id="hangup"/>
  {sip.request("BYE", "[next_url]", 2, _DIALOG, attrs=' retrans="500"')}
  <recv request="INVITE" optional="true" next="glare"/>
  <recv response="200" crlf="true" next="done"/>
  <label id="glare"/>
  {sip.reply("481 Call/Transaction Does Not Exist")}
  <recv request="ACK" optional="true"/>
  <recv response="200" crlf="true" next="done"/>
  <label id="failed"/>
  {sip.ACK_FAILURE}
  <label id="done"/>
</scenario>
"""


UAS_XML = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench phone: answers at once, accepts re-INVITEs">
  <recv request="INVITE" crlf="true"/>
  {sip.ringing()}
  {sip.answer(SDP)}
  <recv request="ACK" optional="true" crlf="true"/>
  <label id="up"/>
  <recv request="INVITE" optional="true" next="reinvite"/>
  <recv request="BYE"/>
  {sip.reply("200 OK")}
  <nop next="end"/>
  <label id="reinvite"/>
  {sip.reply("200 OK", contact=sip.PHONE_CONTACT, body=SDP)}
  <recv request="ACK" timeout="5000" ontimeout="up" next="up"/>
  <label id="end"/>
</scenario>
"""


def _sipp() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise RuntimeError("sipp is not installed (Debian package sip-tester; `make deps`)")
    return path


def write_callers(path: Path, callers: list[str]) -> Path:
    """sipp injection file: call n uses line n (wrapping around)."""
    path.write_text("SEQUENTIAL\n" + "".join(f"{c};\n" for c in callers))
    return path


def start_uac(work: Path, *, xml: str, ip: str, port: int, media_port: int, callers: Path,
              service: str, rate: float, calls: int, limit: int, timeout_s: int,
              target: str = ASTERISK) -> Child:
    """Place `calls` calls at `rate`/s (at most `limit` at once); sipp exits when done or at
    `timeout_s` (its own global timeout, so the run is bounded even if we are not watching)."""
    work.mkdir(parents=True, exist_ok=True)
    scen = work / "uac.xml"
    scen.write_text(xml)
    cmd = [_sipp(), "-sf", str(scen), "-i", ip, "-p", str(port), "-mi", ip,
           "-mp", str(media_port), "-nostdin", "-inf", str(callers), "-s", service,
           "-r", f"{rate:g}", "-rp", "1000", "-m", str(calls), "-l", str(limit),
           "-timeout", f"{timeout_s}s", "-recv_timeout", "10000",
           "-trace_msg", "-message_file", str(work / "messages.log"),
           "-trace_err", "-error_file", str(work / "errors.log"), target]
    return Child(cmd, work, work / "uac.out")


def start_uas(work: Path, *, ip: str, media_port: int, calls: int, timeout_s: int,
              rtp_echo: bool = False) -> Child:
    """A phone on ip:5060 answering `calls` calls at once; with `rtp_echo` it sends every RTP
    packet back (audio both ways without one pcap thread per call)."""
    work.mkdir(parents=True, exist_ok=True)
    scen = work / "uas.xml"
    scen.write_text(UAS_XML)
    cmd = [_sipp(), "-sf", str(scen), "-i", ip, "-p", "5060", "-mi", ip, "-mp", str(media_port),
           "-nostdin", "-m", str(calls), "-timeout", f"{timeout_s}s",
           "-trace_err", "-error_file", str(work / "uas-errors.log")]
    if rtp_echo:
        cmd.append("-rtp_echo")
    return Child(cmd, work, work / "uas.out")


@dataclass
class CallTiming:
    """One call as the UAC saw it; times are epoch seconds from sipp's message log."""

    call_id: str
    caller: str = ""
    invite_at: float = 0.0
    final_status: int | None = None
    final_at: float | None = None
    media_port: int | None = None  # far end's RTP port, from the 200's SDP
    bye_at: float | None = None
    bye_ok: bool = False

    @property
    def answered(self) -> bool:
        return self.final_status == 200

    @property
    def completed(self) -> bool:
        """Answered, and the BYE that ended it was accepted."""
        return self.answered and self.bye_ok

    @property
    def setup_s(self) -> float | None:
        return self.final_at - self.invite_at if self.answered and self.final_at else None


_SEPARATOR = re.compile(r"^-{10,} (\d{4}-\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+)\s*$")
_FROM_USER = re.compile(r"sip:([^@;>]*)@")
_M_AUDIO = re.compile(r"^m=audio (\d+)", re.M)


def _blocks(path: Path) -> Iterator[tuple[float, bool, list[str]]]:
    """(timestamp, sent, lines) per logged message, streaming (logs reach tens of MB)."""
    stamp: float | None = None
    sent = False
    lines: list[str] = []
    with path.open(errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\r\n")
            m = _SEPARATOR.match(line)
            if m:
                if stamp is not None:
                    yield stamp, sent, lines
                # sipp stamps in local time, like datetime.timestamp() reads a naive value.
                stamp = datetime.fromisoformat(re.sub(r"\s+", " ", m.group(1))).timestamp()
                lines = []
                sent = False
                continue
            if stamp is not None and not lines and ("message sent" in line
                                                    or "message received" in line):
                sent = "message sent" in line
                lines.append("")  # marks the header line as seen
                continue
            lines.append(line)
    if stamp is not None:
        yield stamp, sent, lines


def _header(lines: list[str], name: str) -> str:
    prefix = name.lower() + ":"
    for line in lines:  # SDP lines never look like "Name:", so the body can stay in
        if line[:len(prefix)].lower() == prefix:
            return line[len(prefix):].strip()
    return ""


def parse_calls(path: Path) -> dict[str, CallTiming]:
    """Per Call-ID: INVITE sent, first final response, media port of the 200, BYE result."""
    calls: dict[str, CallTiming] = {}
    if not path.exists():
        return calls
    for at, sent, lines in _blocks(path):
        body = [ln for ln in lines if ln]
        if not body:
            continue
        first = body[0]
        call_id = _header(body, "Call-ID")
        if not call_id:
            continue
        call = calls.setdefault(call_id, CallTiming(call_id))
        cseq = _header(body, "CSeq").split()
        method = cseq[1] if len(cseq) > 1 else ""
        if sent and first.startswith("INVITE "):
            if not call.invite_at:  # a retransmission keeps the first stamp
                call.invite_at = at
                m = _FROM_USER.search(_header(body, "From"))
                call.caller = m.group(1) if m else ""
        elif sent and first.startswith("BYE "):
            if call.bye_at is None:
                call.bye_at = at
        elif not sent and first.startswith("SIP/2.0 "):
            status = int(first.split()[1])
            if method == "INVITE" and status >= 200 and call.final_status is None:
                call.final_status, call.final_at = status, at
                if status == 200:
                    m = _M_AUDIO.search("\n".join(body))
                    call.media_port = int(m.group(1)) if m else None
            elif method == "BYE" and status == 200:
                call.bye_ok = True
    return {k: v for k, v in calls.items() if v.invite_at}
