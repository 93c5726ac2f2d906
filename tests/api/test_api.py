"""The HTTP API (ADM-2) against the real PostgreSQL: every resource, every 4xx path with its
JSON message, tokens per contract (REC-FILE-4, SEC-2), nothing half-written on error,
pagination, recordings download with HTTP ranges, and the OpenAPI document."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate as validate_openapi
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from callguard.config import Settings
from callguard.db.models import (
    ApiToken,
    Contract,
    NuisanceList,
    NuisanceSubscription,
    NuisanceUnitChange,
    Recording,
)
from callguard.services.base import tokyo_date
from tests.api.conftest import Client

V1 = "/api/v1"
_seq = itertools.count(1)


def uniq(prefix: str = "T") -> str:
    return f"{prefix}{next(_seq)}x{datetime.now(UTC):%H%M%S%f}"[:32]


def address() -> str:
    n = next(_seq)
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


def number(prefix: str = "03") -> str:
    """A valid number of the prefix's class: 03/06 → 10-digit 0ABJ, 050/090 → 11 digits."""
    return f"{prefix}11{next(_seq) % 10**6:06d}"


def make_fixed(op: Client, *, channels: int = 2, nuisance: str | None = None
               ) -> dict[str, str]:
    """A fixed contract with one line (endpoint) and its number, made through the API."""
    code = uniq()
    ep = code.lower().replace("x", "-")[:30] + "-a"
    num = number()
    assert op.post(f"{V1}/contracts", {"code": code, "kind": "fixed"}).status == 201
    r = op.post(f"{V1}/endpoints", {"name": ep, "contract": code, "address": address(),
                                    "extension": "2001", "channels": channels})
    assert r.status == 201, r.body
    assert op.post(f"{V1}/numbers", {"number": num, "endpoint": ep,
                                     "role": "representative"}).status == 201
    if nuisance:
        assert op.put(f"{V1}/contracts/{code}/subscriptions/nuisance",
                      {"unit": nuisance}).status == 200
    return {"code": code, "endpoint": ep, "number": num}


def contract_token(op: Client, code: str) -> str:
    r = op.post(f"{V1}/tokens", {"contract": code, "label": "test"})
    assert r.status == 201, r.body
    return str(r.json()["token"])


# ---- authentication (SEC-2) ---------------------------------------------------------------
@pytest.mark.parametrize("header", [None, "Basic Zm9vOmJhcg==", "Bearer ", "Bearer nope",
                                    "Bearer " + "x" * 1000])
def test_401_without_a_valid_bearer_token(op: Client, header: str | None) -> None:
    anon = op.as_(None)
    r = anon.get(f"{V1}/contracts", headers={"Authorization": header} if header else None)
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "bearer token" in r.message


def test_401_comes_before_input_validation(op: Client) -> None:
    """A stranger learns nothing about the input (or whether a contract exists)."""
    anon = op.as_("wrong")
    assert anon.post(f"{V1}/contracts", raw=b"{not json").status == 401
    assert anon.get(f"{V1}/contracts/F1").status == 401


def test_operator_token_rows_and_revocation(op: Client) -> None:
    r = op.post(f"{V1}/tokens", {"label": "second operator"})
    assert r.status == 201 and r.json()["contract"] is None
    token, token_id = r.json()["token"], r.json()["id"]
    other = op.as_(token)
    assert other.get(f"{V1}/tokens").status == 200
    listed = op.get(f"{V1}/tokens?limit=500").json()["items"]
    assert all("token" not in t for t in listed)  # never shown again
    assert op.delete(f"{V1}/tokens/{token_id}").status == 204
    assert other.get(f"{V1}/tokens").status == 401
    assert op.delete(f"{V1}/tokens/{token_id}").status == 404


def test_tokens_are_stored_as_sha256_only(op: Client, iso_engine: Engine) -> None:
    site = make_fixed(op)
    token = contract_token(op, site["code"])
    with Session(iso_engine) as s:
        stored = s.scalars(select(ApiToken.token_sha256)).all()
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    assert token not in stored


