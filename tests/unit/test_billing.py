"""Monthly bills (BILL-*, SPEC §5) for hand-built contracts and the reference site (SPEC §8)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callguard.domain.billing import (
    ITEM_NUISANCE_PER_CONTRACT,
    ITEM_NUISANCE_PER_NUMBER,
    ITEM_NUISANCE_UNIT_CHANGE,
    ITEM_RECORDING_FIXED_CHANNEL,
    ITEM_RECORDING_FIXED_CONTRACT,
    ITEM_RECORDING_INITIAL,
    ITEM_RECORDING_MOBILE_CONTRACT,
    ITEM_RECORDING_MOBILE_HANDSET,
    Bill,
    BillableContract,
    ContractKind,
    LineItem,
    NuisanceUnit,
    PriceTable,
    monthly_bill,
)

ON = date(2026, 4, 15)  # the reference site is provisioned mid-month: no proration either way

# SPEC §8: everything active from the day of provisioning.
F1 = BillableContract(  # f1-a 2 ch + f1-b 1 ch; recording; NCR per number on 2 numbers
    code="F1",
    kind=ContractKind.FIXED,
    recording_activated_on=ON,
    channels=3,
    nuisance_unit=NuisanceUnit.PER_NUMBER,
    nuisance_numbers=2,
    nuisance_activated_on=ON,
)
F2 = BillableContract(  # no recording; NCR per contract
    code="F2",
    kind=ContractKind.FIXED,
    channels=2,
    nuisance_unit=NuisanceUnit.PER_CONTRACT,
    nuisance_activated_on=ON,
)
M1 = BillableContract(  # 2 handsets; recording; no NCR
    code="M1", kind=ContractKind.MOBILE, recording_activated_on=ON, handsets=2
)


def amounts(bill: Bill) -> dict[str, int]:
    return {item.code: item.amount for item in bill.items}


# --- the reference site (SPEC §8) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("contract", "subtotal", "total"),
    [(F1, 4000, 4400), (F2, 200, 220), (M1, 1500, 1650)],
)
@pytest.mark.parametrize(("year", "month"), [(2026, 5), (2026, 12), (2027, 1)])
def test_reference_site_after_activation(
    contract: BillableContract, subtotal: int, total: int, year: int, month: int
) -> None:
    """BILL: F1 4,000 / F2 200 / M1 1,500 excluding tax, 10 % on top (source 004's 220 is
    200 with tax)."""
    bill = monthly_bill(contract, year, month)
    assert (bill.subtotal, bill.tax, bill.total) == (subtotal, total - subtotal, total)


def test_reference_f1_activation_month() -> None:
    """BILL: initial 3,000 + 900 + 3 × 900 + 2 × 200 = 7,000 in the activation month."""
    bill = monthly_bill(F1, 2026, 4)
    assert bill.month == "2026-04"
    assert amounts(bill) == {
        ITEM_RECORDING_INITIAL: 3000,
        ITEM_RECORDING_FIXED_CONTRACT: 900,
        ITEM_RECORDING_FIXED_CHANNEL: 2700,
        ITEM_NUISANCE_PER_NUMBER: 400,
    }
    assert (bill.subtotal, bill.tax, bill.total) == (7000, 700, 7700)


def test_reference_m1_and_f2_activation_month() -> None:
    assert monthly_bill(M1, 2026, 4).subtotal == 4500  # 3,000 + 1,500
    assert monthly_bill(F2, 2026, 4).subtotal == 200  # no recording: no initial fee


@pytest.mark.parametrize("contract", [F1, F2, M1])
@pytest.mark.parametrize(("year", "month"), [(2026, 3), (2025, 4), (2020, 1)])
def test_before_activation_is_empty(contract: BillableContract, year: int, month: int) -> None:
    """Nothing is billed before a service is activated."""
    bill = monthly_bill(contract, year, month)
    assert bill.items == ()
    assert (bill.subtotal, bill.tax, bill.total) == (0, 0, 0)


# --- each line item ---------------------------------------------------------------------------


def test_recording_initial_fee_only_in_activation_month() -> None:
    """BILL: 3,000 per contract, once."""
    first = monthly_bill(M1, 2026, 4)
    assert first.items[0] == LineItem(
        ITEM_RECORDING_INITIAL, "Call recording: initial fee", 1, 3000, 3000
    )
    assert ITEM_RECORDING_INITIAL not in amounts(monthly_bill(M1, 2026, 5))
    assert ITEM_RECORDING_INITIAL not in amounts(monthly_bill(M1, 2027, 4))


def test_recording_mobile_items() -> None:
    """BILL: mobile 500 per contract + 500 per mobile number."""
    items = {item.code: item for item in monthly_bill(M1, 2026, 6).items}
    assert items[ITEM_RECORDING_MOBILE_CONTRACT].quantity == 1
    assert items[ITEM_RECORDING_MOBILE_CONTRACT].unit_price == 500
    assert items[ITEM_RECORDING_MOBILE_CONTRACT].amount == 500
    assert items[ITEM_RECORDING_MOBILE_HANDSET].quantity == 2
    assert items[ITEM_RECORDING_MOBILE_HANDSET].unit_price == 500
    assert items[ITEM_RECORDING_MOBILE_HANDSET].amount == 1000
    assert set(items) == {ITEM_RECORDING_MOBILE_CONTRACT, ITEM_RECORDING_MOBILE_HANDSET}


def test_recording_fixed_items() -> None:
    """BILL: fixed 900 per contract + 900 per channel (channels summed over lines)."""
    items = {item.code: item for item in monthly_bill(F1, 2026, 6).items}
    assert (items[ITEM_RECORDING_FIXED_CONTRACT].quantity,
            items[ITEM_RECORDING_FIXED_CONTRACT].amount) == (1, 900)
    assert (items[ITEM_RECORDING_FIXED_CHANNEL].quantity,
            items[ITEM_RECORDING_FIXED_CHANNEL].unit_price,
            items[ITEM_RECORDING_FIXED_CHANNEL].amount) == (3, 900, 2700)


def test_nuisance_per_number() -> None:
    """BILL: 200 per subscribed number."""
    item = {i.code: i for i in monthly_bill(F1, 2026, 6).items}[ITEM_NUISANCE_PER_NUMBER]
    assert (item.quantity, item.unit_price, item.amount) == (2, 200, 400)
    five = replace(F1, nuisance_numbers=5)
    assert amounts(monthly_bill(five, 2026, 6))[ITEM_NUISANCE_PER_NUMBER] == 1000


def test_nuisance_per_contract_ignores_number_count() -> None:
    """BILL: 200 per contract whatever the number of numbers."""
    bill = monthly_bill(F2, 2026, 6)
    assert bill.items == (
        LineItem(ITEM_NUISANCE_PER_CONTRACT, "Nuisance-call rejection: monthly, per contract",
                 1, 200, 200),
    )


def test_unit_change_month_has_construction_fee() -> None:
    """BILL / NCR-UNIT-1: a unit change costs the configurable construction fee, that month."""
    changed = replace(F2, nuisance_unit_changes=(date(2026, 7, 10),))
    july = monthly_bill(changed, 2026, 7)
    assert amounts(july) == {ITEM_NUISANCE_PER_CONTRACT: 200, ITEM_NUISANCE_UNIT_CHANGE: 2000}
    assert (july.subtotal, july.tax, july.total) == (2200, 220, 2420)
    assert ITEM_NUISANCE_UNIT_CHANGE not in amounts(monthly_bill(changed, 2026, 6))
    assert ITEM_NUISANCE_UNIT_CHANGE not in amounts(monthly_bill(changed, 2026, 8))


def test_two_unit_changes_in_one_month_cost_two_fees() -> None:
    changed = replace(F2, nuisance_unit_changes=(date(2026, 7, 1), date(2026, 7, 31),
                                                 date(2027, 7, 1)))
    item = {i.code: i for i in monthly_bill(changed, 2026, 7).items}[ITEM_NUISANCE_UNIT_CHANGE]
    assert (item.quantity, item.unit_price, item.amount) == (2, 2000, 4000)


def test_construction_fee_is_configurable() -> None:
    changed = replace(F2, nuisance_unit_changes=(date(2026, 7, 10),))
    prices = PriceTable(nuisance_unit_change_fee=5500)
    assert amounts(monthly_bill(changed, 2026, 7, prices))[ITEM_NUISANCE_UNIT_CHANGE] == 5500


def test_price_table_defaults() -> None:
    """BILL: the figures of SPEC §5 / source 000."""
    p = PriceTable()
    assert (p.recording_initial, p.recording_mobile_contract, p.recording_mobile_per_handset,
            p.recording_fixed_contract, p.recording_fixed_per_channel, p.nuisance_per_unit,
            p.tax_rate_percent) == (3000, 500, 500, 900, 900, 200, 10)


def test_custom_prices_apply_everywhere() -> None:
    prices = PriceTable(recording_fixed_contract=1000, recording_fixed_per_channel=100,
                        nuisance_per_unit=300, tax_rate_percent=8)
    bill = monthly_bill(F1, 2026, 6, prices)
    assert bill.subtotal == 1000 + 300 + 600
    assert bill.tax == 1900 * 8 // 100


# --- periods ----------------------------------------------------------------------------------


def test_no_proration_in_activation_month() -> None:
    """Activated on the last day of the month: the full monthly fee is still charged."""
    late = replace(M1, recording_activated_on=date(2026, 4, 30))
    assert monthly_bill(late, 2026, 4).subtotal == 3000 + 1500


def test_cancellation_bills_through_last_active_month() -> None:
    """cancelled_on is the first inactive day: that month is billed only if a day was active."""
    mid = replace(M1, recording_cancelled_on=date(2026, 9, 15))
    assert monthly_bill(mid, 2026, 9).subtotal == 1500  # full month, no proration
    assert monthly_bill(mid, 2026, 10).items == ()
    first = replace(M1, recording_cancelled_on=date(2026, 9, 1))
    assert monthly_bill(first, 2026, 8).subtotal == 1500
    assert monthly_bill(first, 2026, 9).items == ()


def test_nuisance_periods_are_independent_of_recording() -> None:
    later = replace(F1, nuisance_activated_on=date(2026, 6, 1),
                    nuisance_cancelled_on=date(2026, 8, 1))
    assert ITEM_NUISANCE_PER_NUMBER not in amounts(monthly_bill(later, 2026, 5))
    assert ITEM_NUISANCE_PER_NUMBER in amounts(monthly_bill(later, 2026, 6))
    assert ITEM_NUISANCE_PER_NUMBER in amounts(monthly_bill(later, 2026, 7))
    assert ITEM_NUISANCE_PER_NUMBER not in amounts(monthly_bill(later, 2026, 8))
    assert monthly_bill(later, 2026, 8).subtotal == 3600  # recording goes on


def test_zero_quantity_lines_are_left_out() -> None:
    no_handsets = replace(M1, handsets=0)
    assert amounts(monthly_bill(no_handsets, 2026, 6)) == {ITEM_RECORDING_MOBILE_CONTRACT: 500}


# --- tax and JSON -----------------------------------------------------------------------------


@pytest.mark.parametrize(("subtotal", "tax"), [(220, 22), (1, 0), (9, 0), (19, 1), (4040, 404)])
def test_tax_rounds_down(subtotal: int, tax: int) -> None:
    """Tax = floor(subtotal × 10 / 100), integer yen."""
    prices = PriceTable(nuisance_per_unit=subtotal)
    bill = monthly_bill(F2, 2026, 6, prices)
    assert (bill.subtotal, bill.tax, bill.total) == (subtotal, tax, subtotal + tax)


def test_to_json() -> None:
    assert monthly_bill(F2, 2026, 6).to_json() == {
        "contract": "F2",
        "month": "2026-06",
        "currency": "JPY",
        "items": [{
            "code": ITEM_NUISANCE_PER_CONTRACT,
            "description": "Nuisance-call rejection: monthly, per contract",
            "quantity": 1,
            "unit_price": 200,
            "amount": 200,
        }],
        "subtotal": 200,
        "tax": 20,
        "total": 220,
        "prices_from": None,  # monthly_bill alone is told a table, not its month
    }


def test_month_is_zero_padded() -> None:
    assert monthly_bill(F1, 2026, 11).month == "2026-11"
    assert monthly_bill(F1, 2027, 1).month == "2027-01"


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(("year", "month"), [(2026, 0), (2026, 13), (0, 1), (10000, 1)])
def test_bad_month_is_refused(year: int, month: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        monthly_bill(F1, year, month)


def test_plain_strings_are_coerced() -> None:
    """The DB stores kind and unit as text; they become the enums (or fail)."""
    c = BillableContract(code="X", kind="fixed", nuisance_unit="per-contract",  # type: ignore[arg-type]
                         nuisance_activated_on=ON)
    assert c.kind is ContractKind.FIXED
    assert c.nuisance_unit is NuisanceUnit.PER_CONTRACT
    with pytest.raises(ValueError):
        BillableContract(code="X", kind="landline")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"code": ""},
        {"channels": -1},
        {"handsets": 1},  # a fixed contract
        {"nuisance_numbers": 0},  # per number with no number
        {"nuisance_activated_on": None},
        {"recording_cancelled_on": ON},  # cancelled on activation day
        {"recording_activated_on": None, "recording_cancelled_on": ON},
        {"nuisance_unit": None},  # numbers and a start date without a unit
    ],
)
def test_inconsistent_contract_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        replace(F1, **changes)


def test_mobile_with_channels_is_refused() -> None:
    with pytest.raises(ValueError):
        replace(M1, channels=1)


def test_per_contract_with_numbers_is_refused() -> None:
    with pytest.raises(ValueError):
        replace(F2, nuisance_numbers=2)


def test_negative_price_is_refused() -> None:
    with pytest.raises(ValueError):
        PriceTable(nuisance_per_unit=-1)


@given(
    year=st.integers(2020, 2035),
    month=st.integers(1, 12),
    handsets=st.integers(0, 500),
    changes=st.lists(st.dates(date(2020, 1, 1), date(2035, 12, 31)), max_size=4),
)
def test_bill_arithmetic_holds(
    year: int, month: int, handsets: int, changes: list[date]
) -> None:
    """Every bill adds up: amount = qty × price, subtotal = Σ, total = subtotal + floor tax."""
    contract = replace(M1, handsets=handsets, nuisance_unit=NuisanceUnit.PER_CONTRACT,
                       nuisance_activated_on=ON, nuisance_unit_changes=tuple(changes))
    bill = monthly_bill(contract, year, month)
    assert all(i.amount == i.quantity * i.unit_price and i.quantity > 0 for i in bill.items)
    assert bill.subtotal == sum(i.amount for i in bill.items)
    assert bill.tax == bill.subtotal // 10
    assert bill.total == bill.subtotal + bill.tax


# --- counts in force in the month billed (BILL: a past month from what was in force then) ---


def test_count_in_month_follows_the_periods() -> None:
    from callguard.domain.billing import CountPeriod, count_in_month
    periods = [CountPeriod(2, date(2026, 1, 10), date(2026, 7, 15)),
               CountPeriod(4, date(2026, 7, 15), None)]
    assert count_in_month(periods, 2026, 3) == 2
    assert count_in_month(periods, 2026, 7) == 4  # both in force in July: the month in full
    assert count_in_month(periods, 2026, 9) == 4
    assert count_in_month(periods, 2025, 12) == 2  # before the history: its first value
    assert count_in_month([], 2026, 3) is None
    assert count_in_month([CountPeriod(3, date(2026, 1, 1), date(2026, 2, 1))], 2026, 5) == 0
    with pytest.raises(ValueError):
        CountPeriod(-1, date(2026, 1, 1))
    with pytest.raises(ValueError):
        CountPeriod(1, date(2026, 2, 1), date(2026, 1, 1))


# --- a subscription's unit and numbers are asked for only in its active months (BILL) -------


def test_nuisance_not_yet_active_needs_no_unit_nor_numbers() -> None:
    """Recording from 20 January, per-number nuisance from 5 March: January and February are
    billed from recording alone; the (then unsubscribed) numbers are not asked for."""
    rec = replace(F1, recording_activated_on=date(2026, 1, 20), channels=1,
                  nuisance_unit=None, nuisance_numbers=0,
                  nuisance_activated_on=date(2026, 3, 5))
    assert amounts(monthly_bill(rec, 2026, 1)) == {ITEM_RECORDING_INITIAL: 3000,
                                                   ITEM_RECORDING_FIXED_CONTRACT: 900,
                                                   ITEM_RECORDING_FIXED_CHANNEL: 900}
    assert monthly_bill(rec, 2026, 2).subtotal == 1800


def test_nuisance_ended_needs_no_unit_nor_numbers() -> None:
    """Both services cancelled on 1 July, numbers deleted afterwards: August on bills 0."""
    gone = replace(F1, recording_cancelled_on=date(2026, 7, 1), channels=0,
                   nuisance_unit=None, nuisance_numbers=0,
                   nuisance_cancelled_on=date(2026, 7, 1))
    assert monthly_bill(gone, 2026, 8).items == ()
    assert monthly_bill(gone, 2031, 1).items == ()


def test_nuisance_active_without_a_unit_is_refused() -> None:
    """A month in which the subscription is active must say how it is billed."""
    no_unit = replace(F1, nuisance_unit=None, nuisance_numbers=0)
    assert monthly_bill(no_unit, 2026, 3).items == ()  # before activation: nothing asked
    with pytest.raises(ValueError, match="no unit"):
        monthly_bill(no_unit, 2026, 4)


def test_active_in_month() -> None:
    """The rule every period is billed by: active on at least one day of the month."""
    from callguard.domain.billing import _active_in, _month_index

    def active_in_month(start: date | None, end: date | None, year: int, month: int) -> bool:
        return _active_in(_month_index(year, month), start, end)

    start, end = date(2026, 3, 5), date(2026, 7, 1)
    assert [active_in_month(start, end, 2026, m) for m in range(2, 8)] == [
        False, True, True, True, True, False]
    assert active_in_month(start, None, 2099, 12)
    assert not active_in_month(None, None, 2026, 3)


def test_report_totals_are_the_months_not_the_pages() -> None:
    """BILL, ADM-2: `subtotal`/`tax`/`total` keep their names and are the month's; the page's
    own sums are `page_*`."""
    from callguard.db.billing_repo import Report
    page = [monthly_bill(F2, 2026, 6)]
    rep = Report("2026-06", page, [], 1, subtotal=5900, tax=590, total=6490, contracts=3)
    data = rep.to_json()
    assert (data["subtotal"], data["tax"], data["total"]) == (5900, 590, 6490)
    assert (data["page_subtotal"], data["page_tax"], data["page_total"]) == (200, 20, 220)
    assert (data["contracts"], data["unbilled"], data["next_offset"]) == (3, 0, 1)


# --- one set of price bounds for the CLI and the API (BILL, ADM-1/2) ------------------------


@pytest.mark.parametrize(("name", "top"), [("tax_rate_percent", 100),
                                           ("recording_initial", 10_000_000),
                                           ("nuisance_unit_change_fee", 10_000_000)])
def test_price_bounds_are_the_apis(name: str, top: int) -> None:
    """BILL, ADM-1/2: the CLI's `billing prices --set` goes through PriceTable, so it refuses
    what the API's schema refuses, and accepts what it accepts."""
    from callguard.api import schema
    from callguard.domain.billing import price_maximum

    assert PriceTable(**{name: top}) == PriceTable(**{name: top})
    with pytest.raises(ValueError, match="at most"):
        PriceTable(**{name: top + 1})
    assert schema.PRICES_SET["properties"][name]["maximum"] == price_maximum(name) == top


