"""Pure nuisance-list rules (NCR-REG-*, NCR-DEL-*, NCR-CNT-1, REL-3), no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from callguard.domain import nuisance as n
from callguard.domain.nuisance import InboundCall, MenuAction, MenuState, Outcome, Refusal

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def test_add_move_confirm_evict() -> None:  # NCR-REG-1/5/6
    assert n.plan_registration(["a"], "b", 30, False).entries == ("a", "b")
    moved = n.plan_registration(["a", "b", "c"], "a", 3, False)
    assert moved.outcome is Outcome.MOVED_TO_NEWEST and moved.entries == ("b", "c", "a")
    full = n.plan_registration(["a", "b", "c"], "d", 3, False)
    assert full.outcome is Outcome.NEEDS_EVICTION_CONFIRM and full.entries == ("a", "b", "c")
    evicted = n.plan_registration(["a", "b", "c"], "d", 3, True)
    assert evicted.entries == ("b", "c", "d") and evicted.removed == ("a",)


def test_remove_newest_and_all() -> None:  # NCR-DEL-1/2/3
    assert n.remove_newest(["a", "b"]) == (("a",), "b")
    assert n.remove_newest([]) == ((), None)
    assert n.remove_all(["a", "b"]) == ((), 2)


@given(st.lists(st.tuples(st.sampled_from(["reg", "del"]), st.integers(0, 40)), max_size=80),
       st.integers(1, 30))
def test_list_invariants(ops: list[tuple[str, int]], capacity: int) -> None:  # REL-3
    entries: tuple[str, ...] = ()
    for op, k in ops:
        if op == "reg":
            plan = n.plan_registration(entries, f"k{k}", capacity, True)
            entries = plan.entries
            assert entries[-1] == f"k{k}"  # the newest is always the one just registered
        else:
            entries, _ = n.remove_newest(entries)
        assert len(entries) <= capacity and len(set(entries)) == len(entries)


def call(key: str | None, start: int, end: int | None, rejected: bool = False) -> InboundCall:
    return InboundCall(key, T0 + timedelta(seconds=start),
                       None if end is None else T0 + timedelta(seconds=end), rejected)


def test_last_caller_is_the_last_to_end() -> None:  # NCR-REG-2
    calls = [call("a", 0, 30), call("b", 5, 20)]
    assert n.select_last_caller(calls, T0 + timedelta(seconds=31), True).key == "a"


def test_rejected_calls_never_count() -> None:  # NCR-REG-2
    calls = [call("a", 0, 10), call("x", 11, 12, rejected=True)]
    assert n.select_last_caller(calls, T0 + timedelta(seconds=13), True).key == "a"


def test_window_only_in_multi_channel_scopes() -> None:  # NCR-REG-3
    calls = [call("a", 0, 10)]
    late = T0 + timedelta(seconds=71)
    assert n.select_last_caller(calls, late, True).refusal is Refusal.WINDOW_EXPIRED
    assert n.select_last_caller(calls, late, False).key == "a"
    assert n.select_last_caller(calls, T0 + timedelta(seconds=70), True).key == "a"


def test_in_progress_call_from_other_caller_blocks() -> None:  # NCR-REG-3
    now = T0 + timedelta(seconds=20)
    assert n.select_last_caller([call("a", 0, 10), call("b", 5, None)], now, True).refusal \
        is Refusal.CALL_IN_PROGRESS_FROM_OTHER
    # same caller on both channels: no blocked period
    assert n.select_last_caller([call("a", 0, 10), call("a", 5, None)], now, True).key == "a"


def test_no_call_and_no_identity() -> None:  # NCR-REG-3
    assert n.select_last_caller([], T0, True).refusal is Refusal.NO_CALL
    assert n.select_last_caller([call(None, 0, 1)], T0 + timedelta(seconds=2), True).refusal \
        is Refusal.NO_IDENTITY


def test_months_in_tokyo() -> None:  # NCR-CNT-1
    assert n.month_of(datetime(2026, 11, 30, 15, 0, tzinfo=UTC)) == "2026-12"
    assert n.month_of(datetime(2026, 11, 30, 14, 59, tzinfo=UTC)) == "2026-11"
    assert n.previous_month("2026-01") == "2025-12"


def test_count_prompts() -> None:  # NCR-CNT-1
    assert n.count_prompts(0, None) == ["count_this_month", "times_0"]
    assert n.count_prompts(99, 100) == ["count_this_month", "times_99", "count_last_month",
                                        "times_100_plus"]


def test_menu_three_tries_then_release() -> None:
    state = MenuState(1)
    state, action = n.on_menu_input(state, "7")
    assert action is MenuAction.PLAY_MENU
    state, action = n.on_menu_input(state, None)
    assert action is MenuAction.PLAY_MENU
    assert n.on_menu_input(state, "5")[1] is MenuAction.HANGUP
    assert n.on_menu_input(MenuState(1), "2")[1] is MenuAction.REGISTER
    assert n.on_eviction_answer("0") and not n.on_eviction_answer("1")
    assert not n.on_eviction_answer(None)


def test_wrong_key_is_told_before_the_menu_repeats() -> None:
    """A wrong key gets 「入力が正しくありません。」 (before the repeat, or the release after the
    last try); a timeout only repeats the menu; a valid choice gets nothing extra."""
    state = MenuState(1)
    state, action = n.on_menu_input(state, "7")
    assert n.guidance_after_input("7", action) == [n.INVALID_INPUT]
    assert n.guidance_after_input(None, action) == []
    assert n.guidance_after_input("2", MenuAction.REGISTER) == []
    _, last = n.on_menu_input(MenuState(3), "#")
    assert last is MenuAction.HANGUP and n.guidance_after_input("#", last) == [n.INVALID_INPUT]
