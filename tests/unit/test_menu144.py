"""The 144 menu's media sequencing (ari_app.menu144.Menu) against a fake ARI and a fake list
store: barge-in, digit timeouts, three tries, the eviction question, failures, hang-ups.
The rules themselves are tested in test_nuisance*.py; the real thing in tests/e2e."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from ari_app.client import AriError
from ari_app.menu144 import CallerGone, Menu, MenuTimings, run_menu
from callguard.db import nuisance_repo
from callguard.domain import nuisance
from callguard.domain.nuisance import InboundCall, Outcome, RegistrationPlan
from callguard.domain.routing import NuisanceMenu

PROMPT_S = 0.05  # every fake prompt lasts this long
FAST = MenuTimings(digit_wait_s=0.3, eviction_wait_s=0.3, prompt_max_s=2.0)
KEY = "k-last-caller"


class FakeAri:
    """Plays prompts by time; the caller presses digits per prompt play:
    `presses[name][k] = (seconds after that play started, digit)` for the k-th play."""

    def __init__(self, presses: dict[str, list[tuple[float, str]]] | None = None,
                 finish: bool = True, state: str = "done") -> None:
        self.presses = presses or {}
        self.finish, self.state = finish, state
        self.queue: asyncio.Queue[dict[str, Any]] | None = None
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}  # run_menu's env.queues
        self.played: list[list[str]] = []
        self.stopped: list[str] = []
        self.answered = False
        self.variables: dict[str, str] = {}
        self.hung_up = False
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.plays_of: dict[str, int] = {}

    def put(self, event: dict[str, Any]) -> None:
        queue = self.queue if self.queue is not None else self.queues.get("ch-1")
        assert queue is not None
        queue.put_nowait(event)

    async def answer(self, channel_id: str) -> None:
        self.answered = True

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        self.variables[name] = value

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        self.hung_up = True

    async def play(self, channel_id: str, media: list[str], playback_id: str) -> None:
        names = [m.removeprefix("sound:callguard/") for m in media]
        assert all(m.startswith("sound:callguard/") for m in media)
        self.played.append(names)
        if self.finish:
            self.tasks[playback_id] = asyncio.create_task(
                self._finish(playback_id, PROMPT_S * len(names)))
        k = self.plays_of.get(names[0], 0)
        self.plays_of[names[0]] = k + 1
        script = self.presses.get(names[0], [])
        if k < len(script):
            delay, digit = script[k]
            asyncio.get_running_loop().call_later(delay, self.put, {
                "type": "ChannelDtmfReceived", "digit": digit})

    async def _finish(self, playback_id: str, after: float) -> None:
        await asyncio.sleep(after)
        self.put({"type": "PlaybackFinished",
                  "playback": {"id": playback_id, "state": self.state}})

    async def stop_playback(self, playback_id: str) -> None:
        self.stopped.append(playback_id)
        task = self.tasks.pop(playback_id, None)
        if task is not None:
            task.cancel()
        self.put({"type": "PlaybackFinished", "playback": {"id": playback_id, "state": "done"}})


class FakeLists:
    """The list store with the pure rules, in memory; `fail` makes every call fail."""

    def __init__(self, entries: Sequence[str] = (), calls: Sequence[InboundCall] = (),
                 capacity: int = 30, fail: bool = False) -> None:
        self.entries = list(entries)
        self.calls = list(calls)
        self.capacity = capacity
        self.fail = fail
        self.counters: tuple[int, int | None] = (0, None)

    def _check(self) -> None:
        if self.fail:
            raise nuisance_repo.StorageFailed("OSError: database down")

    async def last_caller_candidates(self, list_id: int) -> list[InboundCall]:
        self._check()
        return list(self.calls)

    async def register(self, list_id: int, caller_key: str,
                       evict_confirmed: bool) -> RegistrationPlan:
        self._check()
        plan = nuisance.plan_registration(self.entries, caller_key, self.capacity,
                                          evict_confirmed)
        if plan.outcome is not Outcome.NEEDS_EVICTION_CONFIRM:
            self.entries = list(plan.entries)
        return plan

    async def delete_newest(self, list_id: int) -> bool:
        self._check()
        rest, removed = nuisance.remove_newest(self.entries)
        self.entries = list(rest)
        return removed is not None

    async def delete_all(self, list_id: int) -> int:
        self._check()
        rest, count = nuisance.remove_all(self.entries)
        self.entries = list(rest)
        return count

    async def counts(self, list_id: int, now: datetime) -> tuple[int, int | None]:
        self._check()
        return self.counters


def ended_call(key: str | None = KEY, seconds_ago: float = 5) -> InboundCall:
    now = datetime.now(UTC)
    return InboundCall(key, now - timedelta(seconds=seconds_ago + 10),
                       now - timedelta(seconds=seconds_ago), False)


async def run(ari: FakeAri, lists: FakeLists, multi: bool = False) -> list[str]:
    """Run a whole menu session; the flat list of prompts played."""
    menu = Menu(ari, lists, "ch-1", NuisanceMenu("0312345679", 7), multi, FAST)
    ari.queue = menu.events
    await asyncio.wait_for(menu.run(), 10)
    return [name for names in ari.played for name in names]


async def test_2_during_the_guidance_skips_it_and_registers() -> None:  # NCR-REG-1, skip
    ari, lists = FakeAri({"menu": [(0.01, "2")]}), FakeLists(calls=[ended_call()])
    ari_prompts = await run(ari, lists)
    assert ari.answered
    assert ari_prompts == ["menu", "registered"]
    assert len(ari.stopped) == 1  # the menu guidance was cut short
    assert lists.entries == [KEY]


async def test_digit_after_the_guidance_is_taken() -> None:
    ari = FakeAri({"menu": [(PROMPT_S + 0.1, "4")]})
    lists = FakeLists()
    lists.counters = (7, 120)
    assert await run(ari, lists) == ["menu", "count_this_month", "times_7",
                                     "count_last_month", "times_100_plus"]
    assert ari.stopped == []


async def test_digits_during_the_result_prompt_are_ignored() -> None:
    ari = FakeAri({"menu": [(0.01, "3")], "deleted_newest": [(0.01, "9")]})
    lists = FakeLists(entries=["a", "b"])
    assert await run(ari, lists) == ["menu", "deleted_newest"]
    assert lists.entries == ["a"] and len(ari.stopped) == 1


async def test_no_input_three_menus_then_release() -> None:
    ari = FakeAri()
    assert await run(ari, FakeLists()) == ["menu", "menu", "menu"]


async def test_invalid_input_repeats_the_menu_then_a_valid_choice_counts() -> None:
    ari = FakeAri({"menu": [(0.01, "7"), (0.01, "#"), (0.01, "9")]})
    lists = FakeLists(entries=["a", "b", "c"])
    # A wrong key is told so before the menu repeats; a digit during that skips it.
    assert await run(ari, lists) == ["menu", "invalid_input", "menu", "invalid_input", "menu",
                                     "deleted_all"]
    assert lists.entries == []


async def test_three_invalid_inputs_release_without_result() -> None:
    ari = FakeAri({"menu": [(0.01, "1"), (0.01, "5"), (0.01, "8")]})
    lists = FakeLists(entries=["a"])
    assert await run(ari, lists) == ["menu", "invalid_input", "menu", "invalid_input", "menu",
                                     "invalid_input"]
    assert lists.entries == ["a"]


async def test_digit_during_invalid_input_guidance_is_the_choice() -> None:
    """SPEC: DTMF during any guidance interrupts it and counts as the choice (skip)."""
    ari = FakeAri({"menu": [(0.01, "7")], "invalid_input": [(0.01, "3")]})
    lists = FakeLists(entries=["a", "b"])
    assert await run(ari, lists) == ["menu", "invalid_input", "deleted_newest"]
    assert lists.entries == ["a"]


async def test_wrong_keys_during_invalid_input_are_the_next_tries() -> None:
    """"5,5,5" pressed fast: each "5" cuts the guidance before it and is the next try (skip);
    three wrong tries release the call, the last 「入力が正しくありません。」 played whole."""
    ari = FakeAri({"menu": [(0.01, "5")], "invalid_input": [(0.01, "5")] * 3})
    assert await run(ari, FakeLists()) == ["menu", "invalid_input", "invalid_input",
                                           "invalid_input"]
    assert len(ari.stopped) == 3  # the menu and two guidances cut; not the last one


async def test_a_valid_key_during_the_last_invalid_input_is_not_taken() -> None:
    """After the third try the call is released: a "2" during the last 「入力が正しくあり
    ません。」 neither cuts it short nor registers."""
    presses = {"menu": [(0.01, "5")] * 3,
               "invalid_input": [(60.0, "x"), (60.0, "x"), (0.01, "2")]}
    # (nothing during the first two guidances: each of those tries hears the menu again)
    ari, lists = FakeAri(presses), FakeLists(calls=[ended_call()])
    assert await run(ari, lists) == ["menu", "invalid_input"] * 3
    assert lists.entries == [] and len(ari.stopped) == 3  # the three menus, cut by "5"


class PressDuringStorage(FakeLists):
    """The caller presses `digit` again while the list store works (nothing is playing)."""

    def __init__(self, ari: FakeAri, digit: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ari, self.digit = ari, digit

    async def last_caller_candidates(self, list_id: int) -> list[InboundCall]:
        self.ari.put({"type": "ChannelDtmfReceived", "digit": self.digit})
        await asyncio.sleep(0.01)
        return await super().last_caller_candidates(list_id)


async def test_a_digit_pressed_before_a_question_is_not_its_answer() -> None:
    """"2" pressed twice on a full list: the second, pressed while nothing played, does not
    answer 「…よろしければ“0”…」 before it is asked (it is discarded, as the AGI shell never
    sees it); the "0" pressed during the question is the answer."""
    ari = FakeAri({"menu": [(0.01, "2")], "list_full": [(0.02, "0")]})
    lists = PressDuringStorage(ari, "2", entries=FULL, calls=[ended_call()])
    assert await run(ari, lists) == ["menu", "list_full", "registered"]
    assert lists.entries == [*FULL[1:], KEY]


async def test_a_hangup_before_a_question_is_still_a_hangup() -> None:
    ari = FakeAri({"menu": [(0.01, "2")]})
    lists = PressDuringStorage(ari, "2", entries=FULL, calls=[ended_call()])
    menu = Menu(ari, lists, "ch-1", NuisanceMenu("0312345679", 7), False, FAST)
    ari.queue = menu.events
    real = lists.register

    async def register(list_id: int, caller_key: str,
                       evict_confirmed: bool) -> RegistrationPlan:
        ari.put({"type": "ChannelHangupRequest"})
        return await real(list_id, caller_key, evict_confirmed)

    lists.register = register  # type: ignore[method-assign]
    with pytest.raises(CallerGone):
        await asyncio.wait_for(menu.run(), 5)
    assert ari.played == [["menu"]]


@pytest.mark.parametrize(("entries", "result"), [(["a"], "deleted_newest"), ([], "list_empty")])
async def test_delete_newest(entries: list[str], result: str) -> None:  # NCR-DEL-1/3
    lists = FakeLists(entries=entries)
    assert await run(FakeAri({"menu": [(0.01, "3")]}), lists) == ["menu", result]
    assert lists.entries == []


async def test_delete_all_of_an_empty_list() -> None:  # NCR-DEL-3
    assert await run(FakeAri({"menu": [(0.01, "9")]}), FakeLists()) == ["menu", "list_empty"]


FULL = [f"old{i:02d}" for i in range(30)]


async def test_full_list_0_drops_the_oldest() -> None:  # NCR-REG-5
    ari = FakeAri({"menu": [(0.01, "2")], "list_full": [(0.01, "0")]})
    lists = FakeLists(entries=FULL, calls=[ended_call()])
    assert await run(ari, lists) == ["menu", "list_full", "registered"]
    assert lists.entries == [*FULL[1:], KEY]


@pytest.mark.parametrize("answer", ["5", "*", None])
async def test_full_list_anything_but_0_changes_nothing(answer: str | None) -> None:
    presses = {"menu": [(0.01, "2")]}
    if answer is not None:
        presses["list_full"] = [(0.01, answer)]
    lists = FakeLists(entries=FULL, calls=[ended_call()])
    assert await run(FakeAri(presses), lists) == ["menu", "list_full", "register_cancelled"]
    assert lists.entries == FULL


async def test_already_listed_caller_becomes_newest_without_question() -> None:  # NCR-REG-6
    lists = FakeLists(entries=[KEY, *FULL[1:]], calls=[ended_call()])
    assert await run(FakeAri({"menu": [(0.01, "2")]}), lists) == ["menu", "registered"]
    assert lists.entries == [*FULL[1:], KEY]


@pytest.mark.parametrize(("calls", "multi"), [
    ([], False),  # nobody called
    ([ended_call(seconds_ago=61)], True),  # 60 s window of a multi-channel scope
    # source 004's period when no number can be registered: a call from another caller
    # still in progress, two callers ending together
    ([ended_call(), InboundCall("other", datetime.now(UTC), None, False)], True),
    ([last := ended_call(), replace(last, caller_key="other")], True),
])
async def test_cannot_identify(calls: list[InboundCall], multi: bool) -> None:  # NCR-REG-3
    lists = FakeLists(calls=calls)
    prompts = await run(FakeAri({"menu": [(0.01, "2")]}), lists, multi)
    assert prompts == ["menu", "cannot_identify"]
    assert lists.entries == []


@pytest.mark.parametrize("multi", [False, True])
async def test_caller_without_number_hears_registration_failed(multi: bool) -> None:
    """NCR-REG-3, source 004: a last caller whose number the network did not give (some
    international calls) cannot be registered, and 「登録できないときは、「迷惑電話リストの
    登録に失敗しました。」」; 「相手の電話番号が確認できない…」 is the blocked period's only."""
    lists = FakeLists(entries=["a"], calls=[ended_call(key=None)])
    prompts = await run(FakeAri({"menu": [(0.01, "2")]}), lists, multi)
    assert prompts == ["menu", "register_failed"]
    assert lists.entries == ["a"]


