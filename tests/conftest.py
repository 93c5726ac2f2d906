"""Fixtures shared by the operator-tool tests (tests/api, tests/cli): a private schema per test
module (tests/isolated_db.py), reached by `callguard` subprocesses and `callguard-api` through
the database URL. Each module holds the e2e lock while it runs (module scope: released before
tests/e2e takes it for its session). Unused by the tests that do not ask for them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from callguard.config import Settings
from tests.isolated_db import e2e_lock, engine_for, private_schema


@pytest.fixture(scope="module")
def stack_lock() -> Iterator[None]:
    with e2e_lock():
        yield


@pytest.fixture(scope="module")
def iso(stack_lock: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with private_schema(tmp_path_factory.mktemp("recordings")) as settings:
        yield settings


@pytest.fixture(scope="module")
def iso_engine(iso: Settings) -> Iterator[Engine]:
    eng = engine_for(iso)
    yield eng
    eng.dispose()
