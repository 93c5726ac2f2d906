"""Nuisance-call rejection rules (NCR-*): list bound and order, last-caller selection, month
counters, and the 144 menu as a state machine.

Pure: no I/O, no clock, no DB. Times come in as timezone-aware datetimes. Shared by the ARI app
and the FastAGI fallback (REL-1); the DB layer computes plans from rows it has locked with
SELECT … FOR UPDATE and applies them in the same transaction, which is what keeps the bound
and FIFO order under concurrent 144 sessions (REL-3).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")  # NCR-CNT-1: counters are calendar months in Japan
DEFAULT_CAPACITY = 30  # NCR-REG-5, source: 「最大30件まで登録可能」; the only plan (source 004)
REGISTRATION_WINDOW = timedelta(seconds=60)  # NCR-REG-3, multi-channel scopes only
MENU_TRIES = 3  # 144 menu: plays of the menu guidance in all before release
TIMES_MAX_SPOKEN = 99  # NCR-CNT-1: 0–99 read as the number, above as 「100回以上」

# ---- prompt names: the one place (sounds/manifest.tsv has the texts) ----------------------
MENU = "menu"
REGISTERED = "registered"  # NCR-REG-1
CANNOT_IDENTIFY = "cannot_identify"  # NCR-REG-3, nobody to register yet (refusal_prompt)
LIST_FULL = "list_full"  # NCR-REG-5
REGISTER_FAILED = "register_failed"  # NCR-REG-7; also a last caller with no number
REGISTER_CANCELLED = "register_cancelled"  # NCR-REG-5, answer other than "0"
DELETED_NEWEST = "deleted_newest"  # NCR-DEL-1
DELETED_ALL = "deleted_all"  # NCR-DEL-2
LIST_EMPTY = "list_empty"  # NCR-DEL-3
NOT_SUBSCRIBED = "not_subscribed"
INVALID_INPUT = "invalid_input"
REJECT = "reject"  # NCR-REJ-1
COUNT_THIS_MONTH = "count_this_month"  # NCR-CNT-1 「今月、メッセージ応答した回数は」
COUNT_LAST_MONTH = "count_last_month"  # NCR-CNT-1 「前月、メッセージ応答した回数は」
TIMES_100_PLUS = "times_100_plus"  # 「100回以上です。」
TRY_AGAIN_LATER = "congestion"  # 「ただいま、大変混み合っております。しばらくたってから、…」


def times_prompt(n: int) -> str:
    """「N回です。」 for 0–99, 「100回以上です。」 from 100 (NCR-CNT-1). A negative count can
    only be a storage bug; it reads as 0 rather than crash a live call (REL-4)."""
    return TIMES_100_PLUS if n > TIMES_MAX_SPOKEN else f"times_{max(n, 0)}"


TIMES_PROMPTS: tuple[str, ...] = (
    *(f"times_{n}" for n in range(TIMES_MAX_SPOKEN + 1)), TIMES_100_PLUS)
ALL_PROMPTS: tuple[str, ...] = (
    MENU, REGISTERED, CANNOT_IDENTIFY, LIST_FULL, REGISTER_FAILED, REGISTER_CANCELLED,
    DELETED_NEWEST, DELETED_ALL, LIST_EMPTY, NOT_SUBSCRIBED, INVALID_INPUT, REJECT,
    COUNT_THIS_MONTH, COUNT_LAST_MONTH, TRY_AGAIN_LATER, *TIMES_PROMPTS)


# ---- the list: bounded, unique, oldest → newest (NCR-REG-5/6, NCR-DEL-*, REL-3) -----------
class Outcome(Enum):
    ADDED = "added"
    MOVED_TO_NEWEST = "moved"  # NCR-REG-6: already listed, becomes the newest
    NEEDS_EVICTION_CONFIRM = "needs_confirm"  # NCR-REG-5: full, ask for "0"
    EVICTED_OLDEST_AND_ADDED = "evicted"


@dataclass(frozen=True)
class RegistrationPlan:
    outcome: Outcome
    entries: tuple[str, ...]  # the list afterwards, oldest → newest
    removed: tuple[str, ...] = ()  # evicted keys, oldest first


def plan_registration(entries: Sequence[str], new_key: str, capacity: int,
                      evict_confirmed: bool) -> RegistrationPlan:
    """Where `new_key` goes in a list ordered oldest → newest.

    - Already listed: moved to newest, never duplicated, and no eviction question even when
      the list is full — nothing is added (NCR-REG-6).
    - Room left: appended (NCR-REG-1).
    - Full and not confirmed: unchanged, ask 「…よろしければ“0”…」 (NCR-REG-5).
    - Full and confirmed: the oldest are dropped — as many as needed to get down to
      capacity-1, so a list left over capacity (e.g. after a plan change) is cut too — then the
      new key is appended (FIFO).

    The DB layer calls this again with `evict_confirmed=True` after the "0", on freshly locked
    rows: if another session made room meanwhile, the plan is a plain ADDED (REL-3).
    """
    if capacity < 1:
        raise ValueError("capacity must be at least 1")
    if not new_key:
        raise ValueError("empty caller key")
    current = tuple(entries)
    if len(set(current)) != len(current):
        # The store's unique constraint makes this impossible; refuse rather than guess.
        raise ValueError("duplicate keys in the list")
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
    """NCR-DEL-1: drop the newest; repeating walks back newest → oldest. None removed means
    the list was empty (NCR-DEL-3: say LIST_EMPTY)."""
    if not entries:
        return (), None
    return tuple(entries[:-1]), entries[-1]


def remove_all(entries: Sequence[str]) -> tuple[tuple[str, ...], int]:
    """NCR-DEL-2: (empty list, how many were removed); 0 means it was empty (NCR-DEL-3)."""
    return (), len(entries)


# ---- who was the last caller (NCR-REG-2/3/4) ------------------------------------------------
@dataclass(frozen=True)
class InboundCall:
    """One inbound call that reached the list's scope (rows from the DB, newest or not)."""

    caller_key: str | None  # None: the network gave no usable number
    started_at: datetime
    ended_at: datetime | None  # None: still in progress (ringing or talking)
    rejected: bool  # answered by the rejection message (NCR-REJ-1/2): never a last caller


