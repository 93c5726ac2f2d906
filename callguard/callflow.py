"""What follows a routing decision, for either shell: the rows to write and whether the call
must be followed to its end. Shared by the ARI app and the FastAGI fallback (REL-1)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from callguard.domain import nuisance
from callguard.domain.routing import Capacity, Connect, Decision, RecordPlan, Reject
from callguard.domain.site import ContractInfo, NumberInfo, SiteSnapshot
from callguard.journal import Op

# Why a call is followed to its end: "rec" finalises a recording, "in" closes the inbound call
# row used by the 144 last-caller rule.
FOLLOW_RECORDING = "rec"
FOLLOW_INBOUND = "in"


class Bookkeeping:
    """What follows a routing decision: whether the call is followed to its end (`follow`,
    and its recording file `rel_path`), known at once, and the rows to write (`ops`), built
    on first use when given as a function. The ARI app writes a call's continue before it
    needs the rows (PERF-1), so the per-call keyed seal and the rows are made after it."""

    __slots__ = ("_make", "_ops", "follow", "rel_path")

    def __init__(self, ops: list[Op] | Callable[[], list[Op]] | None = None,
                 follow: str = "", rel_path: str = "") -> None:
        self.follow = follow
        self.rel_path = rel_path  # kept so the call can be finished without a read
        self._ops: list[Op] | None = [] if ops is None else None if callable(ops) else ops
        self._make = ops if callable(ops) else None

    @property
    def ops(self) -> list[Op]:
        if self._ops is None:
            assert self._make is not None
            self._ops, self._make = self._make(), None
        return self._ops

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bookkeeping):
            return NotImplemented
        return (self.follow, self.rel_path, self.ops) == (other.follow, other.rel_path,
                                                          other.ops)

    __hash__ = None  # type: ignore[assignment]  # mutable rows: not a dict key

    def __repr__(self) -> str:
        return f"Bookkeeping({self.ops!r}, {self.follow!r}, {self.rel_path!r})"


def inbound_bookkeeping(
    decision: Decision, number: NumberInfo | None, contract: ContractInfo | None,
    caller_key: str | Callable[[], str | None] | None, channel_id: str, now: datetime,
) -> Bookkeeping:
    """`caller_key` (the sealed key of the call log) may be a function: it is called only
    when the rows are built."""
    listed_line = number is not None and number.list_id is not None

    def ops() -> list[Op]:
        rows: list[Op] = []
        if number is not None and number.list_id is not None and isinstance(
                decision, Connect | Reject):
            # NCR-REG-2: every call that reached the line is a last-caller candidate;
            # rejected ones are logged as such so they never count. A refused call (e.g.
            # congestion at the recording capacity) never reached it, and nothing would
            # close its row: left "in progress" it would block the scope's registrations
            # (NCR-REG-3).
            rows.append(Op("inbound_call_started", {
                "channel_id": channel_id, "list_id": number.list_id, "number_id": number.id,
                "caller_key": caller_key() if callable(caller_key) else caller_key,
                "rejected": isinstance(decision, Reject), "started_at": now,
            }))
        if isinstance(decision, Reject) and decision.counted:  # NCR-CNT-1: heard the message
            rows.append(Op("count_rejection",
                           {"list_id": decision.list_id, "month": nuisance.month_of(now)}))
        if isinstance(decision, Connect) and decision.record is not None \
                and contract is not None:
            rows.append(_recording_started(decision.record, contract.id, channel_id, now))
        return rows

    if isinstance(decision, Connect):
        if decision.record is not None and contract is not None:
            return Bookkeeping(ops, FOLLOW_RECORDING, decision.record.rel_path)
        if listed_line:
            return Bookkeeping(ops, FOLLOW_INBOUND)
    return Bookkeeping(ops)


def _recording_started(plan: RecordPlan, contract_id: int, channel_id: str,
                       now: datetime) -> Op:
    return Op("recording_started", {
        "contract_id": contract_id, "number": plan.number, "direction": plan.direction,
        "remote": plan.remote, "channel_id": channel_id, "path": plan.rel_path,
        "started_at": now,
    })


def outbound_bookkeeping(
    decision: Decision, contract: ContractInfo | None, channel_id: str, now: datetime
) -> Bookkeeping:
    if isinstance(decision, Connect) and decision.record is not None and contract is not None:
        return Bookkeeping(
            [_recording_started(decision.record, contract.id, channel_id, now)],
            FOLLOW_RECORDING, decision.record.rel_path,
        )
    return Bookkeeping()


def ended_ops(channel_id: str, follow: str, now: datetime) -> list[Op]:
    ops = [Op("inbound_call_ended", {"channel_id": channel_id, "ended_at": now})]
    if follow == FOLLOW_RECORDING:
        ops.append(Op("recording_ended", {"channel_id": channel_id, "ended_at": now}))
    return ops


def capacity_for(site: SiteSnapshot, active: int, default_max: int,
                 default_policy: str) -> Capacity:
    """REC-CAP-1 limits: the site_settings rows win over the process defaults."""
    return Capacity(
        active,
        site.setting_int("max_recordings", default_max),
        site.settings.get("at_capacity_policy", default_policy),
    )


def answered_at(ended_at: datetime, answered_ms: str) -> datetime | None:
    """When a call was answered, from Dial's ANSWEREDTIME_MS read at its end (the FastAGI
    path has no ChannelStateChange); None when it never was (REC-FILE-1 `answered_at`)."""
    try:
        ms = int(answered_ms)
    except ValueError:
        return None
    return ended_at - timedelta(milliseconds=ms) if ms > 0 else None


def blind_transfer_handover(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(the transferring channel, the channel that stays) of a successful blind transfer, from
    ARI's BridgeBlindTransfer event; None otherwise (issue #14 transfer-proof recording).

    When the customer's phone that leaves held the recording (an outbound call), the dialplan
    (cg-transfer) goes on recording on the channel that stays, into the same file, and the
    call's end is that channel's end."""
    if event.get("type") != "BridgeBlindTransfer" or event.get("result") != "Success":
        return None
    left = str((event.get("channel") or {}).get("id", ""))
    stays = str((event.get("transferee") or {}).get("id", ""))
    return (left, stays) if left and stays and left != stays else None


