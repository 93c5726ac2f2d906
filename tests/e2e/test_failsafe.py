"""Fail-safe call path over real SIP (REL-6, REL-7, REL-8): emergency calls that need neither the
apps nor the database, a hung (stopped, not dead) ARI app that costs a call at most 1 s, and
Asterisk's RTP timeout that reaps dead calls and spares held ones."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Engine

from callguard.config import PROJECT_ROOT, Settings
from tests.e2e import sip_messages as sip
from tests.e2e.bye_catcher import ByeCatcher
from tests.e2e.conftest import AppLog, ari_get
from tests.e2e.sipp import (
    ASTERISK,
    CARRIER_IN,
    CallResult,
    Load,
    Phone,
    SipMessage,
    UacSpec,
    _sipp,
    audio,
    cancelled_call,
    free_port,
    parse_message_log,
    uac,
    uac_xml,
)
from tests.e2e.test_metrics import (
    eventually,
    firing,
    prom_alerts,
    prom_query,
    scrape,
    value,
)
from tests.e2e.test_reliability import STACK, app_connected, block, rows
from tests.waiting import wait_for

FAKE_FROM = "0120999999"  # what a customer's phone puts in From; must never reach the carrier


def run_stack(*args: str) -> None:
    subprocess.run([STACK, *args], check=True)


@contextmanager
def apps_and_database_down() -> Iterator[None]:
    """Both apps and PostgreSQL stopped; everything back afterwards, whatever happened."""
    run_stack("app-stop", "ari")
    run_stack("app-stop", "fastagi")
    run_stack("pg-stop")
    try:
        yield
    finally:
        run_stack("pg-start")
        run_stack("app-start", "fastagi")
        run_stack("app-start", "ari")
        # Generous: on a loaded 2-core machine a cold Python start can take tens of seconds.
        assert wait_for(app_connected, 120), "ARI app did not reconnect"


def test_emergency_reaches_the_carrier_without_apps_or_database(
        stack: Settings, work: Path, figures: dict[str, object]) -> None:
    """REL-6, SEC-1: with the ARI app, the FastAGI fallback and PostgreSQL all stopped, 110
    from f1-a and 119 from m1-a reach the carrier, presenting the line's own number (fixed:
    its number; mobile: the native 090), never the From header's. m1-a's astdb entry is
    removed first: its number then comes from the endpoint's configured callerid."""
    setup: dict[str, float] = {}
    run_stack("ast", "-rx", "database del callguard_cid m1-a")
    try:
        with apps_and_database_down():
            place_emergency_calls(work, setup)
    finally:
        subprocess.run([str(PROJECT_ROOT / ".venv" / "bin" / "callguard"), "site",
                        "sync-asterisk"], check=True)
    figures.update(setup_s=setup)


def place_emergency_calls(work: Path, setup: dict[str, float]) -> None:
    """110 from f1-a, 119 from m1-a: answered by the carrier with the line's own number."""
    for endpoint_ip, dialed, own in (("127.0.1.1", "110", "0312345678"),
                                     ("127.0.1.5", "119", "09011110001")):
        with Phone("127.0.0.3", work / f"carrier-{dialed}", timeout_s=30) as carrier:
            call = uac(UacSpec(to=dialed, from_user=FAKE_FROM, steps=[audio(0.5)]),
                       work / f"call-{dialed}", local_ip=endpoint_ip, timeout_s=20)
            carrier.wait(5)
        assert call.final_status() == 200, call.timeline()
        invite = carrier.result().first(method="INVITE", sent=False)
        assert invite is not None, "the carrier never saw the emergency call"
        assert invite.first_line.startswith(f"INVITE sip:{dialed}@"), invite.first_line
        assert own in (invite.header("From") or ""), invite.text
        assert FAKE_FROM not in invite.text, invite.text
        ok = call.first(status=200, sent=False)
        sent = call.first(method="INVITE", sent=True)
        assert ok is not None and sent is not None
        setup[dialed] = round(call.seconds_between(sent, ok), 3)


