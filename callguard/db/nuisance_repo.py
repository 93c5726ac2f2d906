"""Nuisance lists in PostgreSQL (NCR-*, REL-3). Two flavours, one set of statements: the
functions below take a sync Session (the CLI, an HTTP API); `AsyncLists` runs the very same
functions for the ARI app, one AsyncSession transaction each through `run_sync`.

Every change to a list first locks the list's row (SELECT … FOR UPDATE), so concurrent 144
sessions on one list are serialised and the 30-entry bound and FIFO order always hold.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import TypeVar

from sqlalchemy import delete, func, not_, select, text, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from callguard.db.models import (
    ENTRY_SEQ,
    Contract,
    InboundCall,
    NuisanceCounter,
    NuisanceEntry,
    NuisanceList,
    NuisanceSubscription,
    NuisanceUnitChange,
    Number,
)
from callguard.db.provision import ensure_nuisance_lists
from callguard.domain import nuisance, privacy
from callguard.domain.nuisance import Outcome, RegistrationPlan

T = TypeVar("T")
# A call "in progress" that started longer ago than this is a row whose end was lost (the
# shells close such rows when they start; REL-8 ends dead calls long before): it no longer
# blocks 144 → 2 for the whole list until the next restart.
STALE_IN_PROGRESS = timedelta(hours=24)


class ListGone(Exception):
    """The list was deactivated (unit changed) or never existed."""


class StorageFailed(Exception):
    """The database did not do it (down, slow, an error); the transaction was rolled back,
    so the list is unchanged (NCR-REG-7)."""


def _lock(session: Session, list_id: int) -> NuisanceList:
    lst = session.scalar(
        select(NuisanceList).where(NuisanceList.id == list_id, NuisanceList.active.is_(True))
        .with_for_update()
    )
    if lst is None:
        raise ListGone(f"list {list_id} is not active")
    return lst


def _entries(session: Session, list_id: int) -> list[NuisanceEntry]:
    return list(session.scalars(
        select(NuisanceEntry).where(NuisanceEntry.list_id == list_id)
        .order_by(NuisanceEntry.seq)))


def register(session: Session, list_id: int, caller_key: str,
             evict_confirmed: bool) -> RegistrationPlan:
    """NCR-REG-1/5/6: add the caller as the newest entry, applying the pure plan."""
    lst = _lock(session, list_id)
    rows = _entries(session, list_id)
    plan = nuisance.plan_registration([r.caller_key for r in rows], caller_key, lst.capacity,
                                      evict_confirmed)
    if plan.outcome is Outcome.NEEDS_EVICTION_CONFIRM:
        return plan
    if plan.removed:
        session.execute(delete(NuisanceEntry).where(
            NuisanceEntry.list_id == list_id, NuisanceEntry.caller_key.in_(plan.removed)))
    if plan.outcome is Outcome.MOVED_TO_NEWEST:
        session.execute(update(NuisanceEntry).where(
            NuisanceEntry.list_id == list_id, NuisanceEntry.caller_key == caller_key,
        ).values(seq=ENTRY_SEQ.next_value(), added_at=func.now()))
    else:
        session.add(NuisanceEntry(list_id=list_id, caller_key=caller_key))
    session.flush()
    return plan


def delete_newest(session: Session, list_id: int) -> bool:
    """NCR-DEL-1: False when the list was empty (NCR-DEL-3)."""
    _lock(session, list_id)
    rows = _entries(session, list_id)
    if not rows:
        return False
    session.delete(rows[-1])
    session.flush()
    return True


def delete_all(session: Session, list_id: int) -> int:
    """NCR-DEL-2: how many were removed (0: the list was empty)."""
    _lock(session, list_id)
    result = session.execute(delete(NuisanceEntry).where(NuisanceEntry.list_id == list_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def last_caller_candidates(session: Session, list_id: int,
                 secret: bytes | None = None) -> list[nuisance.InboundCall]:
    """What the last-caller rule reads (NCR-REG-2/3, `nuisance.select_last_caller`): the list's
    calls that reached a line and are still in progress, and those that ended last (all of
    them on a tie); with the secret, their caller keys unsealed (SEC-3: the call log holds them
    sealed per call, see privacy.seal_key). Rejected calls never count, and no window of "the
    latest N calls" can leave out the call that ended last or one still in progress."""
    # Two index range scans of ix_inbound_calls_list_rejected_end (migration
    # last_caller_index); `NOT rejected`, not `rejected IS false`, matches its second column.
    reached = (InboundCall.list_id == list_id, not_(InboundCall.rejected))
    columns = (InboundCall.caller_key, InboundCall.started_at, InboundCall.ended_at,
               InboundCall.rejected, InboundCall.channel_id)
    last_end = (select(InboundCall.ended_at)
                .where(*reached, InboundCall.ended_at.is_not(None))
                .order_by(InboundCall.ended_at.desc()).limit(1).scalar_subquery())
    rows = session.execute(union_all(
        select(*columns).where(*reached, InboundCall.ended_at.is_(None),
                               InboundCall.started_at > func.now() - STALE_IN_PROGRESS),
        select(*columns).where(*reached, InboundCall.ended_at == last_end),
    )).all()

    def key(sealed: str | None, channel_id: str) -> str | None:
        if sealed is None or secret is None:
            return sealed
        try:
            return privacy.unseal_key(secret, channel_id, sealed)
        except ValueError:
            return None  # not a sealed key: an unidentifiable caller
    return [nuisance.InboundCall(key(r[0], r[4]), r[1], r[2], r[3]) for r in rows]


