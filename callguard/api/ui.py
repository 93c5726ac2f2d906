"""The recordings page of one contract (REC-FILE-4): list with filters (number, direction,
time range), an `<audio>` player and downloads with HTTP range support.

Signing in takes a contract token (`callguard tokens create --contract C`) and opens a page
session of its own (SEC-4): a random id in an HttpOnly, SameSite=Strict cookie scoped to /ui
that expires, never the token itself, so the cookie is worth nothing against /api/v1. The
sign-in form carries a CSRF token (double submit: cookie and hidden field must match). The
`<audio>` element's own requests carry the session cookie. Every row and file is looked up
with the token's contract: another contract's recording is "not found" (REC-FILE-4, SEC-2).
No script runs on the page (CSP `default-src 'none'`).
"""

from __future__ import annotations

import hmac
import html
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard import recordings
from callguard.api import schema as S
from callguard.api.core import SETTINGS, ApiError, Principal, db, principal_of
from callguard.api.resources import audio_response, get_recording_row
from callguard.api.ui_recopts import encrypted_cell, paused_note
from callguard.db.models import Contract, Number
from callguard.domain.nuisance import TOKYO

COOKIE = "cg_session"
CSRF_COOKIE = "cg_csrf"
SESSION_TTL_S = 8 * 3600  # a working day; then sign in again
MAX_SESSIONS = 10_000


@dataclass
class PageSession:
    token: str  # kept in this process only, re-checked on every request (revocation holds)
    expires: float  # time.monotonic()


# The page's sessions: random id -> session, in the API process's memory (a restart signs
# everybody out, which is safe).
_SESSIONS: dict[str, PageSession] = {}


def _new_session(token: str) -> str:
    now = time.monotonic()
    for sid in [k for k, v in _SESSIONS.items() if v.expires <= now]:
        del _SESSIONS[sid]
    if len(_SESSIONS) >= MAX_SESSIONS:
        _SESSIONS.pop(min(_SESSIONS, key=lambda k: _SESSIONS[k].expires))
    sid = secrets.token_urlsafe(32)
    _SESSIONS[sid] = PageSession(token, now + SESSION_TTL_S)
    return sid


def _session_token(sid: str | None) -> str | None:
    found = _SESSIONS.get(sid or "")
    if found is None:
        return None
    if found.expires <= time.monotonic():
        _SESSIONS.pop(sid or "", None)
        return None
    return found.token
