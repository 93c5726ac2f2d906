"""site notify per contract: a change to a contract's provisioning names the contract, so each
call-deciding process reloads that contract alone, not the whole site (REL-5, PERF-3's scale).

Every provisioning table sent `site`, and `site` reloaded the whole site snapshot: 2.4 s of
CPU per process at 10^5 contracts (3.8 s before the collector was paused during loads), on the
core Asterisk uses, for one number or forwarding changed. Now the tables whose rows belong to a
contract send `contract:<id>` once per changed contract and statement (statement-level triggers
with transition tables, as migration list_notify_per_statement does for the lists), and past
BULK_CONTRACTS contracts in one statement, or on a TRUNCATE, one `site`. A forwarding names the
contract of its number. The site-wide tables (`priority_lines`, `site_settings`) still send
`site`.

Revision ID: site_notify_per_contract
Revises: foreign_key_indexes
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "site_notify_per_contract"
down_revision: str | None = "foreign_key_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Equal to callguard.localstate.RELOAD_SITE_AT: past it a process reloads the whole site anyway.
BULK_CONTRACTS = 100

# (table, the contract of a changed row in a transition table `rows`). Names, never input.
TABLES = (
    ("contracts", "SELECT id FROM rows"),
    ("endpoints", "SELECT contract_id FROM rows"),
    ("numbers", "SELECT contract_id FROM rows"),
    ("recording_subscriptions", "SELECT contract_id FROM rows"),
    ("recording_options", "SELECT contract_id FROM rows"),
    ("nuisance_subscriptions", "SELECT contract_id FROM rows"),
    ("nuisance_lists", "SELECT contract_id FROM rows"),
    # A forwarding deleted with its number (the cascade) names nothing here: the number's
    # own deletion names the contract.
    ("forwardings", "SELECT n.contract_id FROM rows JOIN numbers n ON n.id = rows.number_id"),
)
EVENTS = (("ins", "INSERT", "NEW TABLE AS new_rows"),
          ("upd", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
          ("del", "DELETE", "OLD TABLE AS old_rows"))


def _function(table: str) -> str:
    return f"callguard_notify_contracts_{table}"


def _changed_contracts_function(table: str, contract_of: str) -> str:
    # `rows` stands for the transition table(s) the event has (an update: both, so a row that
    # moved names the contract it left and the one it joined).
    new = contract_of.replace("rows", "new_rows")
    old = contract_of.replace("rows", "old_rows")
    return """
        CREATE FUNCTION NAME() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            ids bigint[];
        BEGIN
            IF TG_OP = 'INSERT' THEN
                SELECT array_agg(DISTINCT c) INTO ids FROM (NEW_ROWS) changed(c);
            ELSIF TG_OP = 'DELETE' THEN
                SELECT array_agg(DISTINCT c) INTO ids FROM (OLD_ROWS) changed(c);
            ELSE
                SELECT array_agg(DISTINCT c) INTO ids
                FROM (OLD_ROWS UNION NEW_ROWS) changed(c);
            END IF;
            PERFORM callguard_notify_contract_ids(ids);
            RETURN NULL;
        END $$;
    """.replace("NAME", _function(table)).replace("NEW_ROWS", new).replace("OLD_ROWS", old)


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION callguard_notify_contract_ids(ids bigint[]) RETURNS void
        LANGUAGE plpgsql AS $$
        DECLARE
            one bigint;
        BEGIN
            IF ids IS NULL THEN
                RETURN;  -- the statement changed no row
            END IF;
            IF cardinality(ids) > BULK_CONTRACTS THEN
                PERFORM pg_notify('callguard_state', 'site');
            ELSE
                FOREACH one IN ARRAY ids LOOP
                    PERFORM pg_notify('callguard_state', 'contract:' || one);
                END LOOP;
            END IF;
        END $$;
    """.replace("BULK_CONTRACTS", str(BULK_CONTRACTS)))
    for table, contract_of in TABLES:
        op.execute(f"DROP TRIGGER callguard_notify_site ON {table}")
        op.execute(_changed_contracts_function(table, contract_of))
        for suffix, event, referencing in EVENTS:
            op.execute(f"""
                CREATE TRIGGER {_function(table)}_{suffix} AFTER {event} ON {table}
                REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {_function(table)}()
            """)
        op.execute(f"""
            CREATE TRIGGER callguard_notify_site AFTER TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION callguard_notify_site()
        """)


def downgrade() -> None:
    for table, _ in TABLES:
        for suffix, _, _ in EVENTS:
            op.execute(f"DROP TRIGGER IF EXISTS {_function(table)}_{suffix} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {_function(table)}()")
        op.execute(f"DROP TRIGGER IF EXISTS callguard_notify_site ON {table}")
        op.execute(f"""
            CREATE TRIGGER callguard_notify_site AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
            ON {table} FOR EACH STATEMENT EXECUTE FUNCTION callguard_notify_site()
        """)
    op.execute("DROP FUNCTION IF EXISTS callguard_notify_contract_ids(bigint[])")
