"""voided subscription periods: the audit of periods voided as entered by mistake (BILL).

`subscriptions void` removes a period that should never have existed from
`subscription_periods` (so it is not billed) and puts the subscription back as it was before
it. The period's row is gone; this table keeps what it was, who voided it, when and why, so a
bill that changed can be explained. Contract by code, no foreign key: the audit outlives the
contract (a contract whose only period was voided may then be deleted).

Revision ID: voided_periods
Revises: price_history_audit
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "voided_periods"
down_revision: str | None = "price_history_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "voided_subscription_periods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract", sa.String(length=32), nullable=False),
        sa.Column("service", sa.String(length=16), nullable=False),
        sa.Column("activated_on", sa.Date(), nullable=False),
        sa.Column("cancelled_on", sa.Date(), nullable=True),
        sa.Column("unit", sa.String(length=16), nullable=True),
        sa.Column("unit_changes", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("voided_by", sa.Text(), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.CheckConstraint("service IN ('recording','nuisance')",
                           name=op.f("ck_voided_subscription_periods_service")),
        sa.CheckConstraint("length(voided_by) BETWEEN 1 AND 200",
                           name=op.f("ck_voided_subscription_periods_voided_by")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voided_subscription_periods")),
    )


def downgrade() -> None:
    # The voided periods stay voided; only their audit goes.
    op.drop_table("voided_subscription_periods")