def test_every_price_has_the_same_bound_in_the_api() -> None:
    from callguard.api import schema
    from callguard.db import billing_repo
    from callguard.domain.billing import price_maximum

    for name in billing_repo.PRICE_FIELDS:
        assert schema.PRICES_SET["properties"][name]["maximum"] == price_maximum(name)
    with pytest.raises(ValueError):
        PriceTable(tax_rate_percent=500)


# --- every subscription period is billed (BILL: a past month from what was in force then) ---


def _periods_contract(**kw: Any) -> BillableContract:
    from callguard.domain.billing import Period
    return BillableContract(code="R1", kind=ContractKind.MOBILE, handsets=1,
                            recording_periods=(Period(date(2026, 1, 10), date(2026, 4, 1)),
                                               Period(date(2026, 6, 1))), **kw)


def test_resubscription_keeps_the_earlier_period_and_its_initial_fee() -> None:
    """Recording 10 Jan, cancelled 1 Apr, subscribed again 1 Jun: January bills its initial
    fee and January-March their monthly fee as before; June is a new application with a new
    initial fee; April and May bill nothing."""
    c = _periods_contract()
    months = {m: amounts(monthly_bill(c, 2026, m)) for m in range(1, 8)}
    assert months[1] == {ITEM_RECORDING_INITIAL: 3000, ITEM_RECORDING_MOBILE_CONTRACT: 500,
                         ITEM_RECORDING_MOBILE_HANDSET: 500}
    assert months[2] == months[3] == {ITEM_RECORDING_MOBILE_CONTRACT: 500,
                                      ITEM_RECORDING_MOBILE_HANDSET: 500}
    assert months[4] == months[5] == {}
    assert months[6] == months[1]
    assert months[7] == months[2]


