"""Recordings for operators and contracts (REC-FILE-2/3/4): search with keyset paging (a
cursor, stable on a growing table), one row within the principal's scope, purge and
reconcile with progress."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard import recordings
from callguard.config import Settings
from callguard.db.models import Contract, Recording
from callguard.services import base as b

Render = Callable[[Recording, str], dict[str, Any]]


def encode_cursor(row: Recording) -> str:
    """Opaque to clients: where the next page starts in newest-first order."""
    raw = f"{row.started_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, rec_id = raw.rsplit("|", 1)
        when = datetime.fromisoformat(stamp)
        if when.tzinfo is None:
            raise ValueError("naive")
        return when, int(rec_id)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise b.Invalid(f"invalid cursor: {cursor!r}") from exc


def search(session: Session, q: recordings.Search, render: Render,
           cursor: str | None = None) -> b.Page:
    """One page newest first. With `cursor` (from the previous page's `next_cursor`) the page
    starts after that row and `offset` must be 0; `next_cursor` is set while more remain."""
    if cursor is not None and q.offset:
        raise b.Invalid("use either a cursor or an offset, not both")
    if q.contract is not None:
        b.get_contract(session, q.contract)
    before = decode_cursor(cursor) if cursor is not None else None
    rows = recordings.search(session, replace(q, limit=q.limit + 1, before=before))
    more = len(rows) > q.limit
    shown = rows[:q.limit]
    return b.Page([render(r, c) for r, c in shown], q.limit, q.offset,
                  q.offset + len(shown) if more and cursor is None else None,
                  encode_cursor(shown[-1][0]) if more and shown else None)


def get_row(session: Session, rec_id: int, contract_id: int | None) -> tuple[Recording, str]:
    """The row, if this principal may see it (a contract: only its own, REC-FILE-4)."""
    found = session.execute(
        select(Recording, Contract.code).join(Contract, Contract.id == Recording.contract_id)
        .where(Recording.id == rec_id)).first()
    if found is None or (contract_id is not None and found[0].contract_id != contract_id):
        raise b.NotFound(f"no recording {rec_id}")
    return found[0], found[1]


def purge(session: Session, settings: Settings, now: datetime, dry_run: bool = False,
          progress: Callable[[int, int], None] | None = None) -> recordings.PurgeReport:
    return recordings.purge(session, settings, dry_run, progress=progress, now=now)


def reconcile(session: Session, settings: Settings, adopt: bool = True,
              progress: Callable[[int, int], None] | None = None,
              nodes: list[Settings] | None = None) -> recordings.ReconcileReport:
    """`nodes`: a cluster's nodes (CLU-3): a call is live if any of them has its channel."""
    channels = recordings.AnyNodeProbe([recordings.ChannelProbe(n) for n in nodes]) \
        if nodes else None
    return recordings.reconcile(session, settings, adopt, progress=progress, channels=channels)
