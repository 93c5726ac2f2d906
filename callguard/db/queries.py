"""SQL statements used on the call path, written once and executed by either shell
(async session in the ARI app, sync session in the FastAGI fallback)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Insert, Select, Update, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from callguard.db.models import InboundCall, NuisanceCounter, NuisanceEntry, Recording
from callguard.domain.routing import RecordPlan


def is_blocked(list_id: int, caller_key: str) -> Select[tuple[bool]]:
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
    plan: RecordPlan, contract_id: int, channel_id: str, started_at: datetime
) -> Insert:
    return pg_insert(Recording).values(
        contract_id=contract_id, number=plan.number, direction=plan.direction,
        remote=plan.remote[:40], channel_id=channel_id, path=plan.rel_path,
        started_at=started_at, status="recording",
    ).on_conflict_do_nothing(index_elements=[Recording.channel_id])


def active_recordings() -> Select[tuple[int]]:
    return select(func.count()).select_from(Recording).where(Recording.status == "recording")


def recording_by_channel(channel_id: str) -> Select[tuple[Recording]]:
    return select(Recording).where(Recording.channel_id == channel_id)


def recording_ended(channel_id: str, ended_at: datetime) -> Update:
    return (
        update(Recording)
        .where(Recording.channel_id == channel_id, Recording.ended_at.is_(None))
        .values(ended_at=ended_at)
    )




def recording_finished(channel_id: str, values: dict[str, object]) -> Update:
    return update(Recording).where(Recording.channel_id == channel_id).values(**values)


def recording_answered(channel_id: str, answered_at: datetime) -> Update:
    return (
        update(Recording)
        .where(Recording.channel_id == channel_id, Recording.answered_at.is_(None))
        .values(answered_at=answered_at)
    )
