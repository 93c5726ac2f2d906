"""REL-7: a continue that lands after the 1 s Stasis() deadline.

Under a backlog the ARI app's continue and the dialplan's deadline can both be due when the
channel's thread wakes: the continue moves the channel into its cg-* context, then the PBX
raises ABSOLUTETIMEOUT there, before the context's first priority clears the timeout. Without
an `e` extension there, Asterisk hung up with no cause and PJSIP answered the caller 603
Decline (most likely the 31 such calls at 175 calls/s in one `make bench`), although the app
had decided the call and written its rows.

The race itself depends on thread timing, so these tests build its outcome directly: a test
extension in [from-carrier] (added at run time, removed afterwards) jumps into the context with
a deadline that is already due (`SET()` inside the Goto's own arguments, so no priority runs in
between), exactly the state the late continue leaves. Then the caller must get what the
decision says, over real SIP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.e2e.sipp import CallResult, Phone, UacSpec, uac
from tests.e2e.test_bench_config import ast
from tests.e2e.test_nuisance import F1A
from tests.e2e.test_nuisance_sip import answered_to_bye, prompt_s

DUE = "${SET(TIMEOUT(absolute)=0.00001):0:0}"  # 10 µs: due at the PBX's next check (ms grain)
TEST_EXTENSIONS = {
    # the rejection (`s` extension): answered, the message twice, released (NCR-REJ-1)
    "0399990778": f"Goto(cg-reject,s,1{DUE})",
    # a `v` extension whose priority 1 never ran: `e` assigns its field (cause 17 → 486)
    "0399990777": f"Goto(cg-release-cause,v17,1{DUE})",
    # connect (`a` extension, the variables set beforehand): the line's phone rings
    "0399990780": f"Goto(cg-connect,a,1{DUE})",
    # `e` entered with no timeout exception: released with a cause, never a loop
    "0399990782": "Goto(cg-release-cause,e,1)",
    # the deadline after a `v` extension's priority 1 ran: on at its priority 2 (below)
    "0399990783": "Goto(cg-release-cause,v99,1)",
}
# The exception mid-`v`: `v99` (an exact match, ahead of the context's `_v.`) does what `_v.`
# priority 1 does, with cause 17, and raises the exception right there, as the PBX would if the
# deadline fell due after that priority. [cg-late] must go on at `_v.` priority 2 with that
# cause (486); reassigning the fields from the extension would give cause 99, and resuming at
# `v99` itself would find no priority 2.
MID_V = ("cg-release-cause", "v99", "RaiseException(ABSOLUTETIMEOUT${SET(CG_CAUSE=17):0:0})")
CONNECT_VARS = ["Set(CG_DIAL=PJSIP/f1-a)", "Set(CG_TIMEOUT=20)"]


@pytest.fixture
def late_extensions(clean: Engine) -> Iterator[None]:
    added: list[str] = []
    try:
        for number, goto in TEST_EXTENSIONS.items():
            steps = [*CONNECT_VARS, goto] if number == "0399990780" else [goto]
            for priority, app in enumerate(steps, start=1):
                out = ast(f"dialplan add extension {number},{priority},{app} into from-carrier")
                assert "added" in out, out
            added.append(f"{number}@from-carrier")
        context, exten, app = MID_V
        out = ast(f"dialplan add extension {exten},1,{app} into {context}")
        assert "added" in out, out
        added.append(f"{exten}@{context}")
        yield
    finally:
        for where in added:
            out = ast(f"dialplan remove extension {where}")
            assert "removed" in out, out


def no_channels_left() -> bool:
    return "0 active channels" in ast("core show channels count")


def call(number: str, work: Path) -> CallResult:
    return uac(UacSpec(to=number, hangup=False, wait_bye_s=20), work / number, timeout_s=30)


def test_late_rejection_is_still_the_rejection(late_extensions: None, work: Path) -> None:
    r = call("0399990778", work)
    assert r.final_status() == 200, r.timeline()  # was 603 Decline
    assert r.bye_from_far_end(), r.timeline()
    # The whole message twice, as NCR-REJ-1 says (not cut short, not skipped).
    assert answered_to_bye(r) >= 2 * prompt_s("reject") - 0.3, r.timeline()


def test_late_v_extension_gets_its_fields(late_extensions: None, work: Path) -> None:
    r = call("0399990777", work)
    assert r.final_status() == 486, r.timeline()  # cause 17 from the extension's field


def test_late_connect_rings_the_line(late_extensions: None, work: Path) -> None:
    with Phone(F1A, work / "phone", answer_ms=200, audio_s=0.5) as phone:
        r = uac(UacSpec(to="0399990780", hangup=True, steps=[]), work / "caller", timeout_s=30)
        phone.wait(30)
    assert phone.rang()
    assert r.final_status() == 200, r.timeline()


def test_e_without_a_timeout_releases_the_call(late_extensions: None, work: Path) -> None:
    r = call("0399990782", work)
    assert r.final_status() == 503, r.timeline()  # cause 34, from [cg-late-other]
    assert no_channels_left()


def test_late_mid_v_extension_goes_on_at_its_next_priority(late_extensions: None,
                                                           work: Path) -> None:
    r = call("0399990783", work)
    assert r.final_status() == 486, r.timeline()  # cause 17, set before the exception
    assert no_channels_left()
