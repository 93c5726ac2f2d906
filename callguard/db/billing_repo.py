"""The database as `BillableContract`s, and monthly reports (BILL-*, ADM-1/2).

`domain.billing.monthly_bill` does the arithmetic; this module decides what the database says
about a contract in the month billed:

- Counts (handsets, channels, subscribed numbers) are those in force in the month billed,
  from `billing_counts` (validity periods the database's triggers keep on every change of
  endpoints and numbers; `domain.billing.count_in_month` picks the month's value). A month
  before the history began takes its first value (activation entered late); a contract with
  no history at all is billed from today's rows.
- Services are billed from every period in `subscription_periods` (kept by the database's
  triggers on the subscription tables: a re-subscription after a cancellation is a new period,
  never an overwrite), so a past month bills the subscriptions in force then.
- The nuisance unit of a month is that of the period active in it: the unit it began with,
  then the `nuisance_unit_changes` made inside it up to that month (each change also bills its
  construction fee in its month).
- Mobile handsets are the contract's `native` numbers; fixed channels are the sum of its
  endpoints' channels; per-number subscriptions count the numbers flagged `nuisance_subscribed`.
- Prices come from `price_history`: each row a price set from a month's bill on (e.g.
  `nuisance_unit_change_fee`, the construction fee SPEC §5 leaves configurable); a month is
  billed with the table in force on its first day (`domain.billing.prices_in_month`), a price
  with no row before that at `PriceTable`'s default. Changing a price never re-prices a month
  before the one it is set from.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from callguard.db.models import (
    BillingCount,
    Contract,
    Endpoint,
    NuisanceUnitChange,
    Number,
    PriceHistory,
    SubscriptionPeriod,
)
from callguard.domain.audit import clean_actor
from callguard.domain.billing import (
    BEGINNING,
    PRICE_NAMES,
    Bill,
    BillableContract,
    CountPeriod,
    NuisanceUnit,
    Period,
    PriceChange,
    PricesInForce,
    PriceTable,
    UnitChange,
    bill_in_force,
    count_in_month,
    month_start,
    nuisance_unit_in_month,
    price_history,
    prices_in_month,
    prices_on,
)

MONTH_RE = r"^(?!0000)[0-9]{4}-(0[1-9]|1[0-2])$"
PRICE_FIELDS = PRICE_NAMES


class BillingError(Exception):
    """The database does not describe a billable contract (bad provisioning)."""


def parse_month(text: str) -> tuple[int, int]:
    if re.fullmatch(MONTH_RE, text) is None:
        raise ValueError(f"not a YYYY-MM month: {text!r}")
    return int(text[:4]), int(text[5:7])


def price_changes(session: Session) -> list[PriceChange]:
    """Every recorded price change; rows naming no price are skipped (a stray row must not
    stop billing), a row the domain refuses is a BillingError."""
    out: list[PriceChange] = []
    for first_day, name, value in session.execute(
            select(PriceHistory.effective_from, PriceHistory.name, PriceHistory.value)
            .order_by(PriceHistory.effective_from, PriceHistory.name)):
        if name not in PRICE_FIELDS:
            continue
        try:
            out.append(PriceChange(first_day, name, value))
        except ValueError as exc:
            raise BillingError(f"price history {name} from {first_day}: {exc}") from exc
    return out


def prices(session: Session, year: int, month: int) -> PricesInForce:
    """The price table a month is billed with, and the month it is in force from."""
    try:
        return prices_in_month(price_changes(session), year, month)
    except ValueError as exc:  # two rows of one price from one month: the key forbids it
        raise BillingError(f"price history: {exc}") from exc


def price_table_history(session: Session) -> tuple[PricesInForce, ...]:
    """The tables in force over time, oldest first (`domain.billing.price_history`)."""
    try:
        return price_history(price_changes(session))
    except ValueError as exc:  # two rows of one price from one month: the key forbids it
        raise BillingError(f"price history: {exc}") from exc


def set_prices(session: Session, values: dict[str, int], effective_from: date,
               changed_by: str | None = None,
               changed_at: datetime | None = None) -> PricesInForce:
    """Set prices from the bill of `effective_from`'s month on (its first day); returns the
    table in force in that month. Each row written says `changed_by` (None: unknown, as rows
    from before migration price_history_audit) and `changed_at` (default: now, the
    database's clock). Every value is checked first (PriceTable's bounds, the
    API's alike), nothing is written on a refusal (ValueError). A month's earlier changes of
    other prices stay; a later change of the same price still takes over from its own month.
    A value equal to the one in force the month before is no change: its row for that month,
    if any, goes (so setting a price back leaves no empty step in the history)."""
    unknown = sorted(set(values) - set(PRICE_FIELDS))
    if unknown:
        raise ValueError(f"unknown price {', '.join(unknown)}; known: {', '.join(PRICE_FIELDS)}")
    first_day = month_start(effective_from)
    if first_day != effective_from:
        raise ValueError(f"prices change from the first day of a month, not {effective_from}")
    new = [PriceChange(first_day, name, value) for name, value in values.items()]  # bounds
    if changed_by is not None:
        changed_by = clean_actor(changed_by)  # bounded and printable: the column's check
    # Who and when go with every row written (the transaction's own time unless told); a
    # writer that does not say who leaves the row unknown, never the previous writer's name.
    when: Any = func.now() if changed_at is None else changed_at
    audit: dict[str, Any] = ({"changed_by": None, "changed_at": None} if changed_by is None
                             else {"changed_by": changed_by, "changed_at": when})
    changes = price_changes(session)
    before = (PricesInForce(None, PriceTable()) if first_day == BEGINNING
              else prices_on(changes, first_day - timedelta(days=1)))
    ph = PriceHistory
    for change in new:
        if getattr(before.table, change.name) == change.value:
            session.execute(delete(ph).where(ph.effective_from == first_day,
                                             ph.name == change.name))
            continue
        # The same value again is no change: the row keeps who set it and when.
        session.execute(pg_insert(ph).values(effective_from=first_day, name=change.name,
                                             value=change.value, **audit)
                        .on_conflict_do_update(index_elements=[ph.effective_from, ph.name],
                                               set_={"value": change.value, **audit},
                                               where=ph.value != change.value))
    session.flush()
    return prices_on(price_changes(session), first_day)


@dataclass(frozen=True)
class PriceAudit:
    """Who last wrote one price's row of a month, and when (None: unknown, a row from before
    migration price_history_audit)."""

    name: str
    value: int
    changed_by: str | None
    changed_at: datetime | None


def price_audit(session: Session) -> dict[date, tuple[PriceAudit, ...]]:
    """Every row's audit, by the month it is in force from (`PricesInForce.effective_from`),
    each month's rows in `PRICE_FIELDS` order; rows naming no price are skipped as billing
    skips them."""
    ph = PriceHistory
    out: defaultdict[date, list[PriceAudit]] = defaultdict(list)
    for first_day, name, value, by, at in session.execute(
            select(ph.effective_from, ph.name, ph.value, ph.changed_by, ph.changed_at)
            .order_by(ph.effective_from, ph.name)):
        if name in PRICE_FIELDS:
            out[first_day].append(PriceAudit(name, value, by, at))
    return {day: tuple(sorted(rows, key=lambda r: PRICE_FIELDS.index(r.name)))
            for day, rows in out.items()}


@dataclass
class _Facts:
    """The billing history the database holds about one contract."""

    periods: dict[str, list[Period]] = field(
        default_factory=lambda: {"recording": [], "nuisance": []})
    counts: dict[str, list[CountPeriod]] = field(default_factory=dict)
    changes: list[tuple[date, str]] = field(default_factory=list)  # (changed_on, new_unit)
    error: str | None = None  # a row the domain refused (bad data written by hand)


def _facts(session: Session, contract_id: int | None) -> dict[int, _Facts]:
    """The periods (`subscription_periods`, kept by the database's triggers on the
    subscription tables), counts (`billing_counts`) and unit changes of every contract, or of
    one: three queries whatever the number of contracts, so a month's report reads the
    history once. Columns, not ORM objects: the triggers change rows behind the session's
    back, and an object already in its identity map would not be refreshed by a query."""
    out: defaultdict[int, _Facts] = defaultdict(_Facts)

    def mine(column: Any) -> list[Any]:
        return [] if contract_id is None else [column == contract_id]

    sp, bc, uc = SubscriptionPeriod, BillingCount, NuisanceUnitChange
    for cid, service, start, end, unit in session.execute(
            select(sp.contract_id, sp.service, sp.activated_on, sp.cancelled_on, sp.unit)
            .where(*mine(sp.contract_id)).order_by(sp.contract_id, sp.activated_on)):
        try:
            out[cid].periods[service].append(
                Period(start, end, None if unit is None else NuisanceUnit(unit)))
        except (ValueError, KeyError) as exc:
            out[cid].error = f"{service} period from {start}: {exc}"
    for cid, what, value, start, end in session.execute(
            select(bc.contract_id, bc.what, bc.value, bc.valid_from, bc.valid_until)
            .where(*mine(bc.contract_id))):
        try:
            out[cid].counts.setdefault(what, []).append(CountPeriod(value, start, end))
        except ValueError as exc:
            out[cid].error = f"{what} count from {start}: {exc}"
    for cid, changed_on, new_unit in session.execute(
            select(uc.contract_id, uc.changed_on, uc.new_unit).where(*mine(uc.contract_id))):
        out[cid].changes.append((changed_on, new_unit))
    return dict(out)


def billable(session: Session, contract: Contract, year: int, month: int,
             facts: _Facts | None = None) -> BillableContract:
    """What the database says about `contract` in the month; `facts`: its history when the
    caller read every contract's at once (`_facts`)."""
    if facts is None:
        facts = _facts(session, contract.id).get(contract.id, _Facts())
    if facts.error is not None:
        raise BillingError(f"contract {contract.code}: {facts.error}")
    periods, history = facts.periods, facts.counts

    def in_force(what: str, today: Any) -> int:
        value = count_in_month(history.get(what, []), year, month)
        return int((session.scalar(today) or 0) if value is None else value)

    try:
        # The unit of the period active in the month, with the changes made inside it; None
        # in a month without nuisance-call rejection: a month before it began (numbers not
        # yet subscribed) or after it ended (numbers gone) bills the other services (BILL).
        unit = nuisance_unit_in_month(
            periods["nuisance"],
            [UnitChange(day, new)  # type: ignore[arg-type]  # checked by UnitChange
             for day, new in facts.changes], year, month)
    except ValueError as exc:
        raise BillingError(f"contract {contract.code}: {exc}") from exc
    handsets = channels = subscribed = 0
    if contract.kind == "mobile":
        handsets = in_force("handsets", select(func.count()).where(
            Number.contract_id == contract.id, Number.role == "native"))
    else:
        channels = in_force("channels", select(func.coalesce(func.sum(Endpoint.channels), 0))
                            .where(Endpoint.contract_id == contract.id))
    if unit == "per-number":
        subscribed = in_force("nuisance-numbers", select(func.count()).where(
            Number.contract_id == contract.id, Number.nuisance_subscribed.is_(True)))
    rec = periods["recording"][-1] if periods["recording"] else None
    ncr = periods["nuisance"][-1] if periods["nuisance"] else None
    try:
        return BillableContract(
            code=contract.code,
            kind=contract.kind,  # type: ignore[arg-type]  # checked by BillableContract
            recording_activated_on=rec.activated_on if rec else None,  # the last period
            recording_cancelled_on=rec.cancelled_on if rec else None,
            recording_periods=tuple(periods["recording"]),
            handsets=int(handsets),
            channels=int(channels),
            nuisance_unit=unit,
            nuisance_numbers=int(subscribed),
            nuisance_activated_on=ncr.activated_on if ncr else None,
            nuisance_cancelled_on=ncr.cancelled_on if ncr else None,
            nuisance_periods=tuple(periods["nuisance"]),
            nuisance_unit_changes=tuple(day for day, _ in facts.changes),
        )
    except ValueError as exc:
        raise BillingError(f"contract {contract.code}: {exc}") from exc


