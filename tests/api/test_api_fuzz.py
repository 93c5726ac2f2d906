"""REL-4 / SEC-2: over a thousand malformed API requests, every one refused cleanly.

Each request is built from the API's own route table (so every route is hit) and is invalid
by construction: broken JSON, a body of the wrong shape or a field of the wrong type, the
wrong content type, bad query values, hostile path segments, missing or forged tokens, a
contract token on operator routes. What must hold: never a 5xx or a dropped connection,
every refusal a JSON `{status, message}` with a 4xx status, nothing written (every table's
contents unchanged), and the service still answering normally afterwards.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import re
from collections import Counter
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import Engine, text

from callguard.api.core import Access, Route
from callguard.api.resources import routes
from callguard.api.schema import Schema
from tests.api.conftest import Client
from tests.api.test_api import V1, contract_token, make_fixed

REQUESTS = 1_200
SEED = 20261122

# Values no string/integer/boolean schema of the API accepts for a field of another type.
WRONG_FOR: dict[str, list[Any]] = {
    "string": [12345, 1.5, True, None, [], {}, ["a"], {"a": 1}],
    "integer": ["12", "abc", 1.25, True, None, [], {}, "", "1e3", 1e309],
    "number": ["1", None, [], {}, True],
    "boolean": ["true", 1, 0, None, [], {}, "yes"],
}
HOSTILE_TEXT = ["", " ", "'", '"', ";", "%00", "\x00", "\u202e", "日本語", "0" * 100,
                "<script>", "../../etc/passwd", "a" * 5000, "\ud800", "1;DROP TABLE contracts"]
BROKEN_JSON = [b"{", b"}", b"[", b'{"a":', b"nul", b"\xff\xfe\x00", b'{"a":1,}', b"'x'",
               b"{'code': 'X'}", b"NaN", b"\x00", b'{"code":"\\ud800"', b""]
NOT_AN_OBJECT: list[Any] = [[], [1, 2], 1, -1, "x", None, True, 1.5]
SEGMENTS = ["%00", "%2e%2e", "a%20b", "%E6%97%A5", "x" * 300, "'", "%22", "%3B", "-1",
            "0" * 100, "%F0%9F%93%9E", "..%2F..%2Fetc"]
BAD_INTEGERS = ["abc", "1.5", "1e3", "", "99999999999999999999999", "\x00", "0x10", " 1"]
BAD_BOOLEANS = ["yes", "1", "", "TRUE", "\x00"]
CONTENT_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                 "application/xml", ""]
TABLES_SQL = """SELECT table_name FROM information_schema.tables
                WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                AND table_name <> 'alembic_version' ORDER BY table_name"""


def fingerprint(engine: Engine) -> dict[str, str]:
    """Every table's whole contents, hashed: a write anywhere changes it."""
    out: dict[str, str] = {}
    with engine.connect() as conn:
        for (table,) in conn.execute(text(TABLES_SQL)).all():
            # table names come from the catalog, not from input
            rows = conn.execute(text(f'SELECT * FROM "{table}" ORDER BY 1')).all()  # noqa: S608
            out[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


def wrong_body(rng: random.Random, schema: Schema) -> bytes:
    """A body `schema` cannot accept, as bytes."""
    kind = rng.randrange(5)
    props: dict[str, Schema] = schema.get("properties", {})
    if kind == 4 and props:
        # well-formed JSON whose every field is a lone surrogate (\ud800): no field accepts it
        return json.dumps({k: "\ud800" for k in props}).encode()
    if kind == 0:
        return rng.choice(BROKEN_JSON)
    if kind == 1:
        return json.dumps(rng.choice(NOT_AN_OBJECT)).encode()
    typed = [k for k, p in props.items() if isinstance(p.get("type"), str)
             and p["type"] in WRONG_FOR]
    body: dict[str, Any] = {}
    if kind == 2 and typed:
        # plausible-looking junk in every field, and one field certainly of the wrong type
        for k in props:
            body[k] = rng.choice(HOSTILE_TEXT)
        victim = rng.choice(typed)
        body[victim] = rng.choice(WRONG_FOR[props[victim]["type"]])
    elif schema.get("required"):
        # everything but one required field
        body = {k: rng.choice(HOSTILE_TEXT) for k in props}
        body.pop(rng.choice(schema["required"]))
    elif schema.get("additionalProperties") is False:
        body = {f"unknown_{rng.randrange(999)}": rng.choice(HOSTILE_TEXT)}
    else:
        return rng.choice(BROKEN_JSON)  # no field-level mistake is certain for this schema
    return json.dumps(body, ensure_ascii=rng.random() < 0.5).encode(errors="surrogatepass")


def bad_query_value(rng: random.Random, schema: Schema) -> str | None:
    """A query value `schema` certainly refuses, or None when none is certain."""
    kind = schema.get("type")
    if kind == "integer":
        return str(rng.choice(BAD_INTEGERS + ["-1"] * ("minimum" in schema)))
    if kind == "boolean":
        return rng.choice(BAD_BOOLEANS)
    if "enum" in schema:
        return "sideways"
    if schema.get("format") in ("date", "date-time"):
        return rng.choice(["2026-13-45", "yesterday", "2026-02-30T25:61", "\x00"])
    if "maxLength" in schema:
        return "9" * (int(schema["maxLength"]) + 1)
    if "pattern" in schema:
        misfits = [v for v in HOSTILE_TEXT if re.search(schema["pattern"], v) is None]
        return str(rng.choice(misfits)) if misfits else None
    return None


def fill_path(rng: random.Random, route: Route, hostile: bool, known: dict[str, str]) -> str:
    path = route.path
    for name in re.findall(r"{(\w+)}", path):
        value = rng.choice(SEGMENTS) if hostile else known.get(name, "1")
        path = path.replace(f"{{{name}}}", value)
    return path


def one_request(rng: random.Random, route: Route, tokens: dict[str, str],
                known: dict[str, str]) -> tuple[str, str, bytes | None, dict[str, str], str]:
    """(method, path, body, headers, what) of one request that must be refused."""
    headers: dict[str, str] = {}
    body: bytes | None = None
    choices = ["no-token", "forged-token"]
    if route.access is Access.OPERATOR:
        choices.append("contract-token")
    if route.body is not None:
        choices += ["bad-body"] * 4 + ["content-type"]
    probe = random.Random(0)
    queryable = [p for p in route.params
                 if p.where == "query" and bad_query_value(probe, p.schema) is not None]
    if queryable:
        choices += ["bad-query"] * 2
    if "{" in route.path:
        choices += ["bad-path"] * 2
    what = rng.choice(choices)
    token = tokens["operator"]
    if what == "no-token":
        token = ""
    elif what == "forged-token":
        token = rng.choice(["x", "Bearer", tokens["operator"][:-1] + "A", "é" * 20,
                            "a" * 300, tokens["contract"] + "x", "\t"])
    elif what == "contract-token":
        token = tokens["contract"]
    if token:
        headers["Authorization"] = rng.choice(["Bearer ", "bearer "]) + token
    elif rng.random() < 0.5:
        headers["Authorization"] = rng.choice(["Basic Zm9vOmJhcg==", "Bearer", "Token abc", ""])
    path = fill_path(rng, route, what == "bad-path", known)
    if what == "bad-query":
        p = rng.choice(queryable)
        bad = bad_query_value(rng, p.schema)
        assert bad is not None
        required = [f"&{q.name}={known[q.name]}" for q in route.params
                    if q.where == "query" and q.required and q is not p and q.name in known]
        raw = quote(bad.encode("utf-8", "surrogatepass"), safe="")
        path += f"?{p.name}={raw}" + "".join(required)
    if route.body is not None:
        body = wrong_body(rng, route.body) if what == "bad-body" else b'{"x": 1}'
        ctype = "application/json"
        if what == "content-type":
            ctype = rng.choice(CONTENT_TYPES)
            body = json.dumps({"code": "FUZZ1", "kind": "fixed"}).encode()
        if ctype:
            headers["Content-Type"] = ctype
    elif rng.random() < 0.2:
        body = rng.choice(BROKEN_JSON)  # a stray body on a GET/DELETE changes nothing
    return route.method, path, body, headers, what


@pytest.fixture(scope="module")
def site(op: Client) -> dict[str, str]:
    """One real contract, so valid-looking paths reach real handlers."""
    made = make_fixed(op)
    return {**made, "token": contract_token(op, made["code"])}


def test_a_thousand_malformed_requests_are_refused_cleanly(
        op: Client, site: dict[str, str], iso_engine: Engine) -> None:
    rng = random.Random(SEED)
    table = [r for r in routes() if r.access is not Access.PUBLIC]
    tokens = {"operator": str(op.token), "contract": site["token"]}
    known = {"code": site["code"], "name": site["endpoint"], "number": site["number"],
             "id": "999999", "month": "2026-10"}
    before = fingerprint(iso_engine)
    base = urlsplit(op.base)
    statuses: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    problems: list[str] = []
    for i in range(REQUESTS):
        route = table[i % len(table)]  # every route, then again, ~REQUESTS/len times
        method, path, body, headers, what = one_request(rng, route, tokens, known)
        kinds[what] += 1
        conn = http.client.HTTPConnection(str(base.hostname), base.port, timeout=30)
        try:
            # http.client sends the path bytes as given (no re-quoting): hostile segments
            # arrive as written.
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v.encode("utf-8", "surrogatepass"))
            conn.putheader("Content-Length", str(len(body or b"")))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            status, raw = resp.status, resp.read()
            kind = resp.getheader("Content-Type", "")
        except (OSError, http.client.HTTPException) as exc:
            problems.append(f"{method} {path[:80]} ({what}): connection failed: {exc}")
            continue
        finally:
            conn.close()
        statuses[status] += 1
        label = f"{method} {path[:80]} ({what}) -> {status}"
        if not 400 <= status < 500:
            problems.append(f"{label}: {raw[:200]!r}")
            continue
        if method == "HEAD":  # no body by definition: the headers say what it would be
            if not (raw == b"" and kind.startswith("application/problem+json")):
                problems.append(f"{label}: HEAD answered {kind!r} {raw[:60]!r}")
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            problems.append(f"{label}: not JSON: {raw[:120]!r}")
            continue
        if not (isinstance(data, dict) and data.get("status") == status
                and isinstance(data.get("detail"), str) and data["detail"]
                and isinstance(data.get("title"), str)):
            problems.append(f"{label}: not an RFC 9457 problem: {data!r:.200}")
    print(f"\nAPI fuzz (REL-4): {REQUESTS} requests over {len(table)} routes; "
          f"statuses {dict(sorted(statuses.items()))}; kinds {dict(sorted(kinds.items()))}")
    assert not problems, "\n".join(problems[:30])
    assert sum(statuses.values()) == REQUESTS
    assert fingerprint(iso_engine) == before, "a refused request wrote something"
    # Still serving normally, for both kinds of token.
    assert op.get(f"{V1}/contracts/{site['code']}").status == 200
    assert op.as_(site["token"]).get(f"{V1}/numbers").json()["items"][0]["number"] \
        == site["number"]
