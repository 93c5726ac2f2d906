"""One call core, two shells (REL-1, REL-5): the same call seen by the ARI app (StasisStart
channel + the dialplan's Stasis() arguments) and by the FastAGI fallback (AGI environment +
channel variables) gives the same raw facts, the same Decision, the same rows written and
the same dialplan context and CG_* variables — the shells themselves are run with fakes."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import agi_scripts.fastagi as fastagi
import ari_app.calls as calls
from agi_scripts.fastagi import Fallback
from ari_app.calls import CallEnv, inbound_facts, outbound_facts, start_inbound, start_outbound
from ari_app.site_cache import SiteCache
from callguard.callpath import Limits, plan_inbound, plan_outbound
from callguard.config import Settings
from callguard.dialplan import ari_extension, read_ari_extension
from callguard.domain.privacy import caller_key
from callguard.domain.routing import NuisanceMenu
from callguard.journal import Op
from callguard.localstate import LocalState, decode, encode
from tests.unit.test_routing import NOW, SITE

KEY = b"k" * 32
LISTED = "0399990666"
SETTINGS = Settings(
    database_url="postgresql://x", ari_url="http://127.0.0.1:8088", ari_user="u",
    ari_password="p", ari_app="callguard", hmac_key=KEY, api_token="t",
    recordings_dir=Path("/rec"), recordings_asterisk_dir="/var/spool/asterisk/callguard",
    asterisk_root="", log_dir=Path("/tmp/log"), fastagi_host="127.0.0.1", fastagi_port=4573,
    api_host="127.0.0.1", api_port=8089, max_recordings=400, at_capacity_policy="congestion",
    ring_timeout_s=30,
)
STATE = LocalState(SITE, {1: frozenset({caller_key(KEY, LISTED)}),
                          3: frozenset({caller_key(KEY, LISTED)})}, 0, "database")
LIMITS = Limits(KEY, 400, "congestion", 30, SETTINGS.recordings_asterisk_dir)


@dataclass(frozen=True)
class Call:
    """One call as the wire gives it (before either shell looks at it)."""

    exten: str
    caller: str = ""
    withheld: bool = False
    rp: bool = False
    audio: str = "(ulaw)"
    endpoint: str = ""
    visited: bool = False
    video: str = ""  # CHANNEL(videonativeformat); "" (no video) is not passed to Stasis()

    def stasis(self, role: str) -> tuple[dict[str, Any], list[str]]:
        channel = {"id": "1700000000.42", "name": f"PJSIP/{self.endpoint}-0000002a",
                   "caller": {"number": self.caller}, "dialplan": {"exten": self.exten}}
        if role == "inbound":
            pres = "prohib_passed_screen" if self.withheld else "allowed_not_screened"
            video = [self.video] if self.video else []
            return channel, ["inbound", "1" if self.rp else "0", pres, self.audio, *video]
        return channel, ["outbound", "1" if self.rp else "0", "1" if self.visited else "0"]

    def agi(self, role: str) -> FakeAGI:
        exten = self.exten if role == "inbound" else f"s-{self.exten}"
        return FakeAGI(
            env={"agi_uniqueid": "1700000000.42", "agi_extension": exten,
                 "agi_callerid": self.caller or "unknown"},
            variables={"CALLERID(num)": self.caller or "",
                       "CALLERID(pres)": "prohib_passed_screen" if self.withheld
                       else "allowed_not_screened",
                       "CHANNEL(audionativeformat)": self.audio,
                       "CHANNEL(videonativeformat)": self.video,
                       "CHANNEL(endpoint)": self.endpoint},
            headers={"Resource-Priority": self.rp, "P-Visited-Network-ID": self.visited},
        )


@dataclass
class FakeAGI:
    env: dict[str, str]
    variables: dict[str, str]
    headers: dict[str, bool]
    set: dict[str, str] = field(default_factory=dict)
    commands: int = 0  # AGI commands sent: each a round trip with the channel's thread
    started: float = 0.0  # QuietAGI's start time (decision latency metric)

    def get_variable(self, name: str) -> str:
        self.commands += 1
        return self.variables.get(name, "")

    def value_of(self, expression: str) -> str:
        """What Asterisk substitutes for one of the fallback's expressions."""
        header = re.fullmatch(r"\$\{EXISTS\(\$\{PJSIP_HEADER\(read,([^)]+)\)\}\)\}", expression)
        if header:
            return "1" if self.headers.get(header[1]) else "0"
        if expression == "${EXTEN}":
            return self.env["agi_extension"]
        name = re.fullmatch(r"\$\{(.+)\}", expression)
        return self.variables.get(name[1], "") if name else ""

    def get_full_variable(self, expr: str) -> str:
        self.commands += 1
        items = re.findall(r"\$\{BASE64_ENCODE\(x(.*?)\)\}(?=,\$\{BASE64_ENCODE|$)", expr)
        assert ",".join(f"${{BASE64_ENCODE(x{i})}}" for i in items) == expr
        return ",".join(base64.b64encode(f"x{self.value_of(i)}".encode()).decode()
                        for i in items)

    def set_variable(self, name: str, value: str) -> None:
        """As Asterisk assigns: ARRAY(A,B) = "a,b" sets each name its field ("" if none)."""
        self.commands += 1
        array = re.fullmatch(r"ARRAY\((.+)\)", name)
        if array is None:
            self.set[name] = value
            return
        fields = value.split(",")
        for i, each in enumerate(array[1].split(",")):
            self.set[each] = fields[i] if i < len(fields) else ""


