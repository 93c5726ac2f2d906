"""Monthly bill of one contract (BILL-*): pure, integer JPY, no clock.

Rules decided here where SPEC §5 and the sources are silent:

- A service is billed for a calendar month when it is active on at least one day of it: from the
  month of `*_activated_on` through the month before the first day it is no longer active
  (`*_cancelled_on`, exclusive, the same convention as `ContractInfo.recording_active`). Monthly
  fees are charged for the full month, never prorated.
- A service may have several periods (subscribed, cancelled, subscribed again: `*_periods`,
  oldest first, never overlapping; the `*_activated_on`/`*_cancelled_on` pair is shorthand for
  one period). A month is billed when any period is active on one of its days, once.
- The recording initial fee is charged in the month of each activation: a subscription after
  a cancellation is a new application. Revoking a pending cancellation is no new activation.
- The nuisance-rejection fee uses the unit and number count passed in (the state of the month being
  billed); a month with a unit change is billed once at that unit, plus one construction fee per
  change dated in the month (NCR-UNIT-1, BILL). The unit (and, per number, the count) is asked
  for only in a month when the subscription is active: before it began or after it ended, the
  contract may well have no subscribed numbers, and its other services are still billed.
- Line items with quantity 0 are left out.
- Tax: floor(subtotal × tax_rate_percent / 100), computed once on the subtotal (integer yen,
  rounded down).
- Prices: a month is billed with the price table in force on its first day
  (`prices_in_month`). A price change takes effect from a month's bill on, never mid-month,
  and stays until a later change of that price; before any change, `PriceTable`'s defaults.
- Counts (channels, handsets, subscribed numbers) of a past month are those in force then
  (`count_in_month`): the highest value in force on any day of the month, as a month is billed
  in full for anything active on one of its days. A month before the first known period takes
  that period's value (history started after the contract did, e.g. entered late).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import date, datetime
from enum import StrEnum
from itertools import pairwise
from typing import Any


class ContractKind(StrEnum):
    MOBILE = "mobile"
    FIXED = "fixed"


class NuisanceUnit(StrEnum):
    """NCR subscription unit (SPEC §4)."""

    PER_NUMBER = "per-number"
    PER_CONTRACT = "per-contract"


@dataclass(frozen=True)
class PriceTable:
    """JPY excluding tax (source 000: "表記の金額は…すべて税抜")."""

    recording_initial: int = 3000  # per contract, activation month
    recording_mobile_contract: int = 500
    recording_mobile_per_handset: int = 500  # per mobile phone number
    recording_fixed_contract: int = 900
    recording_fixed_per_channel: int = 900
    # Per number or per contract, by unit. Source 004's 220 is tax-included (200 + 10 %; its
    # 1,430 and 5,940 are 1,300 and 5,400 the same way); bills are excluding tax.
    nuisance_per_unit: int = 200
    # Construction fee for a unit change: the source only says one is due ("工事費が必要"),
    # never how much, so it is configurable; 2,000 is a placeholder default.
    nuisance_unit_change_fee: int = 2000
    tax_rate_percent: int = 10

    def __post_init__(self) -> None:
        # One set of bounds for every writer (CLI, API, site_settings): a price up to
        # MAX_PRICE yen, a tax rate up to MAX_TAX_RATE_PERCENT.
        for f in fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{f.name} must be a non-negative int, got {value!r}")
            top = price_maximum(f.name)
            if value > top:
                raise ValueError(f"{f.name} must be at most {top:,}, got {value:,}")


MAX_PRICE = 10_000_000  # JPY, any one price
MAX_TAX_RATE_PERCENT = 100


def price_maximum(name: str) -> int:
    """The largest value `PriceTable` accepts for the field `name`."""
    return MAX_TAX_RATE_PERCENT if name == "tax_rate_percent" else MAX_PRICE


# ---- prices in force by month (BILL) -------------------------------------------------------
PRICE_NAMES = tuple(f.name for f in fields(PriceTable))
# "From the beginning": the first month there is (the report takes 0001-01 to 9999-12).
BEGINNING = date(1, 1, 1)


def month_start(day: date) -> date:
    """The first day of `day`'s month (a Tokyo calendar day in, a billing month out)."""
    return day.replace(day=1)


