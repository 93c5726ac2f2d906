"""The concurrent-recording maximum and what ordinary calls get at it (REC-CAP-1), stored as
site_settings rows: both shells pick them up within a second or so of the commit (a
`settings` notice reloads them, REL-5); without a row, the process defaults
(`Settings.max_recordings`, `.at_capacity_policy`) apply."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from callguard.db import queries
from callguard.db.models import SiteSetting
from callguard.services import base as b

KEYS = ("max_recordings", "at_capacity_policy")
POLICIES = ("congestion", "unrecorded")
MAX_RECORDINGS = 100_000


def get_capacity(session: Session, default_max: int, default_policy: str) -> dict[str, Any]:
    current = {s.key: s.value for s in session.scalars(
        select(SiteSetting).where(SiteSetting.key.in_(KEYS)))}
    return {
        "max_recordings": int(current.get("max_recordings", default_max)),
        "at_capacity_policy": current.get("at_capacity_policy", default_policy),
        "source": {k: "site_settings" if k in current else "default" for k in KEYS},
        "active_recordings": session.scalar(queries.active_recordings()) or 0,
    }


def set_capacity(session: Session, default_max: int, default_policy: str,
                 max_recordings: int | None = None, policy: str | None = None,
                 reset: bool = False) -> dict[str, Any]:
    """Change the maximum and/or the policy, or `reset` both to the process defaults."""
    values: dict[str, str] = {}
    if max_recordings is not None:
        if type(max_recordings) is not int or max_recordings < 0:
            raise b.Invalid("max_recordings must be 0 or more")
        b.int_range(max_recordings, 0, MAX_RECORDINGS, "max_recordings")
        values["max_recordings"] = str(max_recordings)
    if policy is not None:
        if policy not in POLICIES:
            raise b.Invalid(f"at_capacity_policy must be one of {', '.join(POLICIES)}")
        values["at_capacity_policy"] = policy
    if reset and values:
        raise b.Invalid("reset cannot be combined with a maximum or a policy")
    if reset:
        session.execute(delete(SiteSetting).where(SiteSetting.key.in_(KEYS)))
    for key, value in values.items():
        session.execute(pg_insert(SiteSetting).values(key=key, value=value)
                        .on_conflict_do_update(index_elements=[SiteSetting.key],
                                               set_={"value": value}))
    session.flush()
    return get_capacity(session, default_max, default_policy)
