"""Voiding a subscription period entered by mistake (BILL, ADM-1/2): the pure rules
(`domain.void`: only the latest period; a month before this one refused unless forced, as
prices are; the unit changes inside it go; the subscription goes back to the period before,
at the unit it ended with), the CLI's flags and the API's declaration. The database runs are
in tests/api/test_void_period_db.py."""

from __future__ import annotations

from datetime import date

import pytest

from callguard.api import resources, schema
from callguard.api.core import openapi
from callguard.cli import build_parser
from callguard.domain.billing import NuisanceUnit, Period, UnitChange
from callguard.domain.void import NoSuchPeriod, VoidPlan, VoidRefused, plan_void

PN, PC = NuisanceUnit.PER_NUMBER, NuisanceUnit.PER_CONTRACT
TODAY = date(2026, 7, 20)
MAY = Period(date(2026, 5, 10), date(2026, 6, 15), PN)  # ended in June
JULY = Period(date(2026, 7, 18), None, PC)  # entered this month by mistake


def test_the_latest_period_of_this_month_is_voided_back_to_the_one_before() -> None:
    changes = [UnitChange(date(2026, 5, 20), PC), UnitChange(date(2026, 7, 19), PN)]
    plan = plan_void("nuisance", [JULY, MAY], changes, JULY.activated_on, TODAY)
    # The subscription goes back to May's period at the unit it ended with (per-contract);
    # the change made inside July's period goes with it (no construction fee).
    assert plan == VoidPlan(JULY, MAY, PC, (date(2026, 7, 19),))


def test_a_first_period_leaves_no_subscription() -> None:
    rec = Period(date(2026, 7, 1))
    assert plan_void("recording", [rec], [], rec.activated_on, TODAY) == VoidPlan(
        rec, None, None, ())
    # A period beginning later (recording may be entered ahead) was never billed either.
    ahead = Period(date(2026, 9, 1))
    assert plan_void("recording", [ahead], [], ahead.activated_on, TODAY).restore is None


def test_only_the_latest_period_can_be_voided() -> None:
    with pytest.raises(VoidRefused, match=r"not the latest .* void the later one first"):
        plan_void("nuisance", [MAY, JULY], [], MAY.activated_on, TODAY, force_past=True)


def test_a_period_active_before_this_month_needs_force() -> None:
    """Its months may have been billed already (the rule `billing prices --from` keeps)."""
    with pytest.raises(VoidRefused) as refused:
        plan_void("nuisance", [MAY], [], MAY.activated_on, TODAY)
    message = str(refused.value)
    assert "before this month (2026-07)" in message
    assert "--force-past" in message and "force_past" in message and "\n" not in message
    assert plan_void("nuisance", [MAY], [], MAY.activated_on, TODAY, force_past=True).voided \
        == MAY
    # The first day of this month is this month: not refused.
    first = Period(date(2026, 7, 1), None, PN)
    assert plan_void("nuisance", [first], [], first.activated_on, TODAY).voided == first


def test_no_such_period_and_no_such_service() -> None:
    with pytest.raises(NoSuchPeriod, match="no nuisance period began on 2026-07-17"):
        plan_void("nuisance", [JULY], [], date(2026, 7, 17), TODAY)
    with pytest.raises(NoSuchPeriod):
        plan_void("recording", [], [], date(2026, 7, 17), TODAY)
    with pytest.raises(ValueError, match="service must be one of recording, nuisance"):
        plan_void("fax", [JULY], [], JULY.activated_on, TODAY)


def test_cli_flags() -> None:
    args = build_parser().parse_args(
        ["subscriptions", "void", "--contract", "F2", "--service", "nuisance", "--from",
         "2026-07-18", "--reason", "wrong contract", "--force-past", "--json"])
    assert (args.contract, args.service, args.activated_on, args.reason, args.force_past,
            args.json) == ("F2", "nuisance", date(2026, 7, 18), "wrong contract", True, True)
    plain = build_parser().parse_args(["subscriptions", "void", "--contract", "F2",
                                       "--service", "recording", "--from", "2026-07-18"])
    assert (plain.reason, plain.force_past) == ("", False)
    for bad in (["--service", "fax", "--from", "2026-07-18"],
                ["--service", "nuisance", "--from", "2026-13-01"],
                ["--service", "nuisance"]):
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args(["subscriptions", "void", "--contract", "F2", *bad])
        assert done.value.code == 2
    listing = build_parser().parse_args(["subscriptions", "voided", "--json", "--limit", "5"])
    assert (listing.contract, listing.limit, listing.json) == (None, 5, True)


def test_the_api_declares_void_for_operators_with_its_409() -> None:
    doc = openapi(resources.routes(), "callguard", "1")
    post = doc["paths"]["/api/v1/contracts/{code}/subscriptions/{service}/void"]["post"]
    assert {"401", "403", "404", "409", "400"} <= set(post["responses"])
    service = next(p for p in post["parameters"] if p["name"] == "service")
    assert service["schema"]["enum"] == ["recording", "nuisance"]
    assert doc["paths"]["/api/v1/voided-periods"]["get"]["operationId"] == "listVoidedPeriods"
    assert schema.validate({"activated_on": "2026-07-18"}, schema.VOID_SET) == {
        "activated_on": date(2026, 7, 18)}
    for bad in ({}, {"activated_on": "2026-07-18", "reason": "a\nb"},
                {"activated_on": "2026-07-18", "force_past": "yes"},
                {"activated_on": "2026-07-18", "by": "someone else"}):
        with pytest.raises(schema.SchemaError):
            schema.validate(bad, schema.VOID_SET)
