"""Fixtures for the HTTP API tests: `callguard-api` running as its own process on the test
module's private schema (`iso`, tests/conftest.py), and a small HTTP client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from callguard import localstate
from callguard.config import Settings
from callguard.db.provision import provision_reference_site
from tests.isolated_db import api_server

PROVISIONED = date(2026, 4, 15)  # mid-month: the reference site's provisioning month


@pytest.fixture(scope="module")
def site(iso_engine: Engine) -> Engine:
    """The reference site (SPEC §8) in the module's private schema, provisioned on
    PROVISIONED with every service active from that day."""
    with Session(iso_engine) as s, s.begin():
        provision_reference_site(s, PROVISIONED)
    return iso_engine


@pytest.fixture
def s(site: Engine) -> Iterator[Session]:
    """A transaction on `site` rolled back after the test: the site stays as provisioned."""
    with Session(site) as session:
        session.begin()
        yield session
        session.rollback()


@pytest.fixture
def session(iso_engine: Engine) -> Iterator[Session]:
    """One transaction, committed at the end of the test's setup code that uses it."""
    with Session(iso_engine, expire_on_commit=False) as s, s.begin():
        yield s


@pytest.fixture
def notices(iso: Settings) -> Iterator[Callable[[], list[str]]]:
    """LISTEN on the local state's channel (REL-5); the returned function collects the payloads
    that arrived since the last call, sorted (the channel is database-wide: other schemas'
    payloads arrive too; PostgreSQL folds equal ones within a transaction)."""
    with psycopg.connect(iso.database_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {localstate.CHANNEL}")

        def collect() -> list[str]:
            return sorted(n.payload for n in conn.notifies(timeout=0.5))

        yield collect


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def message(self) -> str:
        """The `detail` of an RFC 9457 problem (issue #15), checked to be one."""
        assert self.headers.get("Content-Type", "").startswith("application/problem+json"), \
            self.headers
        data = self.json()
        assert {"type", "title", "status", "detail"} <= set(data), data
        assert data["status"] == self.status, data
        assert isinstance(data["detail"], str) and data["detail"]
        return str(data["detail"])


class Client:
    def __init__(self, base: str, token: str | None) -> None:
        self.base, self.token = base, token

    def as_(self, token: str | None) -> Client:
        return Client(self.base, token)

    def request(self, method: str, path: str, body: Any = None, *,
                raw: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
        hdrs = dict(headers or {})
        if self.token is not None:
            hdrs.setdefault("Authorization", f"Bearer {self.token}")
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base + path, data=data, method=method,  # noqa: S310
                                     headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
                return Reply(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as exc:
            with exc:  # closes its socket (an unclosed one is a ResourceWarning later)
                return Reply(exc.code, dict(exc.headers), exc.read())

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("PATCH", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)


@pytest.fixture(scope="module")
def api_base(iso: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = Path(tmp_path_factory.mktemp("api")) / "api.log"
    with api_server(iso, log) as base:
        yield base


@pytest.fixture(scope="module")
def op(api_base: str, iso: Settings) -> Client:
    """The operator, with the private schema's throwaway operator token."""
    return Client(api_base, iso.api_token)
