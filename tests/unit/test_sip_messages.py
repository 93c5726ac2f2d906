"""The shared sipp message builders (tests/e2e/sip_messages.py): each `<send>` holds one SIP
message as sipp sends it, start line, headers, a blank line, then the body if any."""

from __future__ import annotations

import re

import pytest

from tests.e2e import sip_messages as sip


def message(send: str) -> tuple[list[str], str | None]:
    """(start line and headers, body or None) of one <send> element."""
    m = re.fullmatch(r'<send[^>]*><!\[CDATA\[\n(.*)\]\]></send>', send, re.S)
    assert m, send
    head, sep, rest = m.group(1).partition("\n\n")
    assert sep, "no blank line after the headers"
    return head.split("\n"), (rest.removesuffix("\n") if rest else None)


def test_an_in_dialog_request_keeps_the_dialog_and_orders_its_headers() -> None:
    lines, body = message(sip.request("INFO", "[next_url]", 12,
                                      content_type="application/dtmf-relay",
                                      body="Signal=2\nDuration=160"))
    assert lines == ["INFO [next_url] SIP/2.0", sip.VIA, "[last_From:]", "[last_To:]",
                     "[routes]", "[last_Call-ID:]", "CSeq: 12 INFO", "Max-Forwards: 70",
                     "Content-Type: application/dtmf-relay", "Content-Length: [len]"]
    assert body == "Signal=2\nDuration=160"


def test_extra_headers_come_after_max_forwards_and_before_the_body_headers() -> None:
    lines, body = message(sip.request(
        "INVITE", "sip:[service]@[remote_ip]:[remote_port]", 1,
        "From: <sip:a@[local_ip]>;tag=x\nTo: <sip:[service]@[remote_ip]>\nCall-ID: [call_id]",
        contact="<sip:a@[local_ip]:[local_port]>", extra=["Privacy: id", "Priority: urgent"],
        content_type="application/sdp", body=sip.sdp(), attrs=' retrans="500"'))
    names = [ln.split(":", 1)[0] for ln in lines[1:]]
    assert names == ["Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards",
                     "Privacy", "Priority", "Content-Type", "Content-Length"]
    assert body is not None and body.startswith("v=0\n") and body.endswith("a=sendrecv")


def test_a_request_without_a_body_says_length_zero_and_an_empty_body_lets_sipp_count() -> None:
    lines, body = message(sip.request("BYE", "[next_url]", 2))
    assert lines[-1] == "Content-Length: 0" and body is None
    lines, body = message(sip.request("INVITE", "[next_url]", 1, body=""))
    assert lines[-1] == "Content-Length: [len]" and body == ""


def test_a_phones_answer_opens_the_dialog_with_its_tag_and_an_sdp() -> None:
    lines, body = message(sip.answer(sip.sdp(pcmu=False)))
    assert lines[:3] == ["SIP/2.0 200 OK", "[last_Via:]", "[last_From:]"]
    assert sip.TAGGED_TO in lines and f"Contact: {sip.PHONE_CONTACT}" in lines
    assert lines[-2:] == ["Content-Type: application/sdp", "Content-Length: [len]"]
    assert body is not None and "m=audio [media_port] RTP/AVP 8 101" in body
    assert "PCMU" not in body
    assert sip.answer("").startswith('<send retrans="500">')


@pytest.mark.parametrize(("status", "to"), [("486 Busy Here", sip.TAGGED_TO),
                                            ("200 OK", "[last_To:]")])
def test_a_reply_copies_the_request_and_has_no_body_unless_given(status: str, to: str) -> None:
    lines, body = message(sip.reply(status, to=to))
    assert lines == [f"SIP/2.0 {status}", "[last_Via:]", "[last_From:]", to,
                     "[last_Call-ID:]", "[last_CSeq:]", "Content-Length: 0"]
    assert body is None


def test_a_hold_offer_raises_the_session_version_and_sends_only() -> None:
    offer = sip.sdp(version=2, direction="sendonly")
    assert "o=- 1 2 IN IP[local_ip_type] [local_ip]" in offer.split("\n")
    assert offer.endswith("a=sendonly")


def test_a_failed_invite_is_acked_in_its_own_transaction() -> None:
    lines, body = message(sip.ACK_FAILURE)
    assert lines[:2] == ["ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0", "[last_Via:]"]
    assert "CSeq: 1 ACK" in lines and "[routes]" not in lines and body is None
    assert sip.failure_recvs((486,)) == '<recv response="486" optional="true" next="failed"/>'
