"""The call path's writes as ONE statement per batch (PERF-1).

`callguard.db.queries.WRITES` defines each write once (run one by one where a batch was
refused). Both call-path writers, the ARI app's and the FastAGI fallback's, send whatever ops
are queued as a single statement: every write kind is a data-modifying CTE fed by arrays
(`unnest`), and a statement holds the CTEs of the kinds in its batch only. Its text depends
only on which kinds are present, so the few texts there are get prepared once per connection
(no SQL compiled per call), and one round trip carries any number of calls.

A statement sees one snapshot: two ops on the same row (an insert and a later update of it,
two updates) cannot share one. The writer's batches go by `layers` (a row's n-th op in the
n-th statement, usually one or two); the journal's replay by `segments`, which cuts the ops
in order wherever a row repeats (so what was applied is always a prefix of the journal).
Counter increments of one statement are summed per (list, month) first (one row may be
upserted only once per statement).

`synchronous_commit` is chosen per statement (set_config(..., true) lasts to the end of its
own transaction): `off` only when the statement holds nothing but call statistics
(call_outcomes, inbound_calls); a listed-caller counter or any recordings row commits
synchronously, so a PostgreSQL crash cannot lose it once the writer has seen the commit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from callguard.journal import Op

# Both writers (the ARI app's and the FastAGI fallback's) gather for this long after the
# first op of a batch (PERF-1): one or two statements (`layers`) and one commit then carry the
# ops of every call in the window instead of one statement per event. Each statement costs
# PostgreSQL ~0.3 ms on the stack's core whatever it holds, and a synchronous commit ~1 ms
# (before the window: at 50 calls/s 2-3 statements per call, ~1.2 ms per call in the ARI app;
# the fallback, one commit per call, 1.0 ms per call at 75 calls/s). The window is what a
# crash of either process can lose more.
COALESCE_S = 0.1
# Ops whose loss in a PostgreSQL crash is acceptable (statistics): async commit.
ASYNC_COMMIT_OK = frozenset({"call_outcome", "inbound_call_started", "inbound_call_ended"})
BATCHED = frozenset({
    "call_outcome", "count_rejection", "inbound_call_started", "inbound_call_ended",
    "recording_started", "recording_ended", "recording_answered", "recording_finished",
})

# One data-modifying CTE per write kind, fed by arrays; {0}, {1}, … are its own arguments.
# A statement carries only the CTEs of the kinds in its batch (a call's end is one small
# UPDATE, not eight CTEs over empty arrays): fewer arguments to encode, less for PostgreSQL
# to plan and run. The few texts that occur are each prepared once per connection.
_CTES: tuple[tuple[str, str], ...] = (
    ("call_outcome", """o AS (INSERT INTO call_outcomes (at, contract_id, direction, outcome,
                                        refuse_class, via)
       SELECT * FROM unnest({0}::timestamptz[], {1}::int[], {2}::text[], {3}::text[],
                            {4}::text[], {5}::text[]))"""),
    ("count_rejection", """c AS (INSERT INTO nuisance_counters AS t (list_id, month, count)
       SELECT * FROM unnest({0}::int[], {1}::text[], {2}::int[])
       ON CONFLICT (list_id, month) DO UPDATE SET count = t.count + EXCLUDED.count)"""),
    ("inbound_call_started", """i AS (INSERT INTO inbound_calls (channel_id, list_id, number_id,
                                  caller_key, rejected, started_at)
       SELECT * FROM unnest({0}::text[], {1}::int[], {2}::int[], {3}::text[], {4}::bool[],
                            {5}::timestamptz[])
       ON CONFLICT (channel_id) DO NOTHING)"""),
    ("inbound_call_ended", """ie AS (UPDATE inbound_calls t SET ended_at = u.at
        FROM unnest({0}::text[], {1}::timestamptz[]) AS u(ch, at)
        WHERE t.channel_id = u.ch AND t.ended_at IS NULL)"""),
    ("recording_started", """r AS (INSERT INTO recordings (contract_id, number, direction, remote,
                               channel_id, path, started_at, status)
       SELECT u.*, 'recording' FROM unnest({0}::int[], {1}::text[], {2}::text[], {3}::text[],
                                           {4}::text[], {5}::text[], {6}::timestamptz[]) AS u
       ON CONFLICT (channel_id) DO NOTHING)"""),
    ("recording_answered", """ra AS (UPDATE recordings t SET answered_at = u.at
        FROM unnest({0}::text[], {1}::timestamptz[]) AS u(ch, at)
        WHERE t.channel_id = u.ch AND t.answered_at IS NULL)"""),
    # A call's end may carry its answer time (Dial's ANSWEREDTIME_MS): both in one UPDATE,
    # each column set only where still empty, as the two writes one by one would.
    ("recording_ended", """re AS (UPDATE recordings t
        SET ended_at = COALESCE(t.ended_at, u.at),
            answered_at = COALESCE(t.answered_at, u.answered)
        FROM unnest({0}::text[], {1}::timestamptz[], {2}::timestamptz[]) AS u(ch, at, answered)
        WHERE t.channel_id = u.ch
          AND (t.ended_at IS NULL OR (t.answered_at IS NULL AND u.answered IS NOT NULL)))"""),
    ("recording_finished", """rf AS (UPDATE recordings t SET status = u.status, reason = u.reason,
                                bytes = u.bytes, sha256 = u.sha256, duration_s = u.duration_s
        FROM unnest({0}::text[], {1}::text[], {2}::text[], {3}::bigint[], {4}::text[],
                    {5}::float8[]) AS u(ch, status, reason, bytes, sha256, duration_s)
        WHERE t.channel_id = u.ch AND t.status = 'recording')"""),
)
_FINAL = "SELECT set_config('synchronous_commit', $1::text, true)"
_PLACEHOLDER = re.compile(r"\$(\d+)")


@cache
def _sql(kinds: tuple[str, ...]) -> str:
    """The statement for the write kinds present (in _CTES order); $1 is the commit mode."""
    parts: list[str] = []
    n = 2
    for kind, cte in _CTES:
        if kind in kinds:
            count = cte.count("::")
            parts.append(cte.format(*(f"${n + i}" for i in range(count))))
            n += count
    return "WITH\n " + ",\n ".join(parts) + "\n" + _FINAL if parts else _FINAL


_ROW_KEY = {  # the row an op touches: (table, channel id argument)
    "inbound_call_started": "inbound_calls", "inbound_call_ended": "inbound_calls",
    "recording_started": "recordings", "recording_ended": "recordings",
    "recording_answered": "recordings", "recording_finished": "recordings",
}


def segments(ops: Sequence[Op]) -> list[list[Op]]:
    """Cut `ops` (in order) so no segment touches one row twice (see the module doc). The
    one exception: a recording's answer followed by its end, which `statement` folds into
    one UPDATE (a recorded call's end is one statement, not two)."""
    out: list[list[Op]] = []
    current: list[Op] = []
    touched: dict[tuple[str, str], str] = {}  # row → the op that touched it
    for op in ops:
        table = _ROW_KEY.get(op.name)
        key = (table, str(op.args["channel_id"])) if table else None
        if key is not None and key in touched and not (
                op.name == "recording_ended" and touched[key] == "recording_answered"):
            out.append(current)
            current, touched = [], {}
        current.append(op)
        if key is not None:
            touched[key] = op.name
    if current:
        out.append(current)
    return out


def layers(ops: Sequence[Op]) -> list[list[Op]]:
    """Like `segments`, for the writer's live batches: ops on different rows commute (and the
    counters and outcomes touch no row of another op), so only each row's own ops keep their
    order: a row's n-th op goes to the n-th statement. A window in which several recorded calls
    start and are answered is then 2 statements (every start, then every answer), not one per
    answered call (a recorded call's start and answer usually fall in one window: at 100
    calls/s `segments` cut it ~5 times). Not for the journal: its replay counts applied ops as
    a prefix."""
    out: list[list[Op]] = []
    depth: dict[tuple[str, str], int] = {}  # row → the layer after its last op
    last: dict[tuple[str, str], str] = {}
    for op in ops:
        table = _ROW_KEY.get(op.name)
        layer = 0
        if table:
            key = (table, str(op.args["channel_id"]))
            layer = depth.get(key, 0)
            if layer and op.name == "recording_ended" and last[key] == "recording_answered":
                layer -= 1  # folded into one UPDATE with its answer (see `statement`)
            depth[key], last[key] = layer + 1, op.name
        while len(out) <= layer:
            out.append([])
        out[layer].append(op)
    return out


def needs_sync_commit(ops: Sequence[Op]) -> bool:
    """A listed-caller counter or a recordings row among `ops` (see the module doc)."""
    return any(op.name not in ASYNC_COMMIT_OK for op in ops)


def statement(ops: Sequence[Op]) -> tuple[str, list[Any]]:
    """The statement for one segment and its arguments (only the kinds it holds)."""
    cols: dict[str, list[list[Any]]] = {
        "call_outcome": [[] for _ in range(6)],
        "inbound_call_started": [[] for _ in range(6)],
        "inbound_call_ended": [[], []],
        "recording_started": [[] for _ in range(7)],
        "recording_answered": [[], []],
        "recording_ended": [[], [], []],
        "recording_finished": [[] for _ in range(6)],
    }
    counters: dict[tuple[int, str], int] = {}
    # A recording answered and ended in this segment: the answer rides in the end's UPDATE.
    # Both set a column only where it is still empty, so their order does not matter.
    ending = {str(op.args["channel_id"]) for op in ops if op.name == "recording_ended"}
    answered: dict[str, Any] = {}
    for op in ops:
        if op.name == "recording_answered" and str(op.args["channel_id"]) in ending:
            answered.setdefault(str(op.args["channel_id"]), op.args["answered_at"])
    for op in ops:
        a = op.args
        if op.name == "recording_answered" and str(a["channel_id"]) in answered:
            continue
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
        elif op.name == "inbound_call_ended":
            row = [a["channel_id"], a["ended_at"]]
        elif op.name == "recording_ended":
            row = [a["channel_id"], a["ended_at"], answered.get(str(a["channel_id"]))]
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
    cols["count_rejection"] = [[k[0] for k in counters], [k[1] for k in counters],
                               list(counters.values())]
    kinds = tuple(kind for kind, _ in _CTES if cols[kind][0])
    args: list[Any] = ["on" if needs_sync_commit(ops) else "off"]
    for kind in kinds:
        args.extend(cols[kind])
    return _sql(kinds), args


def transaction_statements(ops: Sequence[Op], sync: bool = False
                           ) -> list[tuple[str, dict[str, Any]]]:
    """`ops` as statements of ONE transaction for a psycopg connection (the FastAGI
    fallback's writer; `%(pN)s` for asyncpg's `$N`): one per layer, and every statement
    asks for the commit mode the whole transaction needs (set_config(..., true) lasts to
    the transaction's end, so the last statement's would decide: a counter or a recordings
    row anywhere in it, or `sync` for the transaction's other statements, makes the commit
    synchronous)."""
    mode = "on" if sync or needs_sync_commit(ops) else "off"
    out: list[tuple[str, dict[str, Any]]] = []
    for part in layers(ops):
        sql, args = statement(part)
        out.append((_pyformat(sql),
                    {f"p{n}": value for n, value in enumerate([mode, *args[1:]], start=1)}))
    return out


@cache
def _pyformat(sql: str) -> str:
    """A statement text with psycopg's `%(pN)s` for `$N` (once per text, as `_sql`)."""
    return _PLACEHOLDER.sub(r"%(p\1)s", sql)
