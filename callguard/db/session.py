"""Engines and sessions, created by the caller (never at import time)."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

from callguard.config import Settings


def make_async_engine(settings: Settings, *, pool_size: int = 10) -> AsyncEngine:
    # A short connect/command timeout keeps a call from waiting on a dead database (REL-2).
    return create_async_engine(
        settings.async_database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        pool_timeout=2,
        connect_args={"timeout": 2, "command_timeout": 2},
    )


def make_sync_engine(settings: Settings, *, pool_size: int = 5, max_overflow: int = 10,
                     pool_timeout: float = 30) -> Engine:
    return create_engine(
        settings.sync_database_url, pool_size=pool_size, max_overflow=max_overflow,
        pool_timeout=pool_timeout, pool_pre_ping=True, connect_args={"connect_timeout": 3},
    )


def async_sessions(engine: AsyncEngine) -> async_sessionmaker:  # type: ignore[type-arg]
    return async_sessionmaker(engine, expire_on_commit=False)


def sync_sessions(engine: Engine) -> sessionmaker:  # type: ignore[type-arg]
    return sessionmaker(engine, expire_on_commit=False)
