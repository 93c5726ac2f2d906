"""Voiding a subscription period entered by mistake, against the real PostgreSQL (BILL,
ADM-1/2): the period and the unit changes inside it are no longer billed, the subscription
row (what the call path reads, REL-5) goes back to the period before it (cancelled) or away,
the database's period triggers leave the earlier period as it was, a refusal writes nothing,
and the audit says who (CLI `cli:<user>`, API token identity), when and why. The reference
site (SPEC §8) is provisioned on 2026-04-15 with every service active from that day."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from callguard.config import Settings
from callguard.db import billing_repo, nuisance_repo
from callguard.db.models import (
    Contract,
    NuisanceList,
    NuisanceSubscription,
    NuisanceUnitChange,
    Number,
    Recording,
    RecordingSubscription,
    SubscriptionPeriod,
    VoidedSubscriptionPeriod,
)
from callguard.domain.billing import ITEM_NUISANCE_PER_CONTRACT, ITEM_NUISANCE_UNIT_CHANGE
from callguard.services import base, subscriptions, voided_periods
from tests.api.conftest import PROVISIONED, Client
from tests.isolated_db import cli

TODAY = date(2026, 7, 20)  # the services' clock: this month is July
MISTAKE = date(2026, 7, 18)


def _cid(s: Session, code: str) -> int:
    cid = s.scalar(select(Contract.id).where(Contract.code == code))
    assert cid is not None
    return cid


def _periods(s: Session, code: str, service: str) -> list[tuple[Any, ...]]:
    sp = SubscriptionPeriod
    return [tuple(r) for r in s.execute(
        select(sp.activated_on, sp.cancelled_on, sp.unit)
        .where(sp.contract_id == _cid(s, code), sp.service == service)
        .order_by(sp.activated_on))]


def _items(s: Session, code: str, month: str) -> dict[str, int]:
    rep = billing_repo.report(s, month, code)
    assert rep.errors == [], rep.errors
    [bill] = rep.bills
    return {i.code: i.amount for i in bill.items}


def _active_lists(s: Session, code: str) -> int:
    return len(s.scalars(select(NuisanceList).where(
        NuisanceList.contract_id == _cid(s, code), NuisanceList.active.is_(True))).all())


def test_a_resubscription_by_mistake_goes_back_to_the_cancelled_period(s: Session) -> None:
    """F2's nuisance-call rejection, cancelled from 2026-06-15, entered again on 07-18 by
    mistake and its unit changed on 07-19: voided, July bills neither the service nor the
    construction fee, June is billed as before, the subscription is the cancelled one again
    at the unit it ended with, and its lists no longer screen."""
    subscriptions.cancel_nuisance(s, "F2", TODAY, date(2026, 6, 15))
    subscriptions.set_nuisance(s, "F2", TODAY, "per-contract", activated_on=MISTAKE)
    nuisance_repo.set_unit(s, "F2", "per-number", date(2026, 7, 19))
    assert ITEM_NUISANCE_UNIT_CHANGE in _items(s, "F2", "2026-07")
    june = _items(s, "F2", "2026-06")
    row = voided_periods.void_period(s, "F2", "nuisance", MISTAKE, TODAY, "cli:alice",
                                     reason="wrong contract")
    assert _items(s, "F2", "2026-07") == {}
    assert _items(s, "F2", "2026-06") == june == {ITEM_NUISANCE_PER_CONTRACT: 200}
    assert _periods(s, "F2", "nuisance") == [(PROVISIONED, date(2026, 6, 15), "per-contract")]
    sub = s.get(NuisanceSubscription, _cid(s, "F2"))
    assert sub is not None
    assert (sub.activated_on, sub.cancelled_on, sub.unit) == (
        PROVISIONED, date(2026, 6, 15), "per-contract")
    assert s.scalars(select(NuisanceUnitChange).where(
        NuisanceUnitChange.contract_id == _cid(s, "F2"))).all() == []
    assert _active_lists(s, "F2") == 0  # the call path screens nothing for F2 any more
    assert subscriptions.subscriptions_json(
        s, base.get_contract(s, "F2"), TODAY)["nuisance"]["active"] is False
    data = voided_periods.voided_json(row)
    assert {k: data[k] for k in ("contract", "service", "activated_on", "cancelled_on",
                                 "unit", "unit_changes", "reason", "voided_by")} == {
        "contract": "F2", "service": "nuisance", "activated_on": "2026-07-18",
        "cancelled_on": None, "unit": "per-contract", "unit_changes": 1,
        "reason": "wrong contract", "voided_by": "cli:alice"}
    assert data["voided_at"] is not None
    assert voided_periods.list_voided(s, "F2").items == [data]
    # Subscribing again afterwards is a new period as ever (the trigger still works).
    subscriptions.set_nuisance(s, "F2", TODAY, "per-contract", activated_on=TODAY)
    assert [p[0] for p in _periods(s, "F2", "nuisance")] == [PROVISIONED, TODAY]


def test_a_first_period_by_mistake_leaves_no_subscription(s: Session) -> None:
    """M1 never had nuisance-call rejection: one entered today by mistake goes entirely."""
    subscriptions.set_nuisance(s, "M1", TODAY, "per-contract", activated_on=MISTAKE)
    assert _active_lists(s, "M1") == 1
    voided_periods.void_period(s, "M1", "nuisance", MISTAKE, TODAY, "api:operator:token-file")
    assert s.get(NuisanceSubscription, _cid(s, "M1")) is None
    assert _periods(s, "M1", "nuisance") == []
    assert _active_lists(s, "M1") == 0
    assert ITEM_NUISANCE_PER_CONTRACT not in _items(s, "M1", "2026-07")


def test_refusals_write_nothing(s: Session) -> None:
    before = (_periods(s, "F1", "nuisance"), _periods(s, "F1", "recording"))
    with pytest.raises(base.Conflict, match=r"before this month \(2026-07\).*--force-past"):
        voided_periods.void_period(s, "F1", "nuisance", PROVISIONED, TODAY, "cli:alice")
    with pytest.raises(base.NotFound, match="no nuisance period began on 2026-07-17"):
        voided_periods.void_period(s, "F1", "nuisance", date(2026, 7, 17), TODAY, "cli:alice")
    with pytest.raises(base.NotFound, match="no contract"):
        voided_periods.void_period(s, "NOPE", "nuisance", MISTAKE, TODAY, "cli:alice")
    with pytest.raises(base.Invalid, match="service must be"):
        voided_periods.void_period(s, "F1", "fax", PROVISIONED, TODAY, "cli:alice")
    with pytest.raises(base.Invalid, match="reason"):
        voided_periods.void_period(s, "F1", "nuisance", PROVISIONED, TODAY, "cli:alice",
                                   force_past=True, reason="two\nlines")
    with pytest.raises(base.Invalid, match="needs a name"):
        voided_periods.void_period(s, "F1", "nuisance", PROVISIONED, TODAY, " ", True)
    # Not the latest: F2 subscribed again after a cancellation; April's period stays.
    subscriptions.cancel_nuisance(s, "F2", TODAY, date(2026, 6, 15))
    subscriptions.set_nuisance(s, "F2", TODAY, "per-contract", activated_on=MISTAKE)
    with pytest.raises(base.Conflict, match="not the latest"):
        voided_periods.void_period(s, "F2", "nuisance", PROVISIONED, TODAY, "cli:alice",
                                   force_past=True)
    assert (_periods(s, "F1", "nuisance"), _periods(s, "F1", "recording")) == before
    assert s.scalars(select(VoidedSubscriptionPeriod)).all() == []


def test_a_past_recording_period_is_voided_only_when_forced_and_nothing_was_recorded(
        s: Session) -> None:
    """M1's recording since April: forced (its months may have been billed), refused while
    a call was recorded under it (its file's retention lives on the subscription), voided
    once there is none: no month bills it any more."""
    m1 = _cid(s, "M1")
    number = s.scalar(select(Number.number).where(Number.contract_id == m1))
    assert number is not None
    s.add(Recording(contract_id=m1, number=number, direction="in", remote="0399990001",
                    channel_id="void-test-1", path="void-test-1.wav",
                    started_at=datetime(2026, 5, 1, 3, 0, tzinfo=UTC), status="complete"))
    s.flush()
    with pytest.raises(base.Conflict, match=r"1 call\(s\) were recorded"):
        voided_periods.void_period(s, "M1", "recording", PROVISIONED, TODAY, "cli:alice",
                                   force_past=True)
    assert s.get(RecordingSubscription, m1) is not None
    s.execute(delete(Recording).where(Recording.contract_id == m1))
    assert _items(s, "M1", "2026-05") != {}
    voided_periods.void_period(s, "M1", "recording", PROVISIONED, TODAY, "cli:alice",
                               force_past=True, reason="never ordered")
    assert s.get(RecordingSubscription, m1) is None
    assert _periods(s, "M1", "recording") == []
    for month in ("2026-04", "2026-05", "2026-07"):
        assert _items(s, "M1", month) == {}


def _today() -> date:
    return base.tokyo_date(datetime.now(UTC))


def test_void_over_the_api_and_the_cli(site: Engine, iso: Settings, op: Client) -> None:
    """ADM-1/2: POST .../subscriptions/{service}/void (operator; the audit names the token)
    and `subscriptions void` (`cli:<OS user>`); 404 for no such period, 409 for a past one
    without force_past, one line and exit 2 from the CLI; both listed by GET
    /voided-periods and `subscriptions voided`. Real clock (Tokyo)."""
    today = _today().isoformat()
    v1 = "/api/v1"
    token = op.post(f"{v1}/tokens", {"contract": "M1", "label": "m1"}).json()
    try:
        put = op.put(f"{v1}/contracts/M1/subscriptions/nuisance", {"unit": "per-contract"})
        assert put.status == 200, put.body
        body = {"activated_on": today, "reason": "entered on the wrong contract"}
        assert op.as_(token["token"]).post(
            f"{v1}/contracts/M1/subscriptions/nuisance/void", body).status == 403
        r = op.post(f"{v1}/contracts/M1/subscriptions/nuisance/void", body)
        assert r.status == 200, r.body
        assert (r.json()["voided_by"], r.json()["reason"], r.json()["activated_on"]) == (
            "api:operator:token-file", "entered on the wrong contract", today)
        assert op.get(f"{v1}/contracts/M1/subscriptions").json()["nuisance"] is None
        again = op.post(f"{v1}/contracts/M1/subscriptions/nuisance/void", body)
        assert again.status == 404 and "no nuisance period began" in again.message
        past = op.post(f"{v1}/contracts/F1/subscriptions/nuisance/void",
                       {"activated_on": PROVISIONED.isoformat()})
        assert past.status == 409 and "force_past" in past.message
        assert op.post(f"{v1}/contracts/F1/subscriptions/fax/void", body).status == 404
        assert op.post(f"{v1}/contracts/M1/subscriptions/nuisance/void",
                       {"activated_on": "2026-02-30"}).status == 400
        listed = op.get(f"{v1}/voided-periods?contract=M1").json()
        assert [i["voided_by"] for i in listed["items"]] == ["api:operator:token-file"]

        ok = cli(iso, "subscriptions", "nuisance", "set", "--contract", "M1", "--unit",
                 "per-contract")
        assert ok.returncode == 0, ok.stderr
        done = cli(iso, "subscriptions", "void", "--contract", "M1", "--service", "nuisance",
                   "--from", today, "--reason", "again", "--json")
        assert done.returncode == 0, done.stderr
        me = f"cli:{getpass.getuser()}"
        assert json.loads(done.stdout)["voided_by"] == me
        refused = cli(iso, "subscriptions", "void", "--contract", "F1", "--service",
                      "nuisance", "--from", PROVISIONED.isoformat())
        assert refused.returncode == 2
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith("callguard: ") and "--force-past" in line
        shown = json.loads(cli(iso, "subscriptions", "voided", "--contract", "M1",
                               "--json").stdout)
        assert [i["voided_by"] for i in shown["items"]] == [me, "api:operator:token-file"]
        text_ = cli(iso, "subscriptions", "voided").stdout
        assert me in text_ and "entered on the wrong contract" in text_
    finally:
        op.delete(f"{v1}/tokens/{token['id']}")
        with Session(site) as s, s.begin():
            s.execute(delete(VoidedSubscriptionPeriod))