def test_emergency_behind_184_186_reaches_the_carrier_without_apps_or_database(
        stack: Settings, work: Path, figures: dict[str, object]) -> None:
    """REL-6: 184/186 in front of 110/118/119 take the same dialplan-only path: with the ARI
    app, the FastAGI fallback and PostgreSQL all stopped, the carrier gets the emergency
    number itself (the code stripped, as on any 184/186 call). 184: From anonymous, the
    line's own number in P-Asserted-Identity with Privacy: id (test_callers_hear.py's 184
    call); 186: the line's own number shown. Never the From header's."""
    setup: dict[str, float] = {}
    with apps_and_database_down():
        for endpoint_ip, dialed, number, own, withheld in (
                ("127.0.1.1", "184110", "110", "0312345678", True),
                ("127.0.1.5", "186119", "119", "09011110001", False)):
            with Phone("127.0.0.3", work / f"carrier-{dialed}", timeout_s=30) as carrier:
                call = uac(UacSpec(to=dialed, from_user=FAKE_FROM, steps=[audio(0.5)]),
                           work / f"call-{dialed}", local_ip=endpoint_ip, timeout_s=20)
                carrier.wait(5)
            assert call.final_status() == 200, (dialed, call.timeline())
            invite = carrier.result().first(method="INVITE", sent=False)
            assert invite is not None, f"the carrier never saw the emergency call {dialed}"
            assert invite.first_line.startswith(f"INVITE sip:{number}@"), invite.first_line
            assert FAKE_FROM not in invite.text, invite.text
            if withheld:
                assert own not in (invite.header("From") or ""), invite.text
                assert "anonymous" in (invite.header("From") or "").lower(), invite.text
                assert (invite.header("Privacy") or "").lower() == "id", invite.text
                assert own in (invite.header("P-Asserted-Identity") or ""), invite.text
            else:
                assert own in (invite.header("From") or ""), invite.text
                assert (invite.header("Privacy") or "none").lower() != "id", invite.text
            ok = call.first(status=200, sent=False)
            sent = call.first(method="INVITE", sent=True)
            assert ok is not None and sent is not None
            setup[dialed] = round(call.seconds_between(sent, ok), 3)
    figures.update(setup_s=setup)


def ari_channels(settings: Settings) -> list[dict[str, object]]:
    channels = ari_get(settings, "channels")
    assert isinstance(channels, list)
    return channels


def connect_times(messages: list[SipMessage]) -> dict[str, float | None]:
    """Per Call-ID: seconds from our INVITE to the 200 OK for it (None: never answered)."""
    sent: dict[str, SipMessage] = {}
    answered: dict[str, float | None] = {}
    for m in messages:
        call_id = m.header("Call-ID") or ""
        if m.sent and m.method == "INVITE" and call_id not in sent:
            sent[call_id] = m
            answered[call_id] = None
        elif not m.sent and m.status == 200 and "INVITE" in (m.header("CSeq") or "") \
                and call_id in sent and answered.get(call_id) is None:
            answered[call_id] = (m.at - sent[call_id].at).total_seconds()
    return answered


