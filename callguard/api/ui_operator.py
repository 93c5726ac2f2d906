"""The recordings page's operator view (issue #14): every contract's recording options
(stereo, announcement per direction, DTMF pause codes, age public key) and retention, one
small form per contract, set through the same service functions as the API
(`recording_options_admin.set_options`, `services.subscriptions.set_recording`).

Signing in takes the operator token and opens a page session like the contract view's
(`ui._new_session`: random id in an HttpOnly, SameSite=Strict cookie; the token never leaves
the process). Each options form carries a CSRF token bound to the session (an HMAC of the
session id under a key of this process), checked on every POST. Labels are Japanese first.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from callguard import recording_options_admin
from callguard.api import ui
from callguard.api.core import db, principal_of
from callguard.db.models import Contract, RecordingSubscription
from callguard.services import base, subscriptions

log = logging.getLogger("callguard.api")

LOGIN_CSRF_PATH = "/ui/operator/login"
_CSRF_KEY = secrets.token_bytes(32)  # per process: a restart signs everybody out anyway


def _csrf_for(sid: str) -> str:
    return hmac.new(_CSRF_KEY, sid.encode(), hashlib.sha256).hexdigest()


async def _operator_sid(request: web.Request) -> str | None:
    """The page session id when it belongs to the operator token, else None."""
    sid = request.cookies.get(ui.COOKIE)
    found = await principal_of(request.app, ui._session_token(sid))
    return sid if sid and found is not None and found.operator else None


def _login_form(message: str = "", status: int = 200) -> web.Response:
    err = f'<p class="error" id="error">{html.escape(message)}</p>' if message else ""
    csrf = secrets.token_urlsafe(32)
    resp = ui._page("callguard 録音設定: サインイン", f"""<h1>録音設定