def month_text(day: date) -> str:
    """YYYY-MM of `day`'s month."""
    return f"{day.year:04d}-{day.month:02d}"


@dataclass(frozen=True)
class PriceChange:
    """One price set from the bill of a month on: `effective_from` is that month's first day;
    it stays in force until a later change of the same price."""

    effective_from: date
    name: str
    value: int

    def __post_init__(self) -> None:
        if not isinstance(self.effective_from, date) or isinstance(self.effective_from, datetime):
            raise ValueError(f"effective_from must be a date, got {self.effective_from!r}")
        if self.effective_from.day != 1:
            raise ValueError("a price change takes effect on the first day of a month, not "
                             f"{self.effective_from.isoformat()}")
        if self.name not in PRICE_NAMES:
            raise ValueError(f"unknown price {self.name!r}; known: {', '.join(PRICE_NAMES)}")
        PriceTable(**{self.name: self.value})  # the table's own bounds (ValueError)


@dataclass(frozen=True)
class PricesInForce:
    """The price table billed from the month of `effective_from` on, until the next entry of
    the history. `effective_from` None: `PriceTable`'s defaults, before any recorded change.
    `changed`: the prices set from that month, by name (empty for the defaults)."""

    effective_from: date | None
    table: PriceTable
    changed: tuple[tuple[str, int], ...] = ()

    @property
    def prices_from(self) -> str | None:
        """YYYY-MM of `effective_from` (None: the defaults)."""
        return None if self.effective_from is None else month_text(self.effective_from)

    def to_json(self) -> dict[str, Any]:
        """The table's fields, flat as they always were, and the month it is in force from."""
        return {**asdict(self.table), "prices_from": self.prices_from}


def price_history(changes: Iterable[PriceChange]) -> tuple[PricesInForce, ...]:
    """The tables in force over time, oldest first: the defaults (unless a change is in
    force from the very first month), then one table per month with a change, each price the
    one of its latest change up to that month. Two changes of one price from one month are
    refused (ValueError): the history would not say which is in force."""
    by_month: dict[date, dict[str, int]] = {}
    for change in changes:
        month = by_month.setdefault(change.effective_from, {})
        if change.name in month:
            raise ValueError(f"{change.name} is changed twice from "
                             f"{month_text(change.effective_from)}")
        month[change.name] = change.value
    out: list[PricesInForce] = []
    if BEGINNING not in by_month:
        out.append(PricesInForce(None, PriceTable()))
    table = PriceTable()
    for first_day in sorted(by_month):
        set_then = by_month[first_day]
        table = replace(table, **set_then)
        out.append(PricesInForce(first_day, table,
                                 tuple((n, set_then[n]) for n in PRICE_NAMES if n in set_then)))
    return tuple(out)


def prices_on(changes: Iterable[PriceChange], day: date) -> PricesInForce:
    """The table in force on `day`: the latest in the history that began on or before it."""
    in_force = PricesInForce(None, PriceTable())
    for entry in price_history(changes):
        if entry.effective_from is None or entry.effective_from <= day:
            in_force = entry
    return in_force


def prices_in_month(changes: Iterable[PriceChange], year: int, month: int) -> PricesInForce:
    """The table a month is billed with: the one in force on its first day (BILL: a past
    month is billed from what was in force then, prices included)."""
    return prices_on(changes, date(year, month, 1))


@dataclass(frozen=True)
class Period:
    """A service from `activated_on` until `cancelled_on` (exclusive; None: still active).
    `unit`: a nuisance-call rejection period's unit when it began (None for recording)."""

    activated_on: date
    cancelled_on: date | None = None
    unit: NuisanceUnit | None = None

    def __post_init__(self) -> None:
        if self.unit is not None:
            object.__setattr__(self, "unit", NuisanceUnit(self.unit))
        _check_period("service", self.activated_on, self.cancelled_on)


@dataclass(frozen=True)
class UnitChange:
    """A nuisance unit change (NCR-UNIT-1) and the unit it changed to."""

    changed_on: date
    new_unit: NuisanceUnit

    def __post_init__(self) -> None:
        object.__setattr__(self, "new_unit", NuisanceUnit(self.new_unit))


