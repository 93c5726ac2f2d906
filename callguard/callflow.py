"""What follows a routing decision, for either shell: the rows to write and whether the call
must be followed to its end. Shared by the ARI app and the FastAGI fallback (REL-1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callguard.db import queries
from callguard.domain import nuisance
from callguard.domain.routing import Capacity, Connect, Decision, Reject
from callguard.domain.site import ContractInfo, NumberInfo, SiteSnapshot

# Why a call is followed to its end: "rec" finalises a recording, "in" closes the inbound call
# row used by the 144 last-caller rule.
FOLLOW_RECORDING = "rec"
FOLLOW_INBOUND = "in"


@dataclass(frozen=True)
class Bookkeeping:
    statements: list[Any] = field(default_factory=list)
    follow: str = ""


def inbound_bookkeeping(
    decision: Decision, number: NumberInfo | None, contract: ContractInfo | None,
    caller_key: str | None, channel_id: str, now: datetime,
) -> Bookkeeping:
    statements: list[Any] = []
    if number is not None and number.list_id is not None:
        # NCR-REG-2: every call that reached the line is a last-caller candidate; rejected
        # ones are logged as such so they never count.
        statements.append(queries.inbound_call_started(
            channel_id, number.list_id, number.id, caller_key, isinstance(decision, Reject), now,
        ))
    if isinstance(decision, Reject):
        statements.append(queries.count_rejection(decision.list_id, nuisance.month_of(now)))
    follow = ""
    if isinstance(decision, Connect):
        if decision.record is not None and contract is not None:
            statements.append(
                queries.recording_started(decision.record, contract.id, channel_id, now)
            )
            follow = FOLLOW_RECORDING
        elif number is not None and number.list_id is not None:
            follow = FOLLOW_INBOUND
    return Bookkeeping(statements, follow)


def outbound_bookkeeping(
    decision: Decision, contract: ContractInfo | None, channel_id: str, now: datetime
) -> Bookkeeping:
    if isinstance(decision, Connect) and decision.record is not None and contract is not None:
        return Bookkeeping(
            [queries.recording_started(decision.record, contract.id, channel_id, now)],
            FOLLOW_RECORDING,
        )
    return Bookkeeping()


def ended_statements(channel_id: str, follow: str, now: datetime) -> list[Any]:
    statements: list[Any] = [queries.inbound_call_ended(channel_id, now)]
    if follow == FOLLOW_RECORDING:
        statements.append(queries.recording_ended(channel_id, now))
    return statements


def capacity_for(site: SiteSnapshot, active: int, default_max: int,
                 default_policy: str) -> Capacity:
    """REC-CAP-1 limits: the site_settings rows win over the process defaults."""
    return Capacity(
        active,
        site.setting_int("max_recordings", default_max),
        site.settings.get("at_capacity_policy", default_policy),
    )
