"""PERF-1: how the ARI app's writer splits a window of ops into statements
(callguard.db.batch.layers), pure: no database. The rows these statements give are checked
against the one-by-one writes on PostgreSQL in tests/e2e/test_batch_writer.py."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callguard.db import batch
from callguard.journal import Op

ROW_OPS = ("inbound_call_started", "inbound_call_ended", "recording_started",
           "recording_answered", "recording_ended", "recording_finished")
FREE_OPS = ("call_outcome", "count_rejection")


def _op(name: str, channel: str) -> Op:
    return Op(name, {"channel_id": channel} if name in ROW_OPS else {"n": channel})


ops_strategy = st.lists(
    st.builds(_op, st.sampled_from(ROW_OPS + FREE_OPS), st.sampled_from("abcd")), max_size=40)


def _row(op: Op) -> tuple[str, str] | None:
    table = "recordings" if op.name.startswith("recording") else "inbound_calls"
    return (table, op.args["channel_id"]) if op.name in ROW_OPS else None


@given(ops_strategy)
def test_every_op_once_and_each_rows_order_kept(ops: list[Op]) -> None:
    layers = batch.layers(ops)
    flat = [op for layer in layers for op in layer]
    assert sorted(map(id, flat)) == sorted(map(id, ops))
    # Statements run in layer order: a row's ops run in the order they were queued.
    rows = {_row(op) for op in ops} - {None}
    for row in rows:
        assert [op for op in flat if _row(op) == row] == [op for op in ops if _row(op) == row]
    assert all(layers)  # no empty statement


@given(ops_strategy)
def test_a_row_appears_once_per_statement_but_for_the_answer_riding_in_its_end(
        ops: list[Op]) -> None:
    for layer in batch.layers(ops):
        seen: dict[tuple[str, str], list[str]] = {}
        for op in layer:
            row = _row(op)
            if row is not None:
                seen.setdefault(row, []).append(op.name)
        for names in seen.values():
            assert names in (names[:1], ["recording_answered", "recording_ended"])


@given(ops_strategy)
def test_never_more_statements_than_segments(ops: list[Op]) -> None:
    assert len(batch.layers(ops)) <= len(batch.segments(ops))


def test_outcomes_and_counters_go_with_the_first_statement() -> None:
    ops = [_op("recording_started", "a"), _op("recording_answered", "a"),
           _op("call_outcome", "1"), _op("count_rejection", "2")]
    assert batch.layers(ops) == [[ops[0], ops[2], ops[3]], [ops[1]]]