def _history(name: str, periods: Sequence[Period], start: date | None,
             end: date | None) -> tuple[Period, ...]:
    """The periods of a service: `periods`, or the shorthand pair as one period. When both
    are given, the pair must be the last period (the subscription in force or last ended)."""
    _check_period(name, start, end)
    history = tuple(sorted(periods, key=lambda p: p.activated_on))
    if not history:
        return () if start is None else (Period(start, end),)
    if start is not None and (history[-1].activated_on, history[-1].cancelled_on) != (start, end):
        raise ValueError(f"{name} dates disagree with its last period")
    for before, after in pairwise(history):
        if before.cancelled_on is None or before.cancelled_on > after.activated_on:
            raise ValueError(f"{name} periods overlap: {before.activated_on.isoformat()} and "
                             f"{after.activated_on.isoformat()}")
    return history


def nuisance_unit_in_month(periods: Sequence[Period], changes: Sequence[UnitChange],
                           year: int, month: int) -> NuisanceUnit | None:
    """The nuisance unit billed for a month: None when no period is active in it; else the
    unit in force at the end of the month (or of the last period active in it): that period's
    unit when it began, then each change made inside the period up to that month."""
    index = _month_index(year, month)
    active = [p for p in periods if _active_in(index, p.activated_on, p.cancelled_on)]
    if not active:
        return None
    last = max(active, key=lambda p: p.activated_on)
    if last.unit is None:
        raise ValueError(f"nuisance period from {last.activated_on.isoformat()} has no unit")
    unit = last.unit
    for change in sorted(changes, key=lambda c: c.changed_on):
        inside = change.changed_on >= last.activated_on and (
            last.cancelled_on is None or change.changed_on < last.cancelled_on)
        if inside and _month_index(change.changed_on.year, change.changed_on.month) <= index:
            unit = change.new_unit
    return unit


@dataclass(frozen=True)
class BillableContract:
    """What billing needs to know about one contract in the month billed."""

    code: str
    kind: ContractKind
    recording_activated_on: date | None = None  # None: no recording add-on
    handsets: int = 0  # mobile: mobile phone numbers of the contract
    channels: int = 0  # fixed: channels summed over the contract's lines
    nuisance_unit: NuisanceUnit | None = None  # None: no nuisance-rejection subscription
    nuisance_numbers: int = 0  # per-number unit: subscribed numbers
    nuisance_unit_changes: tuple[date, ...] = ()  # each one costs a construction fee
    recording_cancelled_on: date | None = None  # first day no longer active
    nuisance_activated_on: date | None = None  # required when nuisance_unit is set
    nuisance_cancelled_on: date | None = None  # first day no longer active
    recording_periods: tuple[Period, ...] = ()  # every period, when there were several
    nuisance_periods: tuple[Period, ...] = ()

    def __post_init__(self) -> None:
        # Bad provisioning must fail loudly rather than produce a plausible wrong bill.
        if not self.code:
            raise ValueError("contract code is empty")
        # Accept the DB's plain strings ("fixed", "per-number"); reject anything else.
        object.__setattr__(self, "kind", ContractKind(self.kind))
        if self.nuisance_unit is not None:
            object.__setattr__(self, "nuisance_unit", NuisanceUnit(self.nuisance_unit))
        object.__setattr__(self, "nuisance_unit_changes", tuple(self.nuisance_unit_changes))
        for name in ("handsets", "channels", "nuisance_numbers"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if self.kind is ContractKind.FIXED and self.handsets:
            raise ValueError("a fixed contract has channels, not handsets")
        if self.kind is ContractKind.MOBILE and self.channels:
            raise ValueError("a mobile contract has handsets, not channels")
        object.__setattr__(self, "recording_periods", tuple(self.recording_periods))
        object.__setattr__(self, "nuisance_periods", tuple(self.nuisance_periods))
        self.recording_history()  # raises on bad periods
        if self.nuisance_unit is None:
            # Dates without a unit: a subscription not in force in the month billed (its unit
            # and numbers then are not asked for; `monthly_bill` refuses one that is).
            if self.nuisance_numbers:
                raise ValueError("nuisance numbers given without a nuisance unit")
        else:
            if not self.nuisance_history():
                raise ValueError("a nuisance subscription needs nuisance_activated_on")
            if self.nuisance_unit is NuisanceUnit.PER_NUMBER and self.nuisance_numbers < 1:
                raise ValueError("a per-number nuisance subscription needs subscribed numbers")
            if self.nuisance_unit is NuisanceUnit.PER_CONTRACT and self.nuisance_numbers:
                raise ValueError("nuisance_numbers is only for the per-number unit")
        self.nuisance_history()

    def recording_history(self) -> tuple[Period, ...]:
        """Every recording period, oldest first (`recording_periods`, or the dates as one)."""
        return _history("recording", self.recording_periods, self.recording_activated_on,
                        self.recording_cancelled_on)

    def nuisance_history(self) -> tuple[Period, ...]:
        return _history("nuisance", self.nuisance_periods, self.nuisance_activated_on,
                        self.nuisance_cancelled_on)


def _any_active(index: int, periods: Sequence[Period]) -> bool:
    return any(_active_in(index, p.activated_on, p.cancelled_on) for p in periods)


def _check_period(name: str, start: date | None, end: date | None) -> None:
    if start is None and end is not None:
        raise ValueError(f"{name} cancelled but never activated")
    if start is not None and end is not None and end <= start:
        raise ValueError(f"{name} cancelled on or before its activation")


@dataclass(frozen=True)
class LineItem:
    code: str
    description: str
    quantity: int
    unit_price: int
    amount: int

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "description": self.description,
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "amount": self.amount,
        }


