"""Run Alembic programmatically (the CLI's `db upgrade` / `db downgrade`)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from callguard.config import PROJECT_ROOT, Settings


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    # '%' must be escaped for configparser interpolation.
    cfg.set_main_option("sqlalchemy.url", settings.sync_database_url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)
