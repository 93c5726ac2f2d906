"""recordings keyset index: (started_at DESC, id DESC) for cursor paging (issue #15)

Revision ID: ops_keyset
Revises: recopts
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ops_keyset"
down_revision: str | None = "recopts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_recordings_started_id", "recordings",
                    [sa.literal_column("started_at DESC"), sa.literal_column("id DESC")],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_recordings_started_id", table_name="recordings")