# ---- contract tokens see only their own contract (REC-FILE-4, SEC-2) -----------------------
def test_contract_token_scope(op: Client) -> None:
    mine, theirs = make_fixed(op), make_fixed(op)
    me = op.as_(contract_token(op, mine["code"]))
    # own data
    assert me.get(f"{V1}/contracts/{mine['code']}").status == 200
    assert [c["code"] for c in me.get(f"{V1}/contracts").json()["items"]] == [mine["code"]]
    assert me.get(f"{V1}/endpoints/{mine['endpoint']}").status == 200
    assert me.get(f"{V1}/numbers/{mine['number']}").status == 200
    assert [n["number"] for n in me.get(f"{V1}/numbers").json()["items"]] == [mine["number"]]
    assert me.get(f"{V1}/bills?month=2026-05").json()["bills"][0]["contract"] == mine["code"]
    # the other contract's data is "not found", exactly like data that does not exist
    for path in (f"/contracts/{theirs['code']}", f"/contracts/{theirs['code']}/subscriptions",
                 f"/endpoints/{theirs['endpoint']}", f"/numbers/{theirs['number']}",
                 f"/endpoints?contract={theirs['code']}", f"/numbers?contract={theirs['code']}",
                 f"/numbers?endpoint={theirs['endpoint']}",
                 f"/recordings?contract={theirs['code']}",
                 f"/nuisance-lists?contract={theirs['code']}",
                 f"/bills?month=2026-05&contract={theirs['code']}"):
        r = me.get(V1 + path)
        assert r.status == 404, (path, r.body)
        assert theirs["code"] in r.message or theirs["endpoint"] in r.message \
            or theirs["number"] in r.message
    # operator-only operations
    for method, path, body in (
            ("POST", "/contracts", {"code": uniq(), "kind": "fixed"}),
            ("PATCH", f"/contracts/{mine['code']}", {"name": "x"}),
            ("DELETE", f"/numbers/{mine['number']}", None),
            ("PUT", f"/contracts/{mine['code']}/subscriptions/recording", {}),
            ("GET", "/tokens", None), ("POST", "/tokens", {"contract": mine["code"]}),
            ("GET", "/check", None), ("GET", "/subscriptions", None),
            ("GET", "/priority-lines", None), ("POST", "/recordings/purge", {}),
            ("POST", "/recordings/reconcile", None), ("GET", "/prices", None)):
        r = me.request(method, V1 + path, body)
        assert r.status == 403, (method, path, r.body)
        assert "operator" in r.message
    assert op.get(f"{V1}/contracts/{mine['code']}").json()["name"] == ""  # PATCH did nothing


# ---- contracts ----------------------------------------------------------------------------
def test_contract_lifecycle_and_errors(op: Client) -> None:
    code = uniq()
    r = op.post(f"{V1}/contracts", {"code": code, "kind": "mobile", "name": "ACME",
                                    "extension_digits": 3})
    assert r.status == 201
    c = r.json()
    assert (c["code"], c["kind"], c["extension_digits"], c["recording"], c["nuisance"]) == (
        code, "mobile", 3, None, None)
    assert op.post(f"{V1}/contracts", {"code": code, "kind": "fixed"}).status == 409
    assert op.patch(f"{V1}/contracts/{code}", {"name": "ACME KK"}).json()["name"] == "ACME KK"
    for body, field in (({}, "missing"), ({"code": code}, "missing"),
                        ({"code": "bad code", "kind": "fixed"}, "code"),
                        ({"code": uniq(), "kind": "pbx"}, "kind"),
                        ({"code": uniq(), "kind": "fixed", "extension_digits": 9}, "digits"),
                        ({"code": uniq(), "kind": "fixed", "extension_digits": True}, "digits"),
                        ({"code": uniq(), "kind": "fixed", "colour": "red"}, "unknown"),
                        ({"code": uniq(), "kind": "fixed", "name": "a\nb"}, "name"),
                        ([], "object")):
        r = op.post(f"{V1}/contracts", body)
        assert r.status == 400, body
        assert field in r.message, (field, r.message)
    assert op.patch(f"{V1}/contracts/{code}", {}).status == 400
    assert op.patch(f"{V1}/contracts/NOPE{code}", {"name": "x"}).status == 404
    assert op.delete(f"{V1}/contracts/{code}").status == 204
    assert op.get(f"{V1}/contracts/{code}").status == 404
    assert op.delete(f"{V1}/contracts/{code}").status == 404


