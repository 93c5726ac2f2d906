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
from callguard.api import i18n
from callguard.api import schema as S
from callguard.api.core import SETTINGS, ApiError, Principal, db, principal_of
from callguard.api.i18n import Lang, t
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
# Text colours keep a contrast of 4.5:1 or more on white (WCAG AA, checked with axe-core).
CSS = """body{font-family:sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;
text-align:left;vertical-align:middle}form.filters{margin:1rem 0}
.error{color:#a00}.muted{color:#595959}audio{height:2rem}nav a{margin-right:1rem}
header{display:flex;align-items:center;gap:1rem;flex-wrap:wrap}
header form{margin-left:auto}header nav.lang:first-child{margin-left:auto}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center}
form.filters label{margin:0}td audio{vertical-align:middle;margin-right:.5rem}"""


def lang_of(request: web.Request) -> Lang:
    """The page's language: `?lang=` switch, then the remembered switch, then
    Accept-Language, then Japanese (issue #15)."""
    return i18n.negotiate(request.query.get("lang"), request.cookies.get(i18n.COOKIE),
                          request.headers.get("Accept-Language"))


def _switch_href(request: web.Request, lang: Lang) -> str:
    """This page in the other language (a GET of the same path, its query kept)."""
    keep = {k: v for k, v in request.query.items() if k != "lang"}
    return f"{request.path}?{urlencode(keep | {'lang': i18n.other(lang)})}"


def _page(title: str, body: str, status: int = 200, lang: Lang = i18n.DEFAULT,
          request: web.Request | None = None, nav: str = "",
          extra_css: str = "") -> web.Response:
    """One page: `lang` on <html>, a header with the site links and the language switch
    (named in the language it switches to), the body in <main>."""
    switch = ""
    if request is not None:
        to = i18n.other(lang)
        switch = (f'<nav aria-label="{t(lang, "switch_label")}" class="lang">'
                  f'<a id="lang-switch" href="{html.escape(_switch_href(request, lang))}" '
                  f'lang="{to}" hreflang="{to}">{t(lang, "switch")}</a></nav>')
    css = '<link rel="stylesheet" href="/ui/style.css">' + (
        f'<link rel="stylesheet" href="{extra_css}">' if extra_css else "")
    doc = (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width, initial-scale=1">'
           f"<title>{html.escape(title)}</title>{css}</head>"
           f"<body><header>{nav}{switch}</header><main>{body}</main></body></html>")
    resp = web.Response(text=doc, status=status, content_type="text/html", headers={
        "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
        "Content-Language": lang, "Vary": "Accept-Language, Cookie"})
    if request is not None and i18n.known(request.query.get("lang")) == lang:
        # The switch was used: remember it for the pages under /ui.
        resp.set_cookie(i18n.COOKIE, lang, httponly=True, samesite="Strict", path="/ui",
                        max_age=365 * 24 * 3600)
    return resp


def site_nav(lang: Lang, here: str) -> str:
    """The links between the recordings and the overview page, and signing out."""
    links = []
    for path, key in (("/ui/recordings", "nav_recordings"), ("/ui/overview", "nav_overview")):
        current = ' aria-current="page"' if path == here else ""
        links.append(f'<a href="{path}"{current}>{t(lang, key)}</a>')
    return (f'<nav aria-label="{t(lang, "site_nav")}">{"".join(links)}</nav>'
            '<form method="post" action="/ui/logout">'
            f'<button type="submit" id="signout">{t(lang, "sign_out")}</button></form>')


def error_page(status: int, message: str, request: web.Request | None = None) -> web.Response:
    """4xx/5xx under /ui for a browser: a heading in the page's language, the API's own
    message (English, marked so) beneath it."""
    lang = lang_of(request) if request is not None else i18n.DEFAULT
    key = f"err_{status}" if f"err_{status}" in i18n.TEXT else "err_other"
    return _page(f"{status} {t(lang, key)}",
                 f'<h1>{status} {t(lang, key)}</h1><p class="error">'
                 f'{t(lang, "err_detail")}: <span lang="en">{html.escape(message)}</span></p>'
                 f'<p><a href="/ui/recordings">{t(lang, "nav_recordings")}</a></p>',
                 status, lang, request)


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def set_csrf(resp: web.Response, csrf: str, path: str) -> web.Response:
    """A sign-in form's CSRF token (double submit): the form's field and this cookie."""
    resp.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="Strict", path=path,
                    max_age=3600)
    return resp