class FakeKeeper:
    def __init__(self) -> None:
        self.current = STATE
        self.delta = 0

    def adjust_recordings(self, delta: int) -> None:
        self.delta += delta


class FakeAri:
    """Records what Asterisk would end up with: the variables set by request, plus those the
    context's `_v.` extension assigns from the continue target (as the dialplan does)."""

    def __init__(self, fast: bool = True) -> None:
        self.variables: dict[str, str] = {}
        self.context = ""
        self.extension = ""
        self.requests = 0
        self.fast = fast  # a kept connection is free: the continue is written at once
        self.taken = 0  # connections taken by ready() and not yet used or given back

    def ready(self) -> object | None:
        if not self.fast:
            return None
        self.taken += 1
        return object()

    def unready(self, ready: object) -> None:
        self.taken -= 1

    def continue_on(self, ready: object, channel_id: str, context: str,
                    extension: str) -> Coroutine[Any, Any, None]:
        self.taken -= 1
        self.record_continue(channel_id, context, extension)  # written now, not when awaited

        async def answered() -> None:
            return None
        return answered()

    async def set_variables(self, channel_id: str, values: dict[str, str]) -> None:
        self.requests += 1
        self.variables.update(values)

    async def subscribe_channel(self, channel_id: str) -> None:
        self.requests += 1  # outbound recorded calls only (issue #14 transfers)

    async def continue_in_dialplan(self, channel_id: str, context: str = "",
                                   extension: str = "s") -> None:
        self.record_continue(channel_id, context, extension)

    def record_continue(self, channel_id: str, context: str, extension: str) -> None:
        self.requests += 1
        self.context, self.extension = context, extension
        self.variables.update(read_ari_extension(context, extension, channel_id,
                                                 SETTINGS.recordings_asterisk_dir))


class FakeStore:
    def __init__(self) -> None:
        self.ops: list[Op] = []

    async def write(self, ops: list[Op]) -> None:
        self.ops.extend(ops)


LAST_ARI: list[FakeAri] = []
LAST_AGI: list[FakeAGI] = []


