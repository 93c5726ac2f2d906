"""local state: NOTIFY callguard_state on every change the call path decides from (REL-5)

Every process that decides calls keeps the site, the nuisance lists' caller keys and the
number of recordings in progress in memory, and LISTENs on `callguard_state` to stay current
(no polling). Payloads: `site` (any provisioning table, statement-level), `list:<id>` (a
list's entries changed), `recordings` (a recording started or finished).

Revision ID: local_state
Revises: token_roles
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "local_state"
down_revision: str | None = "token_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SITE_TABLES = ("contracts", "endpoints", "numbers", "recording_subscriptions",
               "nuisance_subscriptions", "nuisance_lists", "forwardings", "priority_lines",
               "site_settings")


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION callguard_notify_site() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('callguard_state', 'site');
            RETURN NULL;
        END $$;
    """)
    op.execute("""
        CREATE FUNCTION callguard_notify_list() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                PERFORM pg_notify('callguard_state', 'list:' || OLD.list_id);
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                PERFORM pg_notify('callguard_state', 'list:' || NEW.list_id);
            END IF;
            RETURN NULL;
        END $$;
    """)
    op.execute("""
        CREATE FUNCTION callguard_notify_recordings() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('callguard_state', 'recordings');
            RETURN NULL;
        END $$;
    """)
    for table in SITE_TABLES:
        op.execute(f"""
            CREATE TRIGGER callguard_notify_site AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
            ON {table} FOR EACH STATEMENT EXECUTE FUNCTION callguard_notify_site()
        """)
    op.execute("""
        CREATE TRIGGER callguard_notify_list AFTER INSERT OR UPDATE OR DELETE
        ON nuisance_entries FOR EACH ROW EXECUTE FUNCTION callguard_notify_list()
    """)
    op.execute("""
        CREATE TRIGGER callguard_notify_list_truncate AFTER TRUNCATE
        ON nuisance_entries FOR EACH STATEMENT EXECUTE FUNCTION callguard_notify_site()
    """)
    op.execute("""
        CREATE TRIGGER callguard_notify_recordings AFTER INSERT OR UPDATE OF status OR DELETE
        OR TRUNCATE ON recordings FOR EACH STATEMENT EXECUTE FUNCTION callguard_notify_recordings()
    """)


def downgrade() -> None:
    for table in SITE_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS callguard_notify_site ON {table}")
    op.execute("DROP TRIGGER IF EXISTS callguard_notify_list ON nuisance_entries")
    op.execute("DROP TRIGGER IF EXISTS callguard_notify_list_truncate ON nuisance_entries")
    op.execute("DROP TRIGGER IF EXISTS callguard_notify_recordings ON recordings")
    op.execute("DROP FUNCTION IF EXISTS callguard_notify_recordings()")
    op.execute("DROP FUNCTION IF EXISTS callguard_notify_list()")
    op.execute("DROP FUNCTION IF EXISTS callguard_notify_site()")
