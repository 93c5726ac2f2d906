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
- Prices are `PriceTable`'s defaults unless `site_settings` holds `price.<field>` (e.g.
  `price.nuisance_unit_change_fee`, the construction fee SPEC §5 leaves configurable).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from callguard.db.models import (
    BillingCount,
    Contract,
    Endpoint,
    NuisanceUnitChange,
    Number,
    SiteSetting,
    SubscriptionPeriod,
)
from callguard.domain.billing import (
    Bill,
    BillableContract,
    CountPeriod,
    NuisanceUnit,
    Period,
    PriceTable,
    UnitChange,
    count_in_month,
    monthly_bill,
    nuisance_unit_in_month,
)

MONTH_RE = r"^(?!0000)[0-9]{4}-(0[1-9]|1[0-2])$"
PRICE_PREFIX = "price."
PRICE_FIELDS = tuple(f.name for f in fields(PriceTable))


class BillingError(Exception):
    """The database does not describe a billable contract (bad provisioning)."""


def parse_month(text: str) -> tuple[int, int]:
    if re.fullmatch(MONTH_RE, text) is None:
        raise ValueError(f"not a YYYY-MM month: {text!r}")
    return int(text[:4]), int(text[5:7])


def _stored_prices(session: Session, skip: frozenset[str] = frozenset()) -> dict[str, int]:
    overrides: dict[str, int] = {}
    rows = session.execute(select(SiteSetting.key, SiteSetting.value)
                           .where(SiteSetting.key.startswith(PRICE_PREFIX))).all()
    for key, value in rows:
        name = key[len(PRICE_PREFIX):]
        if name not in PRICE_FIELDS or name in skip:
            continue  # a stray key must not stop billing
        try:
            overrides[name] = int(value)
        except ValueError as exc:
            raise BillingError(f"site setting {key}={value!r} is not an integer") from exc
    return overrides


def prices(session: Session) -> PriceTable:
    try:
        return PriceTable(**_stored_prices(session))
    except ValueError as exc:
        raise BillingError(f"site setting prices: {exc}") from exc


def set_prices(session: Session, values: dict[str, int]) -> PriceTable:
    """Validate the whole table first (PriceTable's bounds, the API's alike), then store only
    what changed. A stored value being replaced is not read, so a bad one can be repaired."""
    unknown = sorted(set(values) - set(PRICE_FIELDS))
    if unknown:
        raise ValueError(f"unknown price {', '.join(unknown)}; known: {', '.join(PRICE_FIELDS)}")
    stored = _stored_prices(session, skip=frozenset(values))
    table = PriceTable(**{**stored, **values})  # raises ValueError on a bad value
    for name, value in values.items():
        key = PRICE_PREFIX + name
        session.execute(pg_insert(SiteSetting).values(key=key, value=str(value))
                        .on_conflict_do_update(index_elements=[SiteSetting.key],
                                               set_={"value": str(value)}))
    session.flush()
    return table


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
            table: PriceTable, facts: _Facts | None = None) -> Bill:
    """The contract's bill for the month; BillingError when the database does not describe a
    billable contract for that month."""
    billable_contract = billable(session, contract, year, month, facts)
    try:
        return monthly_bill(billable_contract, year, month, table)
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
    table = prices(session)
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
            one = bill_of(session, c, year, mon, table, facts.get(c.id, _Facts()))
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
                  subtotal, tax, total, len(contracts), unbilled)