def bill_of(session: Session, contract: Contract, year: int, month: int,
            prices: PricesInForce, facts: _Facts | None = None) -> Bill:
    """The contract's bill for the month with the price table `prices` (its `prices_from`
    goes on the bill); BillingError when the database does not describe a billable contract
    for that month."""
    billable_contract = billable(session, contract, year, month, facts)
    try:
        return bill_in_force(billable_contract, year, month, prices)
    except ValueError as exc:
        raise BillingError(f"contract {contract.code}: {exc}") from exc


@dataclass(frozen=True)
class Report:
    """One page of a month's bills. `subtotal`/`tax`/`total` (and `contracts`, `unbilled`)
    are the month's, over every contract of the report whatever page this is; the `page_*`
    sums are this page's bills only."""

    month: str
    bills: list[Bill]  # this page
    errors: list[tuple[str, str]]  # this page: (contract, why it could not be billed)
    next_offset: int | None = None
    subtotal: int = 0  # the month: every contract billed, all pages
    tax: int = 0
    total: int = 0
    contracts: int = 0  # the month: contracts in the report, all pages
    unbilled: int = 0  # the month: of those, the ones that could not be billed
    prices_from: str | None = None  # YYYY-MM its price table is in force from; None: defaults

    def to_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "currency": "JPY",
            "bills": [b.to_json() for b in self.bills],
            "errors": [{"contract": c, "message": m} for c, m in self.errors],
            "subtotal": self.subtotal,
            "tax": self.tax,
            "total": self.total,
            "contracts": self.contracts,
            "unbilled": self.unbilled,
            "page_subtotal": sum(b.subtotal for b in self.bills),
            "page_tax": sum(b.tax for b in self.bills),
            "page_total": sum(b.total for b in self.bills),
            "next_offset": self.next_offset,
            "prices_from": self.prices_from,
        }


