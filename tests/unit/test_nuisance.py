"""Pure nuisance-call rejection rules (NCR-REG-*, NCR-DEL-*, NCR-CNT-1, REL-3), no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callguard.domain import nuisance as n
from callguard.domain.nuisance import (
    InboundCall,
    LastCaller,
    MenuAction,
    MenuState,
    Outcome,
    Refusal,
)

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
MANIFEST = Path(__file__).resolve().parents[2] / "sounds" / "manifest.tsv"


def test_constants() -> None:
    assert n.DEFAULT_CAPACITY == 30  # NCR-REG-5; no 6-entry plan (source 004)
    assert not hasattr(n, "SMALL_CAPACITY")
    assert n.REGISTRATION_WINDOW.total_seconds() == 60  # NCR-REG-3
    assert (n.MENU, n.REGISTERED, n.CANNOT_IDENTIFY, n.LIST_FULL, n.REGISTER_FAILED) == (
        "menu", "registered", "cannot_identify", "list_full", "register_failed")
    assert (n.DELETED_NEWEST, n.DELETED_ALL, n.LIST_EMPTY, n.NOT_SUBSCRIBED) == (
        "deleted_newest", "deleted_all", "list_empty", "not_subscribed")
    assert (n.REGISTER_CANCELLED, n.REJECT, n.COUNT_THIS_MONTH, n.COUNT_LAST_MONTH) == (
        "register_cancelled", "reject", "count_this_month", "count_last_month")


def test_every_prompt_is_in_the_sound_manifest() -> None:  # RUN-5
    names = {line.split("\t", 1)[0] for line in MANIFEST.read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")}
    assert set(n.ALL_PROMPTS) <= names


# ---- registration (NCR-REG-1/5/6) ------------------------------------------------------------
def test_added_when_there_is_room() -> None:  # NCR-REG-1
    plan = n.plan_registration(["a"], "b", 30, False)
    assert plan == n.RegistrationPlan(Outcome.ADDED, ("a", "b"), ())
    assert n.plan_registration([], "a", 1, False).entries == ("a",)


def test_existing_key_moves_to_newest_without_duplicate() -> None:  # NCR-REG-6
    moved = n.plan_registration(["a", "b", "c"], "a", 30, False)
    assert moved.outcome is Outcome.MOVED_TO_NEWEST and moved.entries == ("b", "c", "a")
    assert moved.removed == ()


def test_existing_key_on_a_full_list_asks_nothing() -> None:  # NCR-REG-6 over NCR-REG-5
    moved = n.plan_registration(["a", "b", "c"], "b", 3, False)
    assert moved.outcome is Outcome.MOVED_TO_NEWEST and moved.entries == ("a", "c", "b")
    already_newest = n.plan_registration(["a", "b", "c"], "c", 3, False)
    assert already_newest.entries == ("a", "b", "c")


def test_full_list_needs_confirmation() -> None:  # NCR-REG-5
    full = n.plan_registration(["a", "b", "c"], "d", 3, False)
    assert full == n.RegistrationPlan(Outcome.NEEDS_EVICTION_CONFIRM, ("a", "b", "c"), ())


def test_confirmed_eviction_drops_the_oldest() -> None:  # NCR-REG-5
    evicted = n.plan_registration(["a", "b", "c"], "d", 3, True)
    assert evicted.outcome is Outcome.EVICTED_OLDEST_AND_ADDED
    assert evicted.entries == ("b", "c", "d") and evicted.removed == ("a",)


def test_confirmation_with_room_is_a_plain_add() -> None:  # REL-3: re-planned on locked rows
    assert n.plan_registration(["a"], "d", 3, True).outcome is Outcome.ADDED


def test_over_capacity_list_is_cut_to_capacity() -> None:  # NCR-REG-5 after a plan change
    thirty = [f"k{i:02d}" for i in range(30)]
    plan = n.plan_registration(thirty, "new", 6, True)
    assert plan.entries == (*thirty[25:], "new") and plan.removed == tuple(thirty[:25])
    assert n.plan_registration(thirty, "new", 6, False).outcome \
        is Outcome.NEEDS_EVICTION_CONFIRM


def test_bad_registration_input_is_refused() -> None:
    with pytest.raises(ValueError):
        n.plan_registration([], "a", 0, True)
    with pytest.raises(ValueError):
        n.plan_registration([], "", 30, True)
    with pytest.raises(ValueError):
        n.plan_registration(["a", "a"], "b", 30, True)


# ---- removal (NCR-DEL-1/2/3) -----------------------------------------------------------------
def test_remove_newest_walks_back() -> None:  # NCR-DEL-1
    entries: tuple[str, ...] = ("a", "b", "c")
    removed = []
    while True:
        entries, key = n.remove_newest(entries)
        if key is None:
            break
        removed.append(key)
    assert removed == ["c", "b", "a"] and entries == ()


def test_remove_all() -> None:  # NCR-DEL-2
    assert n.remove_all(["a", "b"]) == ((), 2)


def test_empty_list_removes_nothing() -> None:  # NCR-DEL-3
    assert n.remove_newest([]) == ((), None)
    assert n.remove_all([]) == ((), 0)


# REL-3: any sequence of operations against a model of "order of last registration".
ops = st.lists(st.one_of(
    st.tuples(st.just("reg"), st.integers(0, 12), st.booleans()),
    st.tuples(st.just("del"), st.just(0), st.just(False)),
    st.tuples(st.just("all"), st.just(0), st.just(False)),
), max_size=120)


@given(ops, st.sampled_from([1, 2, 3, 6, 10, n.DEFAULT_CAPACITY]))
def test_list_invariants(sequence: list[tuple[str, int, bool]], capacity: int) -> None:
    entries: tuple[str, ...] = ()
    registered_at: dict[str, int] = {}  # key → step of its latest registration
    for step, (op, k, confirm) in enumerate(sequence):
        before = entries
        if op == "reg":
            key = f"k{k}"
            plan = n.plan_registration(entries, key, capacity, confirm)
            entries = plan.entries
            if plan.outcome is Outcome.NEEDS_EVICTION_CONFIRM:
                assert not confirm and len(before) >= capacity and key not in before
                assert entries == before and plan.removed == ()
            else:
                assert entries[-1] == key  # the newest is the one just registered
                registered_at[key] = step
                # FIFO: what was evicted is exactly the oldest prefix of the old list
                assert plan.removed == before[:len(plan.removed)]
                assert (plan.outcome is Outcome.EVICTED_OLDEST_AND_ADDED) == bool(plan.removed)
        elif op == "del":
            entries, key_removed = n.remove_newest(entries)
            assert key_removed == (before[-1] if before else None)
        else:
            entries, count = n.remove_all(entries)
            assert count == len(before)
        assert len(entries) <= capacity
        assert len(set(entries)) == len(entries)
        # order is always oldest → newest by latest registration
        assert list(entries) == sorted(entries, key=lambda e: registered_at[e])


# ---- last caller (NCR-REG-2/3/4) -------------------------------------------------------------
def call(key: str | None, start: int, end: int | None, rejected: bool = False) -> InboundCall:
    return InboundCall(key, T0 + timedelta(seconds=start),
                       None if end is None else T0 + timedelta(seconds=end), rejected)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_last_caller_is_the_last_to_end() -> None:  # NCR-REG-2: 最後に切断した相手先
    calls = [call("a", 0, 30), call("b", 5, 20)]
    assert n.select_last_caller(calls, at(31), True) == LastCaller("a")
    calls = [call("a", 0, 20), call("b", 5, 30)]
    assert n.select_last_caller(calls, at(31), True) == LastCaller("b")


def test_unanswered_calls_count() -> None:  # NCR-REG-2: answered or not
    assert n.select_last_caller([call("a", 0, 10), call("b", 20, 25)], at(30), False).key == "b"


def test_rejected_calls_never_count() -> None:  # NCR-REG-2
    calls = [call("a", 0, 10), call("x", 11, 12, rejected=True)]
    assert n.select_last_caller(calls, at(13), True).key == "a"
    assert n.select_last_caller([call("x", 0, 1, rejected=True)], at(2), True).refusal \
        is Refusal.NO_CALL
    # a rejected call still "in progress" (playing the message) blocks nothing
    assert n.select_last_caller([call("a", 0, 10), call("x", 11, None, rejected=True)],
                                at(13), True).key == "a"


def test_window_only_in_multi_channel_scopes() -> None:  # NCR-REG-3
    calls = [call("a", 0, 10)]
    assert n.select_last_caller(calls, at(70), True).key == "a"  # 60 s, inclusive
    assert n.select_last_caller(calls, at(70.001), True).refusal is Refusal.WINDOW_EXPIRED
    assert n.select_last_caller(calls, at(71), False).key == "a"
    assert n.select_last_caller(calls, at(86_400 * 3), False).key == "a"


def test_custom_window_and_clock_skew() -> None:
    calls = [call("a", 0, 10)]
    assert n.select_last_caller(calls, at(15), True, timedelta(seconds=5)).key == "a"
    assert n.select_last_caller(calls, at(16), True, timedelta(seconds=5)).refusal \
        is Refusal.WINDOW_EXPIRED
    assert n.select_last_caller(calls, at(9), True).key == "a"  # app clock behind the DB


def test_in_progress_call_from_other_caller_blocks() -> None:  # NCR-REG-3 (A)/(B)
    # (A) ended while (B) is still in progress: neither can be registered.
    calls = [call("a", 0, 10), call("b", 5, None)]
    assert n.select_last_caller(calls, at(20), True).refusal \
        is Refusal.CALL_IN_PROGRESS_FROM_OTHER
    # once (B) ends it is the last caller, for 60 s
    calls = [call("a", 0, 10), call("b", 5, 40)]
    assert n.select_last_caller(calls, at(41), True).key == "b"
    assert n.select_last_caller(calls, at(101), True).refusal is Refusal.WINDOW_EXPIRED


def test_new_call_arriving_blocks_the_previous_caller() -> None:  # NCR-REG-3 「など」
    calls = [call("a", 0, 10), call("b", 20, None)]
    assert n.select_last_caller(calls, at(25), True).refusal \
        is Refusal.CALL_IN_PROGRESS_FROM_OTHER
    assert n.select_last_caller(calls, at(25), False).refusal \
        is Refusal.CALL_IN_PROGRESS_FROM_OTHER


def test_same_number_on_both_channels_has_no_blocked_period() -> None:  # NCR-REG-3 ★
    calls = [call("a", 0, 10), call("a", 5, None)]
    assert n.select_last_caller(calls, at(20), True).key == "a"


def test_unknown_identity_in_progress_is_never_the_same_number() -> None:  # NCR-REG-3
    calls = [call("a", 0, 10), call(None, 5, None)]
    assert n.select_last_caller(calls, at(20), True).refusal \
        is Refusal.CALL_IN_PROGRESS_FROM_OTHER


def test_no_call_and_no_identity() -> None:  # NCR-REG-3
    assert n.select_last_caller([], T0, True).refusal is Refusal.NO_CALL
    assert n.select_last_caller([call("a", 0, None)], at(5), True).refusal is Refusal.NO_CALL
    assert n.select_last_caller([call(None, 0, 1)], at(2), True).refusal \
        is Refusal.NO_IDENTITY
    # a known earlier caller does not stand in for an unidentifiable last one
    assert n.select_last_caller([call("a", 0, 5), call(None, 6, 8)], at(9), False).refusal \
        is Refusal.NO_IDENTITY


def test_refusal_prompts() -> None:  # NCR-REG-3, source 004
    """「相手の電話番号が確認できない…」 for the period when nobody can be registered; a last
    caller with no number is a failed registration (「迷惑電話リストの登録に失敗しました。」)."""
    assert n.refusal_prompt(Refusal.NO_IDENTITY) == n.REGISTER_FAILED
    for refusal in (Refusal.CALL_IN_PROGRESS_FROM_OTHER, Refusal.SIMULTANEOUS_END,
                    Refusal.WINDOW_EXPIRED, Refusal.NO_CALL):
        assert n.refusal_prompt(refusal) == n.CANNOT_IDENTIFY


def test_failure_prompts() -> None:  # NCR-REG-7, source 004
    """Only a registration says 「迷惑電話リストの登録に失敗しました。」."""
    assert n.failure_prompt(MenuAction.REGISTER) == n.REGISTER_FAILED
    for action in (MenuAction.DELETE_NEWEST, MenuAction.DELETE_ALL, MenuAction.READ_COUNTS):
        assert n.failure_prompt(action) == n.TRY_AGAIN_LATER == "congestion"


def test_simultaneous_end_of_two_callers_is_ambiguous() -> None:  # NCR-REG-3
    calls = [call("a", 0, 10), call("b", 5, 10)]
    assert n.select_last_caller(calls, at(11), True).refusal is Refusal.SIMULTANEOUS_END
    assert n.select_last_caller([call("a", 0, 10), call("a", 5, 10)], at(11), True).key == "a"


def test_order_of_rows_does_not_matter() -> None:
    calls = [call("b", 5, 20), call("a", 0, 30), call("c", 1, 2)]
    assert n.select_last_caller(calls, at(31), True).key == "a"
    assert n.select_last_caller(list(reversed(calls)), at(31), True).key == "a"


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        n.select_last_caller([], datetime(2026, 1, 1), True)


def test_last_caller_is_one_or_the_other() -> None:
    with pytest.raises(ValueError):
        LastCaller(None)
    with pytest.raises(ValueError):
        LastCaller("a", Refusal.NO_CALL)


calls_strategy = st.lists(st.builds(
    lambda key, start, length, rejected: call(
        (f"r{key}" if rejected else f"k{key}") if key is not None else None,
        start, None if length is None else start + length, rejected),
    st.one_of(st.none(), st.integers(0, 4)), st.integers(0, 300),
    st.one_of(st.none(), st.integers(0, 120)), st.booleans()), max_size=12)


@given(calls_strategy, st.integers(0, 600), st.booleans())
def test_never_a_rejected_caller(calls: list[InboundCall], now_s: int, multi: bool) -> None:
    result = n.select_last_caller(calls, at(now_s), multi)
    assert (result.key is None) != (result.refusal is None)
    if result.key is not None:
        assert not result.key.startswith("r")  # NCR-REG-2: rejected calls never count
        reached = [c for c in calls if not c.rejected and c.ended_at is not None]
        last_end = max(c.ended_at for c in reached if c.ended_at is not None)
        assert result.key in {c.caller_key for c in reached if c.ended_at == last_end}
        assert not any(c.ended_at is None and c.caller_key != result.key
                       for c in calls if not c.rejected)
        if multi:
            assert at(now_s) - last_end <= n.REGISTRATION_WINDOW


@given(calls_strategy, st.integers(0, 600), st.booleans())
def test_rejected_calls_do_not_change_the_result(calls: list[InboundCall], now_s: int,
                                                 multi: bool) -> None:
    kept = [c for c in calls if not c.rejected]
    assert n.select_last_caller(calls, at(now_s), multi) == \
        n.select_last_caller(kept, at(now_s), multi)


# ---- month counters (NCR-CNT-1) --------------------------------------------------------------
@pytest.mark.parametrize(("ts", "month"), [
    (datetime(2026, 11, 30, 15, 0, tzinfo=UTC), "2026-12"),  # 00:00 JST on Dec 1
    (datetime(2026, 11, 30, 14, 59, 59, 999_999, tzinfo=UTC), "2026-11"),
    (datetime(2026, 12, 31, 15, 0, tzinfo=UTC), "2027-01"),  # new year in Tokyo
    (datetime(2026, 12, 31, 14, 59, 59, tzinfo=UTC), "2026-12"),
    (datetime(2028, 2, 28, 15, 0, tzinfo=UTC), "2028-02"),  # leap day
    (datetime(2028, 2, 29, 15, 0, tzinfo=UTC), "2028-03"),
    (datetime(2026, 12, 1, 0, 0, tzinfo=timezone(timedelta(hours=9))), "2026-12"),
    (datetime(2026, 11, 30, 10, 0, tzinfo=timezone(timedelta(hours=-5))), "2026-12"),
])
def test_month_of_is_tokyo_calendar(ts: datetime, month: str) -> None:
    assert n.month_of(ts) == month


def test_month_of_refuses_naive_time() -> None:
    with pytest.raises(ValueError):
        n.month_of(datetime(2026, 11, 30, 15, 0))


def test_previous_month() -> None:
    assert n.previous_month("2026-12") == "2026-11"
    assert n.previous_month("2027-01") == "2026-12"
    assert n.previous_month("2026-10") == "2026-09"
    for bad in ("2026-13", "2026-00", "2026-1", "26-01", "２０２６-01", ""):
        with pytest.raises(ValueError):
            n.previous_month(bad)


def test_month_start() -> None:
    assert n.month_start("2026-12") == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 1),
                    timezones=st.just(UTC)))
def test_month_of_bounds(ts: datetime) -> None:
    month = n.month_of(ts)
    assert n.month_start(month) <= ts
    following = n.month_start(month) + timedelta(days=32)
    assert ts < n.month_start(n.month_of(following))
    assert n.previous_month(n.month_of(following)) == month


def test_count_prompts() -> None:  # NCR-CNT-1
    assert n.count_prompts(0, None) == ["count_this_month", "times_0"]
    assert n.count_prompts(7, 99) == ["count_this_month", "times_7",
                                      "count_last_month", "times_99"]
    assert n.count_prompts(100, 0) == ["count_this_month", "times_100_plus",
                                       "count_last_month", "times_0"]
    assert n.count_prompts(12_345, None) == ["count_this_month", "times_100_plus"]
    assert n.count_prompts(-1, None) == ["count_this_month", "times_0"]  # never crash


@given(st.integers(0, 10_000), st.one_of(st.none(), st.integers(0, 10_000)))
def test_count_prompts_exist(this: int, last: int | None) -> None:  # RUN-5
    prompts = n.count_prompts(this, last)
    assert set(prompts) <= set(n.ALL_PROMPTS)
    assert len(prompts) == (2 if last is None else 4)


# ---- the 144 menu ----------------------------------------------------------------------------
@pytest.mark.parametrize(("digit", "action"), [
    ("2", MenuAction.REGISTER), ("3", MenuAction.DELETE_NEWEST),
    ("9", MenuAction.DELETE_ALL), ("4", MenuAction.READ_COUNTS),
])
def test_valid_choices(digit: str, action: MenuAction) -> None:
    for tries in (1, 2, 3):
        assert n.on_menu_input(MenuState(tries), digit) == (MenuState(tries), action)


def run_menu(inputs: Sequence[str | None]) -> tuple[int, MenuAction]:
    """Drive the machine as the ARI app does: (menus played, final action)."""
    state, action = n.start_menu()
    plays = 1
    for digit in inputs:
        state, action = n.on_menu_input(state, digit)
        if action is not MenuAction.PLAY_MENU:
            return plays, action
        plays += 1
    return plays, action


def test_invalid_or_missing_input_three_menus_then_release() -> None:
    assert run_menu(["7", "8", "1"]) == (3, MenuAction.HANGUP)
    assert run_menu([None, None, None]) == (3, MenuAction.HANGUP)
    assert run_menu(["7", None, "2"]) == (3, MenuAction.REGISTER)  # valid on the last try


@pytest.mark.parametrize("garbage", ["", "22", "*", "#", "0", "1", "２", "2 ", "a", "\x00"])
def test_garbage_is_invalid_input(garbage: str) -> None:  # REL-4
    assert n.on_menu_input(MenuState(1), garbage) == (MenuState(2), MenuAction.PLAY_MENU)
    assert n.on_menu_input(MenuState(3), garbage) == (MenuState(3), MenuAction.HANGUP)


def test_default_state_is_before_the_first_menu() -> None:
    assert MenuState() == MenuState(0)
    assert n.on_menu_input(MenuState(), None) == n.start_menu()
    with pytest.raises(ValueError):
        MenuState(-1)


@given(st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=10))
def test_menu_is_played_at_most_three_times(inputs: list[str | None]) -> None:
    plays, action = run_menu(inputs)
    assert plays <= n.MENU_TRIES
    if len(inputs) >= n.MENU_TRIES:
        assert action is not MenuAction.PLAY_MENU  # always decided by the 3rd input


def test_eviction_answer() -> None:  # NCR-REG-5
    assert n.on_eviction_answer("0") is True
    for other in ("1", "9", "*", "#", "00", "", None):
        assert n.on_eviction_answer(other) is False
