"""list notify per statement: a change to the nuisance lists notifies once per statement and
list, and a bulk change (more than BULK_LISTS lists in one statement) once in all; a change to
the other provisioning tables no longer makes every process reload every list (REL-5, PERF-3).

The row-level trigger of `local_state` sent `list:<id>` for every changed list. PostgreSQL folds
equal payloads within a transaction, but not different ones: a bulk change of 10^6 lists (the
bench's lookup fill and its cleanup) queued 10^6 notifications, and every process that decides
calls spent ~3 s of CPU taking them in (measured: the ARI app 3.0 s, the fallback 3.1 s, on the
core Asterisk uses). Now each statement names at most BULK_LISTS lists; above that it sends one
`lists` (reload every list).

`nuisance_lists` (which lists are active) sent `site`, and `site` reloaded everything, lists
included, on any provisioning change (a forwarding, a number): at 10^6 active lists of 3 keys
that reload took 6.7-9.7 s per process. A list row now notifies like its entries (`list:<id>` or
`lists`) besides `site`, and `site` reloads the site alone. A TRUNCATE of either table sends
`lists`. Lists and entries deleted by the foreign keys' cascade (a contract deleted) are named
the same way.

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

# A trigger with transition tables may have one event only, hence three per table. The changed
# list is `list_id` in an entry and `id` in a list.
TABLES = (("nuisance_entries", "callguard_notify_lists", "list_id"),
          ("nuisance_lists", "callguard_notify_list_rows", "id"))
EVENTS = (("ins", "INSERT", "NEW TABLE AS new_rows"),
          ("upd", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
          ("del", "DELETE", "OLD TABLE AS old_rows"))


def _changed_lists_function(name: str, column: str) -> str:
    # Names from TABLES above, never input (hence .replace, not an f-string the linter flags).
    return """
        CREATE FUNCTION NAME() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            ids bigint[];
        BEGIN
            IF TG_OP = 'INSERT' THEN
                SELECT array_agg(DISTINCT COLUMN) INTO ids FROM new_rows;
            ELSIF TG_OP = 'DELETE' THEN
                SELECT array_agg(DISTINCT COLUMN) INTO ids FROM old_rows;
            ELSE
                SELECT array_agg(DISTINCT COLUMN) INTO ids
                FROM (SELECT COLUMN FROM old_rows UNION SELECT COLUMN FROM new_rows) moved;
            END IF;
            PERFORM callguard_notify_list_ids(ids);
            RETURN NULL;
        END $$;
    """.replace("NAME", name).replace("COLUMN", column)


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION callguard_notify_list_ids(ids bigint[]) RETURNS void
        LANGUAGE plpgsql AS $$
        DECLARE
            one bigint;
        BEGIN
            IF ids IS NULL THEN
                RETURN;  -- the statement changed no row
            END IF;
            IF cardinality(ids) > BULK_LISTS THEN
                PERFORM pg_notify('callguard_state', 'lists');
            ELSE
                FOREACH one IN ARRAY ids LOOP
                    PERFORM pg_notify('callguard_state', 'list:' || one);
                END LOOP;
            END IF;
        END $$;
    """.replace("BULK_LISTS", str(BULK_LISTS)))
    op.execute("""
        CREATE FUNCTION callguard_notify_all_lists() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('callguard_state', 'lists');
            RETURN NULL;
        END $$;
    """)
    op.execute("DROP TRIGGER callguard_notify_list ON nuisance_entries")
    op.execute("DROP FUNCTION callguard_notify_list()")
    op.execute("DROP TRIGGER callguard_notify_list_truncate ON nuisance_entries")
    for table, function, column in TABLES:
        op.execute(_changed_lists_function(function, column))
        for suffix, event, referencing in EVENTS:
            op.execute(f"""
                CREATE TRIGGER {function}_{suffix} AFTER {event} ON {table}
                REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {function}()
            """)
        op.execute(f"""
            CREATE TRIGGER callguard_notify_all_lists AFTER TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION callguard_notify_all_lists()
        """)


def downgrade() -> None:
    for table, function, _ in TABLES:
        for suffix, _, _ in EVENTS:
            op.execute(f"DROP TRIGGER IF EXISTS {function}_{suffix} ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS callguard_notify_all_lists ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.execute("DROP FUNCTION IF EXISTS callguard_notify_all_lists()")
    op.execute("DROP FUNCTION IF EXISTS callguard_notify_list_ids(bigint[])")
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
    op.execute("""
        CREATE TRIGGER callguard_notify_list_truncate AFTER TRUNCATE
        ON nuisance_entries FOR EACH STATEMENT EXECUTE FUNCTION callguard_notify_site()
    """)
