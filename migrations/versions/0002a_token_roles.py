"""api_tokens.role: operator vs contract stated, not inferred from a NULL contract (SEC-4)

Revision ID: token_roles
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "token_roles"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("role", sa.String(length=16), nullable=True))
    op.execute("UPDATE api_tokens SET role = CASE WHEN contract_id IS NULL THEN 'operator'"
               " ELSE 'contract' END")
    op.alter_column("api_tokens", "role", nullable=False)
    op.create_check_constraint(
        op.f("ck_api_tokens_role_matches_contract"), "api_tokens",
        "(role = 'operator' AND contract_id IS NULL)"
        " OR (role = 'contract' AND contract_id IS NOT NULL)")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_api_tokens_role_matches_contract"), "api_tokens", type_="check")
    op.drop_column("api_tokens", "role")
