"""A private copy of the schema for operator-tool tests: its own PostgreSQL schema in the
project database, built by `alembic upgrade head` and dropped afterwards.

The shared tables stay untouched (other engineers' e2e tests truncate call tables at their
start, and the reference site must keep its six endpoints), so these tests do not depend on
what the call path is doing. Everything reaches the private schema through `search_path` in
the database URL: the CLI (a subprocess with CALLGUARD_DATABASE_URL) and `callguard-api` (a
subprocess on a free port) alike. The tests still take the e2e lock (`e2e_lock()`): the
PostgreSQL server and Asterisk are shared, and reliability tests stop them on purpose.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, text

from callguard.config import PROJECT_ROOT, Settings, load_settings
from callguard.db import migrate
from callguard.db.session import make_sync_engine
from tests.processes import end

BIN = PROJECT_ROOT / ".venv" / "bin"
E2E_LOCK = Path(os.environ.get("CALLGUARD_E2E_LOCK", "/tmp/callguard-e2e.lock"))


def _held_by_this_process(path: Path) -> bool:
    """True when this process already holds the flock (the e2e session fixture took it
    earlier in the same pytest run); /proc/locks names the owner of each lock."""
    inode = path.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
            continue
        if parts[4] == str(os.getpid()) and parts[5].rsplit(":", 1)[-1] == str(inode):
            return True
    return False


@contextmanager
def e2e_lock() -> Iterator[None]:
    """The shared stack's lock (tests/e2e/conftest.py): these tests use the shared PostgreSQL
    server, which reliability tests stop on purpose, and the live Asterisk. Re-entrant within
    one process, so `pytest tests` in any order cannot deadlock on itself."""
    with E2E_LOCK.open("a") as lock:
        if _held_by_this_process(E2E_LOCK):
            yield
            return
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


@contextmanager
def private_schema(recordings_dir: Path) -> Iterator[Settings]:
    base = load_settings()
    schema = f"cgtest_{os.getpid()}_{secrets.token_hex(3)}"
    admin_engine = make_sync_engine(base)
    with admin_engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    # A throwaway operator token too: the real one (.run/secrets/api.token) never appears in
    # a test's command lines or reports.
    settings = dataclasses.replace(base, database_url=with_search_path(base.database_url, schema),
                                   recordings_dir=recordings_dir,
                                   api_token=secrets.token_hex(24))
    try:
        migrate.upgrade(settings)
        yield settings
    finally:
        with admin_engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin_engine.dispose()


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    return {**os.environ, "CALLGUARD_DATABASE_URL": settings.database_url,
            "CALLGUARD_RECORDINGS_DIR": str(settings.recordings_dir),
            "CALLGUARD_API_TOKEN": settings.api_token, **extra}


def cli(settings: Settings, *args: str, input_text: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "callguard"), *args], env=env_for(settings),
                          capture_output=True, text=True, timeout=60, input=input_text,
                          check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def api_server(settings: Settings, log_path: Path) -> Iterator[str]:
    """`callguard-api` on a free loopback port against `settings`' database; its base URL."""
    port = free_port()
    with log_path.open("w") as log:
        proc = subprocess.Popen([str(BIN / "callguard-api")],
                                env=env_for(settings, CALLGUARD_API_PORT=str(port),
                                        CALLGUARD_METRICS_API_PORT=str(free_port())),
                                stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{base}/openapi.json", timeout=1):  # noqa: S310
                    break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"callguard-api did not start: "
                                       f"{log_path.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield base
    finally:
        end(proc, grace_s=10)


def engine_for(settings: Settings) -> Engine:
    return make_sync_engine(settings)