def counts(session: Session, list_id: int, now: datetime) -> tuple[int, int | None]:
    """NCR-CNT-1: (this month, last month or None when the list did not exist then)."""
    this = nuisance.month_of(now)
    last = nuisance.previous_month(this)
    values = dict(session.execute(
        select(NuisanceCounter.month, NuisanceCounter.count).where(
            NuisanceCounter.list_id == list_id, NuisanceCounter.month.in_((this, last)))
    ).all())
    created = session.scalar(select(NuisanceList.created_at).where(NuisanceList.id == list_id))
    existed_last_month = created is not None and created < nuisance.month_start(this)
    return int(values.get(this, 0)), (int(values.get(last, 0)) if existed_last_month else None)


def monthly_counts(session: Session, list_id: int) -> list[tuple[str, int]]:
    """Every month's rejection count of a list, oldest first (NCR-CNT-1; counts only)."""
    rows = session.execute(
        select(NuisanceCounter.month, NuisanceCounter.count)
        .where(NuisanceCounter.list_id == list_id).order_by(NuisanceCounter.month)).all()
    return [(str(m), int(c)) for m, c in rows]


def entry_count(session: Session, list_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(NuisanceEntry).where(
        NuisanceEntry.list_id == list_id)) or 0)


@dataclass(frozen=True)
class ListSummary:
    """What may be shown about a list: never its numbers (NCR-PRIV-1)."""

    list: int
    unit: str
    entries: int
    capacity: int
    this_month: int
    last_month: int | None

    def to_json(self) -> dict[str, object]:
        return {"list": self.list, "unit": self.unit, "entries": self.entries,
                "capacity": self.capacity, "this_month": self.this_month,
                "last_month": self.last_month}


def list_for_number(session: Session, number: str) -> NuisanceList | None:
    """The active list screening calls to `number` (its own, or its contract's)."""
    num = session.scalar(select(Number).where(Number.number == number))
    if num is None:
        return None
    active = select(NuisanceList).where(NuisanceList.contract_id == num.contract_id,
                                        NuisanceList.active.is_(True))
    own = session.scalar(active.where(NuisanceList.number_id == num.id))
    if own is not None:
        return own
    return session.scalar(active.where(NuisanceList.number_id.is_(None),
                                       NuisanceList.unit == "per-contract"))


