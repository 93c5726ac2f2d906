"""Operator tools against the running stack (ADM-1, ADM-2, SEC-2, BILL-*): `callguard check`
against the live Asterisk, every kind of mismatch it reports, the `callguard-api` service that
`tools/stack.sh` runs, and the reference site's bills from the real database.

Changes are made only in a private schema (tests/isolated_db.py); the shared tables are read,
never written."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from callguard.config import PROJECT_ROOT, Settings
from callguard.db.models import Endpoint, Number
from callguard.db.provision import provision_reference_site
from tests.isolated_db import api_server, cli, engine_for, env_for, private_schema

CLI = str(PROJECT_ROOT / ".venv" / "bin" / "callguard")


@pytest.fixture(scope="module")
def iso(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The reference site again, in a private schema this module may change."""
    with private_schema(tmp_path_factory.mktemp("recordings")) as settings:
        eng = engine_for(settings)
        with Session(eng) as s, s.begin():
            provision_reference_site(s, date(2026, 4, 15))
        eng.dispose()
        yield settings


def test_check_agrees_on_the_running_stack(stack: Settings) -> None:
    """ADM-1: the provisioned database and Asterisk's pjsip configuration agree."""
    run = subprocess.run([CLI, "check", "--json"], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["ok"] and report["checked"] == 6 and report["mismatches"] == []
    assert "carrier" in report["ignored"] and report["warnings"] == []
    text = subprocess.run([CLI, "check"], capture_output=True, text=True, check=False)
    assert text.returncode == 0 and "6 database endpoint(s) checked" in text.stdout


def test_check_reports_every_mismatch(iso: Settings, tmp_path: Path) -> None:
    """One of each: an endpoint Asterisk lacks, one the database lacks, a moved address
    (identify and contact), a phone display number that is not the line's; and a mobile
    handset without its office number, a warning that is not a mismatch (source 000)."""
    eng = engine_for(iso)
    with Session(eng) as s, s.begin():
        s.add(Endpoint(name="f9-a", contract_id=s.scalar(
            select(Endpoint.contract_id).where(Endpoint.name == "f1-a")),
            address="127.0.1.9", extension="2009", channels=1))
        m1b = s.scalar(select(Endpoint.id).where(Endpoint.name == "m1-b"))
        s.execute(delete(Number).where(Number.endpoint_id == m1b))
        s.execute(delete(Endpoint).where(Endpoint.id == m1b))
        s.execute(update(Endpoint).where(Endpoint.name == "f1-b").values(address="127.0.1.12"))
        s.execute(update(Number).where(Number.number == "0612345678").values(
            number="0612345600"))
        s.execute(delete(Number).where(Number.number == "0311110001"))  # m1-a's office number
    eng.dispose()
    run = cli(iso, "check", "--json")
    assert run.returncode == 1, run.stdout + run.stderr
    found = sorted((m["endpoint"], m["problem"]) for m in json.loads(run.stdout)["mismatches"])
    assert found == [("f1-b", "address"), ("f1-b", "contact"), ("f2-a", "callerid"),
                     ("f9-a", "missing-in-asterisk"), ("m1-b", "missing-in-database")]
    assert [(w["endpoint"], w["problem"]) for w in json.loads(run.stdout)["warnings"]] == [
        ("m1-a", "no-office-number")]
    text = cli(iso, "check")
    assert text.returncode == 1
    assert "MISMATCH f1-b: address: identified by 127.0.1.2/255.255.255.255; the database " \
           "says 127.0.1.12" in text.stdout
    assert "5 mismatch(es)" in text.stdout
    assert "WARNING m1-a: no-office-number: mobile handset without an office number" \
        in text.stdout
    # the same over the API
    with api_server(iso, tmp_path / "api.log") as base:
        req = urllib.request.Request(f"{base}/api/v1/check",  # noqa: S310 - loopback
                                     headers={"Authorization": f"Bearer {iso.api_token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            report = json.load(resp)
    assert report["ok"] is False and len(report["mismatches"]) == 5


def test_check_without_asterisk_exits_1(iso: Settings) -> None:
    run = subprocess.run([CLI, "check"], capture_output=True, text=True, check=False,
                         env=env_for(iso, CALLGUARD_ARI_URL="http://127.0.0.1:9"))
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("callguard: cannot check: ARI at")


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:  # closes its socket (an unclosed one is a ResourceWarning later)
            return exc.code, exc.read()


def test_api_service_runs_on_loopback(stack: Settings) -> None:
    """ADM-2/SEC-2: `callguard-api` (started by tools/stack.sh, PID in .run/api.pid) answers
    on 127.0.0.1:8089 with the OpenAPI document; everything else needs a token."""
    pid = int((PROJECT_ROOT / ".run" / "api.pid").read_text())
    assert Path(f"/proc/{pid}").exists()
    base = f"http://{stack.api_host}:{stack.api_port}"
    status, body = _get(f"{base}/openapi.json")
    assert status == 200 and json.loads(body)["openapi"].startswith("3.")
    status, body = _get(f"{base}/api/v1/contracts")
    assert status == 401 and json.loads(body)["status"] == 401
    status, body = _get(f"{base}/api/v1/contracts", stack.api_token)
    assert status == 200
    assert {"F1", "F2", "M1"} <= {c["code"] for c in json.loads(body)["items"]}
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True,
                               check=True).stdout
    ours = [line for line in listening.splitlines() if f":{stack.api_port} " in line]
    assert ours and all(line.split()[3].startswith("127.") for line in ours), ours
    status_out = subprocess.run([CLI, "status"], capture_output=True, text=True, check=False)
    assert f"HTTP API   pid {pid}" in status_out.stdout


def test_reference_site_bills(stack: Settings) -> None:
    """SPEC §8 / BILL-*: in any month after its provisioning month the reference site bills
    F1 4,000, F2 200, M1 1,500 JPY excluding tax (read-only on the shared database)."""
    today = datetime.now(UTC).date()
    month = f"{today.year + (today.month == 12):04d}-{today.month % 12 + 1:02d}"
    run = subprocess.run([CLI, "billing", "report", "--month", month, "--json"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    subtotal = {b["contract"]: b["subtotal"] for b in json.loads(run.stdout)["bills"]}
    assert {c: subtotal[c] for c in ("F1", "F2", "M1")} == {"F1": 4000, "F2": 200, "M1": 1500}
