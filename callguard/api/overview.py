"""The overview page (issue 18), beside the recordings page: calls by outcome per hour,
rejections and recordings per day, fallback events, as server-rendered SVG charts.

An operator token sees every contract; a contract token only its own counts. Counts only,
never a number. Signing in is /ui/overview/login (either kind of token), or an
`Authorization: Bearer` header; the page runs no script (the recordings page's strict CSP).
"""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callguard import overview as ov
from callguard.api.core import Principal, bearer, db, principal_of
from callguard.api.ui import COOKIE, _page
from callguard.db.models import CallOutcome, Recording
from callguard.domain.nuisance import TOKYO

TZ = "Asia/Tokyo"
CSS = """.chart{max-width:100%;height:auto;border:1px solid #eee;margin:.5rem 0}
table.data{width:auto;font-size:.85rem;margin-bottom:1.5rem}table.data td{text-align:right}
details{margin-bottom:1rem}section{margin-bottom:2rem}dl.totals{display:flex;gap:2rem}
dl.totals dt{color:#555}dl.totals dd{margin:0;font-size:1.6rem}"""


async def _who(request: web.Request) -> Principal | None:
    return await principal_of(request.app, bearer(request) or request.cookies.get(COOKIE))


def _login_form(message: str = "", status: int = 200) -> web.Response:
    err = f'<p class="error" id="error">{html.escape(message)}</p>' if message else ""
    return _page("callguard 概要: サインイン", f"""<h1>概要 <span class="muted">Overview</span>:
サインイン <span class="muted">sign in</span></h1>{err}
<form method="post" action="/ui/overview/login"><label>トークン (operator / contract token)
<input type="password" name="token" id="token" autocomplete="off" required size="50"></label>
<button type="submit" id="signin">サインイン</button></form>""", status)


async def login_form(request: web.Request) -> web.StreamResponse:
    return _login_form()


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token = str(form.get("token", "")).strip()
    if await principal_of(request.app, token) is None:
        return _login_form("トークンが違います (unknown token).", 401)
    resp = web.HTTPSeeOther("/ui/overview")
    resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/ui")
    raise resp


async def style(request: web.Request) -> web.StreamResponse:
    return web.Response(text=CSS, content_type="text/css",
                        headers={"Cache-Control": "max-age=3600"})


def _jst(column: Any, unit: str) -> Any:
    """The JST-local hour or day a timestamptz falls in (naive timestamp)."""
    return func.date_trunc(unit, func.timezone(TZ, column))


def counts(s: Session, contract_id: int | None, now: datetime) -> dict[str, list[Any]]:
    """The rows behind the three charts; `contract_id` None: every contract."""
    hour_from = now - timedelta(hours=ov.HOURS + 1)
    day_from = now - timedelta(days=ov.DAYS + 1)

    def scoped(q: Any, column: Any) -> Any:
        return q if contract_id is None else q.where(column == contract_id)

    hour = _jst(CallOutcome.at, "hour")
    hourly = scoped(select(hour, CallOutcome.outcome, func.count())
                    .where(CallOutcome.at >= hour_from), CallOutcome.contract_id)
    day = _jst(CallOutcome.at, "day")
    rejected = scoped(select(day, func.count()).where(
        CallOutcome.at >= day_from, CallOutcome.outcome == "rejected"), CallOutcome.contract_id)
    fallback = scoped(select(day, func.count()).where(
        CallOutcome.at >= day_from, CallOutcome.via == "fallback"), CallOutcome.contract_id)
    rec_day = _jst(Recording.started_at, "day")
    recorded = scoped(select(rec_day, func.count()).where(Recording.started_at >= day_from),
                      Recording.contract_id)
    return {
        "hourly": list(s.execute(hourly.group_by(hour, CallOutcome.outcome)).all()),
        "rejected": list(s.execute(rejected.group_by(day)).all()),
        "fallback": list(s.execute(fallback.group_by(day)).all()),
        "recordings": list(s.execute(recorded.group_by(rec_day)).all()),
    }