class Refusal(Enum):
    NO_CALL = "no_call"
    NO_IDENTITY = "no_identity"
    WINDOW_EXPIRED = "window_expired"
    CALL_IN_PROGRESS_FROM_OTHER = "in_progress_from_other"
    SIMULTANEOUS_END = "simultaneous_end"  # two callers ended at the same instant


@dataclass(frozen=True)
class LastCaller:
    """Either a caller key to register or why nobody can be (spoken: refusal_prompt)."""

    key: str | None
    refusal: Refusal | None = None

    def __post_init__(self) -> None:
        if (self.key is None) == (self.refusal is None):
            raise ValueError("exactly one of key and refusal")


def select_last_caller(calls: Sequence[InboundCall], now: datetime, multi_channel: bool,
                       window: timedelta = REGISTRATION_WINDOW) -> LastCaller:
    """The caller that 144 then 2 registers (NCR-REG-2/3), or why nobody can be.

    Interpretation of the source's ■複数チャネル section (its figure is not in the text):

    - Rejected calls never count (NCR-REG-2): they did not reach the line.
    - The last caller is the caller of the most recently *ended* call, answered or not
      (「最後に切断した相手先の電話番号」). Two calls from different identities ending at the
      same instant leave "the last" undefined: SIMULTANEOUS_END.
    - Multi-channel scope: only while `now - ended_at <= window` (60 s, inclusive)
      (「通話切断後60秒以内」). A clock behind the DB's end time counts as "just ended".
    - The blocked period of the (A)/(B) note: while a call from a *different* identity is
      still in progress (ended_at None), nobody can be registered — not the one that ended
      (another call may end after it and become the last) and not the one in progress (it has
      not ended). It lasts until that call ends; then its caller is the last one. If every
      call in progress is from the same identity as the last one (「(A)と(B)が同じ電話番号」),
      there is no blocked period: whichever ends last, the number is the same. An unknown
      identity (None) is never "the same" as anything.
    - Single-channel scope: no time limit. The source states the 60 s only under 複数チャネル,
      and elsewhere only asks for the operation 「迷惑電話を受けた直後」 (an instruction, not a
      limit); the last caller stays registrable until another call replaces it. The
      in-progress rule applies here too (e.g. a new call ringing): it only ever refuses, and
      registering the wrong number is the failure that matters.
    - A last caller without identity: NO_IDENTITY (NCR-REG-3; spoken as a failure, see
      refusal_prompt). Withheld callers do have one (NCR-REG-4, see privacy.caller_identity).

    Refusals are checked in this order: NO_CALL, SIMULTANEOUS_END, WINDOW_EXPIRED,
    CALL_IN_PROGRESS_FROM_OTHER, NO_IDENTITY. Stale rows left "in progress" by a crash would
    block the scope: the shells close them when they start, and the store stops reading one
    after a day (nuisance_repo.STALE_IN_PROGRESS).
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    reached = [c for c in calls if not c.rejected]
    ended = [(c, c.ended_at) for c in reached if c.ended_at is not None]
    if not ended:
        return LastCaller(None, Refusal.NO_CALL)
    last_end = max(end for _, end in ended)
    last_keys = {c.caller_key for c, end in ended if end == last_end}
    if len(last_keys) > 1:
        return LastCaller(None, Refusal.SIMULTANEOUS_END)
    last_key = next(iter(last_keys))
    if multi_channel and now - last_end > window:
        return LastCaller(None, Refusal.WINDOW_EXPIRED)
    if any(c.ended_at is None and (c.caller_key is None or c.caller_key != last_key)
           for c in reached):
        return LastCaller(None, Refusal.CALL_IN_PROGRESS_FROM_OTHER)
    if last_key is None:
        return LastCaller(None, Refusal.NO_IDENTITY)
    return LastCaller(last_key)


def refusal_prompt(refusal: Refusal) -> str:
    """What 144 → 2 says when nobody can be registered (both shells' Menu.register).

    Source 004 has two texts. 「相手の電話番号が確認できないので、登録できません。」 is given
    for ■複数チャネル's period when no number can be registered (「登録できない期間に登録しよう
    とすると…」); NCR-REG-3 also gives it for the 60 s window, and nobody having called is kept
    with them. A last caller whose number the network does not give (「一部を除く国際通話など
    電話番号を通知できない通話については拒否登録できません。」) is the general case, 「登録できない
    ときは、「迷惑電話リストの登録に失敗しました。」」 (source 004 wins over NCR-REG-3 there).
    Withheld callers are not that case: they have an identity (NCR-REG-4)."""
    return REGISTER_FAILED if refusal is Refusal.NO_IDENTITY else CANNOT_IDENTIFY


# ---- counters (NCR-CNT-1) --------------------------------------------------------------------
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


def _parse_month(month: str) -> tuple[int, int]:
    match = _MONTH.fullmatch(month)
    if match is None:
        raise ValueError(f"not a YYYY-MM month: {month!r}")
    return int(match[1]), int(match[2])


def month_of(ts: datetime) -> str:
    """Calendar month in Asia/Tokyo, 'YYYY-MM'. A naive time is refused: reading it as local
    time would tie counters to the host's TZ setting."""
    if ts.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    return ts.astimezone(TOKYO).strftime("%Y-%m")


