"""Helpers shared by the CLI command modules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from callguard.cli import CliError
from callguard.config import Settings, load_settings
from callguard.db.session import make_sync_engine, sync_sessions


def database_unavailable(exc: OperationalError) -> CliError:
    """The one line (CliError) for a database that cannot be reached: libpq's messages span
    lines ("…failed\n\tIs the server running…"), the first says what happened."""
    lines = str(exc.orig).strip().splitlines()
    return CliError(f"database unavailable: {lines[0] if lines else 'failed'}")


@contextmanager
def db_session(settings: Settings | None = None) -> Iterator[Session]:
    """One transaction: committed on success, rolled back on any error (nothing half-written)."""
    engine = make_sync_engine(settings or load_settings())
    try:
        with sync_sessions(engine).begin() as session:
            yield session
    except OperationalError as exc:
        raise database_unavailable(exc) from exc
    finally:
        engine.dispose()


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