TRANSFER_CONTEXT = "cg-transfer"  # where a phone's blind REFER sends the party it leaves


def in_transfer_context(channels: Iterable[Mapping[str, Any]]) -> list[str]:
    """The ids of the channels the dialplan runs in cg-transfer, from ARI's channel list: those
    a phone's blind transfer has left (issue #14). Used when BridgeBlindTransfer never reached
    the app (it is published on the bridge's and the transferring channel's topics, and both
    may be gone first); each one's BLINDTRANSFER then says who transferred it."""
    return [str(c["id"]) for c in channels
            if (c.get("dialplan") or {}).get("context") == TRANSFER_CONTEXT and c.get("id")]


def transferred_by(blindtransfer: str, left_name: str) -> bool:
    """Was this channel left by `left_name`'s blind transfer? BLINDTRANSFER holds the
    transferring channel's name, set on the transferee by Asterisk."""
    return bool(left_name) and blindtransfer.strip() == left_name


def attended_transfer_handovers(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(the transferring channel that leaves, the channel that stays with it) of a successful
    attended transfer, from ARI's BridgeAttendedTransfer event: the first leg (the dialog the
    REFER came on) leaves its transferee, the second (the consult call) its transfer target
    (issue #14 transfer-proof recording).

    A recording that ran on a leaving leg (an outbound call: MixMonitor on the phone's leg) goes
    on from the channel that stays: the ARI app records it there and appends it to the same
    file; the call's end is that channel's end."""
    if event.get("type") != "BridgeAttendedTransfer" or event.get("result") != "Success":
        return []
    out: list[tuple[str, str]] = []
    for leaves, stays in (("transferer_first_leg", "transferee"),
                          ("transferer_second_leg", "transfer_target")):
        left = str((event.get(leaves) or {}).get("id", ""))
        kept = str((event.get(stays) or {}).get("id", ""))
        if left and kept and left != kept:
            out.append((left, kept))
    return out


def leaves_on_transfer(rel_path: str) -> bool:
    """Whether a recording runs on a leg that a transfer takes away: an outbound call's
    (MixMonitor on the customer phone's own leg; REC-FILE-1 names it `<stamp>_out_<id>`).
    Inbound, it runs on the carrier's leg, which stays (issue #14)."""
    return "_out_" in rel_path.rsplit("/", 1)[-1]

