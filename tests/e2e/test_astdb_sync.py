"""REL-1, REL-5: the fail-open route map in astdb follows the site without `make run`. A number
moved to another line with the CLI reaches astdb within seconds (the services write it,
callguard/astdb_sync.py); with both the ARI app and the FastAGI fallback then stopped, a call
to it fails open to the NEW line's phone. Everything is put back, whatever happened."""

from __future__ import annotations

import re
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from callguard.asterisk.cli import run_cli
from callguard.asterisk.console import control_socket
from callguard.config import Settings
from callguard.domain.astdb import CID, ROUTE, get_command, parse_get
from tests.e2e.conftest import MessagesLog
from tests.e2e.rec_helpers import CLI, F2A
from tests.e2e.sipp import Phone, UacSpec, audio, uac
from tests.e2e.test_failsafe import run_stack
from tests.e2e.test_reliability import app_connected
from tests.waiting import wait_for

NUMBER = "0612345679"  # f2-b's own number (SPEC §8), moved to f2-a and back
F2B = "127.0.1.4"
# The services' debounce (astdb_sync.QUIET_S, 1 s) plus the keeper's reload and a few console
# round trips; generous for a loaded 2-core machine.
ASTDB_DEADLINE_S = 5.0


def astdb_get(settings: Settings, family: str, key: str) -> str | None:
    return parse_get(run_cli(settings, get_command(family, key)))


def wait_route(settings: Settings, ok: Callable[[str | None], bool],
               timeout_s: float) -> tuple[str | None, float]:
    """Poll `database get callguard_route NUMBER` until `ok(value)` or the deadline: the last
    value read and the seconds it took."""
    started = time.monotonic()
    value = astdb_get(settings, ROUTE, NUMBER)
    while not ok(value) and time.monotonic() - started < timeout_s:
        time.sleep(0.1)
        value = astdb_get(settings, ROUTE, NUMBER)
    return value, time.monotonic() - started


def on(endpoint: str) -> Callable[[str | None], bool]:
    return lambda value: value is not None and value.endswith(f"@{endpoint}")


def move_number(endpoint: str) -> None:
    subprocess.run([CLI, "numbers", "update", NUMBER, "--endpoint", endpoint],
                   check=True, capture_output=True, text=True)


@contextmanager
def both_apps_stopped() -> Iterator[None]:
    """The ARI app and the FastAGI fallback stopped: the dialplan's last resort (REL-1); both
    started again afterwards, whatever happened."""
    try:
        run_stack("app-stop", "ari")
        run_stack("app-stop", "fastagi")
        yield
    finally:
        run_stack("app-start", "fastagi")
        run_stack("app-start", "ari")
        # Generous: on a loaded 2-core machine a cold Python start can take tens of seconds.
        assert wait_for(app_connected, 120), "ARI app did not reconnect"


def test_moved_number_fails_open_to_its_new_phone(
        stack: Settings, work: Path, figures: dict[str, object]) -> None:
    settings = stack
    ctl = control_socket(settings)
    # The services (their own account, SEC-4) write through Asterisk's console socket, which
    # asterisk.conf's astctlpermissions makes group-writable when Asterisk starts.
    assert stat.S_IMODE(ctl.stat().st_mode) & 0o060 == 0o060, (
        f"{ctl} is {oct(stat.S_IMODE(ctl.stat().st_mode))}: the services cannot reach the "
        "console (restart Asterisk, or `tools/stack.sh asterisk-start`, so the new "
        "asterisk.conf applies)")
    before, _ = wait_route(settings, on("f2-b"), ASTDB_DEADLINE_S)
    assert on("f2-b")(before), f"astdb routes {NUMBER} to {before!r} before the test"
    restored: str | None = None
    try:
        move_number("f2-a")
        moved, took = wait_route(settings, on("f2-a"), ASTDB_DEADLINE_S)
        figures.update(astdb_after_s=round(took, 2))
        assert on("f2-a")(moved), (f"astdb still routes {NUMBER} to {moved!r} "
                                   f"{ASTDB_DEADLINE_S:g} s after the move")
        # f2-b has no number of its own left: its caller-ID entry went with it.
        assert astdb_get(settings, CID, "f2-b") is None

        with both_apps_stopped():
            assert wait_for(lambda: not app_connected(), 5)
            log = MessagesLog(settings)
            with Phone(F2A, work / "f2a", audio_s=2) as new_phone, \
                    Phone(F2B, work / "f2b", timeout_s=15) as old_phone:
                call = uac(UacSpec(to=NUMBER, steps=[audio(1)]), work / "carrier",
                           timeout_s=30)
                new_phone.wait(5)
            assert call.final_status() == 200, call.timeline()  # unscreened, never dropped
            assert new_phone.rang() and f"@{F2A}" in new_phone.invites()[0], \
                new_phone.invites()
            assert not old_phone.rang(), old_phone.invites()
            # It was the last resort that connected it, not a service.
            failed_open = [ln for ln in log.lines() if re.search(
                r"WARNING\[.*callguard: fallback server unavailable .* "
                r"PJSIP/carrier-[0-9a-f]+ - failing open", ln)]
            assert len(failed_open) == 1, log.lines()
    finally:
        move_number("f2-b")
        # The services (started again above) write the way back too.
        restored, _ = wait_route(settings, on("f2-b"), 3 * ASTDB_DEADLINE_S)
        if on("f2-b")(restored):
            time.sleep(2.0)  # still so once both services have followed the last change
            restored = astdb_get(settings, ROUTE, NUMBER)
        if not on("f2-b")(restored):  # the next tests need the map right, whatever happened
            subprocess.run([CLI, "site", "sync-asterisk"], check=False, capture_output=True)
    assert on("f2-b")(restored), f"the services left {NUMBER} routed to {restored!r}"
