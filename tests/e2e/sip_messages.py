"""The SIP messages of sipp scenarios, shared by the e2e tests' callers and phones
(tests/e2e/sipp.py) and the bench's carrier and phone (bench/sipp.py).

Each function returns one `<send>` element; sipp fills the [bracketed] keywords per call
(`[last_Via:]` copies that header of the last message received, `[routes]` the dialog's route
set, `[len]` the body's length). What differs between scenarios (who we are in From/To, the
Request-URI, the CSeq, extra headers) is passed in; the order of the headers is fixed here.
"""

from __future__ import annotations

from collections.abc import Sequence

VIA = "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]"
# A request inside a dialog sipp keeps: From/To/Call-ID as last received, the route set.
IN_DIALOG = "[last_From:]\n[last_To:]\n[routes]\n[last_Call-ID:]"
# What a phone (a UAS on a customer address) says it is reached at.
PHONE_CONTACT = "<sip:[local_ip]:[local_port];transport=[transport]>"
# The To of our first answer in a dialog: the caller's To plus our tag.
TAGGED_TO = "[last_To:];tag=[pid]SIPpTag01[call_number]"
# Responses that end a call attempt (the caller ACKs them and counts the call as failed).
FAIL_CODES = (400, 401, 403, 404, 408, 480, 484, 486, 487, 488, 500, 503, 603)


def sdp(*, pcmu: bool = True, version: int = 1, direction: str = "sendrecv") -> str:
    """An audio offer or answer: PCMA (and PCMU unless `pcmu` is False) plus RFC 4733 events;
    `version` is the o= line's session version (a re-INVITE raises it)."""
    payloads = "8 0 101" if pcmu else "8 101"
    lines = ["v=0", f"o=- 1 {version} IN IP[local_ip_type] [local_ip]", "s=-",
             "c=IN IP[media_ip_type] [media_ip]", "t=0 0",
             f"m=audio [media_port] RTP/AVP {payloads}", "a=rtpmap:8 PCMA/8000",
             *(["a=rtpmap:0 PCMU/8000"] if pcmu else []),
             "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", f"a={direction}"]
    return "\n".join(lines)


def _send(lines: Sequence[str], body: str | None, attrs: str) -> str:
    """The message's lines, then its length: sipp's [len] with a body (even an empty one),
    0 without; the blank line; the body."""
    length = "Content-Length: 0" if body is None else "Content-Length: [len]"
    tail = "" if body is None else body + "\n"
    return (f"<send{attrs}><![CDATA[\n" + "\n".join([*lines, length]) + "\n\n" + tail
            + "]]></send>")


def request(method: str, ruri: str, cseq: int, dialog: str = IN_DIALOG, *,
            via: str = VIA, contact: str = "", extra: Sequence[str] = (),
            content_type: str = "", body: str | None = None, attrs: str = "") -> str:
    """A request: `dialog` holds its From, To, Call-ID (and route set) lines."""
    lines = [f"{method} {ruri} SIP/2.0", via, dialog, f"CSeq: {cseq} {method}"]
    if contact:
        lines.append(f"Contact: {contact}")
    lines.append("Max-Forwards: 70")
    lines.extend(extra)
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    return _send(lines, body, attrs)


def reply(status: str, *, to: str = "[last_To:]", cseq: str = "[last_CSeq:]",
          contact: str = "", body: str | None = None, attrs: str = "") -> str:
    """A response to the last request received, `status` being e.g. "200 OK"; `to` is
    TAGGED_TO for the first response of a dialog we answer. A body is an SDP."""
    lines = [f"SIP/2.0 {status}", "[last_Via:]", "[last_From:]", to, "[last_Call-ID:]", cseq]
    if contact:
        lines.append(f"Contact: {contact}")
    if body is not None:
        lines.append("Content-Type: application/sdp")
    return _send(lines, body, attrs)


def ringing() -> str:
    """A phone's 180 Ringing, opening the dialog with its tag."""
    return reply("180 Ringing", to=TAGGED_TO, contact=PHONE_CONTACT)


def answer(body: str) -> str:
    """A phone's 200 OK to an INVITE, retransmitted until the ACK."""
    return reply("200 OK", to=TAGGED_TO, contact=PHONE_CONTACT, body=body,
                 attrs=' retrans="500"')


def provisional_recvs(codes: Sequence[int] = (100, 180, 183, 180, 183)) -> str:
    """What a caller may hear before the final response (each optional; 180 and 183 may
    both come twice: ringing, then early media, then ringing again)."""
    return "\n  ".join(f'<recv response="{code}" optional="true"/>' for code in codes)


def failure_recvs(codes: Sequence[int] = FAIL_CODES) -> str:
    """A final failure response jumps to the scenario's `failed` label."""
    return "\n  ".join(f'<recv response="{c}" optional="true" next="failed"/>' for c in codes)


# The ACK of a failed INVITE (same transaction: its Via, From and To as received).
ACK_FAILURE = request("ACK", "sip:[service]@[remote_ip]:[remote_port]", 1,
                      "[last_From:]\n[last_To:]\n[last_Call-ID:]", via="[last_Via:]")