def test_a_contract_that_had_a_service_is_not_deleted(op: Client) -> None:
    """BILL, ADM-2: deleting it would erase its past bills (subscription history, counts, unit
    changes cascade with it): 409, cancel its services instead; nothing is deleted."""
    code = uniq()
    assert op.post(f"{V1}/contracts", {"code": code, "kind": "fixed"}).status == 201
    assert op.put(f"{V1}/contracts/{code}/subscriptions/recording", {}).status == 200
    r = op.delete(f"{V1}/contracts/{code}")
    assert r.status == 409 and "cancel its services" in r.message, r.body
    assert op.get(f"{V1}/contracts/{code}").status == 200
    month = tokyo_date(datetime.now(UTC)).strftime("%Y-%m")  # the API's clock: Tokyo's day
    bills = op.get(f"{V1}/bills?month={month}&contract={code}")
    assert bills.status == 200 and bills.json()["bills"][0]["subtotal"] > 0


def test_malformed_requests(op: Client) -> None:
    r = op.post(f"{V1}/contracts", raw=b"{", headers={"Content-Type": "application/json"})
    assert r.status == 400 and "JSON" in r.message
    r = op.post(f"{V1}/contracts", raw=b'{"code":"X1","kind":"fixed"}',
                headers={"Content-Type": "text/plain"})
    assert r.status == 415 and "application/json" in r.message
    r = op.post(f"{V1}/contracts", raw=b'{"code": "' + b"A" * 70000 + b'"}',
                headers={"Content-Type": "application/json"})
    assert r.status == 413 and "larger" in r.message
    # A lone surrogate is legal JSON escaping but no text: refused, not a database error.
    r = op.post(f"{V1}/contracts", raw=b'{"code": "SURR1", "kind": "fixed", "name": "\\ud800"}',
                headers={"Content-Type": "application/json"})
    assert r.status == 400 and "Unicode" in r.message
    assert op.get(f"{V1}/contracts/SURR1").status == 404
    r = op.put(f"{V1}/contracts", {})
    assert r.status == 405 and "PUT" in r.message and "GET" in r.headers["Allow"]
    r = op.get(f"{V1}/nothing-here")
    assert r.status == 404 and r.message
    assert op.get(f"{V1}/contracts/a%20b").status == 404
    for query in ("limit=0", "limit=501", "limit=abc", "offset=-1", "limit=1.5"):
        r = op.get(f"{V1}/contracts?{query}")
        assert r.status == 400 and ("limit" in r.message or "offset" in r.message), query


# ---- endpoints and channels ---------------------------------------------------------------
def test_endpoint_rules(op: Client) -> None:
    site = make_fixed(op)
    code, ep = site["code"], site["endpoint"]
    taken = op.get(f"{V1}/endpoints/{ep}").json()["address"]
    bad = [({"name": "x-1", "contract": code, "address": "999.1.1.1", "extension": "2002"},
            400, "address"),
           ({"name": "x-1", "contract": code, "address": address(), "extension": "22"},
            400, "4 digits"),
           ({"name": "X_1", "contract": code, "address": address(), "extension": "2002"},
            400, "name"),
           ({"name": "x-1", "contract": code, "address": address(), "extension": "2002",
             "channels": 0}, 400, "channels"),
           ({"name": "x-1", "contract": code, "address": address(), "extension": "2002",
             "roaming": True}, 400, "roaming"),
           ({"name": "x-1", "contract": code, "address": taken, "extension": "2002"},
            409, "address"),
           ({"name": "x-1", "contract": code, "address": address(), "extension": "2001"},
            409, "extension"),
           ({"name": ep, "contract": code, "address": address(), "extension": "2002"},
            409, "exists"),
           ({"name": "x-1", "contract": "NOPE" + code, "address": address(),
             "extension": "2002"}, 404, "contract")]
    for body, status, word in bad:
        r = op.post(f"{V1}/endpoints", body)
        assert (r.status, word in r.message) == (status, True), (body, r.status, r.message)
    assert op.patch(f"{V1}/endpoints/{ep}", {"channels": 5}).json()["channels"] == 5
    assert op.get(f"{V1}/contracts/{code}").json()["channels"] == 5
    assert op.patch(f"{V1}/endpoints/{ep}", {"channels": 101}).status == 400
    r = op.delete(f"{V1}/endpoints/{ep}")
    assert r.status == 409 and site["number"] in r.message
    r = op.delete(f"{V1}/contracts/{code}")
    assert r.status == 409 and "endpoint" in r.message