class FakeAgi:
    """pyst2's AGI as AgiMenu uses it: STREAM FILE returns the escape digit pressed. A prompt
    in `failing` cannot be played: Asterisk answers `200 result=-1`, which pyst2 raises as
    AGIAppError; CHANNEL STATUS then says whether the channel is still there (6, up) or not
    (-1). `after` are the digits WAIT FOR DIGIT returns, in order ("" for a timeout)."""

    def __init__(self, presses: dict[str, str | list[str]], failing: Sequence[str] = (),
                 status: int = 6, after: Sequence[str] = ()) -> None:
        # prompt name -> digit pressed during its first play, or one per play ("": none)
        self.presses = {k: [v] if isinstance(v, str) else list(v) for k, v in presses.items()}
        self.failing = set(failing)
        self.status = status
        self.after = list(after)
        self.streamed: list[str] = []
        self.hung_up = False

    def answer(self) -> None:
        return None

    def hangup(self) -> None:
        self.hung_up = True

    def stream_file(self, name: str, escape_digits: str = "") -> str:
        from asterisk.agi import AGIAppError
        prompt = name.removeprefix("callguard/")
        self.streamed.append(prompt)
        if prompt in self.failing:
            raise AGIAppError("Error executing application, or hangup")
        pressed = self.presses.get(prompt, [])
        digit = pressed.pop(0) if pressed else ""
        return digit if escape_digits else ""  # without escape digits STREAM FILE plays on

    def channel_status(self) -> int:
        return self.status

    def wait_for_digit(self, timeout: int) -> str:
        return self.after.pop(0) if self.after else ""


