"""Issue #14 transfer-proof recording: which channel a followed recording moves to, read from
ARI's BridgeBlindTransfer and BridgeAttendedTransfer events (pure)."""

from callguard.callflow import (
    attended_transfer_handovers,
    blind_transfer_handover,
    in_transfer_context,
    leaves_on_transfer,
    transferred_by,
)


def event(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"type": "BridgeBlindTransfer", "result": "Success",
                               "channel": {"id": "a.1"}, "transferee": {"id": "b.2"}}
    base.update(kw)
    return base


def test_successful_blind_transfer_hands_over_to_the_transferee() -> None:
    assert blind_transfer_handover(event()) == ("a.1", "b.2")


def test_failed_or_other_events_hand_nothing_over() -> None:
    assert blind_transfer_handover(event(result="Fail")) is None
    assert blind_transfer_handover(event(type="BridgeAttendedTransfer")) is None
    assert blind_transfer_handover(event(transferee=None)) is None
    assert blind_transfer_handover(event(channel={})) is None
    assert blind_transfer_handover(event(transferee={"id": "a.1"})) is None


def attended(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "BridgeAttendedTransfer", "result": "Success",
        "transferer_first_leg": {"id": "a.1"}, "transferee": {"id": "b.2"},
        "transferer_second_leg": {"id": "c.3"}, "transfer_target": {"id": "d.4"}}
    base.update(kw)
    return base


def test_attended_transfer_hands_each_leaving_leg_over_to_its_peer() -> None:
    assert attended_transfer_handovers(attended()) == [("a.1", "b.2"), ("c.3", "d.4")]
    assert attended_transfer_handovers(attended(transfer_target=None)) == [("a.1", "b.2")]


def test_failed_attended_transfer_hands_nothing_over() -> None:
    assert attended_transfer_handovers(attended(result="Fail")) == []
    assert attended_transfer_handovers(attended(type="BridgeBlindTransfer")) == []
    assert attended_transfer_handovers(attended(transferee={"id": "a.1"},
                                                transfer_target={})) == []


def test_only_outbound_recordings_leave_with_the_transferring_leg() -> None:
    assert leaves_on_transfer("2026/12/02/F1/20261202T075342Z_out_1796198022.207.wav")
    assert not leaves_on_transfer("2026/12/02/F1/20261202T075342Z_in_1796198022.207.wav")
    assert not leaves_on_transfer("")


def test_channels_left_in_the_transfer_context_are_the_candidates() -> None:
    """Without BridgeBlindTransfer, the party a blind transfer left is the channel the
    dialplan runs in cg-transfer."""
    listed: list[dict[str, object]] = [
        {"id": "c.1", "dialplan": {"context": "cg-transfer", "exten": "0312345679"}},
        {"id": "c.2", "dialplan": {"context": "cg-connect"}},
        {"id": "c.3", "dialplan": {"context": "cg-transfer-dial"}},
        {"id": "c.4"}, {"dialplan": {"context": "cg-transfer"}}]
    assert in_transfer_context(listed) == ["c.1"]
    assert in_transfer_context([]) == []


def test_the_transferee_is_told_by_its_blindtransfer_variable() -> None:
    assert transferred_by("PJSIP/f1-a-0000001c", "PJSIP/f1-a-0000001c")
    assert transferred_by("PJSIP/f1-a-0000001c\n", "PJSIP/f1-a-0000001c")
    assert not transferred_by("PJSIP/f1-a-0000001d", "PJSIP/f1-a-0000001c")
    assert not transferred_by("", "")
    assert not transferred_by("PJSIP/f1-a-0000001c", "")