class FrozenClock(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> FrozenClock:
        return cls.fromtimestamp(NOW.timestamp(), UTC)


INBOUND = [
    Call("0312345678", "0399990000"),  # recorded, nuisance scope (REC-IN-1)
    Call("0312345678", LISTED),  # listed: rejected before everything (NCR-REJ-1)
    Call("0312345678", LISTED, audio="(nothing)"),  # no audio: declined (NCR-REJ-2)
    # source 004 ■テレビ電話 ■高音質電話: asked to call again in standard quality (488)
    Call("0312345678", LISTED, audio="(g722)"),
    Call("0312345678", LISTED, video="(h264)"),
    Call("0312345678", "0399990000", audio="(g722)"),  # not listed: connected as ever
    Call("0312345678", "", withheld=True),  # withheld: recorded as anonymous (REC-IN-2)
    Call("0612345678", LISTED),  # per-contract list
    Call("0312345679", "0399990000", rp=True),  # forwarding on no answer
    Call("0399999999", "0399990000"),  # not ours: 404
]
OUTBOUND = [
    Call("0077270612345678", endpoint="f1-a"),  # recorded with the prefix (REC-OUT-1)
    Call("09012345678", endpoint="m1-a"),
    Call("110", endpoint="f1-a"),
    Call("0077260612345678", endpoint="f1-a"),  # wrong prefix: spoken refusal
    Call("00772608001234567", endpoint="m1-b", visited=True),
    Call("0312345678", endpoint="nobody"),  # unknown endpoint (SEC-1)
    Call("144", endpoint="m1-a"),  # 144 from a number not subscribed: not_subscribed
    Call("184144", endpoint="m1-a"),  # behind 184/186 too, never the carrier's
    Call("186144", endpoint="m1-a"),
    Call("184110", endpoint="f1-a"),  # emergency behind 184: withheld (REL-6)
    Call("186119", endpoint="m1-a"),
    Call("1840612340000", endpoint="f2-a"),  # 184/186 before a number
    Call("1860612340000", endpoint="f2-a"),
    Call("1840077270612345678", endpoint="f1-a"),  # with the prefix: rec_privacy_prefix
    Call("#0312345678", endpoint="f1-a"),  # a leading # or *
    Call("*0312345678", endpoint="f1-a"),
    Call("#0077270612345678", endpoint="f1-a"),
    Call("007727031234567", endpoint="f1-a"),  # misdial after the prefix: number_unknown
    Call("00772703123456789", endpoint="f1-a"),
    Call("007726", endpoint="m1-a"),  # the prefix alone
    Call("007727110", endpoint="f1-a"),  # emergency, extension, 010 after the prefix
    Call("0077272002", endpoint="f1-a"),
    Call("007727010", endpoint="f1-a"),
    Call("0077270101234567890", endpoint="f1-a"),  # international: recorded
]


def same_in_both(ops: list[Op]) -> list[Op]:
    """The writes both shells must agree on: the call_outcomes row differs by design (it
    names the shell that decided, and is stamped when written)."""
    return [op for op in ops if op.name != "call_outcome"]


def fakes(fast: bool = True) -> tuple[FakeKeeper, FakeAri, FakeStore, CallEnv]:
    """The ARI shell's surroundings, faked: state keeper, ARI (`fast`: a kept connection is
    free), store, and the CallEnv over them."""
    keeper, ari, store = FakeKeeper(), FakeAri(fast), FakeStore()
    env = CallEnv(SETTINGS, ari, store, SiteCache(keeper), {}, {})  # type: ignore[arg-type]
    return keeper, ari, store, env


def run_ari(call: Call, role: str, fast: bool = True,
            ) -> tuple[list[Op], dict[str, str], str, int]:
    """The ARI shell's outcome; `fast`: the continue is written from the StasisStart handler
    (a kept connection free, PERF-1), else by the task (`carry_out`)."""
    keeper, ari, store, env = fakes(fast)
    channel, args = call.stasis(role)
    start = start_inbound if role == "inbound" else start_outbound

    async def handled() -> None:  # as the app: the handler starts it, a task awaits the rest
        await start(env, channel, args)

    asyncio.run(handled())
    LAST_ARI[:] = [ari]
    assert ari.taken == 0  # every connection taken went out with a request or back
    variables = {k: v for k, v in ari.variables.items() if k != "CG_FOLLOW"}
    return same_in_both(store.ops), variables, ari.context, keeper.delta


def fallback(keeper: FakeKeeper, written: list[Op], agi_secret: str = "") -> Fallback:
    """The fallback as the server builds it, with fakes for the state keeper and the writer."""
    fb = Fallback.__new__(Fallback)
    fb.settings = dataclasses.replace(SETTINGS, agi_secret=agi_secret)
    fb.keeper, fb.limits = keeper, LIMITS  # type: ignore[assignment]
    fb.write = written.extend  # type: ignore[method-assign,assignment]
    return fb


def run_agi(call: Call, role: str) -> tuple[list[Op], dict[str, str], str, int]:
    keeper, written = FakeKeeper(), list[Op]()
    fb = fallback(keeper, written)
    agi = call.agi(role)
    (fb.inbound if role == "inbound" else fb.outbound)(agi)  # type: ignore[arg-type]
    LAST_AGI[:] = [agi]
    context = agi.set.pop("CG_NEXT")
    # The fallback also sets the empty CG_* values (its channel may carry old ones) and
    # its own end-of-call hook; the ARI app follows the call by events instead.
    agi.set.pop("CG_FOLLOW", None)
    agi.set.pop("CHANNEL(hangup_handler_push)", None)
    return same_in_both(written), {k: v for k, v in agi.set.items() if v}, context, keeper.delta


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls, "datetime", FrozenClock)
    monkeypatch.setattr(fastagi, "datetime", FrozenClock)