def test_mobile_handset_rules(op: Client) -> None:
    code = uniq()
    op.post(f"{V1}/contracts", {"code": code, "kind": "mobile"})
    ep = f"m-{next(_seq)}"
    assert op.post(f"{V1}/endpoints", {"name": ep, "contract": code, "address": address(),
                                       "extension": "2001", "channels": 2}).status == 400
    assert op.post(f"{V1}/endpoints", {"name": ep, "contract": code, "address": address(),
                                       "extension": "2001", "roaming": True}).status == 201
    native, office = number("090"), number("050")
    assert op.post(f"{V1}/numbers", {"number": native, "endpoint": ep,
                                     "role": "native"}).status == 201
    r = op.post(f"{V1}/numbers", {"number": number("090"), "endpoint": ep, "role": "native"})
    assert r.status == 409 and native in r.message  # one native number per handset
    r = op.post(f"{V1}/numbers", {"number": number("03"), "endpoint": ep, "role": "native"})
    assert r.status == 400 and "0abj" in r.message  # a native number is 070/080/090
    r = op.post(f"{V1}/numbers", {"number": number("03"), "endpoint": ep,
                                  "role": "representative"})
    assert r.status == 400 and "native, office" in r.message
    assert op.post(f"{V1}/numbers", {"number": office, "endpoint": ep,
                                     "role": "office"}).status == 201
    r = op.post(f"{V1}/numbers", {"number": number("03"), "endpoint": ep, "role": "office"})
    assert r.status == 409 and office in r.message  # and at most one office number
    r = op.patch(f"{V1}/numbers/{office}", {"nuisance": True})
    assert r.status == 409 and "nuisance" in r.message  # the contract has no such service


# ---- numbers and nuisance subscriptions (NCR-UNIT-1, BILL-*) ------------------------------
def test_numbers_and_nuisance_lists(op: Client, iso_engine: Engine) -> None:
    site = make_fixed(op, nuisance="per-number")
    code, ep = site["code"], site["endpoint"]
    second = number()
    r = op.post(f"{V1}/numbers", {"number": second, "endpoint": ep, "role": "dial-in"})
    assert r.status == 201 and r.json()["nuisance"] is True  # default for a subscriber
    lists = op.get(f"{V1}/nuisance-lists?contract={code}").json()["items"]
    assert sorted(lst["number"] for lst in lists) == sorted([site["number"], second])
    assert all(set(lst) >= {"entries", "capacity", "this_month", "last_month", "months"}
               for lst in lists)
    assert all("caller" not in str(lst) for lst in lists)  # counts only (NCR-PRIV-1)
    assert op.post(f"{V1}/numbers", {"number": second, "endpoint": ep,
                                     "role": "base"}).status == 409
    assert op.post(f"{V1}/numbers", {"number": "0312", "endpoint": ep,
                                     "role": "base"}).status == 400
    assert op.post(f"{V1}/numbers", {"number": number(), "endpoint": "nope",
                                     "role": "base"}).status == 404
    assert op.patch(f"{V1}/numbers/{second}", {"nuisance": False}).json()["nuisance"] is False
    assert len(op.get(f"{V1}/nuisance-lists?contract={code}").json()["items"]) == 1
    r = op.patch(f"{V1}/numbers/{site['number']}", {"nuisance": False})
    assert r.status == 409 and "last subscribed number" in r.message
    r = op.delete(f"{V1}/numbers/{site['number']}")
    assert r.status == 409
    assert op.get(f"{V1}/numbers/{site['number']}").json()["nuisance"] is True
    assert op.delete(f"{V1}/numbers/{second}").status == 204
    assert op.get(f"{V1}/numbers/{second}").status == 404