@pytest.mark.parametrize(("digit", "key", "fail", "prompt"), [
    ("2", None, False, "register_failed"),  # no number (NCR-REG-3, source 004)
    ("2", KEY, False, "registered"),
    ("2", KEY, True, "register_failed"),  # NCR-REG-7
    ("3", KEY, True, "congestion"),  # not a registration (source 004)
])
async def test_the_fallback_menu_says_the_same(digit: str, key: str | None, fail: bool,
                                               prompt: str) -> None:
    """REL-1: the FastAGI menu (agi_scripts.menu144_agi) chooses the same prompt."""
    from agi_scripts.menu144_agi import run_agi_menu
    agi = FakeAgi({"menu": digit})
    lists = FakeLists(entries=["a"], calls=[ended_call(key=key)], fail=fail)
    await run_agi_menu(agi, lists, "ch-1", NuisanceMenu("0312345679", 7), False)
    assert agi.streamed == ["menu", prompt] and agi.hung_up


async def test_the_fallback_menu_takes_keys_during_invalid_input_the_same() -> None:
    """The same tries over AGI: "5,5,5" fast is three tries (each "5" skips the guidance
    before it), and the last 「入力が正しくありません。」 plays whole (no escape digits), so a
    "2" during it registers nothing; then the call is released."""
    from agi_scripts.menu144_agi import run_agi_menu
    agi = FakeAgi({"menu": ["5"], "invalid_input": ["5", "5", "2"]})
    lists = FakeLists(calls=[ended_call()])
    await run_agi_menu(agi, lists, "ch-1", NuisanceMenu("0312345679", 7), False)
    assert agi.streamed == ["menu", "invalid_input", "invalid_input", "invalid_input"]
    assert agi.hung_up and lists.entries == []