@pytest.mark.parametrize("call", INBOUND, ids=lambda c: f"{c.exten}-{c.caller or 'anon'}")
def test_inbound_parity(call: Call) -> None:
    channel, args = call.stasis("inbound")
    raw_ari = inbound_facts(channel, args, NOW)
    raw_agi = Fallback.inbound_facts(call.agi("inbound"), NOW)  # type: ignore[arg-type]
    # The AGI environment says "unknown" for no caller number; both mean "no identity".
    assert plan_inbound(raw_ari, STATE, LIMITS) == plan_inbound(raw_agi, STATE, LIMITS)
    assert run_ari(call, "inbound") == run_agi(call, "inbound")
    assert run_ari(call, "inbound", fast=False) == run_agi(call, "inbound")


@pytest.mark.parametrize("call", OUTBOUND, ids=lambda c: f"{c.endpoint}-{c.exten}")
def test_outbound_parity(call: Call) -> None:
    channel, args = call.stasis("outbound")
    raw_ari = outbound_facts(channel, args, NOW)
    raw_agi = Fallback.outbound_facts(call.agi("outbound"), NOW)  # type: ignore[arg-type]
    assert raw_ari == raw_agi
    assert plan_outbound(raw_ari, STATE, LIMITS) == plan_outbound(raw_agi, STATE, LIMITS)
    assert run_ari(call, "outbound") == run_agi(call, "outbound")
    assert run_ari(call, "outbound", fast=False) == run_agi(call, "outbound")


@pytest.mark.parametrize("exten", ["144", "184144", "186144", "144#", "*144", "#144"])
def test_144_from_a_subscribed_line_is_the_menu_in_both(exten: str) -> None:
    """NCR-*: the same facts and the same plan, the menu, in both shells (the menu itself
    is tests/unit/test_menu144.py's, run through both); 144 never goes to the carrier."""
    call = Call(exten, endpoint="f1-a")
    channel, args = call.stasis("outbound")
    raw_ari = outbound_facts(channel, args, NOW)
    raw_agi = Fallback.outbound_facts(call.agi("outbound"), NOW)  # type: ignore[arg-type]
    assert raw_ari == raw_agi
    plan = plan_outbound(raw_ari, STATE, LIMITS)
    assert plan == plan_outbound(raw_agi, STATE, LIMITS)
    assert plan.decision == NuisanceMenu("0312345678", 1)


def test_listed_caller_rejected_from_memory_and_counted() -> None:
    ops, _, context, delta = run_ari(Call("0312345678", LISTED), "inbound")
    assert context == "cg-reject" and delta == 0
    assert [op.name for op in ops] == ["inbound_call_started", "count_rejection"]


