"""recording options per contract: stereo, announcement per direction, age public key;
recordings.encrypted and .muted (issue #14)

Revision ID: recopts
Revises: call_outcomes
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "recopts"
down_revision: str | None = "call_outcomes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recording_options",
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("stereo", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("announce_in", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("announce_out", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("public_key", sa.Text(), nullable=True),
        # DTMF codes from the customer's side that pause / resume the recording (NULL: off).
        sa.Column("pause_code", sa.String(length=4), nullable=True),
        sa.Column("resume_code", sa.String(length=4), nullable=True),
        sa.ForeignKeyConstraint(["contract_id"], ["contracts.id"], ondelete="CASCADE",
                                name=op.f("fk_recording_options_contract_id_contracts")),
        sa.PrimaryKeyConstraint("contract_id", name=op.f("pk_recording_options")),
    )
    op.add_column("recordings", sa.Column("encrypted", sa.Boolean(), nullable=False,
                                          server_default=sa.false()))
    # Paused (muted) intervals of the recording: [{"from": iso, "until": iso | null}].
    op.add_column("recordings", sa.Column("muted", postgresql.JSONB(), nullable=False,
                                          server_default=sa.text("'[]'::jsonb")))


def downgrade() -> None:
    op.drop_column("recordings", "muted")
    op.drop_column("recordings", "encrypted")
    op.drop_table("recording_options")