async def test_the_fallback_menu_answers_the_full_list_question_the_same() -> None:
    """What test_a_digit_pressed_before_a_question_is_not_its_answer gives in the ARI shell:
    the "0" during 「…よろしければ“0”…」 evicts the oldest."""
    from agi_scripts.menu144_agi import run_agi_menu
    agi = FakeAgi({"menu": "2", "list_full": "0"})
    lists = FakeLists(entries=FULL, calls=[ended_call()])
    await run_agi_menu(agi, lists, "ch-1", NuisanceMenu("0312345679", 7), False)
    assert agi.streamed == ["menu", "list_full", "registered"]
    assert lists.entries == [*FULL[1:], KEY]


async def test_failed_prompt_goes_on_in_the_fallback_too(
        caplog: pytest.LogCaptureFixture) -> None:
    """REL-4, REL-7: a prompt STREAM FILE cannot play (`200 result=-1` on a channel that is
    still up) is "prompt failed, go on" as in the ARI shell (test_failed_playback_goes_on):
    the digit after it is taken, the result is said, the call is released. Not a hangup."""
    from agi_scripts.menu144_agi import run_agi_menu
    agi = FakeAgi({}, failing=["menu"], after=["3"])
    lists = FakeLists(entries=["a"])
    with caplog.at_level(logging.INFO, logger="callguard.menu"):
        await run_agi_menu(agi, lists, "ch-1", NuisanceMenu("0312345679", 7), False)
    assert agi.streamed == ["menu", "deleted_newest"] and agi.hung_up
    assert lists.entries == []
    assert any(r.msg == "prompt failed to play" for r in caplog.records)
    assert not any(r.msg == "caller hung up during the 144 menu" for r in caplog.records)


