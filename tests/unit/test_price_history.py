"""Prices with an effective month (BILL, ADM-1/2): a month is billed with the price table in
force on its first day, so a price change never re-prices a month before the one it is set
from (an operator's complaint: raising the nuisance unit price re-priced bills already sent).
The pure selection (`domain.billing`), the service's past-month guard, the CLI's and the API's
input checks, and migration price_history's reading of the old settings."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import date, datetime
from types import ModuleType
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from callguard.api import schema
from callguard.cli import CliError, build_parser
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
from callguard.services import base, billing
from tests.migration_module import load_migration

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


# ---- the service's guard: a month before this one needs force_past (no database) -----------
class _NoSession:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the database was used: {name}")


NO_DB = cast(Session, _NoSession())
TODAY = date(2026, 7, 20)


def test_a_past_month_is_refused_without_force() -> None:
    with pytest.raises(base.Conflict) as refused:
        billing.set_prices(NO_DB, {"nuisance_per_unit": 250}, TODAY, "2026-06")
    message = str(refused.value)
    assert "2026-06 is before this month (2026-07)" in message
    assert "--force-past" in message and "force_past" in message
    assert "\n" not in message
    assert refused.value.status == 409


@pytest.mark.parametrize(("values", "month", "match"), [
    ({}, None, "at least one price"),
    ({"nuisance_per_unit": 250}, "2026-13", "YYYY-MM"),
    ({"nuisance_per_unit": 250}, "July", "YYYY-MM"),
])
def test_bad_input_is_invalid(values: dict[str, int], month: str | None, match: str) -> None:
    with pytest.raises(base.Invalid, match=match):
        billing.set_prices(NO_DB, values, TODAY, month)


def test_a_bad_month_to_show_is_invalid() -> None:
    with pytest.raises(base.Invalid, match="YYYY-MM"):
        billing.prices(NO_DB, TODAY, "2026-7")


def test_a_bad_value_is_said_before_a_past_month() -> None:
    with pytest.raises(base.Invalid, match="at most 100"):
        billing.set_prices(NO_DB, {"tax_rate_percent": 500}, TODAY, "2026-06")
    with pytest.raises(base.Invalid, match="unknown price"):
        billing.set_prices(NO_DB, {"vip_fee": 1}, TODAY)


# ---- the CLI's flags (fixed interface: extended only) ---------------------------------------
def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["billing", *argv])


def test_prices_flags_parse() -> None:
    args = _args("prices", "--set", "nuisance_per_unit=250", "--from", "2026-08",
                 "--force-past", "--json")
    assert (args.set, args.from_month, args.force_past, args.json) == (
        [("nuisance_per_unit", 250)], "2026-08", True, True)
    plain = _args("prices")
    assert (plain.set, plain.from_month, plain.force_past, plain.month) == (
        None, None, False, None)
    assert _args("prices", "--month", "2026-03").month == "2026-03"
    history = _args("price-history", "--json", "--limit", "5")
    assert (history.json, history.limit, history.offset) == (True, 5, 0)


def test_a_bad_from_month_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as done:
        _args("prices", "--set", "nuisance_per_unit=250", "--from", "2026-13")
    assert done.value.code == 2


@pytest.mark.parametrize("argv", [("prices", "--from", "2026-08"),
                                  ("prices", "--force-past"),
                                  ("prices", "--set", "tax_rate_percent=12", "--month",
                                   "2026-08")])
def test_flags_without_their_partner_are_refused_before_the_database(argv: tuple[str, ...]
                                                                     ) -> None:
    args = _args(*argv)
    with pytest.raises(CliError) as refused:
        args.handler(args)
    assert refused.value.code == 2
    assert "\n" not in str(refused.value)


# ---- the API's body ---------------------------------------------------------------------------
@pytest.mark.parametrize("body", [{"nuisance_per_unit": 250},
                                  {"nuisance_per_unit": 250, "from": "2026-08"},
                                  {"tax_rate_percent": 12, "from": "2026-06",
                                   "force_past": True}])
def test_the_api_takes_from_and_force_past(body: dict[str, Any]) -> None:
    assert schema.validate(body, schema.PRICES_SET) == body


@pytest.mark.parametrize(("body", "match"), [
    ({}, "at least one price"),
    ({"from": "2026-08"}, "at least one price"),
    ({"nuisance_per_unit": 250, "from": "2026-13"}, "body.from has an invalid format"),
    ({"nuisance_per_unit": 250, "from": "0000-01"}, "body.from has an invalid format"),
    ({"nuisance_per_unit": 250, "force_past": "yes"}, "body.force_past must be boolean"),
    ({"nuisance_per_unit": 250, "until": "2026-09"}, "unknown field(s) until"),
])
def test_the_api_refuses_a_bad_body_with_a_message(body: dict[str, Any], match: str) -> None:
    with pytest.raises(schema.SchemaError, match=match.replace("(", r"\(").replace(")", r"\)")):
        schema.validate(body, schema.PRICES_SET)


def test_the_api_documents_prices_from() -> None:
    for shape in (schema.PRICES, schema.PRICE_VERSION):
        assert "prices_from" in shape["required"]
        assert set(PRICE_NAMES) <= set(shape["required"])  # every old field still there
    assert "prices_from" in schema.BILLING_REPORT["properties"]


# ---- migration price_history: the old settings as the table in force from the beginning ----
def _migration() -> ModuleType:
    return load_migration("0015_price_history.py")


def test_the_migration_reads_the_settings_as_billing_did() -> None:
    m = _migration()
    assert (m.revision, m.down_revision) == ("price_history", "subscription_periods")
    assert set(m.PRICE_NAMES) <= set(PRICE_NAMES)  # it carries prices billing knows
    assert m._carried_over([("price.nuisance_unit_change_fee", "5500"),
                            ("price.tax_rate_percent", "100")]) == [
        {"name": "nuisance_unit_change_fee", "value": 5500},
        {"name": "tax_rate_percent", "value": 100}]


@pytest.mark.parametrize(("key", "value"), [("price.recording_initial", "lots"),
                                            ("price.tax_rate_percent", "101"),
                                            ("price.nuisance_per_unit", "-1"),
                                            ("price.recording_initial", "10000001")])
def test_the_migration_stops_on_a_setting_that_is_no_price(key: str, value: str) -> None:
    with pytest.raises(RuntimeError, match=f"site setting {key}="):
        _migration()._carried_over([(key, value)])


def test_the_downgrade_puts_back_the_prices_in_force_this_month_in_tokyo(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Not each price's latest row (a change dated in a later month would bill every month,
    past ones included, at a price not yet in force: BILL). The real run: tests/api/
    test_price_history_db.py."""
    m = _migration()
    executed: list[str] = []

    class Bind:
        def execute(self, statement: object, *args: object) -> None:
            executed.append(str(statement))

    class Op:
        def get_bind(self) -> Bind:
            return Bind()

        def drop_table(self, name: str) -> None:
            executed.append(f"DROP {name}")

    monkeypatch.setattr(m, "op", Op())
    m.downgrade()
    insert, drop = executed
    assert " ".join(insert.split()).count(
        "AND effective_from <= date_trunc('month', (now() AT TIME ZONE 'Asia/Tokyo'))::date "
        "ORDER BY name, effective_from DESC") == 1
    assert drop == "DROP price_history"
