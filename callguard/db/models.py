"""Typed SQLAlchemy 2 models: the whole schema (migrations/ creates it; never create_all)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Sequence,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Contract(Base):
    """A customer contract: mobile (handsets) or fixed (lines with channels). SPEC §3."""

    __tablename__ = "contracts"
    __table_args__ = (CheckConstraint("kind IN ('mobile','fixed')", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(200), default="")
    extension_digits: Mapped[int] = mapped_column(Integer, default=4)
    created_at: Mapped[datetime] = _now()

    endpoints: Mapped[list[Endpoint]] = relationship(back_populates="contract")
    numbers: Mapped[list[Number]] = relationship(back_populates="contract")


class Endpoint(Base):
    """Customer equipment: one PJSIP endpoint, identified by its source address (SEC-1)."""

    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(64))
    extension: Mapped[str] = mapped_column(String(8))
    channels: Mapped[int] = mapped_column(Integer, default=1)
    roaming: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = _now()

    contract: Mapped[Contract] = relationship(back_populates="endpoints")
    __table_args__ = (UniqueConstraint("contract_id", "extension"),)


class Number(Base):
    """A telephone number of a contract, rung on one endpoint.

    role: representative | dial-in | base | freephone (a 0120/0800 number terminating on the
    line, source 000) (fixed); native (a mobile's 080/090) | office (a mobile's 0ABJ/050
    number presented on prefixed calls).
    """

    __tablename__ = "numbers"
    __table_args__ = (
        CheckConstraint(
            "role IN ('representative','dial-in','base','freephone','native','office')",
            name="role",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    nuisance_subscribed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = _now()

    contract: Mapped[Contract] = relationship(back_populates="numbers")
    endpoint: Mapped[Endpoint] = relationship()


Index("ix_numbers_contract", Number.contract_id)
Index("ix_numbers_endpoint", Number.endpoint_id)


class RecordingSubscription(Base):
    """The call-recording add-on of a contract (REC-*, BILL-*)."""

    __tablename__ = "recording_subscriptions"

    contract_id: Mapped[int] = mapped_column(
        ForeignKey("contracts.id", ondelete="CASCADE"), primary_key=True
    )
    activated_on: Mapped[date] = mapped_column(Date)
    cancelled_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    retention_days: Mapped[int] = mapped_column(Integer, default=90)


class RecordingOptions(Base):
    """Per-contract recording options, all off by default (issue #14): stereo, the recording
    announcement per direction, and an age (X25519) public key to encrypt recordings with."""

    __tablename__ = "recording_options"

    contract_id: Mapped[int] = mapped_column(
        ForeignKey("contracts.id", ondelete="CASCADE"), primary_key=True
    )
    stereo: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    announce_in: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    announce_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    public_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    pause_code: Mapped[str | None] = mapped_column(String(4), nullable=True)
    resume_code: Mapped[str | None] = mapped_column(String(4), nullable=True)


class NuisanceSubscription(Base):
    """The nuisance-call rejection add-on: unit per-number or per-contract (NCR-UNIT-1)."""

    __tablename__ = "nuisance_subscriptions"
    __table_args__ = (CheckConstraint("unit IN ('per-number','per-contract')", name="unit"),)

    contract_id: Mapped[int] = mapped_column(
        ForeignKey("contracts.id", ondelete="CASCADE"), primary_key=True
    )
    unit: Mapped[str] = mapped_column(String(16))
    capacity: Mapped[int] = mapped_column(Integer, default=30)
    activated_on: Mapped[date] = mapped_column(Date)
    cancelled_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class BillingCount(Base):
    """What a bill multiplies by, with its validity period (BILL: a past month is billed from
    what was in force then). what: channels | handsets | nuisance-numbers; valid_until is
    exclusive, NULL for the period in force. Written only by the database's triggers on
    `endpoints` and `numbers` (migration billing_history)."""

    __tablename__ = "billing_counts"
    __table_args__ = (
        CheckConstraint("what IN ('channels','handsets','nuisance-numbers')", name="what"),
        CheckConstraint("value >= 0", name="value"),
        CheckConstraint("valid_until IS NULL OR valid_until > valid_from", name="period"),
        Index("ix_billing_counts_contract", "contract_id", "what", "valid_from"),
        Index("uq_billing_counts_open", "contract_id", "what", unique=True,
              postgresql_where=text("valid_until IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    what: Mapped[str] = mapped_column(String(24))
    value: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date, nullable=True)


class SubscriptionPeriod(Base):
    """Every period of a contract's services (BILL: a past month is billed from the
    subscriptions in force then; a re-subscription is a new period with its own initial fee).
    service: recording | nuisance; cancelled_on exclusive, NULL while in force; unit: a
    nuisance period's unit when it began (later changes: `nuisance_unit_changes`). Written
    only by the database's triggers on the subscription tables (migration
    subscription_periods), so every writer leaves history behind."""

    __tablename__ = "subscription_periods"
    __table_args__ = (
        CheckConstraint("service IN ('recording','nuisance')", name="service"),
        CheckConstraint("cancelled_on IS NULL OR cancelled_on > activated_on", name="period"),
        CheckConstraint("(service = 'nuisance') = (unit IS NOT NULL)", name="unit"),
        CheckConstraint("unit IS NULL OR unit IN ('per-number','per-contract')",
                        name="unit_value"),
        Index("uq_subscription_periods", "contract_id", "service", "activated_on",
              unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    service: Mapped[str] = mapped_column(String(16))
    activated_on: Mapped[date] = mapped_column(Date)
    cancelled_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    unit: Mapped[str | None] = mapped_column(String(16), nullable=True)


class NuisanceUnitChange(Base):
    """Each change of unit, billed as construction work in its month (BILL-*)."""

    __tablename__ = "nuisance_unit_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    changed_on: Mapped[date] = mapped_column(Date)
    old_unit: Mapped[str] = mapped_column(String(16))
    new_unit: Mapped[str] = mapped_column(String(16))


Index("ix_nuisance_unit_changes_contract", NuisanceUnitChange.contract_id)


class PriceHistory(Base):
    """Each price set from a month's bill on (BILL: a month is billed with the prices in force
    on its first day). effective_from: the month's first day (0001-01-01: from the beginning,
    the settings migration price_history carried over); name: a `PriceTable` field; in force
    until a later row of the same name. No row for a price: `PriceTable`'s default.
    changed_by/changed_at: who last wrote the row and when (migration price_history_audit;
    `domain.audit` says who); NULL for rows written before, shown as unknown."""

    __tablename__ = "price_history"
    __table_args__ = (
        CheckConstraint("EXTRACT(DAY FROM effective_from) = 1", name="first_day"),
        CheckConstraint("value >= 0 AND value <= 10000000", name="value"),
        CheckConstraint("name <> 'tax_rate_percent' OR value <= 100", name="tax_rate"),
        CheckConstraint("(changed_by IS NULL) = (changed_at IS NULL)"
                        " AND (changed_by IS NULL OR length(changed_by) BETWEEN 1 AND 200)",
                        name="changed"),
    )

    effective_from: Mapped[date] = mapped_column(Date, primary_key=True)
    name: Mapped[str] = mapped_column(String(48), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)
    changed_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class VoidedSubscriptionPeriod(Base):
    """A subscription period voided as entered by mistake (`subscriptions void`): what it was,
    who voided it (`domain.audit`), when and why. Its `subscription_periods` row is gone, so
    it is not billed; `unit_changes`: the unit changes made inside it, gone with it.
    `contract` by code, no foreign key: the audit outlives the contract."""

    __tablename__ = "voided_subscription_periods"
    __table_args__ = (
        CheckConstraint("service IN ('recording','nuisance')", name="service"),
        CheckConstraint("length(voided_by) BETWEEN 1 AND 200", name="voided_by"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contract: Mapped[str] = mapped_column(String(32))
    service: Mapped[str] = mapped_column(String(16))
    activated_on: Mapped[date] = mapped_column(Date)
    cancelled_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    unit: Mapped[str | None] = mapped_column(String(16), nullable=True)
    unit_changes: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    voided_by: Mapped[str] = mapped_column(Text)
    voided_at: Mapped[datetime] = _now()


class NuisanceList(Base):
    """One list: of a number (per-number unit) or of the whole contract (per-contract).

    Lists of a previous unit are kept inactive (never reused): NCR-UNIT-1.
    """

    __tablename__ = "nuisance_lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    number_id: Mapped[int | None] = mapped_column(
        ForeignKey("numbers.id", ondelete="CASCADE"), nullable=True
    )
    unit: Mapped[str] = mapped_column(String(16))
    capacity: Mapped[int] = mapped_column(Integer, default=30)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _now()


Index(
    "uq_nuisance_lists_active_scope",
    NuisanceList.contract_id,
    func.coalesce(NuisanceList.number_id, 0),
    unique=True,
    postgresql_where=NuisanceList.active.is_(True),
)
# Every foreign key column is indexed (migration foreign_key_indexes): cascades, the billing
# trigger and the retention purge look rows up by them.
Index("ix_nuisance_lists_contract", NuisanceList.contract_id)
Index("ix_nuisance_lists_number", NuisanceList.number_id)


ENTRY_SEQ = Sequence("nuisance_entry_seq", metadata=Base.metadata)


class NuisanceEntry(Base):
    """A registered caller, as a keyed hash only (NCR-PRIV-1). `seq` orders oldest → newest."""

    __tablename__ = "nuisance_entries"
    __table_args__ = (UniqueConstraint("list_id", "caller_key"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("nuisance_lists.id", ondelete="CASCADE"))
    caller_key: Mapped[str] = mapped_column(String(64))
    # A re-registered caller takes a fresh seq and so becomes the newest (NCR-REG-6).
    seq: Mapped[int] = mapped_column(
        BigInteger, ENTRY_SEQ, server_default=ENTRY_SEQ.next_value()
    )
    added_at: Mapped[datetime] = _now()


class NuisanceCounter(Base):
    """Calls answered with the rejection message, per list and Asia/Tokyo month (NCR-CNT-1)."""

    __tablename__ = "nuisance_counters"

    list_id: Mapped[int] = mapped_column(
        ForeignKey("nuisance_lists.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class InboundCall(Base):
    """Inbound calls that reached a line in a nuisance scope: the source of 'last caller'.

    The caller is kept only as a keyed hash (NCR-PRIV-1).
    """

    __tablename__ = "inbound_calls"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(64), unique=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("nuisance_lists.id", ondelete="CASCADE"))
    number_id: Mapped[int] = mapped_column(ForeignKey("numbers.id", ondelete="CASCADE"))
    caller_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rejected: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# The last caller (NCR-REG-2): calls in progress (NULL ends sort first) and the latest end;
# also the list_id foreign key's index.
Index("ix_inbound_calls_list_rejected_end", InboundCall.list_id, InboundCall.rejected,
      InboundCall.ended_at.desc())
Index("ix_inbound_calls_number_started", InboundCall.number_id, InboundCall.started_at)


class Forwarding(Base):
    """Forwarding of a number to an outside number (REC-IN-2)."""

    __tablename__ = "forwardings"
    __table_args__ = (
        CheckConstraint("mode IN ('unconditional','no-answer','unreachable')", name="mode"),
    )

    number_id: Mapped[int] = mapped_column(
        ForeignKey("numbers.id", ondelete="CASCADE"), primary_key=True
    )
    mode: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(20))
    after_s: Mapped[int] = mapped_column(Integer, default=20)


class PriorityLine(Base):
    """Disaster-priority caller lines (REC-CAP-1)."""

    __tablename__ = "priority_lines"

    number: Mapped[str] = mapped_column(String(20), primary_key=True)
    description: Mapped[str] = mapped_column(String(200), default="")


class Recording(Base):
    """Metadata of one recorded call (REC-FILE-1/2)."""

    __tablename__ = "recordings"
    __table_args__ = (
        CheckConstraint("direction IN ('in','out')", name="direction"),
        CheckConstraint("status IN ('recording','complete','failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(20))
    direction: Mapped[str] = mapped_column(String(3))
    remote: Mapped[str] = mapped_column(String(40))
    channel_id: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    duration_s: Mapped[float | None] = mapped_column(nullable=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(10), default="recording")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The file is an age ciphertext for the contract's public key; sha256 is over it (#14).
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # Paused intervals (issue #14): [{"from": iso, "until": iso | None}], oldest first.
    muted: Mapped[list[dict[str, str | None]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb"))


Index("ix_recordings_contract_started", Recording.contract_id, Recording.started_at.desc())
Index("ix_recordings_started_id", Recording.started_at.desc(), Recording.id.desc())
Index(
    "ix_recordings_in_progress",
    Recording.status,
    postgresql_where=Recording.status == "recording",
)


class ApiToken(Base):
    """Bearer tokens for the HTTP API: operator (contract_id NULL) or one contract's (ADM-2)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    contract_id: Mapped[int | None] = mapped_column(
        ForeignKey("contracts.id", ondelete="CASCADE"), nullable=True
    )
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = _now()
    # Stated, not inferred from a NULL contract (SEC-4); the check keeps the two consistent.
    role: Mapped[str] = mapped_column(String(16))

    __table_args__ = (CheckConstraint(
        "(role = 'operator' AND contract_id IS NULL)"
        " OR (role = 'contract' AND contract_id IS NOT NULL)", name="role_matches_contract"),)


Index("ix_api_tokens_contract", ApiToken.contract_id)


class SiteSetting(Base):
    """Operator-tunable knobs read by both shells with the site snapshot, so a change takes
    effect within seconds without a restart (e.g. `max_recordings`, REC-CAP-1)."""

    __tablename__ = "site_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class CallOutcome(Base):
    """One row per decided call, for the overview page (issue 18): when, whose, which way,
    what was decided and by which shell. Never a number (the caller's or the customer's)."""

    __tablename__ = "call_outcomes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    contract_id: Mapped[int | None] = mapped_column(
        ForeignKey("contracts.id", ondelete="CASCADE"), nullable=True
    )
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    outcome: Mapped[str] = mapped_column(String(16))  # callguard.metrics.OUTCOMES
    refuse_class: Mapped[str] = mapped_column(String(32), default="")
    via: Mapped[str] = mapped_column(String(8))  # ari | fallback


Index("ix_call_outcomes_at", CallOutcome.at)
Index("ix_call_outcomes_contract_at", CallOutcome.contract_id, CallOutcome.at)
