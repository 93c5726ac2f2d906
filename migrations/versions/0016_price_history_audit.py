"""price history audit: who changed a price, and when (BILL, ADM-1/2).

`price_history` (migration price_history) said which price is in force from which month, not
who set it nor when: an operator asking why a month's bill changed had no answer. Each row now
carries `changed_by` (the CLI's `cli:<OS user>`, the API's token identity, never its secret)
and `changed_at` (when the row was last written).

- Both nullable: rows written before this revision (carried over from the settings, or set
  by an older release) stay NULL, shown as unknown; nothing is guessed.
- A row either says both or neither (a check), so "when" is never known without "who".
- Downgrade drops the two columns (and the check): the prices stay as they are.

Revision ID: price_history_audit
Revises: price_history
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "price_history_audit"
down_revision: str | None = "price_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MAX_ACTOR = 200  # `domain.audit.MAX_ACTOR` at this revision (a migration never imports the app)


def upgrade() -> None:
    op.add_column("price_history", sa.Column("changed_by", sa.Text(), nullable=True))
    op.add_column("price_history",
                  sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        op.f("ck_price_history_changed"), "price_history",
        "(changed_by IS NULL) = (changed_at IS NULL)"
        f" AND (changed_by IS NULL OR length(changed_by) BETWEEN 1 AND {MAX_ACTOR})")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_price_history_changed"), "price_history", type_="check")
    op.drop_column("price_history", "changed_at")
    op.drop_column("price_history", "changed_by")
