"""The overview page in a real browser (issue 18): headless Chromium signs in with the operator
token and sees three server-rendered SVG charts (calls by outcome per hour, rejections and
recordings per day, fallback events) whose bars carry exactly the counts of the database —
recounted here in Python from the raw rows, not with the page's SQL; a contract token sees
its own contract's counts only and never a number; the page keeps its strict CSP.

Set CALLGUARD_SCREENSHOT=docs/overview.png to keep the screenshot the README shows.
"""

from __future__ import annotations

import os
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import Engine, text

from callguard.config import PROJECT_ROOT, Settings
from callguard.domain.nuisance import TOKYO
from tests.e2e.browser import browser_for
from tests.e2e.conftest import contract_token
from tests.e2e.rec_helpers import F1B, F2A, inbound, recordings

OUTCOMES = ("connected", "recorded", "rejected", "refused", "menu144")


def seed(engine: Engine, now: datetime) -> None:
    """History beside the real calls: a day's worth of varied outcomes over the last 23 hours
    and some fallback and rejection days (both contracts F1 and F2)."""
    with engine.begin() as c:
        found = c.execute(text("SELECT code, id FROM contracts"))
        ids: dict[str, int] = {str(code): int(cid) for code, cid in found}
        rows = []
        for h in range(1, 23):
            at = now - timedelta(hours=h, minutes=7)
            for i in range((h * 7) % 5 + 1):
                outcome = OUTCOMES[(h + i) % len(OUTCOMES)]
                rows.append({"at": at, "c": ids["F1" if i % 2 else "F2"], "d": "in",
                             "o": outcome, "cls": "cause_1" if outcome == "refused" else "",
                             "via": "fallback" if h in (5, 6) else "ari"})
        for d in range(1, 12):
            for i in range(d % 4):
                rows.append({"at": now - timedelta(days=d, minutes=i), "c": ids["F1"],
                             "d": "in", "o": "rejected", "cls": "",
                             "via": "fallback" if d == 3 else "ari"})
        c.execute(text("INSERT INTO call_outcomes (at, contract_id, direction, outcome,"
                       " refuse_class, via) VALUES (:at, :c, :d, :o, :cls, :via)"), rows)


def expected(engine: Engine, now: datetime, contract: str | None) -> dict[str, Counter[str]]:
    """The charts' figures recounted from the raw rows (Python buckets, Tokyo time)."""
    with engine.connect() as c:
        calls = c.execute(text("SELECT o.at, o.outcome, o.via FROM call_outcomes o LEFT JOIN"
                               " contracts c ON c.id = o.contract_id"
                               " WHERE (CAST(:code AS text) IS NULL OR c.code = :code)"),
                          {"code": contract}).all()
        recs = c.execute(text("SELECT r.started_at FROM recordings r JOIN contracts c ON"
                              " c.id = r.contract_id"
                              " WHERE (CAST(:code AS text) IS NULL OR c.code = :code)"),
                         {"code": contract}).all()
    local = now.astimezone(TOKYO)
    first_hour = local.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    first_day = local.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=13)
    out: dict[str, Counter[str]] = {k: Counter() for k in
                                    ("hourly", "rejected", "recordings", "fallback")}

    def hour(at: datetime) -> str:
        return at.astimezone(TOKYO).strftime("%Y-%m-%dT%H:00:00")

    def day(at: datetime) -> str:
        return at.astimezone(TOKYO).strftime("%Y-%m-%dT00:00:00")

    for at, outcome, via in calls:
        if at.astimezone(TOKYO) >= first_hour:
            out["hourly"][f"{outcome}@{hour(at)}"] += 1
        if at.astimezone(TOKYO) >= first_day:
            if outcome == "rejected":
                out["rejected"][day(at)] += 1
            if via == "fallback":
                out["fallback"][day(at)] += 1
    for (at,) in recs:
        if at.astimezone(TOKYO) >= first_day:
            out["recordings"][day(at)] += 1
    return out