@pytest.mark.parametrize(("audio", "video", "context", "rows"), [
    ("(ulaw)", "", "cg-reject", ["inbound_call_started", "count_rejection"]),
    ("(alaw)", "(nothing)", "cg-reject", ["inbound_call_started", "count_rejection"]),
    ("(ulaw|g722)", "", "cg-reject", ["inbound_call_started", "count_rejection"]),
    ("(g722)", "", "cg-release-cause", []),  # 高音質電話
    ("(g722|ulaw)", "", "cg-release-cause", []),
    ("(ulaw)", "(h264)", "cg-release-cause", []),  # テレビ電話
    ("(nothing)", "(vp8)", "cg-release-cause", []),  # video only
    ("(nothing)", "", "cg-decline", ["inbound_call_started"]),  # data: no message, no count
], ids=["ulaw", "alaw", "ulaw+g722", "g722", "g722+ulaw", "audio+video", "video-only",
        "no-audio"])
def test_listed_caller_by_negotiated_media(audio: str, video: str, context: str,
                                           rows: list[str]) -> None:
    """Source 004: only a standard-quality voice call from a listed caller hears the message
    and is counted (NCR-REJ-1, NCR-CNT-1); a videophone or wideband one gets 488 (cause 58):
    never answered, rung or counted. Both shells read the same CHANNEL(...nativeformat)."""
    call = Call("0312345678", LISTED, audio=audio, video=video)
    ops, variables, got, _ = run_ari(call, "inbound")
    assert (got, [op.name for op in ops]) == (context, rows)
    if context == "cg-release-cause":
        assert variables == {"CG_CAUSE": "58"}
    assert run_agi(call, "inbound") == (ops, variables, got, 0)


def test_recorded_call_counts_towards_capacity() -> None:  # REC-CAP-1 local count
    _, variables, context, delta = run_ari(Call("0312345678", "0399990000"), "inbound")
    assert context == "cg-connect" and variables["CG_REC_FILE"] and delta == 1
    full = LocalState(SITE, STATE.lists, 400, "database")
    plan = plan_inbound(calls.inbound_facts(*Call("0312345678", "0399990000").stasis(
        "inbound"), NOW), full, LIMITS)
    assert plan.log["decision"] == "Refuse"  # congestion at the maximum (default policy)


def test_state_snapshot_roundtrip() -> None:
    back = decode(encode(STATE))
    assert (back.site, back.lists, back.active_recordings) == (
        STATE.site, STATE.lists, STATE.active_recordings)
    assert back.source == "disk"


@pytest.mark.parametrize("call", INBOUND, ids=lambda c: f"{c.exten}-{c.caller or 'anon'}")
def test_one_request_per_inbound_call(call: Call) -> None:
    """PERF-1: the decision travels as the continue target: one REST request per call."""
    run_ari(call, "inbound")
    assert LAST_ARI[0].requests == 1
    assert LAST_ARI[0].extension.startswith(("v", "s"))


@pytest.mark.parametrize("call", INBOUND + [c for c in OUTBOUND if c.exten != "144"],
                         ids=lambda c: f"{c.endpoint or c.exten}-{c.caller or c.exten}")
def test_the_fallback_decides_in_three_agi_commands_at_most(call: Call) -> None:
    """REL-1, REL-7: each AGI command is a round trip with the channel's thread. The facts
    come in one read, the decision's variables in one ARRAY() assignment, plus the end's
    hangup handler for a followed call (10-16 commands a call before, 5 Dec)."""
    run_agi(call, "inbound" if call.caller or not call.endpoint else "outbound")
    assert 2 <= LAST_AGI[0].commands <= 3


def test_recorded_call_hands_its_end_to_the_hangup_handler() -> None:
    """A followed call carries CG_FOLLOW in the extension ([cg-connect] pushes
    [cg-ari-ended] for it): no per-call subscription."""
    run_ari(Call("0312345678", "0399990000"), "inbound")
    ext = LAST_ARI[0].extension
    assert LAST_ARI[0].context == "cg-connect" and ",rec," in ext


