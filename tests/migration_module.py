"""A migration file loaded as a module, for tests of its own constants and functions
(migrations/versions/ is not a package: alembic reads the files by path)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from callguard.config import PROJECT_ROOT

VERSIONS = PROJECT_ROOT / "migrations" / "versions"


def load_migration(filename: str) -> ModuleType:
    """`filename` in migrations/versions/ (e.g. "0015_price_history.py"), executed anew."""
    path = VERSIONS / filename
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