def tokyo_date(now: datetime) -> date:
    """The Japanese calendar day of `now`: service dates (a recording add-on's activation and
    cancellation, billing) are Tokyo days, so "today" flips at 00:00 JST, not 09:00 (UTC). A
    naive time is refused, as in `month_of`."""
    if now.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    return now.astimezone(TOKYO).date()


def previous_month(month: str) -> str:
    year, mon = _parse_month(month)
    return f"{year - 1:04d}-12" if mon == 1 else f"{year:04d}-{mon - 1:02d}"


def month_start(month: str) -> datetime:
    """The first instant of `month` in Tokyo (aware), e.g. to tell if a list existed then."""
    year, mon = _parse_month(month)
    return datetime(year, mon, 1, tzinfo=TOKYO)


def count_prompts(this_month: int, last_month: int | None) -> list[str]:
    """NCR-CNT-1, in play order: 「今月、メッセージ応答した回数は」「N回です。」 and, only when
    there is a value for last month (None: the list did not exist then), 「前月、…」「N回です。」.
    """
    prompts = [COUNT_THIS_MONTH, times_prompt(this_month)]
    if last_month is not None:
        prompts += [COUNT_LAST_MONTH, times_prompt(last_month)]
    return prompts


# ---- the 144 menu ---------------------------------------------------------------------------
class MenuAction(Enum):
    PLAY_MENU = "menu"
    REGISTER = "register"  # 2, NCR-REG-1
    DELETE_NEWEST = "delete_newest"  # 3, NCR-DEL-1
    DELETE_ALL = "delete_all"  # 9, NCR-DEL-2
    READ_COUNTS = "read_counts"  # 4, NCR-CNT-1
    HANGUP = "hangup"


