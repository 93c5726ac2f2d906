"""`callguard db upgrade|downgrade`: the schema, only through Alembic (RUN-2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import OperationalError

from callguard.cli._common import database_unavailable
from callguard.config import Settings, load_settings

# `callguard.db.migrate` (Alembic, Mako) is imported by these two commands only: every command
# builds the whole parser, and Alembic is ~50 ms of each start.


def _migrating(work: Callable[[Settings], None]) -> int:
    """A database that cannot be reached is one line and exit 1, as for every other command
    (`_common.db_session`), not a traceback."""
    try:
        work(load_settings())
    except OperationalError as exc:
        raise database_unavailable(exc) from exc
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    from callguard.db import migrate

    return _migrating(lambda settings: migrate.upgrade(settings, args.revision))


def _downgrade(args: argparse.Namespace) -> int:
    from callguard.db import migrate

    return _migrating(lambda settings: migrate.downgrade(settings, args.revision))


def register(sub: Any) -> None:
    p = sub.add_parser("db", help="database schema (Alembic migrations)")
    dsub = p.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="apply migrations up to REVISION (default head)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(handler=_upgrade)
    down = dsub.add_parser("downgrade", help="revert migrations down to REVISION")
    down.add_argument("revision")
    down.set_defaults(handler=_downgrade)