def test_target_that_does_not_fit_goes_in_two_requests() -> None:
    from callguard.dialplan import DialplanTarget
    long_dial = "PJSIP/" + "9" * 80 + "@carrier"
    target = DialplanTarget("cg-connect", {"CG_DIAL": long_dial, "CG_TIMEOUT": "30"})
    assert ari_extension(target, "", "1.2", "/r") is None
    unsafe = DialplanTarget("cg-refuse", {"CG_PROMPT": "a,b", "CG_CAUSE": "1"})
    assert ari_extension(unsafe, "", "1.2", "/r") is None
    # a recording file that is not the domain's path shape cannot be rebuilt by the dialplan
    odd = DialplanTarget("cg-connect", {"CG_DIAL": "PJSIP/f1-a", "CG_REC_FILE": "/r/x.wav"})
    assert ari_extension(odd, "rec", "1.2", "/r") is None


@pytest.mark.parametrize("call", INBOUND, ids=lambda c: f"{c.exten}-{c.caller or 'anon'}")
def test_the_continue_leaves_before_the_handler_returns(call: Call) -> None:
    """PERF-1: on time, with a kept connection free, the StasisStart handler writes the
    decision's continue itself; the rows follow once Asterisk has answered it."""
    _, ari, store, env = fakes()

    async def scenario() -> None:
        rest = calls.start_inbound(env, *call.stasis("inbound"))
        assert ari.requests == 1 and ari.context.startswith("cg-")
        assert store.ops == [] and list(env.queuing) == [call.stasis("inbound")[0]["id"]]
        await rest
        assert store.ops and env.queuing == {}

    asyncio.run(scenario())


@pytest.mark.parametrize("call", [INBOUND[0], INBOUND[1]], ids=["recorded", "listed"])
def test_rows_wait_until_asterisk_has_taken_the_call(call: Call,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """PERF-1: once the continue is answered, the call's rows are held AFTER_CONTINUE_S (the
    continue's dialplan runs on the core meanwhile); the call's end waits for them."""
    _, ari, store, env = fakes()
    real_sleep = asyncio.sleep
    held: list[float] = []

    async def scenario() -> None:
        gate = asyncio.Event()

        async def holding(delay: float) -> None:
            held.append(delay)
            await gate.wait()

        monkeypatch.setattr(asyncio, "sleep", holding)
        rest = asyncio.ensure_future(calls.start_inbound(env, *call.stasis("inbound")))
        for _ in range(5):
            await real_sleep(0)
        assert ari.requests == 1 and held == [calls.AFTER_CONTINUE_S]
        assert store.ops == [] and list(env.queuing) == [call.stasis("inbound")[0]["id"]]
        gate.set()
        await rest
        assert store.ops and env.queuing == {}

    asyncio.run(scenario())


def test_rows_of_a_call_held_for_asterisk_survive_a_graceful_stop() -> None:
    """The app stopping (its tasks cancelled) while a call's rows wait for Asterisk: they are
    queued at once, and the call leaves `env.queuing`."""
    _, ari, store, env = fakes()
    call = INBOUND[0]

    async def scenario() -> None:
        rest = asyncio.ensure_future(calls.start_inbound(env, *call.stasis("inbound")))
        for _ in range(5):
            await asyncio.sleep(0)
        assert ari.requests == 1 and store.ops == [] and env.queuing
        rest.cancel()
        await asyncio.gather(rest, return_exceptions=True)
        assert rest.cancelled()
        assert store.ops and env.queuing == {}

    asyncio.run(scenario())


def test_no_free_connection_leaves_the_continue_to_the_task() -> None:
    keeper, ari, store, env = fakes(fast=False)

    async def scenario() -> None:
        rest = calls.start_inbound(env, *Call("0312345678", LISTED).stasis("inbound"))
        assert ari.requests == 0 and keeper.delta == 0
        await rest
        assert ari.context == "cg-reject" and store.ops

    asyncio.run(scenario())