def test_unit_change_that_fails_writes_nothing(op: Client, iso_engine: Engine) -> None:
    """ADM-2: a per-contract subscriber without business numbers cannot go per-number; the
    failed change leaves unit, lists and the billed change history exactly as they were,
    although `set_unit` had already run inside the transaction."""
    code = uniq()
    op.post(f"{V1}/contracts", {"code": code, "kind": "mobile"})
    ep = f"m-{next(_seq)}"
    op.post(f"{V1}/endpoints", {"name": ep, "contract": code, "address": address(),
                                "extension": "2001"})
    op.post(f"{V1}/numbers", {"number": number("090"), "endpoint": ep, "role": "native"})
    assert op.put(f"{V1}/contracts/{code}/subscriptions/nuisance",
                  {"unit": "per-contract", "list_size": 30}).status == 200

    def state() -> tuple[Any, ...]:
        with Session(iso_engine) as s:
            cid = s.scalar(select(Contract.id).where(Contract.code == code))
            return (s.get(NuisanceSubscription, cid).unit,  # type: ignore[union-attr]
                    s.execute(select(NuisanceList.id, NuisanceList.active, NuisanceList.unit)
                              .where(NuisanceList.contract_id == cid)
                              .order_by(NuisanceList.id)).all(),
                    s.scalar(select(func.count()).where(NuisanceUnitChange.contract_id == cid)))

    before = state()
    r = op.put(f"{V1}/contracts/{code}/subscriptions/nuisance", {"unit": "per-number"})
    assert r.status == 409 and "business number" in r.message
    assert state() == before
    assert before[0] == "per-contract" and before[2] == 0


def test_subscription_lifecycle(op: Client, iso_engine: Engine) -> None:
    site = make_fixed(op)
    code = site["code"]
    sub = f"{V1}/contracts/{code}/subscriptions"
    r = op.put(f"{sub}/recording", {"activated_on": "2026-04-15", "retention_days": 30})
    assert r.status == 200
    assert r.json()["recording"] == {"activated_on": "2026-04-15", "cancelled_on": None,
                                     "retention_days": 30, "active": True}
    assert op.put(f"{sub}/recording", {"retention_days": 60}).json()["recording"][
        "retention_days"] == 60
    r = op.put(f"{sub}/recording", {"activated_on": "2026-05-01"})
    assert r.status == 409 and "already active" in r.message
    for body in ({"retention_days": 0}, {"activated_on": "2026-02-30"}, {"x": 1}):
        assert op.put(f"{sub}/recording", body).status == 400, body
    r = op.delete(f"{sub}/recording?on=2026-04-15")
    assert r.status == 409 and "after its activation" in r.message
    assert op.delete(f"{sub}/recording?on=2026-13-01").status == 400
    assert op.delete(f"{sub}/recording?on=2026-07-01").json()["recording"][
        "cancelled_on"] == "2026-07-01"
    assert op.delete(f"{sub}/recording").status == 409
    # nuisance: unit and list size
    r = op.put(f"{sub}/nuisance", {"list_size": 30})
    assert r.status == 400 and "unit" in r.message
    r = op.put(f"{sub}/nuisance", {"unit": "per-contract", "list_size": 7})
    assert r.status == 400
    # Source 004: the business service has no 6-entry plan (only 加入電話 has one).
    r = op.put(f"{sub}/nuisance", {"unit": "per-contract", "list_size": 6})
    assert r.status == 400
    r = op.put(f"{sub}/nuisance", {"unit": "per-contract", "list_size": 30})
    assert r.json()["nuisance"]["unit"] == "per-contract"
    assert r.json()["nuisance"]["list_size"] == 30
    r = op.put(f"{sub}/nuisance", {"unit": "per-number", "list_size": 30})
    assert r.status == 200 and r.json()["nuisance"]["unit"] == "per-number"
    lists = op.get(f"{V1}/nuisance-lists?contract={code}").json()["items"]
    assert [(lst["number"], lst["capacity"], lst["entries"]) for lst in lists] == [
        (site["number"], 30, 0)]
    with Session(iso_engine) as s:
        cid = s.scalar(select(Contract.id).where(Contract.code == code))
        assert s.scalar(select(func.count()).where(
            NuisanceUnitChange.contract_id == cid)) == 1  # billed as construction work
    future = (datetime.now(UTC) + timedelta(days=40)).date().isoformat()
    assert op.delete(f"{sub}/nuisance?on={future}").status == 400
    assert op.delete(f"{sub}/nuisance").status in (200, 409)  # 409 only if activated today
    assert op.get(f"{V1}/subscriptions?limit=500").status == 200


