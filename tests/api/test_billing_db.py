"""Billing from the database (BILL-*, SPEC §5/§8): the DB → BillableContract mapping for every
line item, the reference site's figures, the unit read back through the change history, the
configurable construction fee, and the same report over the API and the CLI."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callguard.config import Settings
from callguard.db import billing_repo, nuisance_repo
from callguard.db.models import (
    Contract,
    NuisanceSubscription,
    NuisanceUnitChange,
    Number,
    PriceHistory,
    RecordingSubscription,
    SiteSetting,
)
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
    ContractKind,
    NuisanceUnit,
    PriceTable,
    month_start,
)
from callguard.services import (
    base,
    billing,
    contracts,
    endpoints,
    nuisance,
    numbers,
    subscriptions,
)
from tests.api.conftest import PROVISIONED, Client
from tests.isolated_db import cli

TODAY = date(2026, 12, 1)  # the services' clock (issue #15): a fixed Tokyo day


def bill(s: Session, code: str, month: str) -> Bill:
    rep = billing_repo.report(s, month, code)
    assert rep.errors == [], rep.errors
    [b] = rep.bills
    return b


def items(b: Bill) -> dict[str, tuple[int, int, int]]:
    return {i.code: (i.quantity, i.unit_price, i.amount) for i in b.items}


# ---- the mapping --------------------------------------------------------------------------
def test_reference_site_maps_to_billable_contracts(s: Session) -> None:
    """Handsets = native numbers of a mobile contract; channels = sum over its lines;
    per-number counts the subscribed numbers; dates come from the subscriptions."""
    by_code = {c.code: c for c in s.scalars(select(Contract))}
    f1 = billing_repo.billable(s, by_code["F1"], 2026, 5)
    assert (f1.kind, f1.channels, f1.handsets) == (ContractKind.FIXED, 3, 0)
    assert (f1.recording_activated_on, f1.recording_cancelled_on) == (PROVISIONED, None)
    assert (f1.nuisance_unit, f1.nuisance_numbers, f1.nuisance_activated_on) == (
        NuisanceUnit.PER_NUMBER, 2, PROVISIONED)
    f2 = billing_repo.billable(s, by_code["F2"], 2026, 5)
    assert (f2.recording_activated_on, f2.nuisance_unit, f2.nuisance_numbers) == (
        None, NuisanceUnit.PER_CONTRACT, 0)
    m1 = billing_repo.billable(s, by_code["M1"], 2026, 5)
    assert (m1.kind, m1.handsets, m1.channels, m1.nuisance_unit) == (
        ContractKind.MOBILE, 2, 0, None)


@pytest.mark.parametrize("month", ["2026-05", "2026-06", "2027-01", "2030-12"])
def test_reference_site_after_its_provisioning_month(s: Session, month: str) -> None:
    """SPEC §8 figures: F1 4,000 (900 + 3×900 + 2×200), F2 200, M1 1,500, excluding tax
    (source 004's 220 is tax-included)."""
    f1, f2, m1 = (bill(s, c, month) for c in ("F1", "F2", "M1"))
    assert items(f1) == {ITEM_RECORDING_FIXED_CONTRACT: (1, 900, 900),
                         ITEM_RECORDING_FIXED_CHANNEL: (3, 900, 2700),
                         ITEM_NUISANCE_PER_NUMBER: (2, 200, 400)}
    assert (f1.subtotal, f1.tax, f1.total) == (4000, 400, 4400)
    assert items(f2) == {ITEM_NUISANCE_PER_CONTRACT: (1, 200, 200)}
    assert (f2.subtotal, f2.total) == (200, 220)
    assert items(m1) == {ITEM_RECORDING_MOBILE_CONTRACT: (1, 500, 500),
                         ITEM_RECORDING_MOBILE_HANDSET: (2, 500, 1000)}
    assert (m1.subtotal, m1.total) == (1500, 1650)


def test_reference_site_in_its_provisioning_month(s: Session) -> None:
    """The recording initial fee (3,000 per contract) in the month of activation."""
    assert items(bill(s, "F1", "2026-04"))[ITEM_RECORDING_INITIAL] == (1, 3000, 3000)
    assert bill(s, "F1", "2026-04").subtotal == 7000
    assert bill(s, "M1", "2026-04").subtotal == 4500
    assert bill(s, "F2", "2026-04").subtotal == 200  # no recording: no initial fee


def test_before_activation_nothing_is_billed(s: Session) -> None:
    rep = billing_repo.report(s, "2026-03")
    assert {b.contract: b.subtotal for b in rep.bills} == {"F1": 0, "F2": 0, "M1": 0}


def test_channels_and_handsets_follow_the_database(s: Session) -> None:
    endpoints.update_endpoint(s, "f1-a", channels=5)  # 5 + 1 channels
    assert items(bill(s, "F1", "2026-05"))[ITEM_RECORDING_FIXED_CHANNEL] == (6, 900, 5400)
    endpoints.create_endpoint(s, "m1-c", "M1", "10.9.9.9", "2003")
    numbers.create_number(s, "09011110003", "m1-c", "native")
    numbers.create_number(s, "0311110003", "m1-c", "office")  # office numbers are not handsets
    assert items(bill(s, "M1", "2026-05"))[ITEM_RECORDING_MOBILE_HANDSET] == (3, 500, 1500)


def test_per_number_counts_only_subscribed_numbers(s: Session) -> None:
    numbers.create_number(s, "0312345670", "f1-a", "base")  # subscribed by default
    numbers.create_number(s, "0312345671", "f1-a", "base", nuisance=False)
    assert items(bill(s, "F1", "2026-05"))[ITEM_NUISANCE_PER_NUMBER] == (3, 200, 600)


def test_cancellations(s: Session) -> None:
    """Billed through the month before the first day without the service."""
    subscriptions.cancel_recording(s, "M1", TODAY, date(2026, 7, 1))
    subscriptions.cancel_nuisance(s, "F2", TODAY, date(2026, 6, 10))
    assert bill(s, "M1", "2026-06").subtotal == 1500
    assert bill(s, "M1", "2026-07").subtotal == 0
    assert bill(s, "F2", "2026-06").subtotal == 200  # active on some days of June
    assert bill(s, "F2", "2026-07").subtotal == 0


def test_unit_change_construction_fee_and_unit_history(s: Session) -> None:
    """NCR-UNIT-1/BILL: a change bills the construction fee in its month; a month is billed
    at the unit in force at its end, read back through the change history."""
    nuisance_repo.set_unit(s, "F2", "per-number", date(2026, 6, 20))
    june, may, july = (bill(s, "F2", m) for m in ("2026-06", "2026-05", "2026-07"))
    assert items(june) == {ITEM_NUISANCE_PER_NUMBER: (2, 200, 400),
                           ITEM_NUISANCE_UNIT_CHANGE: (1, 2000, 2000)}
    assert items(may) == {ITEM_NUISANCE_PER_CONTRACT: (1, 200, 200)}  # before the change
    assert items(july) == {ITEM_NUISANCE_PER_NUMBER: (2, 200, 400)}
    nuisance_repo.set_unit(s, "F2", "per-contract", date(2026, 6, 25))  # and back
    june = bill(s, "F2", "2026-06")
    assert items(june)[ITEM_NUISANCE_UNIT_CHANGE] == (2, 2000, 4000)
    assert ITEM_NUISANCE_PER_CONTRACT in items(june)


def test_configurable_prices(s: Session) -> None:
    """SPEC §5: the construction fee is configurable (price_history, from a month's bill on)."""
    june = date(2026, 6, 1)
    billing_repo.set_prices(s, {"nuisance_unit_change_fee": 5500}, june)
    nuisance_repo.set_unit(s, "F2", "per-number", date(2026, 6, 20))
    assert items(bill(s, "F2", "2026-06"))[ITEM_NUISANCE_UNIT_CHANGE] == (1, 5500, 5500)
    with pytest.raises(ValueError, match="unknown price"):
        billing_repo.set_prices(s, {"vip_fee": 1}, june)
    with pytest.raises(ValueError):
        billing_repo.set_prices(s, {"tax_rate_percent": -1}, june)
    with pytest.raises(ValueError, match="at most 100"):  # the API's bound (ADM-1/2)
        billing_repo.set_prices(s, {"tax_rate_percent": 500}, june)
    with pytest.raises(ValueError, match="at most 10,000,000"):
        billing_repo.set_prices(s, {"recording_initial": 10_000_001}, june)
    with pytest.raises(ValueError, match="first day of a month"):
        billing_repo.set_prices(s, {"recording_initial": 1}, date(2026, 6, 2))
    assert billing_repo.set_prices(s, {"tax_rate_percent": 100}, june).table.tax_rate_percent \
        == 100
    # The database refuses by itself what the domain refuses (a row written by hand; a month
    # with no row yet, so the check constraints answer, not the primary key).
    later = date(2030, 1, 1)
    for bad in ({"effective_from": date(2030, 1, 2), "name": "recording_initial", "value": 1},
                {"effective_from": later, "name": "tax_rate_percent", "value": 101},
                {"effective_from": later, "name": "recording_initial", "value": -1},
                {"effective_from": later, "name": "recording_initial", "value": 10_000_001}):
        with pytest.raises(IntegrityError, match="ck_price_history_"), s.begin_nested():
            s.execute(insert(PriceHistory).values(**bad))
    # site_settings holds no price any more: a stray price.* key there changes nothing.
    s.add(SiteSetting(key="price.recording_initial", value="lots"))
    s.flush()
    assert billing_repo.prices(s, 2026, 6).table.recording_initial == 3000


def test_unbillable_contract_is_reported_not_guessed(s: Session) -> None:
    """A per-number subscription whose numbers were all unsubscribed behind the tools' back
    cannot be billed; the report names it and bills the others."""
    f1 = s.scalar(select(Contract).where(Contract.code == "F1"))
    assert f1 is not None
    for num in s.scalars(select(Number).where(Number.contract_id == f1.id)):
        num.nuisance_subscribed = False
    rep = billing_repo.report(s, "2026-05")
    assert [c for c, _ in rep.errors] == ["F1"]
    assert "per-number" in rep.errors[0][1]
    assert sorted(b.contract for b in rep.bills) == ["F2", "M1"]


def test_month_validation() -> None:
    for bad in ("2026-13", "2026-00", "0000-01", "2026-1", "26-01", "2026-01-01", ""):
        with pytest.raises(ValueError):
            billing_repo.parse_month(bad)
    assert billing_repo.parse_month("9999-12") == (9999, 12)


def test_far_months_bill_without_error(s: Session) -> None:
    assert bill(s, "F1", "9999-12").subtotal == 4000
    assert bill(s, "F1", "0001-01").subtotal == 0


# ---- over the API and the CLI -------------------------------------------------------------
def test_billing_report_api(site: Engine, op: Client) -> None:
    r = op.get("/api/v1/bills?month=2026-05")
    assert r.status == 200
    data = r.json()
    subtotal = {b["contract"]: b["subtotal"] for b in data["bills"]}
    assert subtotal == {"F1": 4000, "F2": 200, "M1": 1500}
    assert (data["subtotal"], data["tax"], data["total"]) == (5700, 570, 6270)
    one = op.get("/api/v1/bills?month=2026-04&contract=M1").json()
    assert [b["subtotal"] for b in one["bills"]] == [4500]
    page = op.get("/api/v1/bills?month=2026-05&limit=2").json()
    assert [b["contract"] for b in page["bills"]] == ["F1", "F2"] and page["next_offset"] == 2
    # The month's total whatever the page; the page's own sums under their own names.
    assert (page["subtotal"], page["tax"], page["total"]) == (5700, 570, 6270)
    assert (page["page_subtotal"], page["page_tax"], page["page_total"]) == (4200, 420, 4620)
    assert (page["contracts"], page["unbilled"]) == (3, 0)
    last = op.get("/api/v1/bills?month=2026-05&limit=2&offset=2").json()
    assert [b["contract"] for b in last["bills"]] == ["M1"] and last["next_offset"] is None
    assert (last["total"], last["page_total"]) == (6270, 1650)
    assert op.get("/api/v1/bills?month=2026-05&contract=NOPE").status == 404
    assert op.get("/api/v1/bills").status == 400
    assert op.get("/api/v1/bills?month=May").status == 400


def test_billing_report_cli(site: Engine, iso: Settings) -> None:
    run = cli(iso, "billing", "report", "--month", "2026-05", "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert {b["contract"]: b["total"] for b in data["bills"]} == {
        "F1": 4400, "F2": 220, "M1": 1650}
    text = cli(iso, "billing", "report", "--month", "2026-05", "--contract", "F1")
    assert text.returncode == 0
    assert "4,000" in text.stdout and "4,400" in text.stdout
    assert "Call recording (fixed): monthly, per channel" in text.stdout
    bad = cli(iso, "billing", "report", "--month", "2026-13")
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr
    unknown = cli(iso, "billing", "report", "--month", "2026-05", "--contract", "NOPE")
    assert unknown.returncode == 2 and unknown.stderr.strip() == "callguard: no contract 'NOPE'"
    # The CLI refuses the prices the API refuses (PriceTable's bounds), and stores nothing.
    tax = cli(iso, "billing", "prices", "--set", "tax_rate_percent=500")
    assert tax.returncode == 2 and "at most 100" in tax.stderr, tax.stderr
    fee = cli(iso, "billing", "prices", "--set", "nuisance_unit_change_fee=10000001")
    assert fee.returncode == 2 and "at most 10,000,000" in fee.stderr, fee.stderr
    shown = json.loads(cli(iso, "billing", "prices", "--json").stdout)
    assert (shown["tax_rate_percent"], shown["nuisance_unit_change_fee"]) == (10, 2000)


def test_cli_exit_1_when_a_contract_cannot_be_billed(site: Engine, iso: Settings) -> None:
    with Session(site) as s, s.begin():
        m1 = s.scalar(select(Contract.id).where(Contract.code == "M1"))
        s.execute(delete(RecordingSubscription).where(RecordingSubscription.contract_id == m1))
        s.add(NuisanceSubscription(contract_id=m1, unit="per-number",
                                   activated_on=PROVISIONED))  # no subscribed numbers
    try:
        run = cli(iso, "billing", "report", "--month", "2026-05", "--json")
        assert run.returncode == 1
        data = json.loads(run.stdout)
        assert [e["contract"] for e in data["errors"]] == ["M1"]
        assert "cannot bill contract M1" in run.stderr
    finally:
        with Session(site) as s, s.begin():
            s.execute(delete(NuisanceSubscription).where(NuisanceSubscription.contract_id == m1))
            s.execute(delete(NuisanceUnitChange).where(NuisanceUnitChange.contract_id == m1))
            s.add(RecordingSubscription(contract_id=m1, activated_on=PROVISIONED))


def test_month_total_covers_every_page_api_and_cli_agree(site: Engine, op: Client,
                                                         iso: Settings) -> None:
    """More contracts than the API's default page (100): the month's subtotal/tax/total are
    the same on every page and equal the CLI's (unpaged) report; each page's own sums are
    `page_*` (BILL, ADM-1/2)."""
    extra = [f"P{i:03d}" for i in range(1, 102)]  # 101 per-contract nuisance subscribers
    with Session(site) as s, s.begin():
        for code in extra:
            c = Contract(code=code, kind="fixed")
            s.add(c)
            s.flush()
            s.add(NuisanceSubscription(contract_id=c.id, unit="per-contract",
                                       activated_on=PROVISIONED))
    try:
        first = op.get("/api/v1/bills?month=2026-05").json()
        assert len(first["bills"]) == 100 and first["next_offset"] == 100
        second = op.get("/api/v1/bills?month=2026-05&offset=100").json()
        assert len(second["bills"]) == 4 and second["next_offset"] is None
        month = (5700 + 101 * 200, 570 + 101 * 20, 6270 + 101 * 220)
        for page in (first, second):
            assert (page["subtotal"], page["tax"], page["total"]) == month
            assert (page["contracts"], page["unbilled"]) == (104, 0)
            assert page["page_total"] == sum(b["total"] for b in page["bills"])
        assert first["page_total"] + second["page_total"] == month[2]
        run = cli(iso, "billing", "report", "--month", "2026-05", "--json")
        assert run.returncode == 0, run.stderr
        data = json.loads(run.stdout)
        assert (data["subtotal"], data["tax"], data["total"]) == month
        assert data["total"] == first["total"]
    finally:
        with Session(site) as s, s.begin():
            s.execute(delete(Contract).where(Contract.code.in_(extra)))


# ---- history: a past month is billed from what was in force then (BILL, source 004) -------
def _on(s: Session, day: str) -> None:
    """The day the next changes take effect (the history triggers read callguard.today)."""
    s.execute(text("SELECT set_config('callguard.today', :d, true)"), {"d": day})
    s.flush()


def test_channels_changed_mid_year_bill_each_month_from_its_own_count(s: Session) -> None:
    """A fixed contract with 2 channels from March, 4 from 15 July, 3 from 2 October: March and
    June bill 2, July bills 4 (in force on some of its days), September 4, November 3 —
    re-running a past month after later changes gives the same bill."""
    _on(s, "2026-03-10")
    contracts.create_contract(s, "H1", "fixed")
    endpoints.create_endpoint(s, "h1-a", "H1", "10.8.0.1", "2001", channels=2)
    numbers.create_number(s, "0312300001", "h1-a", "representative")
    subscriptions.set_recording(s, "H1", TODAY, date(2026, 3, 10))
    s.flush()
    before = bill(s, "H1", "2026-06")
    _on(s, "2026-07-15")
    endpoints.update_endpoint(s, "h1-a", channels=4)
    s.flush()
    _on(s, "2026-10-02")
    endpoints.update_endpoint(s, "h1-a", channels=3)
    s.flush()

    def channels(month: str) -> int:
        return items(bill(s, "H1", month))[ITEM_RECORDING_FIXED_CHANNEL][0]

    assert [channels(m) for m in ("2026-03", "2026-06", "2026-07", "2026-09", "2026-10",
                                  "2026-11")] == [2, 2, 4, 4, 4, 3]
    assert bill(s, "H1", "2026-06") == before  # later changes leave a past month alone
    assert bill(s, "H1", "2026-06").subtotal == 900 + 2 * 900
    assert bill(s, "H1", "2026-09").subtotal == 900 + 4 * 900
    periods = s.execute(text(
        "SELECT value, valid_from, valid_until FROM billing_counts b JOIN contracts c"
        " ON c.id = b.contract_id WHERE c.code = 'H1' AND what = 'channels'"
        " ORDER BY valid_from")).all()
    assert [tuple(p) for p in periods] == [
        (2, date(2026, 3, 10), date(2026, 7, 15)), (4, date(2026, 7, 15), date(2026, 10, 2)),
        (3, date(2026, 10, 2), None)]


def test_handsets_and_subscribed_numbers_have_history_too(s: Session) -> None:
    _on(s, "2026-02-01")
    contracts.create_contract(s, "H2", "mobile")
    endpoints.create_endpoint(s, "h2-a", "H2", "10.8.0.2", "2001")
    numbers.create_number(s, "09012300001", "h2-a", "native")
    subscriptions.set_recording(s, "H2", TODAY, date(2026, 2, 1))
    s.flush()
    _on(s, "2026-05-20")
    endpoints.create_endpoint(s, "h2-b", "H2", "10.8.0.3", "2002")
    numbers.create_number(s, "09012300002", "h2-b", "native")
    s.flush()
    assert items(bill(s, "H2", "2026-04"))[ITEM_RECORDING_MOBILE_HANDSET] == (1, 500, 500)
    assert items(bill(s, "H2", "2026-05"))[ITEM_RECORDING_MOBILE_HANDSET] == (2, 500, 1000)
    assert items(bill(s, "H2", "2026-09"))[ITEM_RECORDING_MOBILE_HANDSET] == (2, 500, 1000)


# ---- nuisance unit and numbers only in the months it is active (BILL) ----------------------
def test_per_number_nuisance_added_later_leaves_earlier_months_billable(s: Session) -> None:
    """Case A: contract and number from 20 January with recording, per-number nuisance from
    5 March. Re-billing January and February must not ask for subscribed numbers (there were
    none): they bill recording alone, not an error that drops the whole bill."""
    _on(s, "2026-01-20")
    contracts.create_contract(s, "A1", "fixed")
    endpoints.create_endpoint(s, "a1-a", "A1", "10.8.1.1", "2001")
    numbers.create_number(s, "0312301001", "a1-a", "representative")
    subscriptions.set_recording(s, "A1", TODAY, date(2026, 1, 20))
    s.flush()
    _on(s, "2026-03-05")
    subscriptions.set_nuisance(s, "A1", TODAY, unit="per-number",
                               activated_on=date(2026, 3, 5))
    s.flush()
    assert items(bill(s, "A1", "2026-01")) == {ITEM_RECORDING_INITIAL: (1, 3000, 3000),
                                               ITEM_RECORDING_FIXED_CONTRACT: (1, 900, 900),
                                               ITEM_RECORDING_FIXED_CHANNEL: (1, 900, 900)}
    assert bill(s, "A1", "2026-02").subtotal == 1800
    assert items(bill(s, "A1", "2026-03"))[ITEM_NUISANCE_PER_NUMBER] == (1, 200, 200)
    rep = billing_repo.report(s, "2026-01")
    assert "A1" not in [c for c, _ in rep.errors]


def test_after_everything_ended_and_numbers_went_the_bill_is_empty(s: Session) -> None:
    """Case D: both add-ons cancelled on 1 July, the numbers deleted on 5 July: June is still
    billed in full, August and every later month bill 0 (never an error)."""
    _on(s, "2026-02-01")
    contracts.create_contract(s, "D1", "fixed")
    endpoints.create_endpoint(s, "d1-a", "D1", "10.8.1.2", "2001")
    numbers.create_number(s, "0312301002", "d1-a", "representative")
    subscriptions.set_recording(s, "D1", TODAY, date(2026, 2, 1))
    subscriptions.set_nuisance(s, "D1", TODAY, unit="per-number",
                               activated_on=date(2026, 2, 1))
    s.flush()
    _on(s, "2026-07-01")
    subscriptions.cancel_recording(s, "D1", TODAY, date(2026, 7, 1))
    subscriptions.cancel_nuisance(s, "D1", TODAY, date(2026, 7, 1))
    s.flush()
    _on(s, "2026-07-05")
    numbers.delete_number(s, "0312301002")
    s.flush()
    assert bill(s, "D1", "2026-06").subtotal == 900 + 900 + 200
    for month in ("2026-07", "2026-08", "2027-01", "2030-12"):
        assert bill(s, "D1", month).items == (), month
    assert "D1" not in [c for c, _ in billing_repo.report(s, "2026-08").errors]


# ---- unit changes only on a subscription in force (NCR-UNIT-1, BILL) -----------------------
def _unit_changes(s: Session, code: str) -> int:
    return int(s.scalar(text(
        "SELECT count(*) FROM nuisance_unit_changes u JOIN contracts c ON c.id = u.contract_id"
        " WHERE c.code = :c"), {"c": code}) or 0)


def test_set_unit_on_a_cancelled_subscription_is_refused(s: Session) -> None:
    """No construction fee for a subscription that was cancelled: Conflict, nothing written."""
    subscriptions.cancel_nuisance(s, "F2", TODAY, date(2026, 6, 10))
    before = bill(s, "F2", "2026-12")
    with pytest.raises(base.Conflict, match="cancelled"):
        nuisance.set_unit(s, "F2", "per-number", TODAY)
    assert _unit_changes(s, "F2") == 0
    assert bill(s, "F2", "2026-12") == before
    assert ITEM_NUISANCE_UNIT_CHANGE not in items(before)


def test_set_unit_to_the_same_unit_changes_nothing(s: Session) -> None:
    assert nuisance.set_unit(s, "F2", "per-contract", TODAY) is False
    assert _unit_changes(s, "F2") == 0
    assert nuisance.set_unit(s, "F2", "per-number", TODAY) is True
    assert _unit_changes(s, "F2") == 1


# ---- every subscription period is kept and billed (BILL: SPEC §5, a past month) ------------
def _periods(s: Session, code: str, service: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in s.execute(text(
        "SELECT p.activated_on, p.cancelled_on, p.unit FROM subscription_periods p"
        " JOIN contracts c ON c.id = p.contract_id WHERE c.code = :c AND p.service = :s"
        " ORDER BY p.activated_on"), {"c": code, "s": service})]


def test_resubscribing_recording_keeps_the_earlier_period(s: Session) -> None:
    """Recording 10 Jan, cancelled 1 Apr, subscribed again 1 Jun: January-March bill as they
    did before the re-subscription (January's initial fee included); June is a new application
    with a new initial fee; April and May bill nothing."""
    _on(s, "2026-01-10")
    contracts.create_contract(s, "R1", "mobile")
    endpoints.create_endpoint(s, "r1-a", "R1", "10.8.2.1", "2001")
    numbers.create_number(s, "09012302001", "r1-a", "native")
    subscriptions.set_recording(s, "R1", TODAY, date(2026, 1, 10))
    s.flush()
    subscriptions.cancel_recording(s, "R1", TODAY, date(2026, 4, 1))
    s.flush()
    before = [bill(s, "R1", f"2026-{m:02d}") for m in (1, 2, 3)]
    with pytest.raises(base.Conflict, match="on or after"):  # inside the ended period
        subscriptions.set_recording(s, "R1", TODAY, date(2026, 3, 1))
    subscriptions.set_recording(s, "R1", TODAY, date(2026, 6, 1))
    s.flush()
    assert [bill(s, "R1", f"2026-{m:02d}") for m in (1, 2, 3)] == before
    assert [bill(s, "R1", f"2026-{m:02d}").subtotal for m in range(1, 8)] == [
        4000, 1000, 1000, 0, 0, 4000, 1000]
    assert items(bill(s, "R1", "2026-01"))[ITEM_RECORDING_INITIAL] == (1, 3000, 3000)
    assert items(bill(s, "R1", "2026-06"))[ITEM_RECORDING_INITIAL] == (1, 3000, 3000)
    assert _periods(s, "R1", "recording") == [
        (date(2026, 1, 10), date(2026, 4, 1), None), (date(2026, 6, 1), None, None)]


def test_recording_set_revokes_a_pending_cancellation(s: Session) -> None:
    """A cancellation still to come is revoked by subscribing again: the subscription goes on
    from its activation, with no new initial fee and no new period."""
    _on(s, "2026-05-10")
    contracts.create_contract(s, "R2", "mobile")
    endpoints.create_endpoint(s, "r2-a", "R2", "10.8.2.2", "2001")
    numbers.create_number(s, "09012302002", "r2-a", "native")
    subscriptions.set_recording(s, "R2", date(2026, 5, 10))
    subscriptions.cancel_recording(s, "R2", date(2026, 6, 1), date(2026, 9, 1))  # pending
    s.flush()
    with pytest.raises(base.Conflict, match="pending"):
        subscriptions.set_recording(s, "R2", date(2026, 6, 15), date(2026, 6, 15))
    sub = subscriptions.set_recording(s, "R2", date(2026, 6, 15), retention_days=30)
    s.flush()
    assert (sub.activated_on, sub.cancelled_on, sub.retention_days) == (
        date(2026, 5, 10), None, 30)
    assert _periods(s, "R2", "recording") == [(date(2026, 5, 10), None, None)]
    assert items(bill(s, "R2", "2026-05"))[ITEM_RECORDING_INITIAL] == (1, 3000, 3000)
    for month in ("2026-06", "2026-09", "2026-12"):
        assert items(bill(s, "R2", month)) == {ITEM_RECORDING_MOBILE_CONTRACT: (1, 500, 500),
                                               ITEM_RECORDING_MOBILE_HANDSET: (1, 500, 500)}


def test_resubscribing_nuisance_with_another_unit_bills_the_old_period_at_the_old_unit(
        s: Session) -> None:
    """F2: per contract from 15 April, cancelled 10 June, per number again from 1 August. May
    and June bill per contract (not per number), July nothing, August per number; a new
    application is not a unit change (no construction fee)."""
    subscriptions.cancel_nuisance(s, "F2", TODAY, date(2026, 6, 10))
    s.flush()
    _on(s, "2026-08-01")
    with pytest.raises(base.Conflict, match="on or after"):
        subscriptions.set_nuisance(s, "F2", TODAY, unit="per-number",
                                   activated_on=date(2026, 6, 1))
    subscriptions.set_nuisance(s, "F2", TODAY, unit="per-number", activated_on=date(2026, 8, 1))
    s.flush()
    assert items(bill(s, "F2", "2026-05")) == {ITEM_NUISANCE_PER_CONTRACT: (1, 200, 200)}
    assert items(bill(s, "F2", "2026-06")) == {ITEM_NUISANCE_PER_CONTRACT: (1, 200, 200)}
    assert items(bill(s, "F2", "2026-07")) == {}
    assert items(bill(s, "F2", "2026-08")) == {ITEM_NUISANCE_PER_NUMBER: (2, 200, 400)}
    assert _unit_changes(s, "F2") == 0
    assert _periods(s, "F2", "nuisance") == [
        (PROVISIONED, date(2026, 6, 10), "per-contract"), (date(2026, 8, 1), None, "per-number")]


def test_a_unit_change_inside_a_period_stays_in_that_period(s: Session) -> None:
    """F2 per contract from 15 April, changed to per number on 20 May, cancelled 10 June, per
    contract again from 1 August: April per contract, May and June per number (the unit at the
    month's end), August per contract; the change bills its fee in May only."""
    nuisance.set_unit(s, "F2", "per-number", date(2026, 5, 20))
    subscriptions.cancel_nuisance(s, "F2", TODAY, date(2026, 6, 10))
    subscriptions.set_nuisance(s, "F2", TODAY, unit="per-contract",
                               activated_on=date(2026, 8, 1))
    s.flush()
    assert items(bill(s, "F2", "2026-04")) == {ITEM_NUISANCE_PER_CONTRACT: (1, 200, 200)}
    assert items(bill(s, "F2", "2026-05")) == {ITEM_NUISANCE_PER_NUMBER: (2, 200, 400),
                                               ITEM_NUISANCE_UNIT_CHANGE: (1, 2000, 2000)}
    assert items(bill(s, "F2", "2026-06")) == {ITEM_NUISANCE_PER_NUMBER: (2, 200, 400)}
    assert items(bill(s, "F2", "2026-08")) == {ITEM_NUISANCE_PER_CONTRACT: (1, 200, 200)}


# ---- a contract with a history keeps its bills (BILL) --------------------------------------
def test_deleting_a_contract_that_had_a_service_is_refused(s: Session) -> None:
    """Its subscriptions, counts and unit changes would cascade away and its past months
    vanish from the reports: Conflict, cancel its services instead. Never subscribed: deleted."""
    contracts.create_contract(s, "X1", "fixed")
    subscriptions.set_nuisance(s, "X1", TODAY, unit="per-contract",
                               activated_on=date(2026, 5, 1))
    subscriptions.cancel_nuisance(s, "X1", TODAY, date(2026, 7, 1))
    s.flush()
    with pytest.raises(base.Conflict, match="cancel its services"):
        contracts.delete_contract(s, "X1")
    assert bill(s, "X1", "2026-06").subtotal == 200
    contracts.create_contract(s, "X2", "fixed")
    contracts.delete_contract(s, "X2")
    assert s.scalar(select(Contract).where(Contract.code == "X2")) is None


# ---- prices in force by month: a change never re-prices an earlier month (BILL) ------------
JULY_20 = date(2026, 7, 20)  # the services' clock for these tests: this month is July


def test_a_price_change_from_next_month_leaves_this_months_report_unchanged(s: Session) -> None:
    """The nuisance unit price 200 -> 250 and the tax 10 % -> 12 % from August, set in July:
    July's report is the one it was (the defaults, `prices_from` None); August's bills 250
    per unit plus 12 %."""
    july = billing_repo.report(s, "2026-07")
    assert july.prices_from is None
    changed = billing.set_prices(s, {"nuisance_per_unit": 250, "tax_rate_percent": 12},
                                 JULY_20, "2026-08")
    assert (changed.prices_from, changed.table.nuisance_per_unit,
            changed.table.tax_rate_percent) == ("2026-08", 250, 12)
    assert billing_repo.report(s, "2026-07") == july
    assert billing.prices(s, JULY_20).table == PriceTable()  # this month's, by default
    august = billing_repo.report(s, "2026-08")
    assert august.prices_from == "2026-08"
    f2 = next(b for b in august.bills if b.contract == "F2")
    assert items(f2) == {ITEM_NUISANCE_PER_CONTRACT: (1, 250, 250)}
    assert (f2.subtotal, f2.tax, f2.total) == (250, 30, 280)
    f1 = next(b for b in august.bills if b.contract == "F1")
    assert items(f1)[ITEM_NUISANCE_PER_NUMBER] == (2, 250, 500)
    assert (f1.subtotal, f1.tax) == (900 + 2700 + 500, (900 + 2700 + 500) * 12 // 100)
    assert billing_repo.report(s, "2027-03").prices_from == "2026-08"  # until a later change


def test_a_past_month_keeps_its_price_after_a_change(s: Session) -> None:
    """June billed at 200 and 10 %; prices changed in July (from this month, the default):
    June's bill is still the one sent, July's is at the new prices. Changing June itself is
    refused (Conflict, nothing written) unless forced."""
    june = billing_repo.report(s, "2026-06")
    billing.set_prices(s, {"nuisance_per_unit": 250, "tax_rate_percent": 12}, JULY_20)
    assert billing_repo.report(s, "2026-06") == june
    july = billing_repo.report(s, "2026-07")
    assert july.prices_from == "2026-07"
    assert next(b for b in july.bills if b.contract == "F2").total == 280
    with pytest.raises(base.Conflict, match="2026-06 is before this month"):
        billing.set_prices(s, {"nuisance_per_unit": 300}, JULY_20, "2026-06")
    assert billing_repo.report(s, "2026-06") == june
    assert [e.prices_from for e in billing_repo.price_table_history(s)] == [None, "2026-07"]
    # Forced, the past month is re-priced, and only from that month on.
    billing.set_prices(s, {"nuisance_per_unit": 300}, JULY_20, "2026-06", force_past=True)
    assert items(bill(s, "F2", "2026-06")) == {ITEM_NUISANCE_PER_CONTRACT: (1, 300, 300)}
    assert items(bill(s, "F2", "2026-07")) == {ITEM_NUISANCE_PER_CONTRACT: (1, 250, 250)}
    assert billing_repo.report(s, "2026-05").prices_from is None


def test_price_history_per_price_and_no_empty_steps(s: Session) -> None:
    """Each change is of the prices it names: a tax change from July carries into a unit
    price change already set from August. Setting a price back to the value in force the
    month before removes that month's change of it (no step that changes nothing)."""
    billing.set_prices(s, {"nuisance_per_unit": 250}, JULY_20, "2026-08")
    billing.set_prices(s, {"tax_rate_percent": 12}, JULY_20, "2026-07")
    august = billing.prices(s, JULY_20, "2026-08")
    assert (august.table.tax_rate_percent, august.table.nuisance_per_unit) == (12, 250)
    page = billing.price_history(s)
    assert [(i["prices_from"], i["changed"]) for i in page.items] == [
        (None, {}), ("2026-07", {"tax_rate_percent": 12}),
        ("2026-08", {"nuisance_per_unit": 250})]
    assert page.items[-1]["tax_rate_percent"] == 12  # each entry is the whole table
    assert billing.price_history(s, limit=1, offset=1).to_json() == {
        "items": [page.items[1]], "limit": 1, "offset": 1, "next_offset": 2}
    billing.set_prices(s, {"nuisance_per_unit": 200}, JULY_20, "2026-08")
    assert [i["prices_from"] for i in billing.price_history(s).items] == [None, "2026-07"]
    assert billing.set_prices(s, {"tax_rate_percent": 10}, JULY_20).prices_from is None
    assert [i["prices_from"] for i in billing.price_history(s).items] == [None]


def _this_month() -> date:
    return month_start(base.tokyo_date(datetime.now(UTC)))


def _months(first_day: date, n: int) -> str:
    index = first_day.year * 12 + first_day.month - 1 + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def test_prices_from_a_month_over_the_api_and_the_cli(site: Engine, iso: Settings,
                                                      op: Client) -> None:
    """ADM-1/2: PATCH /prices and `billing prices --set` take `from` (default this month);
    a month before this one is refused (409 / exit 2, one line) unless forced; the report of
    this month is unchanged by a change from next month and says which table it used
    (`prices_from`); the history is listed by both. Uses the real clock (Tokyo)."""
    this = _this_month()
    now, nxt, prev = _months(this, 0), _months(this, 1), _months(this, -1)
    try:
        before = op.get(f"/api/v1/bills?month={now}").json()
        assert before["prices_from"] is None
        r = op.patch("/api/v1/prices", {"nuisance_per_unit": 250, "from": nxt})
        assert r.status == 200, r.body
        assert (r.json()["nuisance_per_unit"], r.json()["prices_from"]) == (250, nxt)
        assert op.get(f"/api/v1/bills?month={now}").json() == before
        later = op.get(f"/api/v1/bills?month={nxt}&contract=F2").json()
        assert later["prices_from"] == nxt
        assert [i["unit_price"] for i in later["bills"][0]["items"]] == [250]
        shown = op.get("/api/v1/prices").json()
        assert (shown["nuisance_per_unit"], shown["prices_from"]) == (200, None)
        assert op.get(f"/api/v1/prices?month={nxt}").json()["nuisance_per_unit"] == 250
        assert op.get("/api/v1/prices?month=2026-13").status == 400
        past = op.patch("/api/v1/prices", {"nuisance_per_unit": 300, "from": prev})
        assert past.status == 409 and "force_past" in past.message
        assert op.patch("/api/v1/prices", {"nuisance_per_unit": 300, "from": "2026-13"}
                        ).status == 400
        assert op.patch("/api/v1/prices", {"from": nxt}).status == 400
        assert "at least one price" in op.patch("/api/v1/prices", {"from": nxt}).message
        history = op.get("/api/v1/prices/history").json()
        assert [(i["prices_from"], i["changed"]) for i in history["items"]] == [
            (None, {}), (nxt, {"nuisance_per_unit": 250})]
        assert history["next_offset"] is None

        line = cli(iso, "billing", "prices", "--set", "tax_rate_percent=12", "--from", prev)
        assert line.returncode == 2, line.stderr
        [message] = line.stderr.strip().splitlines()
        assert message.startswith("callguard: ") and "--force-past" in message
        done = json.loads(cli(iso, "billing", "prices", "--set", "tax_rate_percent=12",
                              "--from", nxt, "--json").stdout)
        assert (done["tax_rate_percent"], done["nuisance_per_unit"], done["prices_from"]) == (
            12, 250, nxt)
        report = json.loads(cli(iso, "billing", "report", "--month", now, "--json").stdout)
        assert report["prices_from"] is None and report["total"] == before["total"]
        text_report = cli(iso, "billing", "report", "--month", nxt, "--contract", "F2").stdout
        assert f"prices: the table in force from {nxt}" in text_report
        listed = json.loads(cli(iso, "billing", "price-history", "--json").stdout)
        assert [(i["prices_from"], i["changed"]) for i in listed["items"]] == [
            (None, {}), (nxt, {"nuisance_per_unit": 250, "tax_rate_percent": 12})]
        assert nxt in cli(iso, "billing", "price-history").stdout
        forced = cli(iso, "billing", "prices", "--set", "recording_initial=3300", "--from",
                     prev, "--force-past", "--json")
        assert forced.returncode == 0, forced.stderr
        assert json.loads(forced.stdout)["prices_from"] == prev
        assert json.loads(cli(iso, "billing", "prices", "--month", prev, "--json").stdout)[
            "recording_initial"] == 3300
        assert op.get(f"/api/v1/bills?month={now}").json()["prices_from"] == prev
    finally:
        with Session(site) as s, s.begin():
            s.execute(delete(PriceHistory))


# ---- who changed a price, and when (BILL audit, migration price_history_audit) -------------
T_ALICE = datetime(2026, 7, 20, 1, 0, tzinfo=UTC)
T_DESK = datetime(2026, 7, 20, 2, 0, tzinfo=UTC)


def _audit(s: Session, prices_from: str) -> dict[str, Any]:
    [entry] = [i for i in billing.price_history(s).items if i["prices_from"] == prices_from]
    return entry


def _when(text_: str | None) -> datetime | None:
    return None if text_ is None else datetime.fromisoformat(text_)


def test_price_history_says_who_changed_each_price_and_when(s: Session) -> None:
    """BILL, ADM-1/2: each price written keeps its writer and time; the month's entry says
    the latest (`changed_by`/`changed_at`) and each price's (`audit`). The same value again
    is no change (the first writer stays); a new value is the new writer's."""
    billing.set_prices(s, {"nuisance_per_unit": 250}, JULY_20, "2026-08", actor="cli:alice",
                       at=T_ALICE)
    billing.set_prices(s, {"tax_rate_percent": 12}, JULY_20, "2026-08",
                       actor="api:operator:token-3 (desk)", at=T_DESK)
    aug = _audit(s, "2026-08")
    assert aug["changed"] == {"nuisance_per_unit": 250, "tax_rate_percent": 12}
    assert (aug["changed_by"], _when(aug["changed_at"])) == ("api:operator:token-3 (desk)",
                                                             T_DESK)
    assert {k: (v["changed_by"], _when(v["changed_at"])) for k, v in aug["audit"].items()} == {
        "nuisance_per_unit": ("cli:alice", T_ALICE),
        "tax_rate_percent": ("api:operator:token-3 (desk)", T_DESK)}
    assert billing.price_history(s).items[0]["changed_by"] is None  # the defaults: nobody
    # The same value again by someone else changes nothing, its writer included.
    billing.set_prices(s, {"nuisance_per_unit": 250}, JULY_20, "2026-08", actor="cli:bob",
                       at=T_DESK)
    assert _audit(s, "2026-08")["audit"]["nuisance_per_unit"]["changed_by"] == "cli:alice"
    # Another value: bob's, at the database's time when none is given.
    billing.set_prices(s, {"nuisance_per_unit": 260}, JULY_20, "2026-08", actor="cli:bob")
    now = s.scalar(select(func.now()))
    bob = _audit(s, "2026-08")["audit"]["nuisance_per_unit"]
    assert (bob["changed_by"], _when(bob["changed_at"])) == ("cli:bob", now)
    # A writer that does not say who leaves that row unknown, not bob's.
    billing.set_prices(s, {"nuisance_per_unit": 270}, JULY_20, "2026-08")
    assert _audit(s, "2026-08")["audit"]["nuisance_per_unit"] == {"changed_by": None,
                                                                   "changed_at": None}


def test_a_bad_actor_writes_nothing_and_the_database_refuses_half_an_audit(s: Session) -> None:
    before = billing.price_history(s).to_json()
    with pytest.raises(base.Invalid, match="needs a name"):
        billing.set_prices(s, {"nuisance_per_unit": 250}, JULY_20, "2026-08", actor=" \n")
    assert billing.price_history(s).to_json() == before
    later = date(2030, 1, 1)
    for bad in ({"changed_by": "cli:x"}, {"changed_at": T_ALICE},
                {"changed_by": "", "changed_at": T_ALICE},
                {"changed_by": "x" * 201, "changed_at": T_ALICE}):
        with pytest.raises(IntegrityError, match="ck_price_history_changed"), \
                s.begin_nested():
            s.execute(insert(PriceHistory).values(effective_from=later,
                                                  name="recording_initial", value=1, **bad))


def test_rows_written_without_an_audit_show_unknown(s: Session) -> None:
    """Rows from before migration price_history_audit (or written by hand) stay NULL."""
    s.execute(insert(PriceHistory).values(effective_from=date(2026, 9, 1),
                                          name="recording_initial", value=3300))
    sep = _audit(s, "2026-09")
    assert (sep["changed_by"], sep["changed_at"]) == (None, None)
    assert sep["audit"] == {"recording_initial": {"changed_by": None, "changed_at": None}}


def test_each_bill_says_the_prices_from_it_was_computed_with(s: Session) -> None:
    """BILL: every bill of a report (and a single contract's) carries its table's month."""
    billing.set_prices(s, {"nuisance_per_unit": 250}, JULY_20, "2026-08")
    for month, expected in (("2026-07", None), ("2026-08", "2026-08"), ("2027-01", "2026-08")):
        rep = billing_repo.report(s, month)
        assert rep.prices_from == expected
        assert [b.prices_from for b in rep.bills] == [expected] * 3
        assert [b["prices_from"] for b in rep.to_json()["bills"]] == [expected] * 3
        assert bill(s, "F2", month).prices_from == expected


def test_who_changed_a_price_over_the_api_and_the_cli(site: Engine, iso: Settings,
                                                      op: Client) -> None:
    """ADM-1/2: PATCH /prices records the token as the API knows it (role, id, label; the
    generated operator token is `token-file`), `billing prices --set` records `cli:<OS
    user>`; both are listed by GET /prices/history and `billing price-history`, never the
    token itself. Each bill of the report says its `prices_from`. Real clock (Tokyo)."""
    nxt = _months(_this_month(), 1)
    created = op.post("/api/v1/tokens", {"label": "billing desk"})
    assert created.status == 201, created.body
    desk_token, desk_id = created.json()["token"], created.json()["id"]
    try:
        assert op.patch("/api/v1/prices", {"nuisance_per_unit": 250, "from": nxt}).status == 200
        desk = op.as_(desk_token)
        assert desk.patch("/api/v1/prices", {"tax_rate_percent": 12, "from": nxt}).status == 200
        r = op.get("/api/v1/prices/history")
        assert r.status == 200
        assert desk_token.encode() not in r.body and iso.api_token.encode() not in r.body
        entry = r.json()["items"][-1]
        assert entry["prices_from"] == nxt
        assert entry["changed"] == {"nuisance_per_unit": 250, "tax_rate_percent": 12}
        assert entry["audit"]["nuisance_per_unit"]["changed_by"] == "api:operator:token-file"
        assert entry["audit"]["tax_rate_percent"]["changed_by"] == (
            f"api:operator:token-{desk_id} (billing desk)")
        assert entry["changed_by"] == f"api:operator:token-{desk_id} (billing desk)"
        assert _when(entry["changed_at"]) is not None
        assert op.get("/api/v1/prices/history").json()["items"][0]["changed_by"] is None

        done = cli(iso, "billing", "prices", "--set", "recording_initial=3300", "--from", nxt,
                   "--json")
        assert done.returncode == 0, done.stderr
        listed = json.loads(cli(iso, "billing", "price-history", "--json").stdout)
        me = f"cli:{getpass.getuser()}"  # the CLI runs as this test's user
        assert listed["items"][-1]["audit"]["recording_initial"]["changed_by"] == me
        assert listed["items"][-1]["changed_by"] == me  # the month's latest write
        text_ = cli(iso, "billing", "price-history")
        assert text_.returncode == 0, text_.stderr
        head, *rows = text_.stdout.splitlines()
        assert head.split() == ["FROM", "CHANGED", "BY", "AT"]
        assert me in rows[-1] and nxt in rows[-1]

        later = op.get(f"/api/v1/bills?month={nxt}&contract=F2").json()
        assert [b["prices_from"] for b in later["bills"]] == [nxt]
        report = json.loads(cli(iso, "billing", "report", "--month", nxt, "--json").stdout)
        assert {b["prices_from"] for b in report["bills"]} == {nxt}
    finally:
        op.delete(f"/api/v1/tokens/{desk_id}")
        with Session(site) as s, s.begin():
            s.execute(delete(PriceHistory))