PAGE_SIZE = 50
CSP = ("default-src 'none'; media-src 'self'; style-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
CSS = """body{font-family:sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;
text-align:left;vertical-align:middle}form.filters{margin:1rem 0}form.filters label{margin-right:
.8rem}.error{color:#a00}.muted{color:#777}audio{height:2rem}nav a{margin-right:1rem}"""


def _page(title: str, body: str, status: int = 200) -> web.Response:
    doc = (f'<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>'
           f'{html.escape(title)}</title><link rel="stylesheet" href="/ui/style.css"></head>'
           f"<body>{body}</body></html>")
    return web.Response(text=doc, status=status, content_type="text/html", headers={
        "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


def error_page(status: int, message: str) -> web.Response:
    """4xx/5xx under /ui for a browser: the same message as the JSON errors, readable."""
    return _page(f"{status}", f'<h1>{status}</h1><p class="error">{html.escape(message)}</p>'
                 '<p><a href="/ui/recordings">recordings</a></p>', status)


def _login_form(message: str = "", status: int = 200) -> web.Response:
    err = f'<p class="error" id="error">{html.escape(message)}</p>' if message else ""
    csrf = secrets.token_urlsafe(32)
    resp = _page("callguard recordings: sign in", f"""<h1>Recordings: sign in</h1>{err}
<form method="post" action="/ui/login"><label>Contract token
<input type="password" name="token" id="token" autocomplete="off" required size="50"></label>
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" id="signin">Sign in</button></form>
<p class="muted">Your operator gives you a contract token
(<code>callguard tokens create --contract C</code>).</p>""", status)
    resp.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="Strict", path="/ui/login",
                    max_age=3600)
    return resp


async def _principal(request: web.Request) -> Principal | None:
    found = await principal_of(request.app, _session_token(request.cookies.get(COOKIE)))
    return found if found is not None and not found.operator else None


async def login_form(request: web.Request) -> web.StreamResponse:
    return _login_form()


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    sent, expected = str(form.get("csrf", "")), request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _login_form("The sign-in form expired: please try again.", 403)
    token = str(form.get("token", "")).strip()
    found = await principal_of(request.app, token)
    if found is None:
        return _login_form("Unknown token.", 401)
    if found.operator:
        return _login_form("This page is per contract: sign in with a contract token.", 403)
    resp = web.HTTPSeeOther("/ui/recordings")
    resp.set_cookie(COOKIE, _new_session(token), httponly=True, samesite="Strict", path="/ui",
                    max_age=SESSION_TTL_S)
    resp.del_cookie(CSRF_COOKIE, path="/ui/login")
    raise resp


async def logout(request: web.Request) -> web.StreamResponse:
    _SESSIONS.pop(request.cookies.get(COOKIE, ""), None)
    resp = web.HTTPSeeOther("/ui/login")
    resp.del_cookie(COOKIE, path="/ui")
    raise resp


async def style(request: web.Request) -> web.StreamResponse:
    return web.Response(text=CSS, content_type="text/css",
                        headers={"Cache-Control": "max-age=3600"})


def _local(ts: datetime | None) -> str:
    return "-" if ts is None else ts.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M:%S")


def _filters(request: web.Request) -> tuple[dict[str, Any], list[str]]:
    """The filter form's values, validated by the API's own schemas; problems listed."""
    raw = {k: request.query.get(k, "").strip() for k in
           ("number", "remote", "direction", "since", "until", "offset")}
    out: dict[str, Any] = {"number": None, "remote": None, "direction": None, "since": None,
                           "until": None, "offset": 0}
    problems: list[str] = []
    checks = {"number": S.NUMBER, "remote": S.REMOTE,
              "direction": {"type": "string", "enum": ["in", "out"]},
              "since": S.DATE_TIME, "until": S.DATE_TIME,
              "offset": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000}}
    for key, schema in checks.items():
        if raw[key]:
            try:
                out[key] = S.from_query(raw[key], schema, key)
            except S.SchemaError as exc:
                problems.append(str(exc))
    return out | {"raw": raw}, problems


def _rows(s: Session, code: str, f: dict[str, Any]) -> tuple[list[Any], list[str]]:
    q = recordings.Search(code, f["number"], f["remote"], f["direction"], f["since"],
                          f["until"], PAGE_SIZE + 1, f["offset"])
    numbers = s.scalars(select(Number.number).join(Contract, Contract.id == Number.contract_id)
                        .where(Contract.code == code).order_by(Number.number)).all()
    return recordings.search(s, q), list(numbers)


async def recordings_page(request: web.Request) -> web.StreamResponse:
    who = await _principal(request)
    if who is None:
        raise web.HTTPSeeOther("/ui/login")
    code = str(who.contract)
    f, problems = _filters(request)
    rows, numbers = await db(request.app, lambda s: _rows(s, code, f))
    more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    raw = f["raw"]

    def sel(value: str, current: str) -> str:
        return " selected" if value == current else ""

    number_opts = "".join(f'<option value="{html.escape(n)}"{sel(n, raw["number"])}>'
                          f"{html.escape(n)}</option>" for n in numbers)
    form = f"""<form class="filters" method="get" action="/ui/recordings" id="filters">
<label>Number <select name="number" id="f-number"><option value="">all</option>{number_opts}
</select></label>
<label>Other party <input type="search" name="remote" id="f-remote" size="14"
 value="{html.escape(raw["remote"])}"></label>
<label>Direction <select name="direction" id="f-direction"><option value="">both</option>
<option value="in"{sel("in", raw["direction"])}>in</option>
<option value="out"{sel("out", raw["direction"])}>out</option></select></label>
<label>From <input type="datetime-local" name="since" id="f-since" step="1"
 value="{html.escape(raw["since"])}"></label>
<label>Until <input type="datetime-local" name="until" id="f-until" step="1"
 value="{html.escape(raw["until"])}"></label>
<button type="submit" id="f-apply">Filter</button> <a href="/ui/recordings">clear</a></form>"""
    errors = "".join(f'<p class="error">{html.escape(p)}</p>' for p in problems)
    body_rows = []
    for rec, _code in rows:
        # Issue #15: each player and link names its call; a failed recording has no audio.
        call = html.escape(f"{_local(rec.started_at)} {rec.remote or 'unknown caller'}",
                           quote=True)
        audio = encrypted_cell(rec) or (
            '<span class="muted">recording…</span>' if rec.status == "recording" else
            '<span class="muted">no audio (failed)</span>' if rec.status == "failed" else
            f'<audio controls preload="none" id="audio-{rec.id}" aria-label="play {call}" '
            f'src="/ui/recordings/{rec.id}/audio"></audio> '
            f'<a href="/ui/recordings/{rec.id}/audio?download=1" '
            f'aria-label="download {call}">download</a>')
        body_rows.append(
            f'<tr id="rec-{rec.id}" data-status="{html.escape(rec.status)}">'
            f"<td>{_local(rec.started_at)}</td><td>{html.escape(rec.direction)}</td>"
            f"<td>{html.escape(rec.number)}</td><td>{html.escape(rec.remote)}</td>"
            f"<td>{rec.duration_s or 0:.1f} s{paused_note(rec)}</td>"
            f"<td>{html.escape(rec.status)}</td>"
            f"<td>{audio}</td></tr>")
    table = ("<table><thead><tr><th>Started (JST)</th><th>Dir</th><th>Our number</th>"
             "<th>Other party</th><th>Length</th><th>Status</th><th>Play / download</th>"
             f"</tr></thead><tbody>{''.join(body_rows)}</tbody></table>"
             if body_rows else '<p id="empty">No recordings match.</p>')
    keep = {k: v for k, v in raw.items() if v and k != "offset"}
    nav = []
    if f["offset"]:
        prev = urlencode(keep | {"offset": max(0, f["offset"] - PAGE_SIZE)})
        nav.append(f'<a href="/ui/recordings?{prev}" id="prev">newer</a>')
    if more:
        nxt = urlencode(keep | {"offset": f["offset"] + PAGE_SIZE})
        nav.append(f'<a href="/ui/recordings?{nxt}" id="next">older</a>')
    return _page(f"Recordings of {code}", f"""<h1>Recordings of contract
<span id="contract">{html.escape(code)}</span></h1>
<form method="post" action="/ui/logout"><button type="submit">Sign out</button></form>
{form}{errors}{table}<nav>{"".join(nav)}</nav>""", 400 if problems else 200)


async def recording_file(request: web.Request) -> web.StreamResponse:
    who = await _principal(request)
    if who is None:
        raise ApiError(401, "sign in with a contract token first (/ui/login)")
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, f"no recording {raw[:40]!r}")
    row, _ = await db(request.app, lambda s: get_recording_row(s, int(raw), who.contract_id))
    return audio_response(row, request.app[SETTINGS].recordings_dir,
                          request.query.get("download") == "1", request)


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/ui/recordings")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/ui", home)
    app.router.add_get("/ui/login", login_form)
    app.router.add_post("/ui/login", login)
    app.router.add_post("/ui/logout", logout)
    app.router.add_get("/ui/style.css", style)
    app.router.add_get("/ui/recordings", recordings_page)
    app.router.add_get("/ui/recordings/{id}/audio", recording_file)