def test_list_resize_refused_when_entries_would_be_lost(op: Client, iso_engine: Engine) -> None:
    site = make_fixed(op, nuisance="per-contract")
    with iso_engine.begin() as c:
        list_id = c.execute(text(
            "SELECT l.id FROM nuisance_lists l JOIN contracts c ON c.id = l.contract_id "
            "WHERE c.code = :c AND l.active"), {"c": site["code"]}).scalar_one()
        for i in range(7):
            c.execute(text("INSERT INTO nuisance_entries (list_id, caller_key) VALUES (:l, :k)"),
                      {"l": list_id, "k": f"{i:064x}"})
    # Source 004: no smaller plan exists for the business service, so no resize can lose any.
    r = op.put(f"{V1}/contracts/{site['code']}/subscriptions/nuisance", {"list_size": 6})
    assert r.status == 400 and "30" in r.message
    lists = op.get(f"{V1}/nuisance-lists?contract={site['code']}").json()["items"]
    assert [(lst["entries"], lst["capacity"]) for lst in lists] == [(7, 30)]


# ---- priority lines and pagination --------------------------------------------------------
def test_priority_lines_and_pagination(op: Client) -> None:
    mine = sorted(number("06") for _ in range(5))
    for n in mine:
        assert op.post(f"{V1}/priority-lines", {"number": n, "description": "test"}).status == 201
    assert op.post(f"{V1}/priority-lines", {"number": mine[0]}).status == 409
    assert op.post(f"{V1}/priority-lines", {"number": "119"}).status == 400
    seen: list[str] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        page = op.get(f"{V1}/priority-lines?limit=2&offset={offset}").json()
        assert len(page["items"]) <= 2 and page["limit"] == 2
        seen += [p["number"] for p in page["items"]]
        offset = page["next_offset"]
        pages += 1
    assert set(mine) <= set(seen) and len(seen) == len(set(seen)) and pages >= 3
    for n in mine:
        assert op.delete(f"{V1}/priority-lines/{n}").status == 204
    assert op.delete(f"{V1}/priority-lines/{mine[0]}").status == 404


# ---- recordings (REC-FILE-4) --------------------------------------------------------------
def _recording(s: Session, settings: Settings, code: str, num: str, *, direction: str = "in",
               status: str = "complete", started: datetime | None = None,
               body: bytes | None = b"RIFF" + bytes(range(256)) * 8) -> Recording:
    cid = s.scalar(select(Contract.id).where(Contract.code == code))
    assert cid is not None
    started = started or datetime.now(UTC)
    rel = f"{started:%Y/%m/%d}/{code}/{started:%Y%m%dT%H%M%S%f}Z_{direction}_{next(_seq)}.wav"
    if body is not None:
        path = settings.recordings_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    row = Recording(contract_id=cid, number=num, direction=direction, remote="0399990001",
                    channel_id=f"test-{next(_seq)}", path=rel, started_at=started,
                    status=status, bytes=len(body) if body else None, duration_s=1.0)
    s.add(row)
    s.flush()
    return row


