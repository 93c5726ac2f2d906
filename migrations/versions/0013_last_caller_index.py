"""last caller by end time: `inbound_calls` gets an index on (list_id, rejected, ended_at DESC)
in place of (list_id, started_at DESC).

144 → 2 registers the caller that disconnected last (NCR-REG-2/3, source 004:
「最後に切断した相手先の電話番号となります」). It read the list's 50 newest calls by start time,
rejected ones included, so a long call that ended last, or the real caller behind 50
rejections of an auto-dialler, could fall out of the window. It now reads the calls still in
progress and those that ended last; both come from this index (`NOT rejected` matches its
second column; NULLs, the calls in progress, sort first in a DESC index). Not a partial
index: it also serves the list_id foreign key (a list deleted removes its calls), as the one
it replaces did (migration foreign_key_indexes' rule: every foreign key is indexed).

Revision ID: last_caller_index
Revises: site_notify_settings
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "last_caller_index"
down_revision: str | None = "site_notify_settings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_inbound_calls_list_rejected_end ON inbound_calls "
               "(list_id, rejected, ended_at DESC)")
    op.execute("DROP INDEX IF EXISTS ix_inbound_calls_list_recent")


def downgrade() -> None:
    op.execute("CREATE INDEX ix_inbound_calls_list_recent ON inbound_calls "
               "(list_id, started_at DESC)")
    op.execute("DROP INDEX IF EXISTS ix_inbound_calls_list_rejected_end")