def csrf_ok(request: web.Request, form: Any) -> bool:
    sent, expected = str(form.get("csrf", "")), request.cookies.get(CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def start_session(resp: web.HTTPException, token: str, form_path: str) -> None:
    """Signed in: the page session's cookie (never the token itself, SEC-4)."""
    resp.set_cookie(COOKIE, _new_session(token), httponly=True, samesite="Strict", path="/ui",
                    max_age=SESSION_TTL_S)
    resp.del_cookie(CSRF_COOKIE, path=form_path)


def session_token(request: web.Request) -> str | None:
    """The token behind this request's page session (None: not signed in)."""
    return _session_token(request.cookies.get(COOKIE))


def _login_form(request: web.Request, message_key: str = "",
                status: int = 200) -> web.Response:
    lang = lang_of(request)
    err = (f'<p class="error" id="error" role="alert">{t(lang, message_key)}</p>'
           if message_key else "")
    csrf = new_csrf()
    hint = t(lang, "login_hint", cmd="<code>callguard tokens create --contract C</code>")
    resp = _page(f"callguard {t(lang, 'login_title')}",
                 f"""<h1>{t(lang, "login_title")}</h1>{err}
<form method="post" action="/ui/login"><label>{t(lang, "login_token")}
<input type="password" name="token" id="token" autocomplete="off" required size="50"></label>
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" id="signin">{t(lang, "login_button")}</button></form>
<p class="muted">{hint}</p>""", status, lang, request)
    return set_csrf(resp, csrf, "/ui/login")


async def _principal(request: web.Request) -> Principal | None:
    found = await principal_of(request.app, session_token(request))
    return found if found is not None and not found.operator else None


async def login_form(request: web.Request) -> web.StreamResponse:
    return _login_form(request)


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    if not csrf_ok(request, form):
        return _login_form(request, "login_expired", 403)
    token = str(form.get("token", "")).strip()
    found = await principal_of(request.app, token)
    if found is None:
        return _login_form(request, "login_unknown", 401)
    if found.operator:
        return _login_form(request, "login_operator", 403)
    resp = web.HTTPSeeOther("/ui/recordings")
    start_session(resp, token, "/ui/login")
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


FILTER_LABELS = {"number": "f_number", "remote": "f_remote", "direction": "f_direction",
                 "since": "f_since", "until": "f_until", "offset": "f_offset"}


def _filters(request: web.Request) -> tuple[dict[str, Any], list[str]]:
    """The filter form's values, validated by the API's own schemas; the fields in error.
    The other party is read as the recordings store it (`i18n.remote_query`)."""
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
        value = i18n.remote_query(raw[key]) if key == "remote" else raw[key]
        if value:
            try:
                out[key] = S.from_query(value, schema, key)
            except S.SchemaError:
                problems.append(key)
    return out | {"raw": raw}, problems


def _rows(s: Session, code: str, f: dict[str, Any]) -> tuple[list[Any], list[str]]:
    q = recordings.Search(code, f["number"], f["remote"], f["direction"], f["since"],
                          f["until"], PAGE_SIZE + 1, f["offset"])
    numbers = s.scalars(select(Number.number).join(Contract, Contract.id == Number.contract_id)
                        .where(Contract.code == code).order_by(Number.number)).all()
    return recordings.search(s, q), list(numbers)


def party(lang: Lang, remote: str) -> str:
    """The other party as shown: the number, 「非通知」 when withheld, unknown when empty."""
    if remote == "anonymous":
        return t(lang, "anonymous")
    return remote or t(lang, "unknown_party")


def _audio_cell(lang: Lang, rec: Any) -> str:
    """Issue #15: each player and link is named after its call; a failed recording (and one
    still being made) has no player."""
    call = t(lang, "call", time=_local(rec.started_at), remote=party(lang, rec.remote))
    sealed = encrypted_cell(rec, lang, call)
    if sealed is not None:
        return sealed
    if rec.status == "recording":
        return f'<span class="muted">{t(lang, "in_progress")}</span>'
    if rec.status == "failed":
        return f'<span class="muted" id="no-audio-{rec.id}">{t(lang, "no_audio")}</span>'
    play = html.escape(t(lang, "play", call=call), quote=True)
    get = html.escape(t(lang, "download_of", call=call), quote=True)
    return (f'<audio controls preload="none" id="audio-{rec.id}" aria-label="{play}" '
            f'src="/ui/recordings/{rec.id}/audio"></audio> '
            f'<a href="/ui/recordings/{rec.id}/audio?download=1" id="get-{rec.id}" '
            f'aria-label="{get}">{t(lang, "download")}</a>')


def _filter_form(lang: Lang, raw: dict[str, str], numbers: list[str]) -> str:
    def sel(value: str, current: str) -> str:
        return " selected" if value == current else ""

    number_opts = "".join(f'<option value="{html.escape(n)}"{sel(n, raw["number"])}>'
                          f"{html.escape(n)}</option>" for n in numbers)
    return f"""<form class="filters" method="get" action="/ui/recordings" id="filters"
 aria-label="{t(lang, "filters")}">
<label>{t(lang, "f_number")} <select name="number" id="f-number"><option value="">
{t(lang, "f_all")}</option>{number_opts}</select></label>
<label>{t(lang, "f_remote")} <input type="search" name="remote" id="f-remote" size="14"
 value="{html.escape(raw["remote"])}" title="{html.escape(t(lang, "f_remote_hint"))}"></label>
<label>{t(lang, "f_direction")} <select name="direction" id="f-direction"><option value="">
{t(lang, "f_both")}</option>
<option value="in"{sel("in", raw["direction"])}>{t(lang, "dir_in")}</option>
<option value="out"{sel("out", raw["direction"])}>{t(lang, "dir_out")}</option></select></label>
<label>{t(lang, "f_since")} <input type="datetime-local" name="since" id="f-since" step="1"
 value="{html.escape(raw["since"])}"></label>
<label>{t(lang, "f_until")} <input type="datetime-local" name="until" id="f-until" step="1"
 value="{html.escape(raw["until"])}"></label>
<button type="submit" id="f-apply">{t(lang, "f_apply")}</button>
<a href="/ui/recordings" id="f-clear">{t(lang, "f_clear")}</a></form>"""


async def recordings_page(request: web.Request) -> web.StreamResponse:
    who = await _principal(request)
    if who is None:
        raise web.HTTPSeeOther("/ui/login")
    lang = lang_of(request)
    code = str(who.contract)
    f, problems = _filters(request)
    rows, numbers = await db(request.app, lambda s: _rows(s, code, f))
    more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    raw = f["raw"]
    errors = "".join(f'<p class="error" role="alert">'
                     f'{t(lang, "f_invalid", field=t(lang, FILTER_LABELS[p]))}</p>'
                     for p in problems)
    body_rows = []
    for rec, _code in rows:
        length = t(lang, "seconds", s=rec.duration_s or 0)
        body_rows.append(
            f'<tr id="rec-{rec.id}" data-status="{html.escape(rec.status)}">'
            f"<td>{_local(rec.started_at)}</td><td>{t(lang, 'dir_' + rec.direction)}</td>"
            f"<td>{html.escape(rec.number)}</td>"
            f'<td class="remote">{html.escape(party(lang, rec.remote))}</td>'
            f"<td>{length}{paused_note(rec, lang)}</td>"
            f"<td>{t(lang, 'st_' + rec.status)}</td>"
            f"<td>{_audio_cell(lang, rec)}</td></tr>")
    heads = "".join(f'<th scope="col">{t(lang, k)}</th>' for k in (
        "th_started", "th_direction", "th_number", "th_remote", "th_length", "th_status",
        "th_audio"))
    table = (f"<table><thead><tr>{heads}</tr></thead><tbody>{''.join(body_rows)}</tbody>"
             "</table>" if body_rows else f'<p id="empty">{t(lang, "empty")}</p>')
    keep = {k: v for k, v in raw.items() if v and k != "offset"}
    nav = []
    if f["offset"]:
        prev = urlencode(keep | {"offset": max(0, f["offset"] - PAGE_SIZE)})
        nav.append(f'<a href="/ui/recordings?{prev}" id="prev">{t(lang, "newer")}</a>')
    if more:
        nxt = urlencode(keep | {"offset": f["offset"] + PAGE_SIZE})
        nav.append(f'<a href="/ui/recordings?{nxt}" id="next">{t(lang, "older")}</a>')
    pages = f'<nav aria-label="{t(lang, "pages")}">{"".join(nav)}</nav>' if nav else ""
    return _page(t(lang, "rec_title", code=code), f"""<h1>{t(lang, "rec_heading")}
<span id="contract">{html.escape(code)}</span></h1>
{_filter_form(lang, raw, numbers)}{errors}{table}{pages}""", 400 if problems else 200,
                 lang, request, site_nav(lang, "/ui/recordings"))


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