def render(scope: str, rows: dict[str, list[Any]], now: datetime) -> str:
    """The page body from the query rows (pure)."""
    hourly = ov.fill(ov.hour_buckets(now), ov.OUTCOME_SERIES,
                     ((b, o, n) for b, o, n in rows["hourly"]))
    days = ov.day_buckets(now)
    daily = ov.fill(days, ov.DAILY_SERIES,
                    [(b, "rejected", n) for b, n in rows["rejected"]]
                    + [(b, "recordings", n) for b, n in rows["recordings"]])
    fallback = ov.fill(days, ov.FALLBACK_SERIES, ((b, "fallback", n) for b, n in
                                                  rows["fallback"]))
    total_calls = sum(hourly.total(k) for k, *_ in ov.OUTCOME_SERIES)
    hour_fmt, day_fmt = "%H:00", "%m/%d"
    return f"""<nav><a href="/ui/recordings">録音 (recordings)</a>
<a href="/ui/overview">概要 (overview)</a></nav>
<h1>概要 <span class="muted">Overview</span> — <span id="scope">{html.escape(scope)}</span></h1>
<p class="muted">{now.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")} JST 現在。件数のみ表示します
(counts only, no numbers).</p>
<dl class="totals">
<dt>直近24時間の通話 (calls, 24 h)</dt><dd id="total-calls">{total_calls}</dd>
<dt>拒否 14日 (rejections, 14 d)</dt><dd id="total-rejected">{daily.total("rejected")}</dd>
<dt>録音 14日 (recordings, 14 d)</dt><dd id="total-recordings">{daily.total("recordings")}</dd>
<dt>フォールバック 14日 (fallback, 14 d)</dt>
<dd id="total-fallback">{fallback.total("fallback")}</dd>
</dl>
<section><h2>時間帯別の通話結果 <span class="muted">Calls by outcome per hour (24 h)</span></h2>
{ov.bar_chart("chart-hourly", hourly, ov.OUTCOME_SERIES, 3, hour_fmt, True, "calls per hour")}
<details><summary>数値 (figures)</summary>
{ov.data_table("t-hourly", hourly, ov.OUTCOME_SERIES, hour_fmt)}</details></section>
<section><h2>日別の拒否と録音 <span class="muted">Rejections and recordings per day</span></h2>
{ov.bar_chart("chart-daily", daily, ov.DAILY_SERIES, 1, day_fmt, False, "per day")}
<details><summary>数値 (figures)</summary>
{ov.data_table("t-daily", daily, ov.DAILY_SERIES, day_fmt)}</details></section>
<section><h2>フォールバックの発生 <span class="muted">Fallback events per day</span></h2>
{ov.bar_chart("chart-fallback", fallback, ov.FALLBACK_SERIES, 1, day_fmt, False, "fallback")}
<details><summary>数値 (figures)</summary>
{ov.data_table("t-fallback", fallback, ov.FALLBACK_SERIES, day_fmt)}</details></section>"""


async def overview_page(request: web.Request) -> web.StreamResponse:
    who = await _who(request)
    if who is None:
        raise web.HTTPSeeOther("/ui/overview/login")
    now = datetime.now(UTC)
    rows = await db(request.app, lambda s: counts(s, who.contract_id, now))
    scope = "全契約 (all contracts)" if who.operator else f"契約 {who.contract}"
    page = _page("callguard 概要 (overview)", render(scope, rows, now))
    page.text = (page.text or "").replace(
        '<link rel="stylesheet" href="/ui/style.css">',
        '<link rel="stylesheet" href="/ui/style.css">'
        '<link rel="stylesheet" href="/ui/overview.css">', 1)
    return page


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ui/overview", overview_page)
    app.router.add_get("/ui/overview/login", login_form)
    app.router.add_post("/ui/overview/login", login)
    app.router.add_get("/ui/overview.css", style)
