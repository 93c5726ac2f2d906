"""Nuisance-call rejection over real SIP (SPEC §4, seed 004): the 144 menu from the desk phone,
what a listed caller hears, and what the list and counters hold afterwards. Which guidance was
played is read from the app's structured log (one `prompt` line per prompt it plays)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from callguard.config import PROJECT_ROOT, Settings
from callguard.db import nuisance_repo
from callguard.domain.nuisance import month_of, previous_month
from callguard.domain.privacy import caller_key, seal_key
from tests.e2e.conftest import AppLog
from tests.e2e.sipp import CallResult, Phone, Step, UacSpec, dtmf, pause, uac

STACK = str(PROJECT_ROOT / "tools" / "stack.sh")
CLI = str(PROJECT_ROOT / ".venv" / "bin" / "callguard")
F1A, F1B, F2A, M1A = "127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.5"
REJECT_S = 3.6  # sounds/ja/reject.wav


def list_id(engine: Engine, number: str) -> int:
    with Session(engine) as s:
        lst = nuisance_repo.list_for_number(s, number)
        assert lst is not None
        return lst.id


def keys(engine: Engine, lid: int) -> list[str]:
    with engine.connect() as c:
        return list(c.execute(text("SELECT caller_key FROM nuisance_entries WHERE list_id = :l"
                                   " ORDER BY seq"), {"l": lid}).scalars())


def fill(engine: Engine, lid: int, ks: list[str]) -> None:
    with engine.begin() as c:
        for k in ks:
            c.execute(text("INSERT INTO nuisance_entries (list_id, caller_key) VALUES (:l, :k)"),
                      {"l": lid, "k": k})


def nuisance_call(work: Path, to: str, phone_ip: str, caller: str = "0399997777",
                  headers: list[str] | None = None, from_host: str | None = None) -> None:
    """A call that reaches the line and ends (the phone refuses it: unanswered, NCR-REG-2)."""
    with Phone(phone_ip, work / "phone", mode="busy"):
        r = uac(UacSpec(to=to, from_user=caller, extra_headers=headers or [],
                        from_host=from_host), work / "call")
    assert r.final_status() == 486


def dial_144(work: Path, from_ip: str, *steps: Step) -> CallResult:
    return uac(UacSpec(to="144", steps=[pause(1200), *steps], hangup=False, wait_bye_s=60),
               work, local_ip=from_ip, timeout_s=90)


def rejected(work: Path, to: str, phone_ip: str, caller: str = "0399997777",
             headers: list[str] | None = None, from_host: str | None = None) -> float:
    """Call again; assert the caller is answered, hears the message, Asterisk hangs up, and
    the phone never rings. Returns 200 → BYE seconds."""
    with Phone(phone_ip, work / "phone") as phone:
        r = uac(UacSpec(to=to, from_user=caller, hangup=False, extra_headers=headers or [],
                        from_host=from_host), work / "call")
    ok, bye = r.first(status=200), r.first(method="BYE", sent=False)
    assert ok is not None and bye is not None, r.statuses()
    assert not phone.rang()
    return r.seconds_between(ok, bye)


def this_month_count(engine: Engine, lid: int) -> int | None:
    """The list's counter for this month. The row is written while the message plays, or
    journaled and replayed within seconds after a database outage (REL-2): wait briefly."""
    deadline = time.monotonic() + 5
    while True:
        with engine.connect() as c:
            value = c.execute(text("SELECT count FROM nuisance_counters WHERE list_id = :l"
                                   " AND month = :m"),
                              {"l": lid, "m": month_of(datetime.now(UTC))}).scalar()
        if value is not None or time.monotonic() > deadline:
            return None if value is None else int(value)
        time.sleep(0.2)


WITHHELD = ["P-Asserted-Identity: <sip:0399995555@127.0.0.2>", "Privacy: id"]


def test_register_after_unanswered_call_then_rejected_twice(
        clean: Engine, settings: Settings, work: Path, figures: dict[str, object]) -> None:
    """NCR-REG-1/2, NCR-REJ-1/2, NCR-CNT-1: the full story on f1-b (one channel)."""
    nuisance_call(work / "a", "0312345679", F1B)
    log = AppLog(settings)
    menu = dial_144(work / "b", F1B, dtmf("2"))
    assert menu.final_status() == 200 and menu.bye_from_far_end()
    assert log.prompts() == ["menu", "registered"]
    lid = list_id(clean, "0312345679")
    assert keys(clean, lid) == [caller_key(settings.hmac_key, "0399997777")]
    started = time.monotonic()
    seconds = rejected(work / "c", "0312345679", F1B)
    figures.update(rejection_200_to_bye_s=round(seconds, 2),
                   rejection_invite_to_bye_s=round(time.monotonic() - started, 2))
    assert 2 * REJECT_S - 0.5 < seconds < 2 * REJECT_S + 2.0  # the message, twice
    shown = json.loads(subprocess.run([CLI, "nuisance", "show", "--number", "0312345679",
                                       "--json"], capture_output=True, text=True,
                                      check=True).stdout)
    assert shown == {"list": lid, "unit": "per-number", "entries": 1, "capacity": 30,
                     "this_month": 1, "last_month": None}


def test_register_after_answered_call(clean: Engine, settings: Settings, work: Path) -> None:
    """NCR-REG-2: an answered call counts the same as an unanswered one."""
    with Phone(F1B, work / "phone"):
        r = uac(UacSpec(to="0312345679", from_user="0399998888", steps=[pause(500)]),
                work / "call")
    assert r.final_status() == 200
    log = AppLog(settings)
    assert dial_144(work / "menu", F1B, dtmf("2")).bye_from_far_end()
    assert log.prompts() == ["menu", "registered"]
    assert keys(clean, list_id(clean, "0312345679")) == [
        caller_key(settings.hmac_key, "0399998888")]


def test_delete_newest_repeatable_then_empty(clean: Engine, settings: Settings,
                                             work: Path) -> None:
    """NCR-DEL-1 (repeatable) and NCR-DEL-3 (empty list guidance)."""
    lid = list_id(clean, "0312345679")
    fill(clean, lid, ["k1", "k2"])
    log = AppLog(settings)
    for i in range(3):
        dial_144(work / f"m{i}", F1B, dtmf("3"))
    assert log.prompts() == ["menu", "deleted_newest", "menu", "deleted_newest",
                             "menu", "list_empty"]
    assert keys(clean, lid) == []


def test_delete_all(clean: Engine, settings: Settings, work: Path) -> None:
    """NCR-DEL-2, NCR-DEL-3."""
    lid = list_id(clean, "0312345679")
    fill(clean, lid, ["k1", "k2", "k3"])
    log = AppLog(settings)
    dial_144(work / "a", F1B, dtmf("9"))
    dial_144(work / "b", F1B, dtmf("9"))
    assert log.prompts() == ["menu", "deleted_all", "menu", "list_empty"]
    assert keys(clean, lid) == []


@pytest.fixture
def list_from_last_month(clean: Engine) -> Iterator[int]:
    lid = list_id(clean, "0312345679")
    with clean.begin() as c:
        old = c.execute(text("SELECT created_at FROM nuisance_lists WHERE id = :l"),
                        {"l": lid}).scalar_one()
        c.execute(text("UPDATE nuisance_lists SET created_at = now() - interval '40 days'"
                       " WHERE id = :l"), {"l": lid})
    yield lid
    with clean.begin() as c:
        c.execute(text("UPDATE nuisance_lists SET created_at = :t WHERE id = :l"),
                  {"t": old, "l": lid})


def test_counts_this_and_last_month(list_from_last_month: int, clean: Engine,
                                    settings: Settings, work: Path) -> None:
    """NCR-CNT-1: 「今月…7回です。」「前月…100回以上です。」 (≥100 read as 100回以上)."""
    now = datetime.now(UTC)
    with clean.begin() as c:
        for month, count in ((month_of(now), 7), (previous_month(month_of(now)), 120)):
            c.execute(text("INSERT INTO nuisance_counters (list_id, month, count) "
                           "VALUES (:l, :m, :c)"), {"l": list_from_last_month, "m": month,
                                                    "c": count})
    log = AppLog(settings)
    dial_144(work, F1B, dtmf("4"))
    assert log.prompts() == ["menu", "count_this_month", "times_7", "count_last_month",
                             "times_100_plus"]


def test_counts_of_a_new_list_only_this_month(clean: Engine, settings: Settings,
                                              work: Path) -> None:
    """NCR-CNT-1: no 前月 guidance when the list did not exist last month."""
    log = AppLog(settings)
    dial_144(work, F1B, dtmf("4"))
    assert log.prompts() == ["menu", "count_this_month", "times_0"]


def test_31st_registration_with_0_drops_the_oldest(clean: Engine, settings: Settings,
                                                    work: Path) -> None:
    """NCR-REG-5: full list: 「…よろしければ“0”…」, 0 → oldest out, new one newest."""
    lid = list_id(clean, "0312345679")
    old = [f"old{i:02d}" for i in range(30)]
    fill(clean, lid, old)
    nuisance_call(work / "a", "0312345679", F1B)
    log = AppLog(settings)
    dial_144(work / "b", F1B, dtmf("2"), pause(1000), dtmf("0"))
    assert log.prompts() == ["menu", "list_full", "registered"]
    assert keys(clean, lid) == [*old[1:], caller_key(settings.hmac_key, "0399997777")]


def test_31st_registration_with_another_key_changes_nothing(
        clean: Engine, settings: Settings, work: Path) -> None:
    """NCR-REG-5: anything but 0 → nothing changes."""
    lid = list_id(clean, "0312345679")
    old = [f"old{i:02d}" for i in range(30)]
    fill(clean, lid, old)
    nuisance_call(work / "a", "0312345679", F1B)
    log = AppLog(settings)
    dial_144(work / "b", F1B, dtmf("2"), pause(1000), dtmf("5"))
    assert log.prompts() == ["menu", "list_full", "register_cancelled"]
    assert keys(clean, lid) == old


def test_multi_channel_window_of_60_seconds(clean: Engine, settings: Settings,
                                            work: Path) -> None:
    """NCR-REG-3: f1-a has 2 channels: registration only within 60 s of the call's end.
    (The call's end is moved 61 s into the past rather than waiting a minute.)"""
    nuisance_call(work / "a", "0312345678", F1A)
    # The app writes the call's row and its end a moment after the caller saw the 486 (one
    # batching writer, PERF-1): move them only once both are there (moving a NULL end, or no
    # row yet, changes nothing, and what is written afterwards is "just now").
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with clean.connect() as c:
            rows, open_ = c.execute(text(
                "SELECT count(*), count(*) FILTER (WHERE ended_at IS NULL)"
                " FROM inbound_calls")).one()
        if rows and not open_:
            break
        time.sleep(0.05)
    with clean.begin() as c:
        c.execute(text("UPDATE inbound_calls SET ended_at = ended_at - interval '61 seconds',"
                       " started_at = started_at - interval '61 seconds'"))
    log = AppLog(settings)
    dial_144(work / "b", F1A, dtmf("2"))
    assert log.prompts() == ["menu", "cannot_identify"]
    assert keys(clean, list_id(clean, "0312345678")) == []


def test_call_from_another_caller_in_progress_blocks_registration(
        clean: Engine, settings: Settings, work: Path) -> None:
    """NCR-REG-3: while an inbound call from a different caller is still in progress in the
    scope, nobody can be registered. (The in-progress call is a row whose call has not ended.)"""
    nuisance_call(work / "a", "0312345678", F1A)
    lid = list_id(clean, "0312345678")
    with clean.begin() as c:
        c.execute(text(
            "INSERT INTO inbound_calls (channel_id, list_id, number_id, caller_key, rejected,"
            " started_at) SELECT 'other-call', :l, id, :k, false, now() FROM numbers"
            " WHERE number = '0312345678'"), {"l": lid, "k": seal_key(  # sealed as (SEC-3)
                settings.hmac_key, "other-call", caller_key(settings.hmac_key, "0399990002"))})
    log = AppLog(settings)
    dial_144(work / "b", F1A, dtmf("2"))
    assert log.prompts() == ["menu", "cannot_identify"]
    with clean.begin() as c:
        c.execute(text("UPDATE inbound_calls SET ended_at = now() WHERE channel_id = "
                       "'other-call'"))


def test_withheld_caller_registered_and_rejected(clean: Engine, settings: Settings,
                                                 work: Path) -> None:
    """NCR-REG-4: 非通知 callers are registered by their network identity (PAI)."""
    nuisance_call(work / "a", "0312345679", F1B, caller="anonymous", headers=WITHHELD,
                  from_host="anonymous.invalid")
    log = AppLog(settings)
    dial_144(work / "b", F1B, dtmf("2"))
    assert log.prompts() == ["menu", "registered"]
    assert keys(clean, list_id(clean, "0312345679")) == [
        caller_key(settings.hmac_key, "0399995555")]
    seconds = rejected(work / "c", "0312345679", F1B, caller="anonymous", headers=WITHHELD,
                       from_host="anonymous.invalid")
    assert seconds > 2 * REJECT_S - 0.5


def test_unavailable_caller_cannot_be_registered(clean: Engine, settings: Settings,
                                                 work: Path) -> None:
    """NCR-REG-3, source 004: a caller without a number (anonymous From, no PAI) cannot be
    registered → 「迷惑電話リストの登録に失敗しました。」 (「相手の電話番号が確認できない…」 is
    the multi-channel blocked period's only)."""
    nuisance_call(work / "a", "0312345679", F1B, caller="anonymous",
                  from_host="anonymous.invalid")
    log = AppLog(settings)
    dial_144(work / "b", F1B, dtmf("2"))
    assert log.prompts() == ["menu", "register_failed"]


def test_per_contract_list_shared_across_numbers(clean: Engine, settings: Settings,
                                                 work: Path) -> None:
    """F2 (per contract): registered from f2-a, effective on calls to f2-b."""
    nuisance_call(work / "a", "0612345678", F2A)
    log = AppLog(settings)
    dial_144(work / "b", F2A, dtmf("2"))
    assert log.prompts() == ["menu", "registered"]
    assert rejected(work / "c", "0612345679", "127.0.1.4") > 2 * REJECT_S - 0.5


def payphone(number: str) -> list[str]:
    """A payphone's call as the carrier signals it: its number asserted with the calling-party
    category cpc=payphone (3GPP TS 24.229), withheld from the called line."""
    return [f"P-Asserted-Identity: <sip:{number};cpc=payphone@127.0.0.2;user=phone>",
            "Privacy: id"]


def test_payphones_registered_one_number_at_a_time(clean: Engine, settings: Settings,
                                                   work: Path) -> None:
    """NCR-REG-4, source 004: 「公衆電話も電話番号ごとの登録が可能です」. Payphone A is
    registered and rejected; payphone B, another number, still rings the line."""
    a, b = "0399994444", "0399994445"
    nuisance_call(work / "a", "0312345679", F1B, caller="anonymous", headers=payphone(a),
                  from_host="anonymous.invalid")
    log = AppLog(settings)
    dial_144(work / "b", F1B, dtmf("2"))
    assert log.prompts() == ["menu", "registered"]
    assert keys(clean, list_id(clean, "0312345679")) == [caller_key(settings.hmac_key, a)]
    assert rejected(work / "c", "0312345679", F1B, caller="anonymous", headers=payphone(a),
                    from_host="anonymous.invalid") > 2 * REJECT_S - 0.5
    with Phone(F1B, work / "phone-b") as phone:
        r = uac(UacSpec(to="0312345679", from_user="anonymous", extra_headers=payphone(b),
                        from_host="anonymous.invalid", steps=[pause(500)]), work / "call-b")
    assert r.final_status() == 200 and phone.rang()


def test_invalid_input_repeats_the_menu_three_times(clean: Engine, settings: Settings,
                                                    work: Path) -> None:
    """Invalid input is told (「入力が正しくありません。」) and the menu plays again, three
    menus in all, then the call is released. Each digit lands in a menu play (a digit during
    the invalid-input guidance is ignored: it plays without barge-in)."""
    log = AppLog(settings)
    with wave.open(str(PROJECT_ROOT / "sounds" / "ja" / "invalid_input.wav")) as w:
        wait = pause(int((w.getnframes() / w.getframerate() + 1.5) * 1000))
    r = dial_144(work, F1B, dtmf("7"), wait, dtmf("8"), wait, dtmf("1"))
    assert r.bye_from_far_end()
    assert log.prompts() == ["menu", "invalid_input", "menu", "invalid_input", "menu",
                             "invalid_input"]


def test_database_down_144_says_registration_failed(clean: Engine, settings: Settings,
                                                    work: Path) -> None:
    """NCR-REG-7 / REL-2: any failure → 「迷惑電話リストの登録に失敗しました。」"""
    nuisance_call(work / "a", "0312345679", F1B)
    log = AppLog(settings)
    subprocess.run([STACK, "pg-stop"], check=True)
    try:
        dial_144(work / "b", F1B, dtmf("2"))
    finally:
        subprocess.run([STACK, "pg-start"], check=True)
    assert log.prompts() == ["menu", "register_failed"]


def test_concurrent_registrations_keep_bound_and_order(clean: Engine,
                                                       settings: Settings) -> None:
    """REL-3: 20 simultaneous registrations on a list of 29 leave exactly 30, newest last."""
    lid = list_id(clean, "0312345679")
    old = [f"old{i:02d}" for i in range(29)]
    fill(clean, lid, old)
    new = [f"new{i:02d}" for i in range(20)]
    barrier = threading.Barrier(len(new))
    errors: list[BaseException] = []

    def one(key: str) -> None:
        try:
            barrier.wait()
            with Session(clean) as s, s.begin():
                nuisance_repo.register(s, lid, key, evict_confirmed=True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(k,)) for k in new]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    final = keys(clean, lid)
    assert len(final) == 30
    assert final[:10] == old[19:]  # the 19 oldest went, in order
    assert sorted(final[10:]) == new  # every new caller is in, all newer than the old ones