def test_stopped_app_costs_a_call_at_most_a_second(
        clean: Engine, settings: Settings, work: Path, figures: dict[str, object]) -> None:
    """REL-7: the ARI app SIGSTOPped for 10 s under 10 screened calls/s. Each call the app does
    not take within 1 s continues in the FastAGI fallback: none fails, each is answered about
    1 s after its INVITE (see the bound below), a listed caller is still rejected. After
    SIGCONT the app leaves the calls it slept through alone (no errors, no second set of
    rows) and takes new calls."""
    list_id = block(clean, settings, "0399990666")
    assert wait_for(app_connected, 120), "ARI app not connected"
    pid = int((PROJECT_ROOT / ".run" / "ari.pid").read_text())
    ari_log = AppLog(settings)
    with Phone("127.0.1.4", work / "f2b", calls=300, timeout_s=90) as f2b:
        load = Load(UacSpec(to="0612345679", steps=[audio(1)]), work / "load", 10, 250,
                    timeout_s=80)
        time.sleep(5)
        os.kill(pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            blocked = uac(UacSpec(to="0612345679", from_user="0399990666", hangup=False),
                          work / "blocked", timeout_s=40)
            time.sleep(max(0.0, 10 - (time.monotonic() - stopped_at)))
        finally:
            os.kill(pid, signal.SIGCONT)
        stopped_s = time.monotonic() - stopped_at
        result = load.wait()
        f2b.wait(5)
    times = connect_times(parse_message_log(work / "load" / "messages.log"))
    done = sorted(t for t in times.values() if t is not None)
    # The bound REL-7 asks for: answered within 1.5 s of the INVITE (the 1 s deadline, then
    # the fallback's own work). On this shared 2-core machine other work can add a second to
    # a few fallback calls, so: at least 90 % within 1.5 s and none beyond 3 s. Without the
    # deadline the calls of the stop would wait up to the whole 10 s.
    within = sum(1 for t in done if t <= 1.5)
    records = ari_log.records()
    errors = [r for r in records if r.get("level") in ("error", "critical")]
    left_alone = [r for r in records if "1 s deadline" in str(r.get("msg"))]
    after_stop = [r for r in records if r.get("msg") == "inbound decision"
                  and r.get("ts", "") > max((str(x.get("ts")) for x in left_alone),
                                            default="")]
    figures.update(attempted=result.attempted, failed=result.failed,
                   stopped_s=round(stopped_s, 1), max_connect_s=round(done[-1], 3),
                   p95_connect_s=round(done[int(len(done) * 0.95)], 3),
                   over_1s=sum(1 for t in done if t > 1.0),
                   over_1_5s=len(done) - within, left_alone=len(left_alone))
    assert result.attempted == 250
    assert result.failed == 0, result.failed_codes
    assert len(done) == 250
    assert within >= 0.9 * len(done), done[-10:]
    assert done[-1] <= 3.0, done[-10:]
    # The listed caller, during the stop: answered, message, released; the phone never rang.
    assert blocked.final_status() == 200 and blocked.bye_from_far_end(), blocked.timeline()
    assert not any("0399990666" in (m.header("From") or "")
                   for m in f2b.result().messages if m.method == "INVITE")
    assert rows(clean, "SELECT list_id, count FROM nuisance_counters") == [(list_id, 1)]
    # One inbound_calls row per call (the unique channel_id would refuse a second handler's
    # row), and every connected call's row whose channel is gone is ended: nothing the app
    # slept through is left "in progress" to block 144 (NCR-REG-3; rejected rows never
    # count). A call still up is one sipp abandoned when a connected-line re-INVITE crossed
    # its BYE; the RTP timeout reaps it (REL-8).
    calls = rows(clean, "SELECT count(*), count(DISTINCT channel_id) FROM inbound_calls")[0]
    assert calls == (result.answered + 1, result.answered + 1), calls

    def dangling() -> set[str]:
        live = {str(c["id"]) for c in ari_channels(settings)}
        open_rows = {str(r[0]) for r in rows(clean, "SELECT channel_id FROM inbound_calls "
                                              "WHERE ended_at IS NULL AND NOT rejected")}
        return open_rows - live

    assert wait_for(lambda: not dangling(), 15), dangling()
    assert not errors, errors[:3]
    assert left_alone, "the app saw no StasisStart it slept through"
    assert after_stop, "the app took no call after SIGCONT"


GONE = "channel gone before the app was done"


def test_caller_gone_before_the_decision_leaves_no_rows(
        clean: Engine, settings: Settings, work: Path) -> None:
    """NCR-REG-3 / REC-CAP-1: the caller gives up (CANCEL) while the app decides (paused here
    with SIGSTOP, as under load) and the app's continue then finds the channel gone. The call
    never reached the phone: no inbound_calls row left "in progress" (it would block every
    144 registration of the scope until the app restarted) and no recordings row left
    `recording` (a capacity slot held, a row on the customer's page). Retried when the
    machine was too slow to wake the app within 0.3 s (then the app first claims the call,
    a path that never wrote rows)."""
    assert wait_for(app_connected, 120), "ARI app not connected"
    pid = int((PROJECT_ROOT / ".run" / "ari.pid").read_text())
    for attempt in range(3):
        log = AppLog(settings)
        os.kill(pid, signal.SIGSTOP)
        try:
            call = cancelled_call("0312345678", work / f"cancel-{attempt}")
        finally:
            os.kill(pid, signal.SIGCONT)
        assert call.final_status() == 487, call.timeline()
        assert wait_for(lambda log=log: GONE in log.text(), 10), log.text()
        [decided] = [r for r in log.records() if r.get("msg") == "inbound decision"]
        invite = next(m for m in call.messages if m.sent and m.method == "INVITE")
        age_s = (datetime.fromisoformat(str(decided["ts"]))
                 - invite.at.astimezone()).total_seconds()  # sipp stamps local time
        if age_s < 0.25:  # decided on time: rows, then the continue (the path under test)
            break
    else:
        pytest.skip("the app never woke within 0.25 s of the call on this machine")
    time.sleep(0.5)  # the writer's 100 ms window, and then some
    assert rows(clean, "SELECT count(*) FROM inbound_calls") == [(0,)]
    assert rows(clean, "SELECT count(*) FROM recordings") == [(0,)]
    assert [r for r in log.records() if r.get("level") in ("error", "critical")] == []
    # Still screening: the next call is decided and put through as usual.
    with Phone("127.0.1.1", work / "f1a") as phone:
        after = uac(UacSpec(to="0312345678", steps=[audio(1)]), work / "after")
        phone.wait(5)
    assert after.final_status() == 200, after.timeline()
    assert wait_for(lambda: rows(clean, "SELECT count(*) FROM inbound_calls "
                                 "WHERE ended_at IS NOT NULL") == [(1,)], 10)


def dead_calls_in_prometheus(settings: Settings) -> float | None:
    return prom_query(settings, 'sum(callguard_dead_calls_reaped_total{job="ari"})')


# The caller puts the call on hold: a re-INVITE offering a=sendonly, then {hold_ms} of silence.
HOLD = f"""{sip.request("INVITE", "[next_url]", 2, contact="<sip:hold@[local_ip]:[local_port]>",
                         content_type="application/sdp",
                         body=sip.sdp(version=2, direction="sendonly"), attrs=' retrans="500"')}
  <recv response="100" optional="true"/>
  <recv response="200"/>
  {sip.request("ACK", "[next_url]", 2)}
  <pause milliseconds="{{hold_ms}}"/>
  """

HOLD_S = 110  # longer than Asterisk's rtp_timeout (90 s), and than the dead call takes
DEAD_TO = "0312345679"  # F1's number, recorded inbound; rings f1-b (127.0.1.2)
DEAD_RECORDING = "FROM recordings WHERE number = '0312345679'"
DEAD_INBOUND = ("FROM inbound_calls i JOIN numbers n ON n.id = i.number_id "
                "WHERE n.number = '0312345679'")


def held_call(work: Path) -> list[str]:
    """The sipp command of a carrier call to F2's 0612345679 (rings f2-b, 127.0.1.4) that the
    caller answers, talks for 1 s, puts on hold for HOLD_S and then ends with its own BYE."""
    spec = UacSpec(to="0612345679", steps=[audio(1)])
    work.mkdir(parents=True, exist_ok=True)
    xml = uac_xml(spec, work)
    bye = '<send retrans="500"><![CDATA[\nBYE'
    assert xml.count(bye) == 1
    xml = xml.replace(bye, HOLD.replace("{hold_ms}", str(HOLD_S * 1000)) + bye)
    return _sipp(xml, work, CARRIER_IN, free_port(CARRIER_IN),
                 ["-s", spec.to, "-m", "1", "-l", "1", "-timeout", f"{HOLD_S + 40}s",
                  "-timeout_error", ASTERISK])


def channel_ids(settings: Settings) -> set[str]:
    return {str(c["id"]) for c in ari_channels(settings)}


def test_rtp_timeout_reaps_a_dead_call_and_spares_a_held_one(
        clean: Engine, settings: Settings, work: Path, figures: dict[str, object]) -> None:
    """REL-8, both sides of Asterisk's 90 s RTP timeout, on two calls up at the same time (one
    wait of the timeout instead of two):

    - reaped: both ends of a recorded, screened call vanish (SIGKILL: no BYE, no more RTP).
      The RTP timeout releases the call, its recording row is closed `complete` and its
      inbound_calls row ended (so it cannot block 144 registrations) within 120 s. Issue 18:
      the ARI app counts it, callguard_dead_calls_reaped_total moves by exactly one on its
      /metrics and through Prometheus, and the CallguardDeadCallsReaped alert fires.
    - spared: the caller of the other call puts it on hold (re-INVITE a=sendonly) and, like a
      desk phone, sends no RTP for longer than the timeout while the callee keeps talking to
      the hold music. That call is still up when its caller ends it, and is not counted."""
    reaped_before = value(scrape(settings.metrics_ari_port), "callguard_dead_calls_reaped_total")
    prom_before = dead_calls_in_prometheus(settings)
    assert prom_before is not None  # scraped, at 0 or more
    with ExitStack() as cleanup, \
            Phone("127.0.1.4", work / "f2b", audio_s=HOLD_S + 10, timeout_s=HOLD_S + 60) as f2b, \
            Phone("127.0.1.2", work / "f1b", audio_s=300, timeout_s=400) as f1b:
        held = subprocess.Popen(held_call(work / "held"), cwd=work / "held",
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        caller: Load | None = None
        try:
            assert wait_for(lambda: len(channel_ids(settings)) == 2, 10), ari_channels(settings)
            held_channels = channel_ids(settings)
            caller = Load(UacSpec(to=DEAD_TO, steps=[audio(300)]), work / "caller", 1, 1,
                          timeout_s=400)
            assert wait_for(lambda: rows(
                clean, "SELECT 1 " + DEAD_RECORDING + " AND status = 'recording'"), 10)
            assert wait_for(lambda: len(channel_ids(settings) - held_channels) == 2, 10), \
                ari_channels(settings)
            time.sleep(2)  # media flowing on both legs
            channels = channel_ids(settings) - held_channels
            assert f1b.proc is not None
            # The called phone first: its leg, not the one the app follows, reaches the 90 s
            # RTP timeout first; the followed leg must still be counted as reaped (the
            # dialplan passes cause 44 on). The leg that times out first is the one the
            # followed-leg-only count missed.
            os.kill(f1b.proc.pid, signal.SIGKILL)
            f1b.proc.wait(5)
            # The dead phone's address answers Asterisk's BYE from now on: unanswered, it is
            # retransmitted for 32 s into the next test's phone on 127.0.1.2.
            catcher = cleanup.enter_context(ByeCatcher("127.0.1.2"))
            time.sleep(3)
            os.kill(caller.proc.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            assert wait_for(lambda: not channels & channel_ids(settings), 125), \
                ari_channels(settings)
            released_s = time.monotonic() - killed_at
            # Asterisk hung up the dead phone's leg with a BYE (answered, so it stops there).
            assert wait_for(lambda: bool(catcher.byes), 10), "no BYE to the dead phone"
            assert wait_for(lambda: rows(
                clean, "SELECT status " + DEAD_RECORDING)
                == [("complete",)], max(1.0, 120 - (time.monotonic() - killed_at)))
            closed_s = time.monotonic() - killed_at
            # The held call outlived the timeout that took the dead one.
            assert held_channels <= channel_ids(settings), ari_channels(settings)
            held.wait(HOLD_S + 60)
            f2b.wait(10)
            # Answered once, never retransmitted: the 200 OK ended Asterisk's BYE transaction.
            assert len(catcher.byes) == 1, catcher.byes
        finally:
            if held.poll() is None:
                held.kill()
                held.wait()
            if caller is not None:
                caller.proc.wait(5)
    call = CallResult(held.returncode, parse_message_log(work / "held" / "messages.log"),
                      work / "held")
    assert call.final_status() == 200, call.timeline()
    assert not call.bye_from_far_end(), call.timeline()
    bye_ok = [m for m in call.received() if m.status == 200
              and "BYE" in (m.header("CSeq") or "")]
    assert bye_ok, call.timeline()
    assert rows(clean, "SELECT count(*) " + DEAD_INBOUND + " AND i.ended_at IS NULL") == [(0,)]
    assert rows(clean, "SELECT count(*) " + DEAD_INBOUND) == [(1,)]
    duration = rows(clean, "SELECT duration_s " + DEAD_RECORDING)[0][0]
    figures.update(released_s=round(released_s, 1), row_complete_s=round(closed_s, 1),
                   recorded_s=duration, held_s=HOLD_S, held_cut=False)
    assert closed_s <= 120
    reaped = value(scrape(settings.metrics_ari_port), "callguard_dead_calls_reaped_total")
    assert reaped - reaped_before == 1  # the dead call, not the held one
    assert eventually(partial(dead_calls_in_prometheus, settings), prom_before + 1) \
        == prom_before + 1
    assert wait_for(lambda: firing(settings, "CallguardDeadCallsReaped"), 30), \
        prom_alerts(settings)