@dataclass(frozen=True)
class Bill:
    contract: str
    month: str  # YYYY-MM
    items: tuple[LineItem, ...]
    subtotal: int  # JPY excluding tax
    tax: int
    total: int  # JPY including tax
    # YYYY-MM the price table this bill was computed with is in force from; None: the
    # defaults (`bill_in_force` sets it; `monthly_bill` alone is told a table, not its month).
    prices_from: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "contract": self.contract,
            "month": self.month,
            "currency": "JPY",
            "items": [item.to_json() for item in self.items],
            "subtotal": self.subtotal,
            "tax": self.tax,
            "total": self.total,
            "prices_from": self.prices_from,
        }


# Stable line-item codes for reports and the API.
ITEM_RECORDING_INITIAL = "recording-initial"
ITEM_RECORDING_MOBILE_CONTRACT = "recording-mobile-contract"
ITEM_RECORDING_MOBILE_HANDSET = "recording-mobile-handset"
ITEM_RECORDING_FIXED_CONTRACT = "recording-fixed-contract"
ITEM_RECORDING_FIXED_CHANNEL = "recording-fixed-channel"
ITEM_NUISANCE_PER_NUMBER = "nuisance-per-number"
ITEM_NUISANCE_PER_CONTRACT = "nuisance-per-contract"
ITEM_NUISANCE_UNIT_CHANGE = "nuisance-unit-change"


def _month_index(year: int, month: int) -> int:
    return year * 12 + (month - 1)


def _active_in(index: int, start: date | None, end: date | None) -> bool:
    """Active on at least one day of the month `index` (end is exclusive)."""
    if start is None or _month_index(start.year, start.month) > index:
        return False
    if end is None:
        return True
    # end exclusive: the last active day is end - 1 day, whose month is end's month unless
    # end is the 1st.
    last_active = _month_index(end.year, end.month) - (1 if end.day == 1 else 0)
    return index <= last_active


@dataclass(frozen=True)
class CountPeriod:
    """A count (channels, handsets, subscribed numbers) in force from `valid_from` until
    `valid_until` (exclusive; None: still in force)."""

    value: int
    valid_from: date
    valid_until: date | None = None

    def __post_init__(self) -> None:
        if type(self.value) is not int or self.value < 0:
            raise ValueError(f"count must be a non-negative int, got {self.value!r}")
        _check_period("count", self.valid_from, self.valid_until)


