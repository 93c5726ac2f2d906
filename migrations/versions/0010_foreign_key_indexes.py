"""foreign key indexes: every foreign key column has an index, so provisioning, deleting and
purging cost the same at 10^6 contracts as at 10 (PERF-3's scale, BILL, SEC-3).

PostgreSQL indexes a referenced key, never the referencing column. Seven were unindexed, and
each lookup by them read its whole table:

- `numbers.contract_id`: the billing-count trigger (`billing_history`) counts a contract's
  numbers on every insert, update and delete of a number, so provisioning N numbers read N^2
  rows (measured: 10^4 contracts with a number each took 9.9 s to insert, 10^5 did not finish
  in 10 minutes); deleting a contract searched `numbers` for its cascade.
- `numbers.endpoint_id`, `nuisance_lists.contract_id` (its unique index covers active lists
  only), `nuisance_lists.number_id`, `api_tokens.contract_id`, `nuisance_unit_changes
  .contract_id`: each deletion of the row they reference searched them for the cascade.
- `inbound_calls.number_id`: a number deleted searched the call log (one row per screened
  call, kept for the retention period), and the retention purge (SEC-3) picks a contract's old
  call-log rows by number and start time: hence (number_id, started_at).

Plain CREATE INDEX (takes a write lock for the build): on a large live site an operator may
create them CONCURRENTLY first, under the same names, and this migration then skips them.

Revision ID: foreign_key_indexes
Revises: list_notify_per_statement
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "foreign_key_indexes"
down_revision: str | None = "list_notify_per_statement"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (index, table, columns): the same names as the Index declarations in callguard.db.models.
INDEXES = (
    ("ix_numbers_contract", "numbers", "contract_id"),
    ("ix_numbers_endpoint", "numbers", "endpoint_id"),
    ("ix_nuisance_lists_contract", "nuisance_lists", "contract_id"),
    ("ix_nuisance_lists_number", "nuisance_lists", "number_id"),
    ("ix_inbound_calls_number_started", "inbound_calls", "number_id, started_at"),
    ("ix_api_tokens_contract", "api_tokens", "contract_id"),
    ("ix_nuisance_unit_changes_contract", "nuisance_unit_changes", "contract_id"),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})")


def downgrade() -> None:
    for name, _, _ in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
