"""The operator CLI (ADM-1) against the real PostgreSQL: `--help` on every command, `--json`
on every listing, exit codes scripts can trust (0 done, 1 failed, 2 refused), one-line
errors, nothing written on a refusal, progress output, and a contract provisioned from
nothing to billable with the commands the README shows."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from callguard.cli import build_parser
from callguard.cli._admin import Progress
from callguard.config import Settings
from callguard.db.models import ApiToken, Contract, Endpoint, Number
from tests.isolated_db import BIN, cli, env_for

MINE = ("billing", "check", "contracts", "endpoints", "channels", "numbers", "priority",
        "subscriptions", "tokens")
LISTINGS = [
    ("contracts", "list"), ("endpoints", "list"), ("channels", "list"), ("numbers", "list"),
    ("priority", "list"), ("subscriptions", "list"), ("subscriptions", "nuisance", "lists"),
    ("tokens", "list"), ("billing", "price-history"), ("subscriptions", "voided"),
]


def ok(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    run = cli(settings, *args)
    assert run.returncode == 0, (args, run.stdout, run.stderr)
    return run


def refused(settings: Settings, *args: str, code: int = 2) -> str:
    """The command failed with `code` and said why on exactly one line."""
    run = cli(settings, *args)
    assert run.returncode == code, (args, run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("callguard: "), run.stderr
    return lines[0]


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    out = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _commands(sub, (*path, name))
    return out


def test_every_command_has_help(iso: Settings) -> None:
    parser = build_parser()
    paths = [p for p in _commands(parser, ()) if p and p[0] in MINE]
    assert len(paths) >= 35
    for path in paths:
        with pytest.raises(SystemExit) as done:
            parser.parse_args([*path, "--help"])
        assert done.value.code == 0, path
    assert "--json" in ok(iso, "contracts", "list", "--help").stdout


@pytest.mark.parametrize("listing", LISTINGS, ids=" ".join)
def test_every_listing_has_json_and_paging(iso: Settings, listing: tuple[str, ...]) -> None:
    data = json.loads(ok(iso, *listing, "--json").stdout)
    assert set(data) == {"items", "limit", "offset", "next_offset"}
    page = json.loads(ok(iso, *listing, "--json", "--limit", "1", "--offset", "0").stdout)
    assert page["limit"] == 1 and len(page["items"]) <= 1
    refused_line = cli(iso, *listing, "--limit", "0")
    assert refused_line.returncode == 2


def test_provision_a_contract_from_nothing(iso: Settings, iso_engine: Engine) -> None:
    """The README's operator walk-through, command by command."""
    ok(iso, "contracts", "create", "F9", "--kind", "fixed", "--name", "Kanda Shoji")
    ok(iso, "endpoints", "create", "f9-a", "--contract", "F9", "--address", "10.1.0.1",
       "--extension", "2001", "--channels", "2")
    ok(iso, "numbers", "add", "0311119999", "--endpoint", "f9-a", "--role", "representative")
    ok(iso, "subscriptions", "recording", "set", "--contract", "F9", "--from", "2026-04-01",
       "--retention-days", "30")
    out = ok(iso, "subscriptions", "nuisance", "set", "--contract", "F9", "--unit",
             "per-number", "--list-size", "30", "--from", "2026-04-01").stdout
    assert "per-number" in out and "lists of 30" in out
    ok(iso, "channels", "set", "f9-a", "3")
    lists = json.loads(ok(iso, "subscriptions", "nuisance", "lists", "--contract", "F9",
                          "--json").stdout)["items"]
    assert [(x["number"], x["capacity"], x["entries"]) for x in lists] == [("0311119999", 30, 0)]
    contract = json.loads(ok(iso, "contracts", "show", "F9", "--json").stdout)
    assert (contract["endpoints"], contract["channels"], contract["numbers"]) == (1, 3, 1)
    table = ok(iso, "contracts", "list").stdout
    assert "F9" in table and "recording, nuisance per-number/30" in table
    bill = json.loads(ok(iso, "billing", "report", "--month", "2026-05", "--contract", "F9",
                         "--json").stdout)
    assert bill["bills"][0]["subtotal"] == 900 + 3 * 900 + 200
    numbers = json.loads(ok(iso, "numbers", "list", "--contract", "F9", "--json").stdout)
    assert numbers["items"][0]["nuisance"] is True
    with Session(iso_engine) as s:
        assert s.scalar(select(Endpoint.channels).where(Endpoint.name == "f9-a")) == 3