async def test_failed_prompts_never_end_the_fallback_menu_early() -> None:
    """No prompt plays at all (sounds missing): three silent menus, then released, as the ARI
    shell does with failed playbacks; never a CallerGone on a channel still up."""
    from agi_scripts.menu144_agi import run_agi_menu
    agi = FakeAgi({}, failing=["menu"])
    await run_agi_menu(agi, FakeLists(), "ch-1", NuisanceMenu("0312345679", 7), False)
    assert agi.streamed == ["menu", "menu", "menu"] and agi.hung_up


async def test_a_hangup_during_a_prompt_is_still_a_hangup() -> None:
    """`200 result=-1` on a channel that is gone (CHANNEL STATUS -1): the caller hung up."""
    from agi_scripts.menu144_agi import AgiMenu
    agi = FakeAgi({}, failing=["menu"], status=-1, after=["3"])
    menu = AgiMenu(agi, FakeLists(entries=["a"]), "ch-1", NuisanceMenu("0312345679", 7),
                   False, FAST)
    with pytest.raises(CallerGone):
        await menu.run()
    assert agi.streamed == ["menu"]


@pytest.mark.parametrize(("status_answer", "gone"), [
    ("200 result=6\n", False),  # the channel is up: the prompt failed
    ("200 result=-1\n", True),  # no such channel
    ("HANGUP\n", True),  # FastAGI's SIGHUP ahead of the answer
], ids=["up", "result=-1", "HANGUP"])
async def test_stream_file_failure_over_the_agi_protocol(status_answer: str,
                                                         gone: bool) -> None:
    """The same over pyst2 and the real protocol lines (agi_scripts.fastagi.QuietAGI)."""
    import io

    from agi_scripts.fastagi import QuietAGI
    from agi_scripts.menu144_agi import AgiMenu
    from tests.unit.test_agi_environment import ENV_HEAD, ENV_TAIL
    answers = ("200 result=0\n"  # ANSWER
               "200 result=-1 endpos=0\n"  # STREAM FILE callguard/menu
               + status_answer +  # CHANNEL STATUS
               "200 result=51\n"  # WAIT FOR DIGIT: "3"
               "200 result=0 endpos=8000\n")  # STREAM FILE callguard/deleted_newest
    sent = io.StringIO()
    agi = QuietAGI(io.StringIO(ENV_HEAD + ENV_TAIL + answers), sent)
    lists = FakeLists(entries=["a"])
    menu = AgiMenu(agi, lists, "ch-1", NuisanceMenu("0312345679", 7), False, FAST)
    try:
        if gone:
            with pytest.raises(CallerGone):
                await menu.run()
            assert lists.entries == ["a"]
        else:
            await menu.run()
            assert lists.entries == []
            assert "STREAM FILE callguard/deleted_newest" in sent.getvalue()
    finally:
        agi.finish()
    assert "CHANNEL STATUS" in sent.getvalue()


