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
from callguard.api import i18n, ui
from callguard.api.core import Principal, bearer, db, principal_of
from callguard.api.i18n import Lang, t
from callguard.db.models import CallOutcome, Recording
from callguard.domain.nuisance import TOKYO

TZ = "Asia/Tokyo"
CSS = """.chart{max-width:100%;height:auto;border:1px solid #eee;margin:.5rem 0}
table.data{width:auto;font-size:.85rem;margin-bottom:1.5rem}table.data td{text-align:right}
details{margin-bottom:1rem}section{margin-bottom:2rem}dl.totals{display:flex;gap:2rem;
flex-wrap:wrap}dl.totals dt{color:#555}dl.totals dd{margin:0;font-size:1.6rem}"""


async def _who(request: web.Request) -> Principal | None:
    """An `Authorization: Bearer` token, or the page session's (never a token in a cookie)."""
    return await principal_of(request.app, bearer(request) or ui.session_token(request))


def _login_form(request: web.Request, message_key: str = "",
                status: int = 200) -> web.Response:
    lang = ui.lang_of(request)
    err = (f'<p class="error" id="error" role="alert">{t(lang, message_key)}</p>'
           if message_key else "")
    csrf = ui.new_csrf()
    resp = ui._page(t(lang, "ov_login_title"), f"""<h1>{t(lang, "ov_login_heading")}</h1>{err}
<form method="post" action="/ui/overview/login"><label>{t(lang, "ov_token")}
<input type="password" name="token" id="token" autocomplete="off" required size="50"></label>
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" id="signin">{t(lang, "login_button")}</button></form>""",
                    status, lang, request)
    return ui.set_csrf(resp, csrf, "/ui/overview/login")


async def login_form(request: web.Request) -> web.StreamResponse:
    return _login_form(request)


async def login(request: web.Request) -> web.StreamResponse:
    """Either kind of token; the cookie is a page session like the recordings page's."""
    form = await request.post()
    if not ui.csrf_ok(request, form):
        return _login_form(request, "login_expired", 403)
    token = str(form.get("token", "")).strip()
    if await principal_of(request.app, token) is None:
        return _login_form(request, "login_unknown", 401)
    resp = web.HTTPSeeOther("/ui/overview")
    ui.start_session(resp, token, "/ui/overview/login")
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


def render(scope: str, rows: dict[str, list[Any]], now: datetime,
           lang: Lang = i18n.DEFAULT) -> str:
    """The page body from the query rows (pure), in `lang`."""
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
    at = now.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")
    head = (t(lang, "ov_time"), t(lang, "ov_total"))

    def section(key: str, chart_id: str, chart: ov.Chart, series: Any, every: int, fmt: str,
                stacked: bool, table_id: str) -> str:
        return (f"<section><h2>{t(lang, key)}</h2>"
                + ov.bar_chart(chart_id, chart, series, every, fmt, stacked,
                               t(lang, f"{key}_chart"), lang)
                + f"<details><summary>{t(lang, 'ov_figures')}</summary>"
                + ov.data_table(table_id, chart, series, fmt, lang, head)
                + "</details></section>")

    return f"""<h1>{t(lang, "ov_heading")} — <span id="scope">{html.escape(scope)}</span></h1>
<p class="muted">{t(lang, "ov_asof", at=at)}</p>
<dl class="totals">
<div><dt>{t(lang, "ov_calls24")}</dt><dd id="total-calls">{total_calls}</dd></div>
<div><dt>{t(lang, "ov_rej14")}</dt><dd id="total-rejected">{daily.total("rejected")}</dd></div>
<div><dt>{t(lang, "ov_rec14")}</dt><dd id="total-recordings">{daily.total("recordings")}</dd>
</div><div><dt>{t(lang, "ov_fb14")}</dt><dd id="total-fallback">{fallback.total("fallback")}
</dd></div></dl>
{section("ov_hourly", "chart-hourly", hourly, ov.OUTCOME_SERIES, 3, hour_fmt, True, "t-hourly")}
{section("ov_daily", "chart-daily", daily, ov.DAILY_SERIES, 1, day_fmt, False, "t-daily")}
{section("ov_fallback", "chart-fallback", fallback, ov.FALLBACK_SERIES, 1, day_fmt, False,
         "t-fallback")}"""


async def overview_page(request: web.Request) -> web.StreamResponse:
    who = await _who(request)
    if who is None:
        raise web.HTTPSeeOther("/ui/overview/login")
    lang = ui.lang_of(request)
    now = datetime.now(UTC)
    rows = await db(request.app, lambda s: counts(s, who.contract_id, now))
    scope = (t(lang, "ov_all") if who.operator
             else t(lang, "ov_contract", code=str(who.contract)))
    return ui._page(t(lang, "ov_title"), render(scope, rows, now, lang), 200, lang, request,
                    ui.site_nav(lang, "/ui/overview"), "/ui/overview.css")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ui/overview", overview_page)
    app.router.add_get("/ui/overview/login", login_form)
    app.router.add_post("/ui/overview/login", login)
    app.router.add_get("/ui/overview.css", style)