def test_two_activations_in_one_month_are_two_initial_fees_and_one_monthly_fee() -> None:
    from callguard.domain.billing import Period
    c = BillableContract(code="R2", kind=ContractKind.FIXED, channels=1, recording_periods=(
        Period(date(2026, 3, 1), date(2026, 3, 10)), Period(date(2026, 3, 20))))
    items = {i.code: i for i in monthly_bill(c, 2026, 3).items}
    assert (items[ITEM_RECORDING_INITIAL].quantity, items[ITEM_RECORDING_INITIAL].amount) == (
        2, 6000)
    assert items[ITEM_RECORDING_FIXED_CONTRACT].quantity == 1


def test_periods_must_not_overlap_and_agree_with_the_dates() -> None:
    from callguard.domain.billing import Period
    with pytest.raises(ValueError, match="overlap"):
        BillableContract(code="R3", kind=ContractKind.MOBILE, recording_periods=(
            Period(date(2026, 1, 10)), Period(date(2026, 6, 1))))
    with pytest.raises(ValueError, match="overlap"):
        BillableContract(code="R3", kind=ContractKind.MOBILE, recording_periods=(
            Period(date(2026, 1, 10), date(2026, 7, 1)), Period(date(2026, 6, 1))))
    with pytest.raises(ValueError, match="disagree"):
        _periods_contract(recording_activated_on=date(2026, 1, 10))
    ok = _periods_contract(recording_activated_on=date(2026, 6, 1))  # the last period
    assert ok.recording_history()[0].activated_on == date(2026, 1, 10)
    with pytest.raises(ValueError):
        Period(date(2026, 6, 1), date(2026, 6, 1))