def report(session: Session, month: str, contract: str | None = None,
           limit: int | None = None, offset: int = 0,
           progress: Callable[[int, int], None] | None = None) -> Report:
    """Bills of every contract (or of one), in code order; one with no service active in the
    month gets an empty bill. The page is `limit` contracts from `offset`; the month's totals
    cover every contract, so every contract is billed whatever the page (a total that changed
    with the page size would not be the month's). `progress(done, total)` is called as
    contracts are billed."""
    year, mon = parse_month(month)
    stmt = select(Contract).order_by(Contract.code)
    if contract is not None:
        stmt = stmt.where(Contract.code == contract)
    contracts = list(session.scalars(stmt))
    end = len(contracts) if limit is None else offset + limit
    in_force = prices(session, year, mon)  # the month's own table, whatever changed later
    # Every contract's history in three queries (the month's totals bill every contract); a
    # contract named that does not exist reads nothing.
    facts = {} if not contracts else _facts(
        session, contracts[0].id if contract is not None else None)
    bills: list[Bill] = []
    errors: list[tuple[str, str]] = []
    subtotal = tax = total = unbilled = 0
    for i, c in enumerate(contracts):
        on_page = offset <= i < end
        try:
            one = bill_of(session, c, year, mon, in_force, facts.get(c.id, _Facts()))
        except BillingError as exc:
            unbilled += 1
            if on_page:
                errors.append((c.code, str(exc)))
        else:
            subtotal, tax, total = subtotal + one.subtotal, tax + one.tax, total + one.total
            if on_page:
                bills.append(one)
        if progress is not None:
            progress(i + 1, len(contracts))
    return Report(f"{year:04d}-{mon:02d}", bills, errors,
                  end if end < len(contracts) else None,
                  subtotal, tax, total, len(contracts), unbilled, in_force.prices_from)