async def test_single_channel_scope_has_no_window() -> None:  # NCR-REG-3 (multi only)
    lists = FakeLists(calls=[ended_call(seconds_ago=600)])
    assert await run(FakeAri({"menu": [(0.01, "2")]}), lists, False) == ["menu", "registered"]


@pytest.mark.parametrize(("digit", "prompt"), [
    ("2", "register_failed"),  # NCR-REG-7
    # source 004 defines 「…登録に失敗しました。」 for registration only: 3/9/4 get the neutral
    # 「ただいま、大変混み合っております。しばらくたってから、おかけ直しください。」
    ("3", "congestion"), ("9", "congestion"), ("4", "congestion"),
])
async def test_storage_failure_guidance(digit: str, prompt: str) -> None:
    lists = FakeLists(entries=["a"], calls=[ended_call()], fail=True)
    assert await run(FakeAri({"menu": [(0.01, digit)]}), lists) == ["menu", prompt]
    assert lists.entries == ["a"]


async def test_caller_hangs_up_during_the_menu() -> None:
    ari = FakeAri(finish=False)
    menu = Menu(ari, FakeLists(), "ch-1", NuisanceMenu("0312345679", 7), False, FAST)
    ari.queue = menu.events
    task = asyncio.create_task(menu.run())
    await asyncio.sleep(0.05)
    ari.put({"type": "ChannelHangupRequest"})
    with pytest.raises(CallerGone):
        await asyncio.wait_for(task, 2)