def test_unit_change_starts_empty_lists(clean: Engine, settings: Settings) -> None:
    """NCR-UNIT-1: changing the unit starts empty lists and counters; nothing carried over."""
    before = list_id(clean, "0612345678")
    fill(clean, before, ["k1"])
    with clean.begin() as c:
        c.execute(text("INSERT INTO nuisance_counters (list_id, month, count) VALUES (:l, :m, 5)"),
                  {"l": before, "m": month_of(datetime.now(UTC))})
    try:
        subprocess.run([CLI, "nuisance", "set-unit", "--contract", "F2", "per-number"],
                       check=True, capture_output=True)
        a, b = list_id(clean, "0612345678"), list_id(clean, "0612345679")
        assert len({before, a, b}) == 3  # one new list per number
        for number in ("0612345678", "0612345679"):
            shown = json.loads(subprocess.run(
                [CLI, "nuisance", "show", "--number", number, "--json"], capture_output=True,
                text=True, check=True).stdout)
            assert (shown["unit"], shown["entries"], shown["this_month"]) == ("per-number", 0, 0)
    finally:
        subprocess.run([CLI, "nuisance", "set-unit", "--contract", "F2", "per-contract"],
                       check=True, capture_output=True)
    after = list_id(clean, "0612345678")
    assert after not in (before, a, b) and keys(clean, after) == []
    with clean.begin() as c:
        # Both changes were recorded for billing; the test's own rows are removed again so
        # the reference site's bill stays as provisioned.
        # changed_on is Tokyo's calendar day (BILL-*), not the database session's (UTC):
        # from 15:00 UTC on they differ.
        changes = c.execute(text("DELETE FROM nuisance_unit_changes WHERE changed_on ="
                                 " (now() AT TIME ZONE 'Asia/Tokyo')::date"
                                 " RETURNING old_unit, new_unit")).all()
    assert ("per-contract", "per-number") in changes and ("per-number", "per-contract") in changes


VIDEO_ONLY = """v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=video [media_port] RTP/AVP 99
a=rtpmap:99 H264/90000"""


def test_listed_caller_video_only_asked_to_call_again(clean: Engine, settings: Settings,
                                                      work: Path) -> None:
    """Source 004 ■テレビ電話: a videophone call with no audio stream from a listed caller
    gets 488 (call again as a standard-quality voice call) without guidance, never rings the
    phone, and is not counted (NCR-CNT-1: 「メッセージ応答した回数」)."""
    lid = list_id(clean, "0312345679")
    fill(clean, lid, [caller_key(settings.hmac_key, "0399997777")])
    with Phone(F1B, work / "phone") as phone:
        r = uac(UacSpec(to="0312345679", from_user="0399997777", sdp_body=VIDEO_ONLY),
                work / "call")
    assert r.final_status() == 488 and not {180, 183, 200} & set(r.statuses())
    assert not phone.rang()
    assert this_month_count(clean, lid) in (None, 0)
