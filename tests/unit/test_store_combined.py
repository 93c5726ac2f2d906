"""PERF-1/REL-2: writes to distinct tables go as one statement of data-modifying CTEs. Inside a
CTE the columns' Python-side defaults are sent as NULL, so every call-path insert must name
its NOT NULL columns itself (a recording row once failed this way behind every call's
call_outcomes row, and every write fell into the journal)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.dialects import postgresql

from ari_app.store import combined
from callguard.db.queries import write_statement

NOW = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)


def test_recording_row_in_a_cte_sends_no_null() -> None:
    stmt = combined([
        write_statement("recording_started", {
            "contract_id": 1, "number": "0312345678", "direction": "in", "remote": "anonymous",
            "channel_id": "1.1", "path": "2026/12/02/F1/x.wav", "started_at": NOW}),
        write_statement("call_outcome", {
            "at": NOW, "contract_id": 1, "direction": "in", "outcome": "recorded",
            "refuse_class": "", "via": "ari"}),
    ])
    assert stmt is not None
    params = stmt.compile(dialect=postgresql.asyncpg.dialect()).params  # type: ignore[no-untyped-call]
    assert None not in params.values()
    assert False in params.values() and [] in params.values()  # encrypted, muted
