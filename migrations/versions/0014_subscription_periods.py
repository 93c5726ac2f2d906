"""subscription periods: every period of a contract's services, kept by triggers (BILL).

`recording_subscriptions` and `nuisance_subscriptions` hold one row per contract; subscribing
again after a cancellation overwrote its dates, so the months of the earlier period billed
nothing and its initial fee disappeared (SPEC §5: "a past month is billed from the
subscriptions ... in force in that month"). `subscription_periods` keeps every period:

- INSERT of a subscription row opens a period.
- UPDATE that starts again after a cancellation (the row was cancelled and the new activation
  is on or after that cancellation) opens a new period; the old one stays as it ended.
- Any other UPDATE changes the period it belongs to (the one that began on OLD.activated_on):
  a cancellation, a pending cancellation revoked, a date corrected.
- DELETE of a subscription row erases that service's periods: the tools never delete one
  (they cancel); only the contract's deletion (a cascade) or a correction by hand does.

A nuisance period keeps the unit it began with; changes inside it are `nuisance_unit_changes`.
Existing rows are carried over as one period each; a nuisance period's starting unit is the
old unit of its first change, else its unit today. The unique index (contract, service,
activated_on) also serves the contract_id foreign key (migration foreign_key_indexes' rule).

Revision ID: subscription_periods
Revises: last_caller_index
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "subscription_periods"
down_revision: str | None = "last_caller_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEEP_PERIODS = """
CREATE FUNCTION cg_subscription_period() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    svc text := TG_ARGV[0];
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM subscription_periods WHERE contract_id = OLD.contract_id AND service = svc;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF OLD.cancelled_on IS NULL OR NEW.activated_on < OLD.cancelled_on THEN
            -- The same period: cancelled, a pending cancellation revoked, a date corrected.
            UPDATE subscription_periods
               SET contract_id = NEW.contract_id, activated_on = NEW.activated_on,
                   cancelled_on = NEW.cancelled_on
             WHERE contract_id = OLD.contract_id AND service = svc
               AND activated_on = OLD.activated_on;
            IF FOUND THEN
                RETURN NULL;
            END IF;
        END IF;
    END IF;
    -- A subscription, or a new one after a cancellation (a new application).
    INSERT INTO subscription_periods (contract_id, service, activated_on, cancelled_on, unit)
    VALUES (NEW.contract_id, svc, NEW.activated_on, NEW.cancelled_on,
            to_jsonb(NEW) ->> 'unit')  -- NULL for recording (no such column)
    ON CONFLICT (contract_id, service, activated_on)
    DO UPDATE SET cancelled_on = EXCLUDED.cancelled_on, unit = EXCLUDED.unit;
    RETURN NULL;
END $$;

CREATE TRIGGER cg_recording_periods AFTER INSERT OR UPDATE OR DELETE ON recording_subscriptions
    FOR EACH ROW EXECUTE FUNCTION cg_subscription_period('recording');
CREATE TRIGGER cg_nuisance_periods AFTER INSERT OR UPDATE OR DELETE ON nuisance_subscriptions
    FOR EACH ROW EXECUTE FUNCTION cg_subscription_period('nuisance');
"""

CARRY_OVER = """
INSERT INTO subscription_periods (contract_id, service, activated_on, cancelled_on, unit)
SELECT contract_id, 'recording', activated_on, cancelled_on, NULL FROM recording_subscriptions;
INSERT INTO subscription_periods (contract_id, service, activated_on, cancelled_on, unit)
SELECT n.contract_id, 'nuisance', n.activated_on, n.cancelled_on,
       coalesce((SELECT c.old_unit FROM nuisance_unit_changes c
                  WHERE c.contract_id = n.contract_id AND c.changed_on >= n.activated_on
                  ORDER BY c.changed_on, c.id LIMIT 1), n.unit)
  FROM nuisance_subscriptions n;
"""


def upgrade() -> None:
    op.create_table(
        "subscription_periods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(length=16), nullable=False),
        sa.Column("activated_on", sa.Date(), nullable=False),
        sa.Column("cancelled_on", sa.Date(), nullable=True),
        sa.Column("unit", sa.String(length=16), nullable=True),
        sa.CheckConstraint("service IN ('recording','nuisance')",
                           name=op.f("ck_subscription_periods_service")),
        sa.CheckConstraint("cancelled_on IS NULL OR cancelled_on > activated_on",
                           name=op.f("ck_subscription_periods_period")),
        sa.CheckConstraint("(service = 'nuisance') = (unit IS NOT NULL)",
                           name=op.f("ck_subscription_periods_unit")),
        sa.CheckConstraint("unit IS NULL OR unit IN ('per-number','per-contract')",
                           name=op.f("ck_subscription_periods_unit_value")),
        sa.ForeignKeyConstraint(["contract_id"], ["contracts.id"], ondelete="CASCADE",
                                name=op.f("fk_subscription_periods_contract_id_contracts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_periods")),
    )
    op.create_index("uq_subscription_periods", "subscription_periods",
                    ["contract_id", "service", "activated_on"], unique=True)
    op.execute(CARRY_OVER)
    op.execute(KEEP_PERIODS)


def downgrade() -> None:
    # The subscription rows still hold each service's last period; earlier ones are dropped.
    op.execute("DROP TRIGGER cg_nuisance_periods ON nuisance_subscriptions")
    op.execute("DROP TRIGGER cg_recording_periods ON recording_subscriptions")
    op.execute("DROP FUNCTION cg_subscription_period()")
    op.drop_table("subscription_periods")
