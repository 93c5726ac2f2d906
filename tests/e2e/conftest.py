"""Fixtures for end-to-end tests: the real stack started by `make test` (Asterisk 22 in its
root, PostgreSQL, the ARI app, the FastAGI fallback). A test never skips because the stack is
missing: it fails, so a broken setup cannot pass as green."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg.errors
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from callguard.config import PROJECT_ROOT, Settings, load_settings
from callguard.db.session import make_sync_engine

# Call-path state wiped before each e2e test; the provisioned site stays.
CALL_STATE_TABLES = ("inbound_calls", "recordings", "nuisance_entries", "nuisance_counters",
                     "forwardings", "call_outcomes")


# A second stack (another clone in its own network namespace) passes its own lock path.
E2E_LOCK = Path(os.environ.get("CALLGUARD_E2E_LOCK", "/tmp/callguard-e2e.lock"))


@pytest.fixture(scope="session", autouse=True)
def _one_e2e_run_at_a_time() -> Iterator[None]:
    """The stack is shared (SIP addresses, database): e2e sessions, benchmarks and service
    restarts take this lock (`flock /tmp/callguard-e2e.lock ...` from a shell)."""
    with E2E_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# The reference site (SPEC §8) `make run` provisions: all a development/test install holds.
REFERENCE_CONTRACTS = frozenset({"F1", "F2", "M1"})
REFERENCE_ENDPOINTS = frozenset({"f1-a", "f1-b", "f2-a", "f2-b", "m1-a", "m1-b"})


def beyond_reference_site(contracts: set[str], endpoints: set[str]) -> list[str]:
    """What the database holds besides the reference site (empty: a test install)."""
    found = []
    if extra := sorted(contracts - REFERENCE_CONTRACTS):
        found.append(f"contract(s) {', '.join(extra)}")
    if extra := sorted(endpoints - REFERENCE_ENDPOINTS):
        found.append(f"endpoint(s) {', '.join(extra)}")
    return found


@pytest.fixture(scope="session", autouse=True)
def _only_on_a_test_install(_one_e2e_run_at_a_time: None) -> None:
    """The e2e tests empty the call logs, nuisance lists, counters and forwardings (TRUNCATE)
    and delete the recording files: before any of them runs, refuse a database that holds
    anything beyond the reference site, i.e. a site in service."""
    try:
        eng = make_sync_engine(load_settings())
        try:
            with eng.connect() as conn:
                contracts = set(conn.execute(text("SELECT code FROM contracts")).scalars())
                endpoints = set(conn.execute(text("SELECT name FROM endpoints")).scalars())
        finally:
            eng.dispose()
    except Exception:  # no database, nothing to wipe: the tests fail on their own
        return
    if found := beyond_reference_site(contracts, endpoints):
        pytest.exit(
            "refusing to run the end-to-end tests: this database holds "
            f"{' and '.join(found)} beyond the reference site (F1, F2, M1 and their six "
            "endpoints), so it looks like a site in service. The tests empty the call logs, "
            "nuisance lists, counters and forwardings and delete the recordings. Run `make test` "
            "on a development/test install only (a separate clone or machine with its own "
            "`make run`); if this is one, remove the extra contracts and endpoints "
            "(`callguard contracts`/`endpoints`) or start over with `make clean && make run`.",
            returncode=3)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    eng = make_sync_engine(settings)
    yield eng
    eng.dispose()


def ari_get(settings: Settings, path: str) -> object:
    import base64

    auth = base64.b64encode(f"{settings.ari_user}:{settings.ari_password}".encode()).decode()
    req = urllib.request.Request(f"{settings.ari_url}/ari/{path}",  # noqa: S310 - loopback
                                 headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
        return json.load(resp)


class LogSince:
    """What was appended to the log file at `path` since this object was made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size

    def text(self) -> str:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")

    def lines(self) -> list[str]:
        return self.text().splitlines()


