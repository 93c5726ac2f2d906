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


def test_declined_data_call_is_not_counted() -> None:  # NCR-REJ-2, NCR-CNT-1, source 004
    """4 reads 「メッセージ応答した回数」: a call declined without the message is not one."""
    book = inbound_bookkeeping(Reject(7, audio=False), NUMBER, CONTRACT, "k", "c1", NOW)
    assert [op.name for op in book.ops] == ["inbound_call_started"]
    assert book.ops[0].args["rejected"] is True


def test_listed_video_or_wideband_call_asked_to_retry_writes_nothing() -> None:
    """Source 004 ■テレビ電話 ■高音質電話: the 488 (cause 58) is neither counted nor a
    last-caller candidate (nothing would close its row)."""
    book = inbound_bookkeeping(Refuse(58), NUMBER, CONTRACT, "k", "c1", NOW)
    assert book.ops == [] and book.follow == ""


def test_refused_call_never_reached_the_line() -> None:  # NCR-REG-3
    """Nothing would ever close such a row; left open it would block registrations."""
    book = inbound_bookkeeping(Refuse(34, "congestion"), NUMBER, CONTRACT, "k", "c1", NOW)
    assert book.ops == [] and book.follow == ""
