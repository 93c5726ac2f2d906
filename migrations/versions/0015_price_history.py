"""price history: every price change has the month it takes effect from (BILL).

Prices were `site_settings` rows `price.<name>` with no date: a change re-priced every month,
so the report of a month whose bill was already sent no longer matched it (SPEC §5: a past
month is billed from what was in force in that month). `price_history` holds one row per price
set from a month's bill on (`effective_from`, that month's first day); a month is billed with
each price's latest row up to its first day, else `PriceTable`'s default.

- Upgrade carries every `price.<name>` setting over as a row in force from the beginning
  (0001-01-01, the first month a report takes), so no bill changes, and deletes those settings.
  A setting that is not a price (not an integer, out of bounds) stops the upgrade with its key:
  billing refused it already, and guessing a value would change bills. `price.*` keys naming
  no price were ignored and are left alone.
- Downgrade puts back, as its `price.<name>` setting, each price's row in force in the current
  month in Tokyo (its latest row from that month's first day or before, the month computed as
  migration 0004 computes Tokyo's day) and drops the history. The old storage has no dates and
  applies one value to every month, so that is the only value that bills the current month
  right; a change dated in a later month is not yet in force and is dropped (enter it again
  after the upgrade), and a price whose only rows are later ones gets no setting (its default,
  in force until then). Past months are billed at the current prices again, as before 0015.

Revision ID: price_history
Revises: subscription_periods
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "price_history"
down_revision: str | None = "subscription_periods"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# `PriceTable`'s fields and bounds at this revision (a migration never imports the app).
PRICE_NAMES = (
    "recording_initial",
    "recording_mobile_contract",
    "recording_mobile_per_handset",
    "recording_fixed_contract",
    "recording_fixed_per_channel",
    "nuisance_per_unit",
    "nuisance_unit_change_fee",
    "tax_rate_percent",
)
MAX_PRICE = 10_000_000
MAX_TAX_RATE_PERCENT = 100
PREFIX = "price."
BEGINNING = "0001-01-01"


def _carried_over(rows: Sequence[tuple[str, str]]) -> list[dict[str, object]]:
    """The settings as history rows; RuntimeError naming the first one that is no price.
    Read as billing read them: Python's int()."""
    out: list[dict[str, object]] = []
    for key, text in rows:
        name = key[len(PREFIX):]
        top = MAX_TAX_RATE_PERCENT if name == "tax_rate_percent" else MAX_PRICE
        try:
            value = int(text)
        except ValueError:
            value = -1
        if not 0 <= value <= top:
            raise RuntimeError(
                f"site setting {key}={text!r} is not a price (an integer from 0 to {top:,}); "
                "correct or delete that row of site_settings, then upgrade again")
        out.append({"name": name, "value": value})
    return out


def upgrade() -> None:
    op.create_table(
        "price_history",
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("name", sa.String(length=48), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.CheckConstraint("EXTRACT(DAY FROM effective_from) = 1",
                           name=op.f("ck_price_history_first_day")),
        sa.CheckConstraint("value >= 0 AND value <= 10000000",
                           name=op.f("ck_price_history_value")),
        sa.CheckConstraint("name <> 'tax_rate_percent' OR value <= 100",
                           name=op.f("ck_price_history_tax_rate")),
        sa.PrimaryKeyConstraint("effective_from", "name", name=op.f("pk_price_history")),
    )
    keys = [PREFIX + name for name in PRICE_NAMES]
    settings = sa.table("site_settings", sa.column("key", sa.String),
                        sa.column("value", sa.String))
    bind = op.get_bind()
    rows = [(str(k), str(v)) for k, v in bind.execute(
        sa.select(settings.c.key, settings.c.value).where(settings.c.key.in_(keys))
        .order_by(settings.c.key))]
    carried = _carried_over(rows)
    if carried:
        bind.execute(sa.text(
            "INSERT INTO price_history (effective_from, name, value)"
            " VALUES (CAST(:day AS date), :name, :value)"),
            [{**row, "day": BEGINNING} for row in carried])
        bind.execute(sa.delete(settings).where(settings.c.key.in_(keys)))


def downgrade() -> None:
    in_force = sa.text("""
        INSERT INTO site_settings (key, value)
        SELECT DISTINCT ON (name) CAST(:prefix AS text) || name, CAST(value AS text) FROM price_history
         WHERE name IN :names
           AND effective_from <= date_trunc('month', (now() AT TIME ZONE 'Asia/Tokyo'))::date
         ORDER BY name, effective_from DESC
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
    """).bindparams(sa.bindparam("names", expanding=True))
    op.get_bind().execute(in_force, {"prefix": PREFIX, "names": list(PRICE_NAMES)})
    op.drop_table("price_history")