def summary(session: Session, lst: NuisanceList, now: datetime) -> ListSummary:
    this, last = counts(session, lst.id, now)
    return ListSummary(lst.id, lst.unit, entry_count(session, lst.id), lst.capacity, this, last)


class NotSubscribed(LookupError):
    """No nuisance-call rejection in force to change (none, or cancelled)."""


def set_unit(session: Session, contract_code: str, unit: str, today: date) -> bool:
    """NCR-UNIT-1: a new unit starts empty lists and counters; the old ones are not carried
    over (kept inactive). The change is recorded for the construction fee (BILL-*). False
    when the unit is already `unit`: nothing changes and nothing is billed. A cancelled
    subscription has no unit to change (NotSubscribed): it would bill construction work that
    was never done; subscribing again is a new application."""
    if unit not in ("per-number", "per-contract"):
        raise ValueError("unit must be per-number or per-contract")
    contract = session.scalar(select(Contract).where(Contract.code == contract_code))
    if contract is None:
        raise LookupError(f"no contract {contract_code!r}")
    sub = session.get(NuisanceSubscription, contract.id, with_for_update=True)
    if sub is None:
        raise NotSubscribed(f"contract {contract_code} has no nuisance-call rejection")
    if sub.cancelled_on is not None and sub.cancelled_on <= today:
        raise NotSubscribed(f"contract {contract_code}'s nuisance-call rejection was cancelled "
                            f"on {sub.cancelled_on.isoformat()}; subscribe again instead "
                            "(subscriptions nuisance set)")
    if sub.unit == unit:
        return False
    session.add(NuisanceUnitChange(contract_id=contract.id, changed_on=today,
                                   old_unit=sub.unit, new_unit=unit))
    session.execute(update(NuisanceList).where(
        NuisanceList.contract_id == contract.id, NuisanceList.active.is_(True),
    ).values(active=False))
    sub.unit = unit
    if unit == "per-number":
        # Every non-native number of the contract is subscribed under the per-number unit.
        session.execute(update(Number).where(
            Number.contract_id == contract.id, Number.role != "native",
        ).values(nuisance_subscribed=True))
    session.flush()
    ensure_nuisance_lists(session, contract)
    return True


