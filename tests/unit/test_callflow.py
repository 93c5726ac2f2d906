"""Which rows an inbound decision writes for the 144 last-caller rule (NCR-REG-2/3)."""

from __future__ import annotations

from datetime import UTC, datetime

from callguard.callflow import FOLLOW_INBOUND, inbound_bookkeeping
from callguard.domain.routing import Connect, Refuse, Reject
from callguard.domain.site import ContractInfo, NumberInfo

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
NUMBER = NumberInfo(1, "0312345679", "F1", "f1-b", "dial-in", list_id=7)
CONTRACT = ContractInfo(1, "F1", "fixed")


def test_connected_call_is_a_candidate_followed_to_its_end() -> None:  # NCR-REG-2
    book = inbound_bookkeeping(Connect("PJSIP/f1-b", 30), NUMBER, CONTRACT, "k", "c1", NOW)
    assert [op.name for op in book.ops] == ["inbound_call_started"]
    assert book.ops[0].args["rejected"] is False and book.follow == FOLLOW_INBOUND


def test_rejected_call_is_logged_as_rejected_and_counted() -> None:  # NCR-REG-2, NCR-REJ-1
    book = inbound_bookkeeping(Reject(7), NUMBER, CONTRACT, "k", "c1", NOW)
    assert [op.name for op in book.ops] == ["inbound_call_started", "count_rejection"]
    assert book.ops[0].args["rejected"] is True
    assert book.ops[1].args == {"list_id": 7, "month": "2026-11"}


def test_refused_call_never_reached_the_line() -> None:  # NCR-REG-3
    """Nothing would ever close such a row; left open it would block registrations."""
    book = inbound_bookkeeping(Refuse(34, "congestion"), NUMBER, CONTRACT, "k", "c1", NOW)
    assert book.ops == [] and book.follow == ""
