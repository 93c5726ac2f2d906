"""site notify settings: the site-wide tables (`priority_lines`, `site_settings`) send
`settings`, and each call-deciding process reloads those two tables alone (REL-5, PERF-3).

They sent `site`, a whole load of the site snapshot: 3.4-3.8 s of CPU per process at 10^5
contracts and 47 s at 10^6, on the core Asterisk uses, for one priority line or one capacity
limit changed. TRUNCATE sends `settings` too: those tables hold nothing else.

Revision ID: site_notify_settings
Revises: site_notify_per_contract
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "site_notify_settings"
down_revision: str | None = "site_notify_per_contract"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("priority_lines", "site_settings")


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION callguard_notify_settings() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('callguard_state', 'settings');
            RETURN NULL;
        END $$;
    """)
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS callguard_notify_site ON {table}")
        op.execute(f"""
            CREATE TRIGGER callguard_notify_settings AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
            ON {table} FOR EACH STATEMENT EXECUTE FUNCTION callguard_notify_settings()
        """)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS callguard_notify_settings ON {table}")
        op.execute(f"""
            CREATE TRIGGER callguard_notify_site AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
            ON {table} FOR EACH STATEMENT EXECUTE FUNCTION callguard_notify_site()
        """)
    op.execute("DROP FUNCTION IF EXISTS callguard_notify_settings()")