<span class="muted">Recording options</span>: サインイン <span class="muted">sign in</span></h1>
{err}<form method="post" action="{LOGIN_CSRF_PATH}"><label>オペレーター トークン
<span class="muted">operator token</span>
<input type="password" name="token" id="token" autocomplete="off" required size="50"></label>
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" id="signin">サインイン</button></form>""", status)
    resp.set_cookie(ui.CSRF_COOKIE, csrf, httponly=True, samesite="Strict",
                    path=LOGIN_CSRF_PATH, max_age=3600)
    return resp


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    sent, expected = str(form.get("csrf", "")), request.cookies.get(ui.CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _login_form("フォームの期限が切れました (the form expired): もう一度どうぞ。", 403)
    token = str(form.get("token", "")).strip()
    found = await principal_of(request.app, token)
    if found is None:
        return _login_form("トークンが違います (unknown token).", 401)
    if not found.operator:
        return _login_form("オペレーター トークンが必要です (an operator token is needed).", 403)
    resp = web.HTTPSeeOther("/ui/operator")
    resp.set_cookie(ui.COOKIE, ui._new_session(token), httponly=True, samesite="Strict",
                    path="/ui", max_age=ui.SESSION_TTL_S)
    resp.del_cookie(ui.CSRF_COOKIE, path=LOGIN_CSRF_PATH)
    raise resp


def _contracts(s: Session) -> list[dict[str, Any]]:
    out = []
    for c in s.scalars(select(Contract).order_by(Contract.code)).all():
        sub = s.get(RecordingSubscription, c.id)
        active = sub is not None and sub.cancelled_on is None
        out.append(recording_options_admin.get_options(s, c.code)
                   | {"retention_days": sub.retention_days if active and sub else None})
    return out


def _checkbox(name: str, code: str, on: bool, ja: str, en: str) -> str:
    return (f'<label><input type="checkbox" name="{name}" id="{name}-{code}" value="on"'
            f'{" checked" if on else ""}> {ja} <span class="muted">{en}</span></label>')


def options_form(o: dict[str, Any], csrf: str) -> str:
    """One contract's options form (the operator view's only per-contract block)."""
    code = html.escape(str(o["contract"]))

    def text_field(name: str, ja: str, en: str, value: object, size: int, extra: str = "") -> str:
        shown = "" if value is None else html.escape(str(value))
        return (f'<label>{ja} <span class="muted">{en}</span> <input name="{name}" '
                f'id="{name}-{code}" value="{shown}" size="{size}"{extra}></label>')

    retention = (text_field("retention_days", "保存日数", "retention days", o["retention_days"],
                            5, ' type="number" min="1"')
                 if o["retention_days"] is not None else
                 '<span class="muted">録音サービスなし (no recording subscription)</span>')
    return f"""<form method="post" action="/ui/operator/contracts/{code}/recording-options"
 id="opts-{code}" class="filters"><h2>契約 <span class="muted">contract</span> {code}</h2>
{_checkbox("stereo", code, o["stereo"], "ステレオ", "stereo")}
{_checkbox("announce_in", code, o["announce_in"], "録音告知・着信", "announcement, inbound")}
{_checkbox("announce_out", code, o["announce_out"], "録音告知・発信", "announcement, outbound")}
{text_field("pause_code", "一時停止コード", "pause code", o["pause_code"], 4)}
{text_field("resume_code", "再開コード", "resume code", o["resume_code"], 4)}
{text_field("public_key", "暗号化公開鍵 (age)", "encryption public key", o["public_key"], 66)}
{retention}
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" id="save-{code}">保存 <span class="muted">save</span></button></form>"""


async def _view(request: web.Request, sid: str, message: str = "",
                status: int = 200) -> web.Response:
    rows = await db(request.app, _contracts)
    csrf = _csrf_for(sid)
    saved = request.query.get("saved", "")
    note = (f'<p class="error" id="error">{html.escape(message)}</p>' if message else
            f'<p id="saved">保存しました (saved): {html.escape(saved)}</p>' if saved else "")
    forms = "".join(options_form(o, csrf) for o in rows)
    return ui._page("callguard 録音設定 (recording options)", f"""<h1>録音設定
<span class="muted">Recording options per contract (operator)</span></h1>
<form method="post" action="/ui/logout"><button type="submit">サインアウト</button></form>
<p class="muted">既定はすべてオフ (all off by default).</p>{note}{forms}""", status)


async def view(request: web.Request) -> web.StreamResponse:
    sid = await _operator_sid(request)
    if sid is None:
        return _login_form()
    return await _view(request, sid)


def changes_from_form(form: Any) -> tuple[dict[str, Any], int | None]:
    """The options form's fields as the API's body (unchecked boxes are false; empty text
    fields are null), and the retention in days (None: not changed)."""
    changes: dict[str, Any] = {flag: form.get(flag) == "on"
                               for flag in recording_options_admin.FLAGS}
    for name in ("pause_code", "resume_code", "public_key"):
        value = str(form.get(name, "")).strip()
        changes[name] = value or None
    raw = str(form.get("retention_days", "")).strip()
    if not raw:
        return changes, None
    if not raw.isdigit() or len(raw) > 6:
        raise base.Invalid(f"retention_days must be a whole number of days, not {raw[:20]!r}")
    return changes, int(raw)


async def save(request: web.Request) -> web.StreamResponse:
    sid = await _operator_sid(request)
    if sid is None:
        raise web.HTTPSeeOther("/ui/operator")
    form = await request.post()
    if not hmac.compare_digest(str(form.get("csrf", "")).encode(), _csrf_for(sid).encode()):
        return ui.error_page(403, "CSRF token missing or wrong: reload the page and try again.")
    code = request.match_info["code"][:40]
    today = base.tokyo_date(datetime.now(UTC))

    def work(s: Session) -> dict[str, Any]:
        changes, retention = changes_from_form(form)
        done = recording_options_admin.set_options(s, code, changes)
        if retention is not None:
            c = base.get_contract(s, code)
            sub = s.get(RecordingSubscription, c.id)
            if sub is None or sub.cancelled_on is not None:
                raise base.Conflict(f"contract {code} has no active recording subscription")
            subscriptions.set_recording(s, code, today, None, retention)
        return done

    try:
        done = await db(request.app, work)
    except base.AdminError as exc:
        return await _view(request, sid, f"{code}: {exc}", exc.status)
    log.info("recording options set from the operator page",
             extra={"contract": done["contract"]})
    raise web.HTTPSeeOther(f"/ui/operator?saved={done['contract']}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ui/operator", view)
    app.router.add_post(LOGIN_CSRF_PATH, login)
    app.router.add_post("/ui/operator/contracts/{code}/recording-options", save)
