"""Issue #14 transfer-proof recording: which channel a followed recording moves to, read from
ARI's BridgeBlindTransfer event (pure)."""

from callguard.callflow import blind_transfer_handover


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
