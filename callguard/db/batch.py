"""The call path's writes as ONE statement per batch (PERF-1).

`callguard.db.queries.WRITES` defines each write once (the FastAGI fallback and journal replay
run them one by one). The ARI app's batching writer sends whatever ops are queued as a single
fixed statement: every write kind is a data-modifying CTE fed by arrays (`unnest`), so the
statement text never changes (prepared once per connection, no SQL compiled per call) and
one round trip carries any number of calls.

A statement sees one snapshot: two ops on the same row (an insert and a later update of it,
two updates) cannot share one. `segments` cuts the ops, in order, wherever that would happen;
usually a batch is one segment. Counter increments of one segment are summed per (list, month)
first (one row may be upserted only once per statement).

`synchronous_commit` is chosen per statement (set_config(..., true) lasts to the end of its
own transaction): `off` only when the statement holds nothing but call statistics
(call_outcomes, inbound_calls); a listed-caller counter or any recordings row commits
synchronously, so a PostgreSQL crash cannot lose it once the writer has seen the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from callguard.journal import Op

# Ops whose loss in a PostgreSQL crash is acceptable (statistics): async commit.
ASYNC_COMMIT_OK = frozenset({"call_outcome", "inbound_call_started", "inbound_call_ended"})
BATCHED = frozenset({
    "call_outcome", "count_rejection", "inbound_call_started", "inbound_call_ended",
    "recording_started", "recording_ended", "recording_answered", "recording_finished",
})

SQL = """
WITH
 o AS (INSERT INTO call_outcomes (at, contract_id, direction, outcome, refuse_class, via)
       SELECT * FROM unnest($2::timestamptz[], $3::int[], $4::text[], $5::text[], $6::text[],
                            $7::text[])),
 c AS (INSERT INTO nuisance_counters AS t (list_id, month, count)
       SELECT * FROM unnest($8::int[], $9::text[], $10::int[])
       ON CONFLICT (list_id, month) DO UPDATE SET count = t.count + EXCLUDED.count),
 i AS (INSERT INTO inbound_calls (channel_id, list_id, number_id, caller_key, rejected,
                                  started_at)
       SELECT * FROM unnest($11::text[], $12::int[], $13::int[], $14::text[], $15::bool[],
                            $16::timestamptz[])
       ON CONFLICT (channel_id) DO NOTHING),
 ie AS (UPDATE inbound_calls t SET ended_at = u.at
        FROM unnest($17::text[], $18::timestamptz[]) AS u(ch, at)
        WHERE t.channel_id = u.ch AND t.ended_at IS NULL),
 r AS (INSERT INTO recordings (contract_id, number, direction, remote, channel_id, path,
                               started_at, status)
       SELECT u.*, 'recording' FROM unnest($19::int[], $20::text[], $21::text[], $22::text[],
                                           $23::text[], $24::text[], $25::timestamptz[]) AS u
       ON CONFLICT (channel_id) DO NOTHING),
 ra AS (UPDATE recordings t SET answered_at = u.at
        FROM unnest($26::text[], $27::timestamptz[]) AS u(ch, at)
        WHERE t.channel_id = u.ch AND t.answered_at IS NULL),
 re AS (UPDATE recordings t SET ended_at = u.at
        FROM unnest($28::text[], $29::timestamptz[]) AS u(ch, at)
        WHERE t.channel_id = u.ch AND t.ended_at IS NULL),
 rf AS (UPDATE recordings t SET status = u.status, reason = u.reason, bytes = u.bytes,
                                sha256 = u.sha256, duration_s = u.duration_s
        FROM unnest($30::text[], $31::text[], $32::text[], $33::bigint[], $34::text[],
                    $35::float8[]) AS u(ch, status, reason, bytes, sha256, duration_s)
        WHERE t.channel_id = u.ch AND t.status = 'recording')
SELECT set_config('synchronous_commit', $1::text, true)
"""

_ROW_KEY = {  # the row an op touches: (table, channel id argument)
    "inbound_call_started": "inbound_calls", "inbound_call_ended": "inbound_calls",
    "recording_started": "recordings", "recording_ended": "recordings",
    "recording_answered": "recordings", "recording_finished": "recordings",
}


def segments(ops: Sequence[Op]) -> list[list[Op]]:
    """Cut `ops` (in order) so no segment touches one row twice (see the module doc)."""
    out: list[list[Op]] = []
    current: list[Op] = []
    touched: set[tuple[str, str]] = set()
    for op in ops:
        table = _ROW_KEY.get(op.name)
        key = (table, str(op.args["channel_id"])) if table else None
        if key is not None and key in touched:
            out.append(current)
            current, touched = [], set()
        current.append(op)
        if key is not None:
            touched.add(key)
    if current:
        out.append(current)
    return out


def params(ops: Sequence[Op]) -> list[Any]:
    """The statement's arguments for one segment ($1 … $35)."""
    cols: dict[str, list[list[Any]]] = {
        "call_outcome": [[] for _ in range(6)],
        "inbound_call_started": [[] for _ in range(6)],
        "inbound_call_ended": [[], []],
        "recording_started": [[] for _ in range(7)],
        "recording_answered": [[], []],
        "recording_ended": [[], []],
        "recording_finished": [[] for _ in range(6)],
    }
    counters: dict[tuple[int, str], int] = {}
    sync = False
    for op in ops:
        a = op.args
        if op.name not in ASYNC_COMMIT_OK:
            sync = True
        if op.name == "call_outcome":
            row = [a["at"], a["contract_id"], a["direction"], a["outcome"],
                   a["refuse_class"][:32], a["via"]]
        elif op.name == "count_rejection":
            k = (int(a["list_id"]), str(a["month"]))
            counters[k] = counters.get(k, 0) + 1
            continue
        elif op.name == "inbound_call_started":
            row = [a["channel_id"], a["list_id"], a["number_id"], a["caller_key"],
                   a["rejected"], a["started_at"]]
        elif op.name in ("inbound_call_ended", "recording_ended"):
            row = [a["channel_id"], a["ended_at"]]
        elif op.name == "recording_answered":
            row = [a["channel_id"], a["answered_at"]]
        elif op.name == "recording_started":
            row = [a["contract_id"], a["number"], a["direction"], a["remote"][:40],
                   a["channel_id"], a["path"], a["started_at"]]
        elif op.name == "recording_finished":
            v = a["values"]
            row = [a["channel_id"], v["status"], v.get("reason"), v.get("bytes"),
                   v.get("sha256"), v.get("duration_s")]
        else:
            raise ValueError(f"not a batched write: {op.name}")
        for column, value in zip(cols[op.name], row, strict=True):
            column.append(value)
    c = cols
    return [
        "on" if sync else "off",
        *c["call_outcome"],
        [k[0] for k in counters], [k[1] for k in counters], list(counters.values()),
        *c["inbound_call_started"], *c["inbound_call_ended"], *c["recording_started"],
        *c["recording_answered"], *c["recording_ended"], *c["recording_finished"],
    ]