_CHOICES = {"2": MenuAction.REGISTER, "3": MenuAction.DELETE_NEWEST,
            "9": MenuAction.DELETE_ALL, "4": MenuAction.READ_COUNTS}


@dataclass(frozen=True)
class MenuState:
    attempts: int = 0  # menu guidances played so far (0: not yet)

    def __post_init__(self) -> None:
        if self.attempts < 0:
            raise ValueError("attempts must not be negative")


def start_menu() -> tuple[MenuState, MenuAction]:
    """The first play of the menu guidance."""
    return MenuState(1), MenuAction.PLAY_MENU


def on_menu_input(state: MenuState, digit: str | None) -> tuple[MenuState, MenuAction]:
    """Call after each menu play with what was dialed (during it — skip — or after it);
    None is a timeout.

    "Repeat up to 3 times" means 3 plays of the menu guidance in all (MENU_TRIES): after the
    3rd play an invalid or missing input releases the call. A valid digit is taken on any
    play. Only the exact single digits 2/3/9/4 are valid; anything else (other digits, ``*``,
    ``#``, several characters, garbage) counts as invalid, never an error (REL-4).
    """
    action = _CHOICES.get(digit) if digit is not None else None
    if action is not None:
        return state, action
    if state.attempts >= MENU_TRIES:
        return state, MenuAction.HANGUP
    return MenuState(state.attempts + 1), MenuAction.PLAY_MENU


def guidance_after_input(digit: str | None, action: MenuAction) -> list[str]:
    """What the caller hears right after a menu input, before the next step: a wrong key
    (pressed, but not 2/3/9/4) gets 「入力が正しくありません。」 before the menu repeats or the
    call is released; a timeout gets nothing extra (the menu simply repeats). A key pressed
    during it is the next try's choice (skip), except after the last try: nothing is left to
    choose, so it plays whole before the release."""
    if digit is None or action not in (MenuAction.PLAY_MENU, MenuAction.HANGUP):
        return []
    return [INVALID_INPUT]


def failure_prompt(action: MenuAction) -> str:
    """What a 144 operation says when the list store fails (the list is unchanged: the
    transaction rolled back). Source 004 gives 「迷惑電話リストの登録に失敗しました。」 for
    registration only (NCR-REG-7); deleting (3, 9) and reading the counts (4) say the site's
    existing, neutral 「ただいま、大変混み合っております。しばらくたってから、おかけ直しくださ
    い。」 rather than claim a registration failed."""
    return REGISTER_FAILED if action is MenuAction.REGISTER else TRY_AGAIN_LATER


def on_eviction_answer(digit: str | None) -> bool:
    """NCR-REG-5: only "0" drops the oldest; anything else or a timeout changes nothing."""
    return digit == "0"
