"""list notify per statement: a change to the nuisance lists' entries notifies once per statement
and list, and a bulk change (more than BULK_LISTS lists in one statement) once in all (REL-5,
PERF-3).

The row-level trigger of `local_state` sent `list:<id>` for every changed list. PostgreSQL folds
equal payloads within a transaction, but not different ones: a bulk change of 10^6 lists (the
bench's lookup fill and its cleanup) queued 10^6 notifications, and every process that decides
calls spent ~3 s of CPU taking them in (measured: the ARI app 3.0 s, the fallback 3.1 s, on the
core Asterisk uses). Now each statement names at most BULK_LISTS lists; above that it sends one
`lists` (reload every list). A list deleted with its entries by the foreign key's cascade is
still one statement per list (PostgreSQL runs the cascade that way), as before.

Revision ID: list_notify_per_statement
Revises: recording_options_notify
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "list_notify_per_statement"
down_revision: str | None = "recording_options_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Equal to callguard.localstate.RELOAD_ALL_LISTS_AT: past it a process reloads every list anyway.
BULK_LISTS = 100

# A trigger with transition tables may have one event only, hence three triggers on one function.
TRIGGERS = (
    ("callguard_notify_lists_ins", "INSERT", "NEW TABLE AS new_rows"),
    ("callguard_notify_lists_upd", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ("callguard_notify_lists_del", "DELETE", "OLD TABLE AS old_rows"),
)


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION callguard_notify_lists() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            ids bigint[];
            one bigint;
        BEGIN
            IF TG_OP = 'INSERT' THEN
                SELECT array_agg(DISTINCT list_id) INTO ids FROM new_rows;
            ELSIF TG_OP = 'DELETE' THEN
                SELECT array_agg(DISTINCT list_id) INTO ids FROM old_rows;
            ELSE
                SELECT array_agg(DISTINCT list_id) INTO ids
                FROM (SELECT list_id FROM old_rows UNION SELECT list_id FROM new_rows) moved;
            END IF;
            IF ids IS NULL THEN
                RETURN NULL;  -- no row changed
            END IF;
            IF cardinality(ids) > BULK_LISTS THEN
                PERFORM pg_notify('callguard_state', 'lists');
            ELSE
                FOREACH one IN ARRAY ids LOOP
                    PERFORM pg_notify('callguard_state', 'list:' || one);
                END LOOP;
            END IF;
            RETURN NULL;
        END $$;
    """.replace("BULK_LISTS", str(BULK_LISTS)))
    op.execute("DROP TRIGGER callguard_notify_list ON nuisance_entries")
    op.execute("DROP FUNCTION callguard_notify_list()")
    for name, event, referencing in TRIGGERS:
        op.execute(f"""
            CREATE TRIGGER {name} AFTER {event} ON nuisance_entries
            REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION callguard_notify_lists()
        """)


def downgrade() -> None:
    for name, _, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON nuisance_entries")
    op.execute("DROP FUNCTION IF EXISTS callguard_notify_lists()")
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
        CREATE TRIGGER callguard_notify_list AFTER INSERT OR UPDATE OR DELETE
        ON nuisance_entries FOR EACH ROW EXECUTE FUNCTION callguard_notify_list()
    """)