class MessagesLog(LogSince):
    """Asterisk's messages.log (notice and up) since this object was made."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(Path(settings.asterisk_root) / "var/log/asterisk/messages.log")


class AppLog(LogSince):
    """What one of the service's processes logged (`ari.log` unless named: `fastagi.log`,
    `api.log`) since this object was made."""

    def __init__(self, settings: Settings, name: str = "ari.log") -> None:
        super().__init__(settings.log_dir / name)

    def records(self) -> list[dict[str, Any]]:
        """The JSON log records (a line that is not one, e.g. a traceback, is skipped)."""
        out = []
        for line in self.text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def menu(self, msg: str) -> list[dict[str, Any]]:
        """The 144 menu's records with this message ("prompt", "digit")."""
        return [rec for rec in self.records()
                if rec.get("logger") == "callguard.menu" and rec.get("msg") == msg]

    def prompts(self) -> list[str]:
        return [rec["prompt"] for rec in self.menu("prompt")]


@pytest.fixture(scope="session")
def stack(settings: Settings, engine: Engine) -> Settings:
    """The stack must be up and the ARI app connected (`make test` starts it)."""
    info = ari_get(settings, "asterisk/info")
    assert isinstance(info, dict) and info["system"]["version"].startswith("22."), info
    apps = ari_get(settings, "applications")
    assert isinstance(apps, list)
    assert any(a["name"] == settings.ari_app for a in apps), "ARI app not connected"
    with engine.connect() as conn:  # the reference site only: _only_on_a_test_install
        assert conn.execute(text("SELECT count(*) FROM endpoints")).scalar() == 6
    return settings


JOURNAL_DRAIN_S = 15.0


def wait_journals_drained(settings: Settings, timeout_s: float = JOURNAL_DRAIN_S) -> None:
    """Until both services' journals are empty (REL-2), at most `timeout_s`: what an earlier
    test left journaled while it had the database stopped has then been replayed (each
    service tries every 2 s once the database is back)."""
    files = [settings.journal_dir / name for name in ("ari.jsonl", "fastagi.jsonl")]
    deadline = time.monotonic() + timeout_s
    while any(f.exists() and f.read_text().strip() for f in files) \
            and time.monotonic() < deadline:
        time.sleep(0.2)


def truncate_call_state(engine: Engine, attempts: int = 5) -> None:
    """TRUNCATE the call tables while the stack may still be reading them: PostgreSQL can end
    the TRUNCATE as a deadlock's victim (CI of 84b2d14: its exclusive locks, taken table by
    table, against a reader holding one of the tables and waiting for another). It rolled
    back whole, so it is tried again."""
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {', '.join(CALL_STATE_TABLES)}"))
            return
        except OperationalError as exc:
            if not isinstance(exc.orig, psycopg.errors.DeadlockDetected) \
                    or attempt == attempts - 1:
                raise
            time.sleep(0.2)


def clean_call_state(engine: Engine, stack: Settings) -> Engine:
    """No call rows and no recording files: what a test's calls leave is theirs alone."""
    # An earlier test's journaled rows would otherwise land after the TRUNCATE, in this
    # test's tables (the fallback's call rows written 100 ms late, once the database stopped).
    wait_journals_drained(stack)
    truncate_call_state(engine)
    # Recording files of earlier tests go with their rows.
    for wav in stack.recordings_dir.rglob("*.wav"):
        wav.unlink()
    return engine


@pytest.fixture
def clean(engine: Engine, stack: Settings) -> Engine:
    return clean_call_state(engine, stack)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path


FIGURES: list[tuple[str, dict[str, object]]] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, object]:
    """Numbers a test measured; printed together at the end of the run."""
    data: dict[str, object] = {}
    FIGURES.append((request.node.name, data))
    return data


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    shown = [(name, data) for name, data in FIGURES if data]
    if shown:
        terminalreporter.section("figures measured by the e2e tests")
        for name, data in shown:
            terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in
                                                                 data.items()))


@contextmanager
def contract_token(code: str, label: str) -> Iterator[str]:
    """A contract token made with the CLI, revoked afterwards whatever happens."""
    cli = str(PROJECT_ROOT / ".venv" / "bin" / "callguard")
    made = json.loads(subprocess.run(
        [cli, "tokens", "create", "--contract", code, "--label", label, "--json"],
        capture_output=True, text=True, check=True).stdout)
    try:
        yield str(made["token"])
    finally:
        subprocess.run([cli, "tokens", "revoke", str(made["id"])], capture_output=True,
                       check=False)