def test_refusals_exit_2_with_one_line_and_write_nothing(iso: Settings,
                                                         iso_engine: Engine) -> None:
    ok(iso, "contracts", "create", "F8", "--kind", "fixed")
    ok(iso, "endpoints", "create", "f8-a", "--contract", "F8", "--address", "10.1.0.8",
       "--extension", "2001")

    def counts() -> tuple[int, int, int]:
        with Session(iso_engine) as s:
            return (s.scalar(select(func.count()).select_from(Contract)) or 0,
                    s.scalar(select(func.count()).select_from(Endpoint)) or 0,
                    s.scalar(select(func.count()).select_from(Number)) or 0)

    before = counts()
    assert "already exists" in refused(iso, "contracts", "create", "F8", "--kind", "fixed")
    assert "invalid contract code" in refused(iso, "contracts", "create", "F 8", "--kind",
                                              "fixed")
    assert "no contract 'NOPE'" in refused(iso, "contracts", "show", "NOPE")
    assert "no contract" in refused(iso, "endpoints", "create", "x-1", "--contract", "NOPE",
                                    "--address", "10.1.0.9", "--extension", "2001")
    assert "address 10.1.0.8 is already endpoint f8-a" in refused(
        iso, "endpoints", "create", "f8-b", "--contract", "F8", "--address", "10.1.0.8",
        "--extension", "2002")
    assert "4 digits" in refused(iso, "endpoints", "create", "f8-b", "--contract", "F8",
                                 "--address", "10.1.0.9", "--extension", "22")
    assert "mobile" in refused(iso, "endpoints", "create", "f8-b", "--contract", "F8",
                               "--address", "10.1.0.9", "--extension", "2002", "--roaming")
    ok(iso, "numbers", "add", "0311118888", "--endpoint", "f8-a", "--role", "base")
    assert "already exists" in refused(iso, "numbers", "add", "0311118888", "--endpoint",
                                       "f8-a", "--role", "base")
    assert "role" in refused(iso, "numbers", "add", "09011118888", "--endpoint", "f8-a",
                             "--role", "native")
    assert "invalid number" in refused(iso, "numbers", "add", "12345", "--endpoint", "f8-a",
                                       "--role", "base")
    assert "still rings" in refused(iso, "endpoints", "delete", "f8-a")
    assert "endpoint" in refused(iso, "contracts", "delete", "F8")
    assert "needs a unit" in refused(iso, "subscriptions", "nuisance", "set", "--contract",
                                     "F8")
    assert "no active recording" in refused(iso, "subscriptions", "recording", "cancel",
                                            "--contract", "F8")
    assert "no token 424242" in refused(iso, "tokens", "revoke", "424242")
    assert "not a priority line" in refused(iso, "priority", "delete", "0312340000")
    # argparse refusals: exit 2 as well
    for args in (("contracts", "create", "F7"), ("contracts", "frobnicate"),
                 ("subscriptions", "nuisance", "set", "--contract", "F8", "--list-size", "7"),
                 ("subscriptions", "recording", "set", "--contract", "F8", "--from",
                  "2026-02-30"), ("tokens", "create")):
        assert cli(iso, *args).returncode == 2, args
    assert counts() == (before[0], before[1], before[2] + 1)  # only the valid 0311118888


def test_database_unavailable_exits_1(iso: Settings) -> None:
    bad = "postgresql://callguard@/callguard?host=/nonexistent&port=1"
    run = subprocess.run([str(BIN / "callguard"), "contracts", "list"], capture_output=True,
                         text=True, check=False, env=env_for(iso, CALLGUARD_DATABASE_URL=bad))
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("callguard: database unavailable")


def test_tokens(iso: Settings, iso_engine: Engine) -> None:
    ok(iso, "contracts", "create", "F6", "--kind", "fixed")
    run = ok(iso, "tokens", "create", "--contract", "F6", "--label", "F6 recordings page")
    token = run.stdout.strip()
    assert token.startswith("cgt_") and len(token) > 40 and "\n" not in token
    with Session(iso_engine) as s:
        row = s.scalar(select(ApiToken).where(ApiToken.label == "F6 recordings page"))
        assert row is not None and row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
        token_id = row.id
    listed = json.loads(ok(iso, "tokens", "list", "--contract", "F6", "--json").stdout)
    assert [t["id"] for t in listed["items"]] == [token_id]
    assert token not in json.dumps(listed)  # shown once, at creation
    created = json.loads(ok(iso, "tokens", "create", "--operator", "--json").stdout)
    assert created["contract"] is None and created["token"].startswith("cgt_")
    ok(iso, "tokens", "revoke", str(token_id))
    assert "no token" in refused(iso, "tokens", "revoke", str(token_id))


def test_priority_lines(iso: Settings) -> None:
    ok(iso, "priority", "add", "0312340119", "--description", "disaster line")
    assert "already a priority line" in refused(iso, "priority", "add", "0312340119")
    data: dict[str, Any] = json.loads(ok(iso, "priority", "list", "--json").stdout)
    assert {"number": "0312340119", "description": "disaster line"} in data["items"]
    ok(iso, "priority", "delete", "0312340119")


