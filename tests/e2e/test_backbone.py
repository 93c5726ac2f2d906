"""Backbone routing over real SIP (issue 2; SITE-*, RUN-*): carrier → number → endpoint with
the right SIP result for answer/busy/no-answer/unknown, customer → carrier with its configured
caller ID, extension calls inside a contract, unknown sources refused (SEC-1)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from callguard.config import PROJECT_ROOT, Settings
from callguard.db import migrate
from tests.e2e.bye_catcher import ByeCatcher
from tests.e2e.sipp import CARRIER_OUT, Phone, UacSpec, audio, uac
from tests.waiting import wait_for


def test_inbound_call_rings_the_endpoint_and_connects(clean: Engine, work: Path) -> None:
    # SITE: carrier 127.0.0.2 calls 0312345679 (f1-b, 127.0.1.2); the phone answers.
    with Phone("127.0.1.2", work / "phone", audio_s=0) as phone:
        call = uac(UacSpec(to="0312345679", steps=[audio(1)]), work / "carrier")
        phone.wait(10)
    assert call.final_status() == 200, call.statuses()
    assert phone.rang()


def test_inbound_busy_gives_486(clean: Engine, work: Path) -> None:
    with Phone("127.0.1.3", work / "phone", mode="busy") as phone:
        call = uac(UacSpec(to="0612345678"), work / "carrier")
    assert call.final_status() == 486
    assert phone.rang()


def test_inbound_unknown_number_gives_404(clean: Engine, work: Path) -> None:
    call = uac(UacSpec(to="0399999999"), work / "carrier")
    assert call.final_status() == 404


def test_customer_call_goes_to_carrier_with_configured_caller_id(clean: Engine,
                                                                 work: Path) -> None:
    # REC-OUT-3 / SEC-1: f2-a (127.0.1.3) dials without prefix; its From claims another
    # number, the carrier must still see 0612345678.
    with Phone(CARRIER_OUT, work / "carrier", audio_s=0) as carrier:
        call = uac(UacSpec(to="0311112222", from_user="0312345678", steps=[audio(1)]),
                   work / "phone", local_ip="127.0.1.3")
        carrier.wait(10)
    assert call.final_status() == 200
    invite = carrier.result().first(method="INVITE", sent=False)
    assert invite is not None
    assert invite.first_line.startswith("INVITE sip:0311112222@127.0.0.3")
    assert "<sip:0612345678@" in (invite.header("From") or "")


def test_extension_call_rings_the_other_endpoint(clean: Engine, work: Path) -> None:
    # f1-a dials 2002 → f1-b (REC-OUT-4: inside the contract).
    with Phone("127.0.1.2", work / "callee", audio_s=0) as callee:
        call = uac(UacSpec(to="2002", steps=[audio(1)]), work / "caller", local_ip="127.0.1.1")
        callee.wait(10)
    assert call.final_status() == 200
    assert callee.rang()


def test_unknown_source_address_is_refused(clean: Engine, work: Path) -> None:
    # SEC-1: 127.0.9.9 is no endpoint: never routed to the carrier.
    with Phone(CARRIER_OUT, work / "carrier", timeout_s=8) as carrier:
        call = uac(UacSpec(to="0311112222"), work / "intruder", local_ip="127.0.9.9",
                   timeout_s=10)
    assert call.final_status() in (401, 403, 404), call.statuses()
    assert not carrier.rang()


@pytest.fixture
def short_ring(clean: Engine) -> Iterator[None]:
    """Ring for 3 s instead of the default 30 (site_settings, read within ~2 s)."""
    with clean.begin() as conn:
        conn.execute(text("INSERT INTO site_settings (key, value) VALUES ('ring_timeout_s', '3')"
                          " ON CONFLICT (key) DO UPDATE SET value = '3'"))
    time.sleep(2.5)
    yield
    with clean.begin() as conn:
        conn.execute(text("DELETE FROM site_settings WHERE key = 'ring_timeout_s'"))
    time.sleep(2.5)


def test_inbound_no_answer_gives_480(short_ring: None, work: Path) -> None:
    with Phone("127.0.1.3", work / "phone", mode="noanswer") as phone:
        call = uac(UacSpec(to="0612345678"), work / "carrier")
    assert call.final_status() == 480
    assert phone.rang()


def test_inbound_unreachable_phone_gives_480(short_ring: None, work: Path) -> None:
    # Nothing listens at f2-b (127.0.1.4): the INVITE goes unanswered.
    call = uac(UacSpec(to="0612345679"), work / "carrier")
    assert call.final_status() == 480
    # Asterisk retransmits that INVITE for up to 32 s (timer B), into whatever phone the next
    # test starts on 127.0.1.4: answered here (480), the transaction ends. Retransmissions
    # come at most 4 s apart (T2).
    with ByeCatcher("127.0.1.4") as catcher:
        assert wait_for(lambda: bool(catcher.invites), 6), "no INVITE retransmission seen"


def test_runtime_is_the_project_stack(stack: Settings, engine: Engine) -> None:
    """RUN-1: Asterisk 22 runs from the project's own root (chroot, no system Asterisk);
    RUN-2: PostgreSQL 15 is the project-local cluster (own data dir, unix socket only, no TCP)
    with the schema at Alembic's head; RUN-3: the README's two commands are `make run` and
    `make test`, `.ci/run` calls the latter, and the reference site is provisioned (§8)."""
    root = (PROJECT_ROOT / ".build" / "asterisk-root").resolve()
    pid = int((root / "run" / "asterisk" / "asterisk.pid").read_text().split()[0])
    assert Path(f"/proc/{pid}/root").resolve() == root, "Asterisk does not run in the root"
    version = subprocess.run(["chroot", str(root), "asterisk", "-rx", "core show version"],
                             capture_output=True, text=True, check=True).stdout
    # (asterisk -rx may print a warning first, e.g. on a host without an ethernet interface)
    assert any(line.startswith("Asterisk 22.") for line in version.splitlines()), version
    with engine.connect() as conn:
        show = {name: str(conn.execute(text(f"SHOW {name}")).scalar())
                for name in ("server_version", "listen_addresses", "port")}
        over_tcp = conn.execute(text("SELECT inet_server_addr()")).scalar()
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        contracts = conn.execute(text("SELECT code FROM contracts ORDER BY code")).scalars()
        site_contracts = [c for c in contracts if c in ("F1", "F2", "M1")]
    assert show["server_version"].startswith("15."), show
    assert show["listen_addresses"] == "" and over_tcp is None, show  # unix socket only
    # The server answering is the project's cluster: its postmaster.pid names our data dir's
    # server, alive, on this port, with its socket in .run/pg.
    pg_dir = PROJECT_ROOT / ".run" / "pg"
    postmaster = (pg_dir / "data" / "postmaster.pid").read_text().splitlines()
    assert Path(f"/proc/{postmaster[0]}").exists()
    assert postmaster[3] == show["port"] and Path(postmaster[4]).resolve() == pg_dir.resolve()
    assert (pg_dir / f".s.PGSQL.{show['port']}").is_socket()
    head = ScriptDirectory.from_config(migrate.alembic_config(stack)).get_current_head()
    assert revision == head
    assert site_contracts == ["F1", "F2", "M1"]
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (PROJECT_ROOT / ".ci" / "run").read_text()