class AsyncLists:
    """The ARI app's flavour: each method is one transaction of an AsyncSession running the
    sync function of the same name (same statements, same row lock: REL-3). Whatever fails
    inside — database down or slow, a broken row — rolls the transaction back and surfaces as
    StorageFailed (ListGone stays itself), so the 144 caller hears the failure guidance and
    nothing is half-written (NCR-REG-7)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], timeout_s: float = 3.0,
                 secret: bytes | None = None) -> None:
        self.sessions = sessions
        self.timeout_s = timeout_s
        self.secret = secret  # unseals the call log's caller keys (SEC-3)

    async def _tx(self, work: Callable[[Session], T]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s), self.sessions.begin() as session:
                return await session.run_sync(work)
        except ListGone:
            raise
        except Exception as exc:  # any storage failure, see the class docstring
            raise StorageFailed(f"{type(exc).__name__}: {exc}") from exc

    async def last_caller_candidates(self, list_id: int) -> list[nuisance.InboundCall]:
        return await self._tx(partial(last_caller_candidates, list_id=list_id, secret=self.secret))

    async def register(self, list_id: int, caller_key: str,
                       evict_confirmed: bool) -> RegistrationPlan:
        return await self._tx(partial(register, list_id=list_id, caller_key=caller_key,
                                      evict_confirmed=evict_confirmed))

    async def delete_newest(self, list_id: int) -> bool:
        return await self._tx(partial(delete_newest, list_id=list_id))

    async def delete_all(self, list_id: int) -> int:
        return await self._tx(partial(delete_all, list_id=list_id))

    async def counts(self, list_id: int, now: datetime) -> tuple[int, int | None]:
        return await self._tx(partial(counts, list_id=list_id, now=now))


class SyncLists:
    """The FastAGI fallback's flavour of the 144 menu's ListStore (REL-7: 144 works while the
    ARI app is down): the same functions, one sync Session transaction each, called from the
    handler thread's own event loop. Failures surface exactly as in AsyncLists, and so does
    a database that does not answer: after `timeout_s` (AsyncLists' 3 s) the menu gets
    StorageFailed and says so (NCR-REG-7, REL-2), never silence.

    Two bounds. The server's: each transaction starts with SET LOCAL statement_timeout and
    lock_timeout, so a slow statement or a row lock held elsewhere ends it there and frees
    its connection. The caller's: a hung server (stopped, or a network that swallows
    packets) enforces nothing and a blocking driver never returns, so the transaction runs
    on a daemon thread the menu stops waiting for; that thread ends (and gives its
    connection back) whenever the server or the connection does. A transaction whose work
    ends after the menu gave up rolls back; one whose COMMIT is already on its way when the
    menu gives up can still land (the caller heard "failed", the list changed: a second 2 says
    already registered). Meanwhile each such thread holds a connection of the menu's own pool
    (agi_scripts/fastagi.py: 2 + 8, a checkout waits at most as long as the menu), never one
    of the call-path writer's."""

    def __init__(self, sessions: sessionmaker[Session], secret: bytes | None = None,
                 timeout_s: float = 3.0) -> None:
        self.sessions = sessions
        self.secret = secret  # unseals the call log's caller keys (SEC-3)
        self.timeout_s = timeout_s

    def _tx(self, work: Callable[[Session], T],
            abandoned: threading.Event | None = None) -> T:
        try:
            with self.sessions.begin() as session:
                ms = max(1, int(self.timeout_s * 1000))
                session.execute(text(f"SET LOCAL statement_timeout = {ms}"))
                session.execute(text(f"SET LOCAL lock_timeout = {ms}"))
                result = work(session)
                if abandoned is not None and abandoned.is_set():
                    # The caller was already told it failed: roll back (a COMMIT already on
                    # its way is the one late change left, see the class).
                    raise TimeoutError("the menu gave up waiting")
                return result
        except ListGone:
            raise
        except Exception as exc:  # any storage failure, see AsyncLists
            raise StorageFailed(f"{type(exc).__name__}: {exc}") from exc

    async def _run(self, work: Callable[[Session], T]) -> T:
        done: Future[T] = Future()
        abandoned = threading.Event()

        def transaction() -> None:
            if not done.set_running_or_notify_cancel():
                return  # given up on before it started
            try:
                done.set_result(self._tx(work, abandoned))
            except BaseException as exc:  # handed to the waiting menu (StorageFailed, …)
                done.set_exception(exc)

        threading.Thread(target=transaction, name="cg-144-db", daemon=True).start()
        try:
            async with asyncio.timeout(self.timeout_s):
                return await asyncio.wrap_future(done)
        except TimeoutError as exc:
            abandoned.set()
            raise StorageFailed(f"TimeoutError: no answer within {self.timeout_s:g} s") from exc

    async def last_caller_candidates(self, list_id: int) -> list[nuisance.InboundCall]:
        return await self._run(partial(last_caller_candidates, list_id=list_id,
                                       secret=self.secret))

    async def register(self, list_id: int, caller_key: str,
                       evict_confirmed: bool) -> RegistrationPlan:
        return await self._run(partial(register, list_id=list_id, caller_key=caller_key,
                                       evict_confirmed=evict_confirmed))

    async def delete_newest(self, list_id: int) -> bool:
        return await self._run(partial(delete_newest, list_id=list_id))

    async def delete_all(self, list_id: int) -> int:
        return await self._run(partial(delete_all, list_id=list_id))

    async def counts(self, list_id: int, now: datetime) -> tuple[int, int | None]:
        return await self._run(partial(counts, list_id=list_id, now=now))
