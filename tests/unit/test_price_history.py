"""Prices with an effective month (BILL): a month is billed with the price table in force on
its first day, so a price change never re-prices a month before the one it is set from (an
operator's complaint: raising the nuisance unit price re-priced bills already sent). The pure
selection (`domain.billing`)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callguard.domain.billing import (
    BEGINNING,
    ITEM_NUISANCE_PER_CONTRACT,
    PRICE_NAMES,
    BillableContract,
    ContractKind,
    NuisanceUnit,
    PriceChange,
    PricesInForce,
    PriceTable,
    month_start,
    monthly_bill,
    price_history,
    prices_in_month,
    prices_on,
)

AUG = date(2026, 8, 1)
JUL = date(2026, 7, 1)
NUISANCE_250_FROM_AUG = PriceChange(AUG, "nuisance_per_unit", 250)
TAX_12_FROM_JUL = PriceChange(JUL, "tax_rate_percent", 12)

F2 = BillableContract(code="F2", kind=ContractKind.FIXED, channels=2,
                      nuisance_unit=NuisanceUnit.PER_CONTRACT,
                      nuisance_activated_on=date(2026, 4, 15))


def table(changes: list[PriceChange], year: int, month: int) -> PriceTable:
    return prices_in_month(changes, year, month).table


# ---- the pure selection ---------------------------------------------------------------------
def test_without_a_change_every_month_is_billed_at_the_defaults() -> None:
    for year, month in ((1, 1), (2026, 7), (9999, 12)):
        assert prices_in_month([], year, month) == PricesInForce(None, PriceTable())
    assert price_history([]) == (PricesInForce(None, PriceTable()),)


def test_a_change_applies_from_its_month_on_and_never_before() -> None:
    """Nuisance unit price 200 -> 250 from August: July and every earlier month keep 200."""
    changes = [NUISANCE_250_FROM_AUG]
    assert table(changes, 2026, 7).nuisance_per_unit == 200
    assert prices_in_month(changes, 2026, 7).prices_from is None
    assert table(changes, 2026, 8).nuisance_per_unit == 250
    assert prices_in_month(changes, 2026, 8).prices_from == "2026-08"
    assert table(changes, 2027, 1) == PriceTable(nuisance_per_unit=250)
    assert prices_in_month(changes, 2027, 1).prices_from == "2026-08"


def test_a_month_is_billed_with_its_own_table() -> None:
    """Tax 10 % -> 12 % from July, the unit price 200 -> 250 from August: June's bill is
    the one sent, July's pays the new tax on the old price, August both."""
    changes = [NUISANCE_250_FROM_AUG, TAX_12_FROM_JUL]

    def bill(month: int) -> tuple[int, int, int, int]:
        b = monthly_bill(F2, 2026, month, table(changes, 2026, month))
        [item] = b.items
        assert item.code == ITEM_NUISANCE_PER_CONTRACT
        return item.unit_price, b.subtotal, b.tax, b.total

    assert bill(6) == (200, 200, 20, 220)
    assert bill(7) == (200, 200, 24, 224)
    assert bill(8) == (250, 250, 30, 280)


def test_each_price_keeps_its_latest_change_up_to_the_month() -> None:
    """Changes are per price: a later change of one price leaves the others as they were
    set, and a change of another price from an earlier month carries into later months."""
    changes = [TAX_12_FROM_JUL, NUISANCE_250_FROM_AUG,
               PriceChange(date(2026, 10, 1), "nuisance_per_unit", 300),
               PriceChange(date(2027, 1, 1), "tax_rate_percent", 10)]
    seen = {m: (t.tax_rate_percent, t.nuisance_per_unit) for m in range(6, 13)
            for t in [table(changes, 2026, m)]}
    assert seen == {6: (10, 200), 7: (12, 200), 8: (12, 250), 9: (12, 250), 10: (12, 300),
                    11: (12, 300), 12: (12, 300)}
    assert (table(changes, 2027, 1).tax_rate_percent,
            table(changes, 2027, 1).nuisance_per_unit) == (10, 300)


