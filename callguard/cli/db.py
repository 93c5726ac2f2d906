"""`callguard db upgrade|downgrade`: the schema, only through Alembic (RUN-2)."""

from __future__ import annotations

import argparse
from typing import Any

from callguard.config import load_settings

# `callguard.db.migrate` (Alembic, Mako) is imported by these two commands only: every command
# builds the whole parser, and Alembic is ~50 ms of each start.


def _upgrade(args: argparse.Namespace) -> int:
    from callguard.db import migrate

    migrate.upgrade(load_settings(), args.revision)
    return 0


def _downgrade(args: argparse.Namespace) -> int:
    from callguard.db import migrate

    migrate.downgrade(load_settings(), args.revision)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("db", help="database schema (Alembic migrations)")
    dsub = p.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="apply migrations up to REVISION (default head)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(handler=_upgrade)
    down = dsub.add_parser("downgrade", help="revert migrations down to REVISION")
    down.add_argument("revision")
    down.set_defaults(handler=_downgrade)
