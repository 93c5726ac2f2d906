"""recording_options notify: the per-contract recording options are part of the site every
call-deciding process holds in memory (REL-5), so a change must reach them like any other
provisioning change (the table came after local_state's triggers).

Revision ID: recording_options_notify
Revises: ops_keyset
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "recording_options_notify"
down_revision: str | None = "ops_keyset"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TRIGGER callguard_notify_site AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
        ON recording_options FOR EACH STATEMENT EXECUTE FUNCTION callguard_notify_site()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS callguard_notify_site ON recording_options")
