"""SQL statements used on the call path, written once and executed by either shell
(async session in the ARI app, sync session in the FastAGI fallback)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, Insert, Select, Update, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from callguard.db.models import (
    CallOutcome,
    InboundCall,
    NuisanceCounter,
    NuisanceEntry,
    Recording,
)


def is_blocked(list_id: int, caller_key: str) -> Select[bool]:
    """One indexed lookup on (list_id, caller_key) (PERF-3)."""
    return select(
        exists().where(NuisanceEntry.list_id == list_id, NuisanceEntry.caller_key == caller_key)
    )


def count_rejection(list_id: int, month: str) -> Insert:
    """Atomic +1 on the list's counter for the month (NCR-REJ-1)."""
    stmt = pg_insert(NuisanceCounter).values(list_id=list_id, month=month, count=1)
    return stmt.on_conflict_do_update(
        index_elements=[NuisanceCounter.list_id, NuisanceCounter.month],
        set_={"count": NuisanceCounter.count + 1},
    )


def inbound_call_started(
    channel_id: str, list_id: int, number_id: int, caller_key: str | None, rejected: bool,
    started_at: datetime,
) -> Insert:
    return pg_insert(InboundCall).values(
        channel_id=channel_id, list_id=list_id, number_id=number_id, caller_key=caller_key,
        rejected=rejected, started_at=started_at,
    ).on_conflict_do_nothing(index_elements=[InboundCall.channel_id])


def inbound_call_ended(channel_id: str, ended_at: datetime) -> Update:
    return (
        update(InboundCall)
        .where(InboundCall.channel_id == channel_id, InboundCall.ended_at.is_(None))
        .values(ended_at=ended_at)
    )


def recording_started(
    contract_id: int, number: str, direction: str, remote: str, channel_id: str, path: str,
    started_at: datetime,
) -> Insert:
    return pg_insert(Recording).values(
        contract_id=contract_id, number=number, direction=direction, remote=remote[:40],
        channel_id=channel_id, path=path, started_at=started_at, status="recording",
        # Explicit: inside a data-modifying CTE (ari_app/store.py `combined`) the columns'
        # Python-side defaults are sent as NULL, which the NOT NULL columns refuse.
        encrypted=False, muted=[],
    ).on_conflict_do_nothing(index_elements=[Recording.channel_id])


def active_recordings() -> Select[int]:
    return select(func.count()).select_from(Recording).where(Recording.status == "recording")


def recording_by_channel(channel_id: str) -> Select[Recording]:
    return select(Recording).where(Recording.channel_id == channel_id)


def recording_ended(channel_id: str, ended_at: datetime) -> Update:
    return (
        update(Recording)
        .where(Recording.channel_id == channel_id, Recording.ended_at.is_(None))
        .values(ended_at=ended_at)
    )




def recording_finished(channel_id: str, values: dict[str, object]) -> Update:
    """First finisher wins: a row `callguard recordings reconcile` already closed (or a
    shell finished) is not overwritten by a later, less informed finish (REC-FILE-2)."""
    return (
        update(Recording)
        .where(Recording.channel_id == channel_id, Recording.status == "recording")
        .values(**values)
    )


def recording_answered(channel_id: str, answered_at: datetime) -> Update:
    return (
        update(Recording)
        .where(Recording.channel_id == channel_id, Recording.answered_at.is_(None))
        .values(answered_at=answered_at)
    )


def call_outcome(at: datetime, contract_id: int | None, direction: str, outcome: str,
                 refuse_class: str, via: str) -> Insert:
    """One decided call for the overview page (callguard.metrics.outcome_op)."""
    return pg_insert(CallOutcome).values(at=at, contract_id=contract_id, direction=direction,
                                         outcome=outcome, refuse_class=refuse_class[:32],
                                         via=via)


# The writes of the call path by name, so they can be journaled as data while the database is
# away and replayed later (REL-2): callguard.journal.Op(name, args) → statement.
WRITES: dict[str, Callable[..., Executable]] = {
    "call_outcome": call_outcome,
    "count_rejection": count_rejection,
    "inbound_call_started": inbound_call_started,
    "inbound_call_ended": inbound_call_ended,
    "recording_started": recording_started,
    "recording_ended": recording_ended,
    "recording_answered": recording_answered,
    "recording_finished": recording_finished,
}


def write_statement(name: str, args: dict[str, Any]) -> Executable:
    return WRITES[name](**args)


def unfinished_calls() -> Select[str, str, str]:
    """Calls a shell was following when it stopped: (channel id, follow kind, recording path).

    Recordings still `recording`, and inbound calls of a nuisance scope never closed."""
    recs = select(Recording.channel_id, literal("rec"), Recording.path).where(
        Recording.status == "recording")
    # NOT EXISTS, not NOT IN: an anti-join by the recordings' unique channel index. NOT IN
    # over every recording's channel id cannot be hashed once the ids outgrow work_mem, and
    # then reads all recordings per open call: 21 s at 10^6 of each (PERF-3's scale).
    calls = select(InboundCall.channel_id, literal("in"), literal("")).where(
        InboundCall.ended_at.is_(None), InboundCall.rejected.is_(False),
        ~exists().where(Recording.channel_id == InboundCall.channel_id))
    return recs.union_all(calls)  # type: ignore[return-value]