def count_in_month(periods: Sequence[CountPeriod], year: int, month: int) -> int | None:
    """The count billed for a month: the highest value in force on any day of it; a month
    before all periods takes the first one's value; None when there is no history at all
    (the caller then uses today's count)."""
    if not periods:
        return None
    index = _month_index(year, month)
    inside = [p.value for p in periods if _active_in(index, p.valid_from, p.valid_until)]
    if inside:
        return max(inside)
    first = min(periods, key=lambda p: p.valid_from)
    if index < _month_index(first.valid_from.year, first.valid_from.month):
        return first.value
    return 0  # after a history that ended (the thing counted is gone)


def _item(code: str, description: str, quantity: int, unit_price: int) -> LineItem:
    return LineItem(code, description, quantity, unit_price, quantity * unit_price)


def monthly_bill(
    contract: BillableContract, year: int, month: int, prices: PriceTable = PriceTable()
) -> Bill:
    """The bill of `contract` for calendar month `year`-`month` (BILL)."""
    if type(year) is not int or not 1 <= year <= 9999:
        raise ValueError(f"year out of range: {year!r}")
    if type(month) is not int or not 1 <= month <= 12:
        raise ValueError(f"month out of range: {month!r}")
    index = _month_index(year, month)
    items: list[LineItem] = []

    recording = contract.recording_history()
    activations = sum(1 for p in recording
                      if _month_index(p.activated_on.year, p.activated_on.month) == index)
    items.append(_item(ITEM_RECORDING_INITIAL, "Call recording: initial fee",
                       activations, prices.recording_initial))
    if _any_active(index, recording):
        # Source 000 note 1: recording is per contract, plus per handset number / per channel.
        if contract.kind is ContractKind.MOBILE:
            items.append(_item(ITEM_RECORDING_MOBILE_CONTRACT,
                               "Call recording (mobile): monthly, per contract",
                               1, prices.recording_mobile_contract))
            items.append(_item(ITEM_RECORDING_MOBILE_HANDSET,
                               "Call recording (mobile): monthly, per mobile number",
                               contract.handsets, prices.recording_mobile_per_handset))
        else:
            items.append(_item(ITEM_RECORDING_FIXED_CONTRACT,
                               "Call recording (fixed): monthly, per contract",
                               1, prices.recording_fixed_contract))
            items.append(_item(ITEM_RECORDING_FIXED_CHANNEL,
                               "Call recording (fixed): monthly, per channel",
                               contract.channels, prices.recording_fixed_per_channel))

    if _any_active(index, contract.nuisance_history()):
        if contract.nuisance_unit is None:
            raise ValueError(f"nuisance-call rejection is active in {year:04d}-{month:02d} "
                             "but no unit was given")
        if contract.nuisance_unit is NuisanceUnit.PER_NUMBER:
            items.append(_item(ITEM_NUISANCE_PER_NUMBER,
                               "Nuisance-call rejection: monthly, per number",
                               contract.nuisance_numbers, prices.nuisance_per_unit))
        else:
            items.append(_item(ITEM_NUISANCE_PER_CONTRACT,
                               "Nuisance-call rejection: monthly, per contract",
                               1, prices.nuisance_per_unit))

    changes = sum(1 for d in contract.nuisance_unit_changes
                  if _month_index(d.year, d.month) == index)
    items.append(_item(ITEM_NUISANCE_UNIT_CHANGE,
                       "Nuisance-call rejection: construction fee for a unit change",
                       changes, prices.nuisance_unit_change_fee))

    kept = tuple(item for item in items if item.quantity > 0)
    subtotal = sum(item.amount for item in kept)
    tax = subtotal * prices.tax_rate_percent // 100  # integer yen, rounded down
    return Bill(contract.code, f"{year:04d}-{month:02d}", kept, subtotal, tax, subtotal + tax)


def bill_in_force(contract: BillableContract, year: int, month: int,
                  prices: PricesInForce) -> Bill:
    """`monthly_bill` with the price table `prices` in force, the bill saying which one
    (`prices_from`): a bill read on its own (per contract, later) still tells what it was
    priced with. Only the table prices it; `prices` is not checked against the month (the
    caller picks it, `prices_in_month`)."""
    return replace(monthly_bill(contract, year, month, prices.table),
                   prices_from=prices.prices_from)