def test_recordings_search_and_download(op: Client, iso: Settings, iso_engine: Engine) -> None:
    mine, theirs = make_fixed(op), make_fixed(op)
    t0 = datetime(2026, 5, 1, 3, tzinfo=UTC)
    with Session(iso_engine) as s, s.begin():
        a = _recording(s, iso, mine["code"], mine["number"], started=t0)
        b = _recording(s, iso, mine["code"], mine["number"], direction="out",
                       started=t0 + timedelta(hours=1))
        live = _recording(s, iso, mine["code"], mine["number"], status="recording",
                          started=t0 + timedelta(hours=2))
        gone = _recording(s, iso, mine["code"], mine["number"], body=None,
                          started=t0 + timedelta(hours=3))
        other = _recording(s, iso, theirs["code"], theirs["number"], started=t0)
        ids = a.id, b.id, live.id, gone.id, other.id
    a_id, b_id, live_id, gone_id, other_id = ids
    me = op.as_(contract_token(op, mine["code"]))
    page = me.get(f"{V1}/recordings").json()
    assert [r["id"] for r in page["items"]] == [gone_id, live_id, b_id, a_id]  # newest first
    assert all("path" not in r for r in page["items"])  # no server paths
    assert [r["id"] for r in me.get(f"{V1}/recordings?direction=out").json()["items"]] == [b_id]
    since = (t0 + timedelta(minutes=30)).isoformat()
    until = (t0 + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    r = me.get(f"{V1}/recordings?since={since.replace('+', '%2B')}&until={until}")
    assert [x["id"] for x in r.json()["items"]] == [b_id]
    naive = me.get(f"{V1}/recordings?since=2026-05-01T12:30:00").json()  # JST, = 03:30Z
    assert [x["id"] for x in naive["items"]] == [gone_id, live_id, b_id]
    assert me.get(f"{V1}/recordings?number={mine['number']}&limit=1").json()["next_offset"] == 1
    assert me.get(f"{V1}/recordings?direction=sideways").status == 400
    assert me.get(f"{V1}/recordings?number=12").status == 400
    # the file: whole, ranged, unsatisfiable, attachment
    body = (iso.recordings_dir / _path_of(iso_engine, a_id)).read_bytes()
    whole = me.get(f"{V1}/recordings/{a_id}/audio")
    assert (whole.status, whole.body, whole.headers["Content-Type"]) == (200, body, "audio/wav")
    assert whole.headers.get("Accept-Ranges") == "bytes"
    part = me.get(f"{V1}/recordings/{a_id}/audio", headers={"Range": "bytes=100-199"})
    assert part.status == 206 and part.body == body[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(body)}"
    tail = me.get(f"{V1}/recordings/{a_id}/audio", headers={"Range": "bytes=-10"})
    assert tail.status == 206 and tail.body == body[-10:]
    bad = me.get(f"{V1}/recordings/{a_id}/audio", headers={"Range": f"bytes={len(body) + 5}-"})
    assert bad.status == 416
    # Issue #15: a problem+json body naming the size, and Content-Range: bytes */size.
    assert str(len(body)) in bad.message
    assert bad.headers["Content-Range"] == f"bytes */{len(body)}"
    head = me.request("HEAD", f"{V1}/recordings/{a_id}/audio")
    assert (head.status, head.body) == (200, b"")
    assert head.headers["Content-Length"] == str(len(body))
    assert head.headers["Content-Type"] == "audio/wav"
    att = me.get(f"{V1}/recordings/{a_id}/audio?download=true")
    assert att.headers["Content-Disposition"].startswith("attachment")
    r = me.get(f"{V1}/recordings/{live_id}/audio")
    assert r.status == 409 and "in progress" in r.message
    r = me.get(f"{V1}/recordings/{gone_id}/audio")
    assert r.status == 404 and "missing" in r.message
    # another contract's recording does not exist for this token
    for path in (f"/recordings/{other_id}", f"/recordings/{other_id}/audio"):
        r = me.get(V1 + path)
        assert r.status == 404 and str(other_id) in r.message
    assert op.get(f"{V1}/recordings/{other_id}/audio").status == 200  # the operator may
    assert op.get(f"{V1}/recordings/999999999").status == 404


def _path_of(engine: Engine, rec_id: int) -> Path:
    with Session(engine) as s:
        row = s.get(Recording, rec_id)
        assert row is not None
        return Path(row.path)


def test_purge_and_reconcile(op: Client, iso: Settings, iso_engine: Engine) -> None:
    site = make_fixed(op)
    op.put(f"{V1}/contracts/{site['code']}/subscriptions/recording", {"retention_days": 1})
    with Session(iso_engine) as s, s.begin():
        old = _recording(s, iso, site["code"], site["number"],
                         started=datetime.now(UTC) - timedelta(days=3))
        old_id, old_path = old.id, iso.recordings_dir / old.path
    dry = op.post(f"{V1}/recordings/purge", {"dry_run": True}).json()
    assert dry["dry_run"] is True and dry["rows"] >= 1 and old_path.exists()
    done = op.post(f"{V1}/recordings/purge", {}).json()
    assert done["rows"] >= 1 and not old_path.exists()
    assert op.get(f"{V1}/recordings/{old_id}").status == 404
    assert op.post(f"{V1}/recordings/purge", {"dry_run": "yes"}).status == 400
    report = op.post(f"{V1}/recordings/reconcile").json()
    assert set(report) >= {"checked", "completed", "failed", "asterisk_unreachable"}


# ---- tokens per contract via the API ------------------------------------------------------
def test_token_errors(op: Client) -> None:
    assert op.post(f"{V1}/tokens", {"contract": "NOPE-NOT-HERE"}).status == 404
    assert op.post(f"{V1}/tokens", {"contract": "bad code"}).status == 400
    assert op.delete(f"{V1}/tokens/0").status == 404
    assert op.get(f"{V1}/tokens?contract=NOPE-NOT-HERE").status == 404


# ---- prices -------------------------------------------------------------------------------
def test_prices(op: Client) -> None:
    before = op.get(f"{V1}/prices").json()
    assert before["nuisance_per_unit"] == 200  # excluding tax (source 004: 220 includes it)
    assert op.patch(f"{V1}/prices", {"nuisance_per_unit": -1}).status == 400
    assert op.patch(f"{V1}/prices", {"tax_rate_percent": 101}).status == 400
    assert op.patch(f"{V1}/prices", {"nuisance_unit_change_fee": "1"}).status == 400
    assert op.patch(f"{V1}/prices", {}).status == 400
    assert op.get(f"{V1}/prices").json() == before
    r = op.patch(f"{V1}/prices", {"nuisance_unit_change_fee": before["nuisance_unit_change_fee"]})
    assert r.status == 200 and r.json() == before


# ---- the OpenAPI document -----------------------------------------------------------------
def test_openapi_document(op: Client) -> None:
    r = op.as_(None).get("/openapi.json")
    assert r.status == 200
    doc = r.json()
    validate_openapi(doc)  # OpenAPI 3.1 meta-schema
    assert doc["openapi"].startswith("3.")
    ops = [(path, method, o) for path, item in doc["paths"].items()
           for method, o in item.items()]
    assert len(ops) >= 35
    for path, method, o in ops:
        codes = set(o["responses"])
        assert "401" in codes, (path, method)
        for code in codes:
            if code.startswith("4"):
                content = o["responses"][code]["content"]
                schema = content["application/problem+json"]["schema"]  # RFC 9457
                assert schema["required"] == ["type", "title", "status", "detail"], (path, code)
        if method in ("post", "put", "patch") and "requestBody" in o:
            assert {"400", "415"} <= codes, (path, method)