def drawn(driver: webdriver.Chrome, chart: str) -> dict[str, Counter[str]]:
    """The non-zero bars of one chart: series → bucket → value."""
    bars: dict[str, Counter[str]] = {}
    for rect in driver.find_elements(By.CSS_SELECTOR, f"svg#{chart} rect.bar"):
        value = int(rect.get_attribute("data-value") or "0")
        if value:
            series = str(rect.get_attribute("data-series"))
            bars.setdefault(series, Counter())[str(rect.get_attribute("data-bucket"))] = value
    return bars


def sign_in(driver: webdriver.Chrome, base: str, token: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{base}/ui/overview/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "signin").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "scope"))


@pytest.fixture
def browser(work: Path) -> Iterator[webdriver.Chrome]:
    """A browser asking for Japanese, as the offices' do (the page is Japanese first; its
    English and its accessibility: tests/e2e/test_recordings_page_i18n.py)."""
    with browser_for(work, "ja") as driver:
        yield driver


@pytest.fixture
def f2_token(stack: Settings) -> Iterator[str]:
    with contract_token("F2", "e2e overview test") as token:
        yield token


@pytest.fixture
def calls_and_history(clean: Engine, work: Path) -> Iterator[datetime]:
    """Two real calls (F2 connected, F1 recorded) and the seeded history."""
    assert inbound(work / "f2", "0612345678", F2A, seconds=1).final_status() == 200
    assert inbound(work / "f1", "0312345679", F1B, seconds=1).final_status() == 200
    assert [r["status"] for r in recordings(clean)] == ["complete"]
    now = datetime.now(UTC)
    seed(clean, now)
    yield now


def check(driver: webdriver.Chrome, engine: Engine, now: datetime,
          contract: str | None) -> dict[str, Counter[str]]:
    want = expected(engine, now, contract)
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.chart")) == 3
    hourly = drawn(driver, "chart-hourly")
    got = Counter({f"{s}@{b}": v for s, bars in hourly.items() for b, v in bars.items()})
    assert got == want["hourly"]
    daily = drawn(driver, "chart-daily")
    assert daily.get("rejected", Counter()) == want["rejected"]
    assert daily.get("recordings", Counter()) == want["recordings"]
    assert drawn(driver, "chart-fallback").get("fallback", Counter()) == want["fallback"]
    assert driver.find_element(By.ID, "total-calls").text == str(sum(want["hourly"].values()))
    assert driver.find_element(By.ID, "total-fallback").text == str(
        sum(want["fallback"].values()))
    return want


def test_overview_charts_match_the_database(calls_and_history: datetime, clean: Engine,
                                            stack: Settings, f2_token: str,
                                            browser: webdriver.Chrome,
                                            work: Path) -> None:
    now = calls_and_history
    base = f"http://{stack.api_host}:{stack.api_port}"
    browser.set_window_size(1100, 1500)
    sign_in(browser, base, stack.api_token)
    assert "全契約" in browser.find_element(By.ID, "scope").text
    everything = check(browser, clean, now, None)
    assert sum(everything["recordings"].values()) == 1 and everything["fallback"]
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("概要")  # Japanese first
    shot = os.environ.get("CALLGUARD_SCREENSHOT")
    browser.save_screenshot(str(PROJECT_ROOT / shot) if shot else str(work / "overview.png"))

    # Contract F2 (no recording add-on): its own counts only; no number anywhere on the page.
    sign_in(browser, base, f2_token)
    assert browser.find_element(By.ID, "scope").text == "契約 F2"
    own = check(browser, clean, now, "F2")
    assert sum(own["hourly"].values()) < sum(everything["hourly"].values())
    assert not own["recordings"]
    source = browser.page_source
    for number in ("0612345678", "0312345679", "0399990001"):
        assert number not in source

    # Strict CSP, and no script on the page.
    req = urllib.request.Request(f"{base}/ui/overview",  # noqa: S310 - loopback
                                 headers={"Authorization": f"Bearer {stack.api_token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        assert b"<script" not in resp.read()


def test_overview_needs_a_token(stack: Settings,
                                browser: webdriver.Chrome) -> None:
    base = f"http://{stack.api_host}:{stack.api_port}"
    browser.delete_all_cookies()
    browser.get(f"{base}/ui/overview")
    assert browser.current_url.endswith("/ui/overview/login")
    browser.find_element(By.ID, "token").send_keys("cgt_nope")
    browser.find_element(By.ID, "signin").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "error"))
