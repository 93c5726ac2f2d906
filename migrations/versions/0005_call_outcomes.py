"""call outcomes: one row per decided call, counted by the overview page (issue 18)

Revision ID: call_outcomes
Revises: billing_history
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "call_outcomes"
down_revision: str | None = "billing_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_outcomes",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=True),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("refuse_class", sa.String(length=32), nullable=False),
        sa.Column("via", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(["contract_id"], ["contracts.id"],
                                name=op.f("fk_call_outcomes_contract_id_contracts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_outcomes")),
    )
    op.create_index("ix_call_outcomes_at", "call_outcomes", ["at"])
    op.create_index("ix_call_outcomes_contract_at", "call_outcomes", ["contract_id", "at"])


def downgrade() -> None:
    op.drop_table("call_outcomes")
