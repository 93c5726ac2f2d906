"""Issue #15 against the real PostgreSQL and `callguard-api`: forwarding (REC-IN-2) and the
recording capacity (REC-CAP-1) through the API with the CLI's rules and the CLI seeing the
same rows, jsonschema format checking (an address of `not-an-ip` refused with an RFC 9457
problem), and keyset (cursor) paging of recordings over 10,000 rows, stable while rows are
added."""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from callguard.config import Settings
from tests.api.conftest import Client
from tests.api.test_api import V1, address, contract_token, make_fixed
from tests.isolated_db import cli


def test_forwarding_through_the_api(op: Client, iso: Settings) -> None:
    site = make_fixed(op)
    num, url = site["number"], f"{V1}/numbers/{site['number']}/forwarding"
    assert op.get(url).status == 404  # not forwarded yet
    r = op.put(url, {"mode": "no-answer", "to": "09012345678", "after_s": 15})
    assert r.status == 200, r.body
    assert r.json() == {"number": num, "mode": "no-answer", "to": "09012345678", "after_s": 15}
    assert op.get(url).json()["after_s"] == 15
    listed = op.get(f"{V1}/forwardings?contract={site['code']}").json()
    assert [f["number"] for f in listed["items"]] == [num] and listed["next_offset"] is None
    # The CLI reads what the API wrote (one service, one table).
    done = cli(iso, "forwarding", "list", "--json", "--contract", site["code"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["items"] == listed["items"]
    # The same refusals as the CLI's, nothing written.
    for body, status, word in (
            ({"mode": "unconditional", "to": num}, 400, "itself"),
            ({"mode": "unconditional", "to": "110"}, 400, "reachable"),
            ({"mode": "unconditional", "to": "09012345678", "after_s": 10}, 400, "no-answer"),
            ({"mode": "no-answer", "to": "09012345678", "after_s": 121}, 400, "after_s"),
            ({"mode": "sometimes", "to": "09012345678"}, 400, "mode"),
            ({"mode": "unconditional"}, 400, "to")):
        r = op.put(url, body)
        assert (r.status, word in r.message) == (status, True), (body, r.status, r.body)
    assert op.get(url).json()["mode"] == "no-answer"
    assert op.put(f"{V1}/numbers/0399999999/forwarding",
                  {"mode": "unconditional", "to": "09012345678"}).status == 404
    done = cli(iso, "forwarding", "set", "--number", num, "--to", num, "--mode",
               "unconditional")
    assert done.returncode == 2 and "itself" in done.stderr
    # A contract reads its own forwarding, changes nothing, sees no other contract's.
    me = op.as_(contract_token(op, site["code"]))
    assert me.get(url).status == 200
    assert me.put(url, {"mode": "unconditional", "to": "09012345678"}).status == 403
    other = make_fixed(op)
    assert me.get(f"{V1}/numbers/{other['number']}/forwarding").status == 404
    assert op.delete(url).status == 204
    assert op.get(url).status == 404
    assert op.delete(url).status == 204  # idempotent


def test_capacity_through_the_api(op: Client, iso: Settings) -> None:
    url = f"{V1}/recording-capacity"
    try:
        r = op.put(url, {"max_recordings": 3, "at_capacity_policy": "unrecorded"})
        assert r.status == 200, r.body
        shown = r.json()
        assert (shown["max_recordings"], shown["at_capacity_policy"]) == (3, "unrecorded")
        assert shown["source"] == {"max_recordings": "site_settings",
                                   "at_capacity_policy": "site_settings"}
        done = cli(iso, "recordings", "capacity")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["max_recordings"] == 3
        for body, word in (({"max_recordings": -1}, "max_recordings"),
                           ({"at_capacity_policy": "drop"}, "policy"),
                           ({"reset": True, "max_recordings": 2}, "reset"),
                           ({}, "at least one")):
            r = op.put(url, body)
            assert (r.status, word in r.message) == (400, True), (body, r.body)
        assert op.get(url).json()["max_recordings"] == 3  # nothing written
        assert cli(iso, "recordings", "capacity", "--max", "-1").returncode == 2
        reset = op.put(url, {"reset": True}).json()
        assert reset["max_recordings"] == iso.max_recordings
        assert reset["source"]["max_recordings"] == "default"
        assert op.as_(contract_token(op, make_fixed(op)["code"])).get(url).status == 403
    finally:
        op.put(url, {"reset": True})


def test_address_format_checked_with_a_problem(op: Client) -> None:
    site = make_fixed(op)
    for bad in ("not-an-ip", "10.0.0", "1.2.3.4.5", "::g"):
        r = op.post(f"{V1}/endpoints", {"name": "x-9", "contract": site["code"],
                                        "address": bad, "extension": "2009"})
        assert r.status == 400, (bad, r.body)
        assert r.headers["Content-Type"].startswith("application/problem+json")
        data = r.json()
        assert data["title"] == "Bad Request" and data["instance"] == f"{V1}/endpoints"
        assert "address" in data["detail"], data
    r = op.patch(f"{V1}/endpoints/{site['endpoint']}", {"address": "not-an-ip"})
    assert r.status == 400 and "address" in r.message
    ok = op.post(f"{V1}/endpoints", {"name": "x-9", "contract": site["code"],
                                     "address": address(),
                                     "extension": "2009"})
    assert ok.status == 201, ok.body


def test_cursor_paging_over_10000_recordings(op: Client, iso_engine: Engine) -> None:
    site = make_fixed(op)
    code, t0 = site["code"], datetime(2026, 3, 1, tzinfo=UTC)
    with iso_engine.begin() as c:
        cid = c.execute(text("SELECT id FROM contracts WHERE code = :c"), {"c": code}).scalar()
        # 10,000 rows; every tenth pair shares a start time (the id breaks the tie).
        c.execute(text(
            "INSERT INTO recordings (contract_id, number, direction, remote, channel_id, path,"
            " started_at, status) SELECT :cid, :num, 'in', '0399990001', :code || '-' || g,"
            " :code || '/' || g || '.wav', :t0 + ((g / 2) * interval '1 second'), 'complete'"
            " FROM generate_series(1, 10000) AS g"), {"cid": cid, "num": site["number"],
                                                       "code": code, "t0": t0})
        expected = [r[0] for r in c.execute(text(
            "SELECT id FROM recordings WHERE contract_id = :cid"
            " ORDER BY started_at DESC, id DESC"), {"cid": cid})]
    assert len(expected) == 10000
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        q = f"{V1}/recordings?contract={code}&limit=500"
        r = op.get(q + (f"&cursor={cursor}" if cursor else ""))
        assert r.status == 200, r.body
        page = r.json()
        seen += [x["id"] for x in page["items"]]
        pages += 1
        if pages == 3:
            # Newer calls recorded meanwhile neither shift nor repeat the rest of the walk.
            with iso_engine.begin() as c:
                c.execute(text(
                    "INSERT INTO recordings (contract_id, number, direction, remote,"
                    " channel_id, path, started_at, status) VALUES (:cid, :num, 'in', '',"
                    " :ch, :path, :t, 'complete')"),
                    {"cid": cid, "num": site["number"], "ch": f"{code}-new",
                     "path": f"{code}/new.wav", "t": t0 + timedelta(days=30)})
        cursor = page.get("next_cursor")
        if cursor is None:
            break
        # The first page offers both ways on; a cursor page no offset to mix in.
        assert page["next_offset"] == (500 if pages == 1 else None)
    assert pages == 20
    assert seen == expected
    assert op.get(f"{V1}/recordings?contract={code}&cursor=bm9wZQ").status == 400
    assert op.get(f"{V1}/recordings?contract={code}&cursor=a&offset=5").status == 400
    assert op.get(f"{V1}/recordings?contract={code}&cursor=a%20b").status == 400


def test_recordings_page_filters_by_the_other_party(op: Client, api_base: str,
                                                    iso_engine: Engine) -> None:
    """The page (REC-FILE-4): filter by the other party; players and links named after their
    call; a failed recording gets no player."""
    site = make_fixed(op)
    with iso_engine.begin() as c:
        cid = c.execute(text("SELECT id FROM contracts WHERE code = :c"),
                        {"c": site["code"]}).scalar()
        for i, (remote, status) in enumerate((("0399990011", "complete"),
                                              ("0399990022", "failed"))):
            c.execute(text(
                "INSERT INTO recordings (contract_id, number, direction, remote, channel_id,"
                " path, started_at, status) VALUES (:cid, :num, 'in', :remote, :ch, :path,"
                " :t, :status)"),
                {"cid": cid, "num": site["number"], "remote": remote, "status": status,
                 "ch": f"{site['code']}-ui{i}", "path": f"{site['code']}/ui{i}.wav",
                 "t": datetime(2026, 5, 1, 9, i, tzinfo=UTC)})
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("Accept-Language", "en")]  # the English labels read below
    with opener.open(f"{api_base}/ui/login", timeout=10) as resp:
        csrf = re.search(r'name="csrf" value="([^"]+)"', resp.read().decode())
    assert csrf is not None
    form = urllib.parse.urlencode({"token": contract_token(op, site["code"]),
                                   "csrf": csrf[1]}).encode()
    with opener.open(f"{api_base}/ui/login", data=form, timeout=10) as resp:
        assert resp.url.endswith("/ui/recordings")
        page = resp.read().decode()
    assert "0399990011" in page and "0399990022" in page
    assert re.search(r'<audio [^>]*aria-label="play 2026-05-01 18:00:00 0399990011"', page)
    assert 'aria-label="download 2026-05-01 18:00:00 0399990011"' in page
    failed_row = re.search(r'<tr id="rec-\d+" data-status="failed">.*?</tr>', page)
    assert failed_row and "<audio" not in failed_row[0] and "no audio" in failed_row[0]
    with opener.open(f"{api_base}/ui/recordings?remote=0399990022", timeout=10) as resp:
        only = resp.read().decode()
    assert "0399990022" in only and "0399990011" not in only
