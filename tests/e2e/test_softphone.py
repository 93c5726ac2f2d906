"""Real phones (issue 16): baresip as the desk phones and as the carrier's caller, every
guidance checked as heard. The desk phone f1-a (0312345678 at 127.0.1.1) takes calls addressed
to its number, dials 144 and presses keys as RFC 4733 telephone-events; the carrier's caller is
baresip on 127.0.0.2. What each phone heard (its decoded receive audio) is matched against the
prompt files by tests/e2e/heard.py, so a prompt counts only when a person would have heard all
of it (NCR-MENU, NCR-REG-1/2/5, NCR-DEL-1..3, NCR-CNT-1, NCR-REJ-1, REC-IN-1, REC-OUT-2/4).

Only whole prompts are listed: a menu cut short by a key press (barge-in) is not one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from callguard.config import Settings
from callguard.db import nuisance_repo
from callguard.domain.privacy import caller_key
from tests.e2e.conftest import AppLog
from tests.e2e.heard import RATE, expect, heard, load_wav, sequence, without
from tests.e2e.rec_helpers import CALLEE_HZ, CALLER_HZ, check_file, recordings, tone_amplitude
from tests.e2e.softphone import Softphone

F1A, F1B, M1A, CARRIER = "127.0.1.1", "127.0.1.2", "127.0.1.5", "127.0.0.2"
F1A_NUMBER, F1B_NUMBER, M1A_NUMBER = "0312345678", "0312345679", "09011110001"
CALLER = "0399990000"  # the carrier softphone's caller number
MENU_S = 17.3  # sounds/ja/menu.wav
LIST_FULL_S = 12.8  # sounds/ja/list_full.wav


def keys(engine: Engine, lid: int) -> list[str]:
    with engine.connect() as c:
        return list(c.execute(text("SELECT caller_key FROM nuisance_entries WHERE list_id = :l"
                                   " ORDER BY seq"), {"l": lid}).scalars())


def f1a_list(engine: Engine) -> int:
    with Session(engine) as s:
        lst = nuisance_repo.list_for_number(s, F1A_NUMBER)
        assert lst is not None
        return lst.id


def desk_phone(work: Path, auto_answer: bool = True) -> Softphone:
    return Softphone(F1A, F1A_NUMBER, work / "f1-a", auto_answer=auto_answer, tone_hz=CALLEE_HZ)


def carrier(work: Path) -> Softphone:
    return Softphone(CARRIER, CALLER, work / "carrier", tone_hz=CALLER_HZ)


def talk(caller: Softphone, callee: Softphone, number: str, seconds: float) -> float:
    """`caller` calls `number`; `callee` rings and answers; after `seconds` the caller hangs
    up. Returns the talk time as the caller saw it (established → closed)."""
    callee.expect_call()
    rung = callee.mark()
    mark = caller.dial(number)
    # An auto-answering baresip reports no CALL_INCOMING, only the established call.
    incoming = callee.wait_event("CALL_INCOMING", "CALL_ESTABLISHED", after=rung)
    assert incoming["direction"] == "incoming", incoming
    assert incoming["accountaor"] == f"sip:{callee.user}@{callee.ip}", incoming
    if not callee.auto_answer:
        time.sleep(0.5)  # ringing
        callee.accept()
    established = caller.wait_event("CALL_ESTABLISHED", after=mark)
    time.sleep(seconds)
    caller.hangup()
    closed = caller.wait_event("CALL_CLOSED", after=mark)
    callee.wait_event("CALL_CLOSED", after=rung)
    return float(closed["at"] - established["at"])


def dial_144(phone: Softphone, log: AppLog, *keys: tuple[str, float, str],
             timeout_s: float = 60) -> Path:
    """The phone dials 144; for each (prompt, seconds, key) it waits until the app starts that
    prompt, then presses the key `seconds` later (during the prompt: barge-in; after its end:
    a digit in the wait). The service releases the call. Returns what the phone heard."""
    seen = len(log.prompts())
    mark = phone.dial("144")
    phone.wait_event("CALL_ESTABLISHED", after=mark)
    for prompt, seconds, key in keys:
        deadline = time.monotonic() + 10
        while prompt not in log.prompts()[seen:]:
            assert time.monotonic() < deadline, (prompt, log.prompts()[seen:])
            time.sleep(0.05)
        seen += log.prompts()[seen:].index(prompt) + 1
        time.sleep(seconds)
        phone.press(key, gap_s=0)
    phone.wait_event("CALL_CLOSED", after=mark, timeout_s=timeout_s)  # released by the service
    return phone.heard()


def dominant(path: Path, hz: float) -> float:
    """Amplitude (0..32768 scale) of one frequency in the middle of a heard file."""
    import array

    x = load_wav(path)
    middle = x[len(x) // 4: 3 * len(x) // 4]
    return tone_amplitude(array.array("h", (middle * 32768).astype("int16").tobytes()), RATE, hz)


def test_carrier_softphone_rings_the_desk_phone_recorded(clean: Engine, settings: Settings,
                                                         work: Path) -> None:
    """REC-IN-1 with real phones: INVITE sip:0312345678@127.0.1.1 rings baresip (which refuses
    any other Request-URI user), it answers after ringing, both hear each other, and the call is
    recorded with both parties in it. The desk phone's extension call to 2002 rings f1-b's
    phone by its number too (REC-OUT-4, source 000: on a fixed contract the receiving line is
    recorded as an inbound call, the calling side is not)."""
    with desk_phone(work, auto_answer=False) as desk, carrier(work) as far:
        talk_s = talk(far, desk, F1A_NUMBER, 3.0)
        desk_heard, far_heard = desk.heard(), far.heard()
    assert dominant(desk_heard, CALLER_HZ) > 1000, "the desk phone did not hear the caller"
    assert dominant(far_heard, CALLEE_HZ) > 1000, "the caller did not hear the desk phone"
    rows = recordings(clean)
    assert [(r["direction"], r["number"], r["remote"]) for r in rows] == [
        ("in", F1A_NUMBER, CALLER)]
    check_file(settings, rows[0], talk_s)

    with desk_phone(work / "ext") as desk, \
            Softphone(F1B, F1B_NUMBER, work / "f1-b", tone_hz=CALLER_HZ) as f1b:
        talk(desk, f1b, "2002", 1.0)
    rows = recordings(clean)
    assert len(rows) == 2  # the receiving line of the extension call (issue 13)
    assert [(r["number"], r["direction"]) for r in rows[1:]] == [("0312345679", "in")]


def test_menu_registration_rejection_heard_twice_and_count(
        clean: Engine, settings: Settings, work: Path, capsys: pytest.CaptureFixture[str],
        figures: dict[str, object]) -> None:
    """NCR-MENU/REG-1/2, NCR-REJ-1, NCR-CNT-1 as heard: the whole menu, then 2 (an RFC 4733
    event) → 「登録が完了しました」; the listed caller hears the message twice, each complete,
    and the desk phone never rings; 144 → 4 → 「今月、メッセージ応答した回数は」「1回です」."""
    lid = f1a_list(clean)
    log = AppLog(settings)
    with desk_phone(work) as desk, carrier(work) as far:
        talk(far, desk, F1A_NUMBER, 1.0)
        menu = dial_144(desk, log, ("menu", MENU_S + 0.8, "2"))
        expect(menu, ["menu", "registered"])
        assert keys(clean, lid) == [caller_key(settings.hmac_key, CALLER)]

        rung = desk.mark()
        mark = far.dial(F1A_NUMBER)
        far.wait_event("CALL_ESTABLISHED", after=mark)
        far.wait_event("CALL_CLOSED", after=mark, timeout_s=20)  # released by the service
        rejection = far.heard()
        assert not [e for e in desk.events[rung:] if e.get("direction") == "incoming"]

        count = dial_144(desk, log, ("menu", 1.5, "4"))
    expect(count, ["count_this_month", "times_1"])
    # The keys arrived as the phone sent them (RFC 4733 events; baresip has no SIP INFO):
    # 2 after the whole menu, 4 during it (barge-in).
    assert [(r["digit"], r["barge_in"]) for r in log.menu("digit")] == [("2", False),
                                                                         ("4", True)]

    plays = expect(rejection, ["reject", "reject"])
    with capsys.disabled():
        print(f"\nlisted caller heard ({rejection.name}):")
        for m in plays:
            print(f"  {m}")
    figures.update({f"reject_{i + 1}": f"{m.start:.2f}s/score {m.score:.3f}"
                    for i, m in enumerate(plays)})
    assert all(m.score > 0.95 for m in plays)
    # Proof that the check can fail: without one of the two plays, it does.
    signal = load_wav(rejection)
    for m in plays:
        with pytest.raises(AssertionError, match="expected"):
            expect(without(signal, m), ["reject", "reject"])
    assert sequence(heard(without(signal, plays[1]), ["reject"])) == ["reject"]


def fill(engine: Engine, lid: int, n: int) -> list[str]:
    ks = [f"softphone-test-key-{i:02d}" for i in range(n)]
    with engine.begin() as c:
        for k in ks:
            c.execute(text("INSERT INTO nuisance_entries (list_id, caller_key) VALUES (:l, :k)"),
                      {"l": lid, "k": k})
    return ks


def test_full_list_2_then_0_deletions_as_heard(clean: Engine, settings: Settings,
                                               work: Path) -> None:
    """NCR-REG-5, NCR-DEL-1..3 as heard, several RFC 4733 digits in one call: on a full list
    2 → the whole 「登録件数が30件を超えますので…」 → 0 → registered (the oldest dropped);
    then 3 (twice in one call, one deletion), 3 again, 9, and 3 on the empty list."""
    lid = f1a_list(clean)
    old = fill(clean, lid, 30)
    log = AppLog(settings)
    with desk_phone(work) as desk, carrier(work) as far:
        talk(far, desk, F1A_NUMBER, 1.0)
        heard_full = dial_144(desk, log, ("menu", 1.5, "2"),
                              ("list_full", LIST_FULL_S + 0.8, "0"))
        expect(heard_full, ["list_full", "registered"])
        new = caller_key(settings.hmac_key, CALLER)
        assert keys(clean, lid) == [*old[1:], new]

        assert [r["digit"] for r in log.menu("digit")] == ["2", "0"]
        # 3 pressed twice in one call: the second press falls in the result guidance, which
        # takes no keys, so one entry goes and the guidance is heard whole; then another call.
        twice = dial_144(desk, log, ("menu", 1.5, "3"), ("deleted_newest", 0.5, "3"))
        expect(twice, ["deleted_newest"])
        assert keys(clean, lid) == old[1:]
        expect(dial_144(desk, log, ("menu", 1.5, "3")), ["deleted_newest"])
        assert keys(clean, lid) == old[1:-1]
        expect(dial_144(desk, log, ("menu", 1.5, "9")), ["deleted_all"])
        assert keys(clean, lid) == []
        expect(dial_144(desk, log, ("menu", 1.5, "3")), ["list_empty"])


def early_media(phone: Softphone, dialed: str) -> Path:
    """The phone dials; the service refuses with a spoken guidance before any answer."""
    mark = phone.dial(dialed)
    phone.wait_event("CALL_CLOSED", after=mark, timeout_s=20)
    established = [e for e in phone.events[mark:] if e.get("type") == "CALL_ESTABLISHED"]
    assert not established, "the refusal was answered"
    return phone.heard()


def test_refusal_and_not_subscribed_guidances_heard(clean: Engine, work: Path) -> None:
    """REC-OUT-2: f1-a (fixed) dialing with the mobile prefix hears
    「このプレフィックスは、ご利用いただけません。」; NCR: m1-a, whose number has no nuisance
    subscription, dialing 144 hears 「この電話番号は、迷惑電話おことわりサービスを…」, both
    unanswered (early media)."""
    with desk_phone(work) as desk:
        expect(early_media(desk, "0077260612345678"), ["rec_wrong_prefix"])
    with Softphone(M1A, M1A_NUMBER, work / "m1-a") as mobile:
        expect(early_media(mobile, "144"), ["not_subscribed"])
    assert recordings(clean) == []