def test_nuisance_subscription_changes(iso: Settings, iso_engine: Engine) -> None:
    ok(iso, "contracts", "create", "F5", "--kind", "fixed")
    ok(iso, "endpoints", "create", "f5-a", "--contract", "F5", "--address", "10.1.0.5",
       "--extension", "2001")
    ok(iso, "numbers", "add", "0311115555", "--endpoint", "f5-a", "--role", "base")
    ok(iso, "subscriptions", "nuisance", "set", "--contract", "F5", "--unit", "per-contract")
    ok(iso, "subscriptions", "nuisance", "set", "--contract", "F5", "--unit", "per-number")
    with iso_engine.connect() as c:
        changes = c.execute(text(
            "SELECT old_unit, new_unit FROM nuisance_unit_changes u JOIN contracts c "
            "ON c.id = u.contract_id WHERE c.code = 'F5'")).all()
    assert [tuple(r) for r in changes] == [("per-contract", "per-number")]
    msg = refused(iso, "numbers", "update", "0311115555", "--no-nuisance")
    assert "last subscribed number" in msg
    subs = json.loads(ok(iso, "subscriptions", "list", "--json").stdout)["items"]
    f5 = next(x for x in subs if x["contract"] == "F5")
    assert f5["nuisance"]["unit"] == "per-number" and f5["recording"] is None


def test_set_unit_refuses_a_cancelled_subscription_and_says_unchanged(
        iso: Settings, iso_engine: Engine) -> None:
    """NCR-UNIT-1 / BILL: `nuisance set-unit` to the unit in force changes nothing and says so;
    on a cancelled subscription it is refused (exit 2): a unit change there would bill a
    construction fee for work never done."""
    ok(iso, "contracts", "create", "F4", "--kind", "fixed")
    ok(iso, "endpoints", "create", "f4-a", "--contract", "F4", "--address", "10.1.0.4",
       "--extension", "2001")
    ok(iso, "numbers", "add", "0311114444", "--endpoint", "f4-a", "--role", "base")
    ok(iso, "subscriptions", "nuisance", "set", "--contract", "F4", "--unit", "per-contract",
       "--from", "2026-01-05")

    def changes() -> int:
        with iso_engine.connect() as c:
            return int(c.execute(text(
                "SELECT count(*) FROM nuisance_unit_changes u JOIN contracts c "
                "ON c.id = u.contract_id WHERE c.code = 'F4'")).scalar_one())

    same = ok(iso, "nuisance", "set-unit", "--contract", "F4", "per-contract").stdout
    assert "unchanged" in same and "new, empty" not in same
    assert changes() == 0
    ok(iso, "subscriptions", "nuisance", "cancel", "--contract", "F4")
    msg = refused(iso, "nuisance", "set-unit", "--contract", "F4", "per-number")
    assert "cancelled" in msg and "F4" in msg
    assert changes() == 0


def test_a_contract_that_had_a_service_is_not_deleted(iso: Settings) -> None:
    """BILL, ADM-1: its past bills would go with it: exit 2, cancel its services instead; a
    contract never subscribed is still deleted."""
    ok(iso, "contracts", "create", "F3", "--kind", "mobile")
    ok(iso, "subscriptions", "recording", "set", "--contract", "F3", "--from", "2026-01-05")
    ok(iso, "subscriptions", "recording", "cancel", "--contract", "F3", "--on", "2026-03-01")
    msg = refused(iso, "contracts", "delete", "F3")
    assert "F3" in msg and "cancel its services" in msg
    bill = json.loads(ok(iso, "billing", "report", "--month", "2026-01", "--contract", "F3",
                         "--json").stdout)
    assert bill["bills"][0]["subtotal"] == 3000 + 500  # initial fee + per contract
    ok(iso, "contracts", "create", "F2X", "--kind", "fixed")
    ok(iso, "contracts", "delete", "F2X")
    refused(iso, "contracts", "show", "F2X")


def test_progress_output() -> None:
    """Progress on stderr for long work: nothing for quick work, a line every two seconds and
    a last one otherwise (not a terminal)."""
    now = [0.0]
    out = io.StringIO()
    quick = Progress("quick", clock=lambda: now[0], stream=out)
    for i in range(1, 4):
        quick(i, 3)
    assert out.getvalue() == ""
    slow = Progress("billing 2026-05", clock=lambda: now[0], stream=out)
    for i in range(1, 11):
        now[0] += 0.7
        slow(i, 10)
    lines = out.getvalue().splitlines()
    assert lines[0] == "billing 2026-05: 2/10" and lines[-1] == "billing 2026-05: 10/10"
    assert 3 <= len(lines) <= 5
