"""Nuisance-call rejection rules (NCR-*): list bound and order, last-caller selection, month
counters, and the 144 menu as a state machine. Pure: no I/O, times passed in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")
DEFAULT_CAPACITY = 30
SMALL_CAPACITY = 6
REGISTRATION_WINDOW = timedelta(seconds=60)  # NCR-REG-3, multi-channel scopes only
MENU_TRIES = 3  # NCR: invalid or missing input repeats the menu, 3 times in all

# Prompt names (sounds/manifest.tsv).
MENU = "menu"
REGISTERED = "registered"
CANNOT_IDENTIFY = "cannot_identify"
LIST_FULL = "list_full"
REGISTER_FAILED = "register_failed"
REGISTER_CANCELLED = "register_cancelled"
DELETED_NEWEST = "deleted_newest"
DELETED_ALL = "deleted_all"
LIST_EMPTY = "list_empty"
NOT_SUBSCRIBED = "not_subscribed"
INVALID_INPUT = "invalid_input"
REJECT = "reject"
COUNT_THIS_MONTH = "count_this_month"
COUNT_LAST_MONTH = "count_last_month"


# ---- the list: bounded, oldest → newest ----------------------------------------------------
class Outcome(Enum):
    ADDED = "added"
    MOVED_TO_NEWEST = "moved"  # NCR-REG-6: already listed, becomes the newest
    NEEDS_EVICTION_CONFIRM = "needs_confirm"  # NCR-REG-5: full, ask for "0"
    EVICTED_OLDEST_AND_ADDED = "evicted"


@dataclass(frozen=True)
class RegistrationPlan:
    outcome: Outcome
    entries: tuple[str, ...]  # the list afterwards, oldest → newest
    removed: tuple[str, ...] = ()


def plan_registration(entries: Sequence[str], new_key: str, capacity: int,
                      evict_confirmed: bool) -> RegistrationPlan:
    current = tuple(entries)
    if new_key in current:
        rest = tuple(k for k in current if k != new_key)
        return RegistrationPlan(Outcome.MOVED_TO_NEWEST, (*rest, new_key))
    if len(current) < capacity:
        return RegistrationPlan(Outcome.ADDED, (*current, new_key))
    if not evict_confirmed:
        return RegistrationPlan(Outcome.NEEDS_EVICTION_CONFIRM, current)
    drop = len(current) - capacity + 1
    return RegistrationPlan(Outcome.EVICTED_OLDEST_AND_ADDED,
                            (*current[drop:], new_key), current[:drop])


def remove_newest(entries: Sequence[str]) -> tuple[tuple[str, ...], str | None]:
    """NCR-DEL-1 (None removed: the list was empty, NCR-DEL-3)."""
    if not entries:
        return (), None
    return tuple(entries[:-1]), entries[-1]


def remove_all(entries: Sequence[str]) -> tuple[tuple[str, ...], int]:
    """NCR-DEL-2: (empty list, how many were removed)."""
    return (), len(entries)


# ---- who was the last caller (NCR-REG-2/3) ---------------------------------------------------
@dataclass(frozen=True)
class InboundCall:
    caller_key: str | None  # None: the network gave no number
    started_at: datetime
    ended_at: datetime | None  # None: still in progress
    rejected: bool = False


class Refusal(Enum):
    NO_CALL = "no_call"
    NO_IDENTITY = "no_identity"
    WINDOW_EXPIRED = "window_expired"
    CALL_IN_PROGRESS_FROM_OTHER = "in_progress_from_other"


@dataclass(frozen=True)
class LastCaller:
    key: str | None
    refusal: Refusal | None = None


def select_last_caller(calls: Sequence[InboundCall], now: datetime, multi_channel: bool,
                       window: timedelta = REGISTRATION_WINDOW) -> LastCaller:
    """The caller of the most recently *ended* call that reached the line.

    Rejected calls never count (NCR-REG-2). In a multi-channel scope (more than one channel
    or number) only within `window` after that call ended, and not while a call from a
    different caller is still in progress: the source's (A)/(B) overlap makes both
    unregistrable until the other ends, unless both are the same number (NCR-REG-3). A
    single-channel scope has no time limit: the source states the 60 s only under 複数チャネル.
    """
    reached = [c for c in calls if not c.rejected]
    ended = [c for c in reached if c.ended_at is not None]
    if not ended:
        return LastCaller(None, Refusal.NO_CALL)
    last = max(ended, key=lambda c: (c.ended_at, c.started_at))
    if any(c.ended_at is None and c.caller_key != last.caller_key for c in reached):
        return LastCaller(None, Refusal.CALL_IN_PROGRESS_FROM_OTHER)
    assert last.ended_at is not None
    if multi_channel and now - last.ended_at > window:
        return LastCaller(None, Refusal.WINDOW_EXPIRED)
    if last.caller_key is None:
        return LastCaller(None, Refusal.NO_IDENTITY)
    return LastCaller(last.caller_key)


# ---- counters (NCR-CNT-1) --------------------------------------------------------------------
def month_of(ts: datetime) -> str:
    """Calendar month in Asia/Tokyo, 'YYYY-MM'."""
    return ts.astimezone(TOKYO).strftime("%Y-%m")


def previous_month(month: str) -> str:
    year, mon = (int(part) for part in month.split("-"))
    return f"{year - 1:04d}-12" if mon == 1 else f"{year:04d}-{mon - 1:02d}"


def month_start(month: str) -> datetime:
    year, mon = (int(part) for part in month.split("-"))
    return datetime(year, mon, 1, tzinfo=TOKYO)


def _times(n: int) -> str:
    return "times_100_plus" if n >= 100 else f"times_{max(n, 0)}"


def count_prompts(this_month: int, last_month: int | None) -> list[str]:
    """「今月、メッセージ応答した回数は〇〇回です。」 and, when the list existed last month,
    「前月、…」; 0–99 as the number, 100 and above as 「100回以上」."""
    prompts = [COUNT_THIS_MONTH, _times(this_month)]
    if last_month is not None:
        prompts += [COUNT_LAST_MONTH, _times(last_month)]
    return prompts


# ---- the 144 menu ---------------------------------------------------------------------------
class MenuAction(Enum):
    PLAY_MENU = "menu"
    REGISTER = "register"
    DELETE_NEWEST = "delete_newest"
    DELETE_ALL = "delete_all"
    READ_COUNTS = "read_counts"
    HANGUP = "hangup"


_CHOICES = {"2": MenuAction.REGISTER, "3": MenuAction.DELETE_NEWEST,
            "9": MenuAction.DELETE_ALL, "4": MenuAction.READ_COUNTS}


@dataclass(frozen=True)
class MenuState:
    attempts: int = 0  # menus played so far without a valid choice


def on_menu_input(state: MenuState, digit: str | None) -> tuple[MenuState, MenuAction]:
    """After the menu was played (`attempts` counts it): a valid digit is the choice; a wrong
    digit or silence (None) plays the menu again, 3 menus in all, then release."""
    action = _CHOICES.get(digit or "")
    if action is not None:
        return state, action
    if state.attempts >= MENU_TRIES:
        return state, MenuAction.HANGUP
    return MenuState(state.attempts + 1), MenuAction.PLAY_MENU


def on_eviction_answer(digit: str | None) -> bool:
    """NCR-REG-5: only "0" drops the oldest; anything else or silence changes nothing."""
    return digit == "0"
