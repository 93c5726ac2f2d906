"""billing history and freephone numbers (source 000 / 004, issue 13)

- `billing_counts`: the countable facts a bill multiplies by (channels, handsets, numbers
  subscribed to nuisance rejection) with their validity periods, so a past month is billed
  from what was in force then (BILL). Kept by triggers on `endpoints` and `numbers`, so every
  writer (CLI, API, provisioning, plain SQL) leaves history behind; a change on the day a
  period began replaces that period's value. The day is today in Asia/Tokyo unless the
  transaction sets `callguard.today` (time passed in).
- Nuisance lists of the former 6-entry option become 30-entry lists (source 004).
- `numbers.role` may be `freephone`: a 0120/0800 number terminating on a fixed line, whose
  calls are recorded (source 000: 「フリーコール」の着信先回線).

Revision ID: billing_history
Revises: local_state
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "billing_history"
down_revision: str | None = "local_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = "role IN ('representative','dial-in','base','native','office')"
NEW_ROLES = "role IN ('representative','dial-in','base','freephone','native','office')"

RECORD_COUNTS = """
CREATE FUNCTION cg_record_counts(cid integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    -- The day a change takes effect: today in Japan, unless the writer passes the date in
    -- (SET LOCAL callguard.today = 'YYYY-MM-DD', e.g. a change entered after the fact).
    today date := coalesce(nullif(current_setting('callguard.today', true), '')::date,
                           (now() AT TIME ZONE 'Asia/Tokyo')::date);
    k text;
    v integer;
    cur billing_counts%ROWTYPE;
BEGIN
    IF cid IS NULL OR NOT EXISTS (SELECT 1 FROM contracts WHERE id = cid) THEN
        RETURN;  -- the contract is being deleted: its history goes with it
    END IF;
    FOREACH k IN ARRAY ARRAY['channels', 'handsets', 'nuisance-numbers'] LOOP
        IF k = 'channels' THEN
            SELECT coalesce(sum(channels), 0) INTO v FROM endpoints WHERE contract_id = cid;
        ELSIF k = 'handsets' THEN
            SELECT count(*) INTO v FROM numbers WHERE contract_id = cid AND role = 'native';
        ELSE
            SELECT count(*) INTO v FROM numbers
             WHERE contract_id = cid AND nuisance_subscribed;
        END IF;
        SELECT * INTO cur FROM billing_counts
         WHERE contract_id = cid AND what = k AND valid_until IS NULL FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO billing_counts (contract_id, what, value, valid_from)
            VALUES (cid, k, v, today);
        ELSIF cur.value <> v THEN
            IF cur.valid_from >= today THEN
                UPDATE billing_counts SET value = v WHERE id = cur.id;
            ELSE
                UPDATE billing_counts SET valid_until = today WHERE id = cur.id;
                INSERT INTO billing_counts (contract_id, what, value, valid_from)
                VALUES (cid, k, v, today);
            END IF;
        END IF;
    END LOOP;
END $$;

CREATE FUNCTION cg_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM cg_record_counts(OLD.contract_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND (TG_OP = 'INSERT'
            OR NEW.contract_id IS DISTINCT FROM OLD.contract_id) THEN
        PERFORM cg_record_counts(NEW.contract_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER cg_endpoints_counts AFTER INSERT OR UPDATE OR DELETE ON endpoints
    FOR EACH ROW EXECUTE FUNCTION cg_counts_changed();
CREATE TRIGGER cg_numbers_counts AFTER INSERT OR UPDATE OR DELETE ON numbers
    FOR EACH ROW EXECUTE FUNCTION cg_counts_changed();
"""


def upgrade() -> None:
    op.drop_constraint(op.f("ck_numbers_role"), "numbers", type_="check")
    op.create_check_constraint(op.f("ck_numbers_role"), "numbers", NEW_ROLES)
    op.create_table(
        "billing_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("what", sa.String(length=24), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.CheckConstraint("what IN ('channels','handsets','nuisance-numbers')",
                           name=op.f("ck_billing_counts_what")),
        sa.CheckConstraint("value >= 0", name=op.f("ck_billing_counts_value")),
        sa.CheckConstraint("valid_until IS NULL OR valid_until > valid_from",
                           name=op.f("ck_billing_counts_period")),
        sa.ForeignKeyConstraint(["contract_id"], ["contracts.id"], ondelete="CASCADE",
                                name=op.f("fk_billing_counts_contract_id_contracts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_counts")),
    )
    op.create_index("ix_billing_counts_contract", "billing_counts",
                    ["contract_id", "what", "valid_from"])
    op.create_index("uq_billing_counts_open", "billing_counts", ["contract_id", "what"],
                    unique=True, postgresql_where=sa.text("valid_until IS NULL"))
    op.execute(RECORD_COUNTS)
    # Today's counts open the history of the contracts that exist already.
    op.execute("SELECT cg_record_counts(id) FROM contracts")
    # Source 004: the business service has only the 30-entry plan; lists made with the former
    # 6-entry option grow to 30 (nothing is lost; not undone by the downgrade).
    op.execute("UPDATE nuisance_subscriptions SET capacity = 30 WHERE capacity <> 30")
    op.execute("UPDATE nuisance_lists SET capacity = 30 WHERE capacity <> 30")


def downgrade() -> None:
    op.execute("DROP TRIGGER cg_numbers_counts ON numbers")
    op.execute("DROP TRIGGER cg_endpoints_counts ON endpoints")
    op.execute("DROP FUNCTION cg_counts_changed()")
    op.execute("DROP FUNCTION cg_record_counts(integer)")
    op.drop_table("billing_counts")
    op.execute("DELETE FROM numbers WHERE role = 'freephone'")
    op.drop_constraint(op.f("ck_numbers_role"), "numbers", type_="check")
    op.create_check_constraint(op.f("ck_numbers_role"), "numbers", OLD_ROLES)