async def test_a_playback_that_never_ends_does_not_hold_the_line() -> None:  # REL-4
    ari = FakeAri(finish=False)
    menu = Menu(ari, FakeLists(), "ch-1", NuisanceMenu("0312345679", 7), False,
                MenuTimings(digit_wait_s=0.05, eviction_wait_s=0.05, prompt_max_s=0.1))
    ari.queue = menu.events
    await asyncio.wait_for(menu.run(), 3)
    assert ari.played == [["menu"], ["menu"], ["menu"]]


async def test_failed_playback_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    ari = FakeAri({"menu": [(PROMPT_S + 0.05, "3")]}, state="failed")
    with caplog.at_level(logging.INFO, logger="callguard.menu"):
        assert await run(ari, FakeLists(entries=["a"])) == ["menu", "deleted_newest"]
    assert any(r.msg == "prompt failed to play" for r in caplog.records)


async def test_one_log_line_per_prompt(caplog: pytest.LogCaptureFixture) -> None:
    """The e2e tests read these lines to know what the caller heard."""
    lists = FakeLists()
    lists.counters = (3, None)
    with caplog.at_level(logging.INFO, logger="callguard.menu"):
        await run(FakeAri({"menu": [(0.01, "4")]}), lists)
    prompts = [getattr(r, "prompt", None) for r in caplog.records if r.msg == "prompt"]
    assert prompts == ["menu", "count_this_month", "times_3"]


class GoneAri(FakeAri):
    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status

    async def answer(self, channel_id: str) -> None:
        raise AriError(self.status, "Channel not found")


def fake_env(ari: FakeAri) -> Any:
    site = SimpleNamespace(current=SimpleNamespace(numbers={}))
    # No session factory: every storage call fails, which the menu must survive (NCR-REG-7).
    return SimpleNamespace(ari=ari, site=site, store=SimpleNamespace(sessions=None),
                           settings=SimpleNamespace(hmac_key=bytes(32)),
                           queues=ari.queues)


async def test_run_menu_caller_already_gone_is_not_an_error() -> None:
    env = fake_env(GoneAri(404))
    await run_menu(env, "ch-1", NuisanceMenu("0312345679", 7))
    assert env.queues == {}  # the channel's queue is removed again


async def test_run_menu_other_ari_failures_reach_the_app_handler() -> None:
    """The app's handler then continues the channel into the fallback (REL-1)."""
    env = fake_env(GoneAri(500))
    with pytest.raises(AriError):
        await run_menu(env, "ch-1", NuisanceMenu("0312345679", 7))
    assert env.queues == {}


async def test_run_menu_hangs_up_after_the_result() -> None:
    ari = FakeAri({"menu": [(0.01, "9")]})
    env = fake_env(ari)
    # The storage call fails (no session factory): the caller still hears the failure
    # guidance (9 is not a registration: source 004) and is released.
    await asyncio.wait_for(run_menu(env, "ch-1", NuisanceMenu("0312345679", 7)), 5)
    assert ari.played == [["menu"], ["congestion"]] and ari.hung_up
    assert env.queues == {}
    # A long session in Stasis: the dialplan's 1 s Stasis() deadline is lifted (REL-7).
    assert ari.variables == {"TIMEOUT(absolute)": "0"}


async def test_run_menu_after_the_stasis_deadline_leaves_the_call_to_the_fallback() -> None:
    """REL-7: the deadline passed before the menu could lift it (409: not in Stasis): the
    FastAGI fallback has the call; nothing is played, nothing is raised, nobody hung up."""
    ari = GoneAri(409)

    async def not_in_stasis(channel_id: str, name: str, value: str) -> None:
        raise AriError(409, "Channel not in Stasis application")

    ari.set_variable = not_in_stasis  # type: ignore[method-assign]
    env = fake_env(ari)
    await run_menu(env, "ch-1", NuisanceMenu("0312345679", 7))
    assert ari.played == [] and not ari.hung_up and env.queues == {}