def test_the_history_lists_each_table_in_force_with_what_changed() -> None:
    history = price_history([NUISANCE_250_FROM_AUG, TAX_12_FROM_JUL,
                             PriceChange(AUG, "recording_initial", 3500)])
    assert [h.prices_from for h in history] == [None, "2026-07", "2026-08"]
    assert [h.changed for h in history] == [
        (), (("tax_rate_percent", 12),),
        (("recording_initial", 3500), ("nuisance_per_unit", 250))]  # PriceTable's order
    assert history[-1].table == PriceTable(recording_initial=3500, nuisance_per_unit=250,
                                           tax_rate_percent=12)
    assert history[-1].to_json() == {**asdict(history[-1].table), "prices_from": "2026-08"}


def test_a_change_from_the_beginning_replaces_the_defaults() -> None:
    """What the migration carries over: settings in force from the first month there is."""
    carried = [PriceChange(BEGINNING, "nuisance_unit_change_fee", 5500)]
    history = price_history(carried)
    assert [h.prices_from for h in history] == ["0001-01"]
    assert table(carried, 1, 1).nuisance_unit_change_fee == 5500
    assert table(carried, 2026, 7).nuisance_unit_change_fee == 5500


def test_prices_on_a_day_is_the_table_of_its_month() -> None:
    changes = [NUISANCE_250_FROM_AUG]
    assert prices_on(changes, date(2026, 7, 31)).table.nuisance_per_unit == 200
    assert prices_on(changes, date(2026, 8, 1)).table.nuisance_per_unit == 250
    assert month_start(date(2026, 8, 17)) == AUG


@pytest.mark.parametrize(("args", "match"), [
    ((date(2026, 8, 2), "nuisance_per_unit", 250), "first day of a month"),
    ((datetime(2026, 8, 1), "nuisance_per_unit", 250), "must be a date"),
    ((AUG, "vip_fee", 1), "unknown price"),
    ((AUG, "nuisance_per_unit", -1), "non-negative"),
    ((AUG, "tax_rate_percent", 101), "at most 100"),
    ((AUG, "recording_initial", 10_000_001), "at most 10,000,000"),
    ((AUG, "recording_initial", "3000"), "non-negative int"),
])
def test_a_change_outside_the_tables_rules_is_refused(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PriceChange(*args)


def test_one_price_changed_twice_from_one_month_is_refused() -> None:
    with pytest.raises(ValueError, match="changed twice from 2026-08"):
        price_history([NUISANCE_250_FROM_AUG, PriceChange(AUG, "nuisance_per_unit", 260)])


_MONTHS = st.builds(date, st.integers(2025, 2028), st.integers(1, 12), st.just(1))
_CHANGES = st.lists(st.builds(PriceChange, _MONTHS, st.sampled_from(PRICE_NAMES),
                              st.integers(0, 100)),
                    max_size=12, unique_by=lambda c: (c.effective_from, c.name))


@given(_CHANGES, st.builds(PriceChange, _MONTHS, st.sampled_from(PRICE_NAMES),
                           st.integers(0, 100)))
def test_a_new_change_never_reprices_an_earlier_month(changes: list[PriceChange],
                                                      new: PriceChange) -> None:
    """The complaint's invariant: whatever the history, adding a change from a month leaves
    every month before it billed as it was; from that month on, that price is the new one
    until its next change."""
    changes = [c for c in changes if (c.effective_from, c.name) != (new.effective_from, new.name)]
    after = [*changes, new]
    for year in (2025, 2026, 2027, 2028):
        for month in range(1, 13):
            first = date(year, month, 1)
            if first < new.effective_from:
                assert prices_in_month(after, year, month) == prices_in_month(changes, year,
                                                                              month)
            elif not any(c.name == new.name and new.effective_from < c.effective_from <= first
                         for c in changes):
                assert getattr(table(after, year, month), new.name) == new.value


@given(_CHANGES, st.randoms(use_true_random=False))
def test_the_order_changes_are_read_in_does_not_matter(changes: list[PriceChange],
                                                       rnd: Any) -> None:
    shuffled = list(changes)
    rnd.shuffle(shuffled)
    assert price_history(shuffled) == price_history(changes)