def test_nuisance_unit_in_month_follows_each_period() -> None:
    """Per number 10 Jan - 1 Apr, then per contract again from 1 Jun with a change to per
    number on 15 Aug: the old period bills at the old unit; a change inside one period does
    not leak into another."""
    from callguard.domain.billing import Period, UnitChange, nuisance_unit_in_month
    periods = [Period(date(2026, 1, 10), date(2026, 4, 1), NuisanceUnit.PER_NUMBER),
               Period(date(2026, 6, 1), None, NuisanceUnit.PER_CONTRACT)]
    changes = [UnitChange(date(2026, 8, 15), NuisanceUnit.PER_NUMBER)]
    units = [nuisance_unit_in_month(periods, changes, 2026, m) for m in range(1, 10)]
    assert units == [NuisanceUnit.PER_NUMBER] * 3 + [None, None] + [
        NuisanceUnit.PER_CONTRACT] * 2 + [NuisanceUnit.PER_NUMBER] * 2
    inside_old = [UnitChange(date(2026, 2, 1), NuisanceUnit.PER_CONTRACT)]
    assert nuisance_unit_in_month(periods, inside_old, 2026, 1) is NuisanceUnit.PER_NUMBER
    assert nuisance_unit_in_month(periods, inside_old, 2026, 3) is NuisanceUnit.PER_CONTRACT
    assert nuisance_unit_in_month(periods, inside_old, 2026, 6) is NuisanceUnit.PER_CONTRACT
    assert nuisance_unit_in_month([], changes, 2026, 9) is None


def test_resubscribed_nuisance_bills_the_old_period_at_its_unit() -> None:
    from callguard.domain.billing import Period
    periods = (Period(date(2026, 1, 10), date(2026, 4, 1), NuisanceUnit.PER_NUMBER),
               Period(date(2026, 6, 1), None, NuisanceUnit.PER_CONTRACT))
    feb = BillableContract(code="N1", kind=ContractKind.FIXED, nuisance_periods=periods,
                           nuisance_unit=NuisanceUnit.PER_NUMBER, nuisance_numbers=2)
    assert amounts(monthly_bill(feb, 2026, 2)) == {ITEM_NUISANCE_PER_NUMBER: 400}
    jun = replace(feb, nuisance_unit=NuisanceUnit.PER_CONTRACT, nuisance_numbers=0)
    assert amounts(monthly_bill(jun, 2026, 6)) == {ITEM_NUISANCE_PER_CONTRACT: 200}
    may = replace(feb, nuisance_unit=None, nuisance_numbers=0)
    assert monthly_bill(may, 2026, 5).items == ()
