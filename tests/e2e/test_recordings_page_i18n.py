"""The recordings page for Japanese offices (issue #15, REC-FILE-4), in headless Chromium
against the running stack: Japanese first (a browser asking for Japanese, or for neither of
our languages, gets it), English by Accept-Language or the page's switch; every visible text
and accessible name in the page's language and `lang` right; axe-core finds nothing serious
or critical on the sign-in page, the recordings page and the overview page (operator and
contract), in both languages; the other party filter finds a real call's row by the number
as an office worker types it (hyphens, full-width digits, 「非通知」); a failed recording has
no player.

Set CALLGUARD_SCREENSHOT_DIR=docs to keep the README's screenshot (docs/recordings.png).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import Engine, text

from callguard.config import PROJECT_ROOT, Settings
from tests.e2e.browser import axe, browser_for, serious, submit
from tests.e2e.conftest import contract_token
from tests.e2e.rec_helpers import F1B, inbound, recordings

CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff00-\uffef]")
WORD = re.compile(r"[A-Za-z]{2,}")
REAL_CALLER = "0399990000"


@pytest.fixture
def ja(work: Path) -> Iterator[webdriver.Chrome]:
    with browser_for(work, "ja") as driver:
        yield driver


@pytest.fixture
def en(work: Path) -> Iterator[webdriver.Chrome]:
    with browser_for(work, "en-US,en;q=0.9") as driver:
        yield driver


@pytest.fixture
def f1_token(stack: Settings) -> Iterator[str]:
    with contract_token("F1", "e2e page i18n") as token:
        yield token


@pytest.fixture
def rows(clean: Engine, work: Path) -> dict[str, int]:
    """A real recorded call (the carrier from 0399990000 to f1-b) and, beside it, rows as
    the recorder leaves them: a failed recording, a withheld caller, an outgoing call."""
    assert inbound(work, "0312345679", F1B, caller=REAL_CALLER, seconds=2).final_status() == 200
    found = recordings(clean)
    assert [(r["status"], r["remote"]) for r in found] == [("complete", REAL_CALLER)], found
    ids = {"real": int(str(found[0]["id"]))}
    start = datetime.now(UTC) - timedelta(hours=2)
    with clean.begin() as c:
        cid = c.execute(text("SELECT id FROM contracts WHERE code = 'F1'")).scalar_one()
        for i, (name, number, direction, remote, status, seconds) in enumerate((
                ("failed", "0312345679", "in", "0399990022", "failed", None),
                ("anonymous", "0312345678", "in", "anonymous", "complete", 42.0),
                ("outgoing", "0312345678", "out", "0612345678", "complete", 95.5))):
            ids[name] = c.execute(text(
                "INSERT INTO recordings (contract_id, number, direction, remote, channel_id,"
                " path, started_at, ended_at, duration_s, status, reason) VALUES (:cid, :num,"
                " :dir, :remote, :ch, :path, :t, :t, :dur, :status, :reason) RETURNING id"),
                {"cid": cid, "num": number, "dir": direction, "remote": remote,
                 "ch": f"e2e-i18n-{i}", "path": f"F1/e2e-i18n-{i}.wav",
                 "t": start - timedelta(minutes=17 * i), "dur": seconds, "status": status,
                 "reason": "e2e: MixMonitor wrote nothing" if status == "failed" else None},
            ).scalar_one()
    return ids


def base(stack: Settings) -> str:
    return f"http://{stack.api_host}:{stack.api_port}"


def sign_in(driver: webdriver.Chrome, url: str, token: str, until_id: str) -> None:
    driver.delete_all_cookies()
    driver.get(url)
    driver.find_element(By.ID, "token").send_keys(token)
    submit(driver, "signin")
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, until_id))


def listed(driver: webdriver.Chrome) -> set[int]:
    """The recording ids of the table's rows, read in one script: element by element, a
    page that is replaced mid-read (a filter sent by Enter) gave a stale reference."""
    ids = driver.execute_script(
        "return Array.from(document.querySelectorAll('tbody tr'), tr => tr.id);")
    return {int(str(i)[4:]) for i in ids}


def names(driver: webdriver.Chrome) -> list[str]:
    """Every accessible name given by an attribute (aria-label, title) on the page."""
    return [str(e.get_attribute(a)) for a in ("aria-label", "title")
            for e in driver.find_elements(By.CSS_SELECTOR, f"body [{a}]")]


def assert_japanese(driver: webdriver.Chrome, allowed: set[str]) -> None:
    """`lang="ja"`, and no English word in what is shown or announced."""
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja"
    shown = driver.find_element(By.TAG_NAME, "body").text
    for where in (shown, *names(driver)):
        assert set(WORD.findall(where)) <= allowed, (set(WORD.findall(where)) - allowed, where)


def assert_english(driver: webdriver.Chrome) -> None:
    """`lang="en"`, and no Japanese but the switch's own name 「日本語」 (marked lang="ja")."""
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    switch = driver.find_element(By.ID, "lang-switch")
    assert switch.text == "日本語" and switch.get_attribute("lang") == "ja"
    shown = driver.find_element(By.TAG_NAME, "body").text.replace("日本語", "")
    for where in (shown, *names(driver)):
        assert not CJK.search(where), where


def assert_accessible(driver: webdriver.Chrome, figures: dict[str, object], page: str) -> None:
    found = axe(driver)
    figures[f"axe {page}"] = len(found)  # every impact, for the record
    assert serious(found) == [], serious(found)


def cell_texts(driver: webdriver.Chrome, rec_id: int) -> list[str]:
    return [td.text for td in driver.find_elements(By.CSS_SELECTOR, f"#rec-{rec_id} td")]


def test_recordings_page_japanese_first_accessible_filtered(
        rows: dict[str, int], stack: Settings, f1_token: str, ja: webdriver.Chrome,
        en: webdriver.Chrome, figures: dict[str, Any]) -> None:
    url = base(stack)
    # The sign-in page, in Japanese, accessible, and its refusal too (an operator token).
    ja.get(f"{url}/ui/recordings")
    assert ja.current_url.endswith("/ui/login")
    assert_japanese(ja, {"English", "callguard", "tokens", "create", "contract"})
    assert ja.find_element(By.TAG_NAME, "h1").text == "録音一覧: サインイン"
    assert_accessible(ja, figures, "sign-in ja")
    ja.find_element(By.ID, "token").send_keys(stack.api_token)
    submit(ja, "signin")
    assert "契約トークンでサインインしてください" in ja.find_element(By.ID, "error").text
    assert_accessible(ja, figures, "sign-in refused ja")

    sign_in(ja, f"{url}/ui/login", f1_token, "contract")
    assert_japanese(ja, {"English"})
    ja.set_window_size(1280, 720)
    assert ja.find_element(By.TAG_NAME, "h1").text.startswith("録音一覧 契約")
    heads = [th.text for th in ja.find_elements(By.CSS_SELECTOR, "thead th")]
    assert heads == ["開始日時（日本時間）", "方向", "自番号", "相手先", "長さ", "状態",
                     "再生・ダウンロード"]
    assert listed(ja) == set(rows.values())
    assert_accessible(ja, figures, "recordings ja")
    # The real call: played by a player named after it; a failed one: no player, no link.
    real = ja.find_element(By.ID, f"audio-{rows['real']}")
    assert REAL_CALLER in str(real.get_attribute("aria-label"))
    assert str(real.get_attribute("aria-label")).endswith("の録音を再生")
    assert cell_texts(ja, rows["real"])[1:6:4] == ["着信", "完了"]
    failed = ja.find_element(By.ID, f"rec-{rows['failed']}")
    assert not failed.find_elements(By.TAG_NAME, "audio")
    assert not failed.find_elements(By.TAG_NAME, "a")
    assert "音声なし" in failed.text and "失敗" in failed.text
    assert cell_texts(ja, rows["anonymous"])[3] == "非通知"
    shot = os.environ.get("CALLGUARD_SCREENSHOT_DIR")
    if shot:
        ja.save_screenshot(str(PROJECT_ROOT / shot / "recordings.png"))

    # The other party as typed in an office (hyphens, full-width digits): the real call's row.
    for typed in ("03-9999-0000", "０３９９９９００００"):
        box = ja.find_element(By.ID, "f-remote")
        box.clear()
        box.send_keys(typed)
        submit(ja, "f-apply")
        assert listed(ja) == {rows["real"]}, typed
    box = ja.find_element(By.ID, "f-remote")
    box.clear()
    box.send_keys("非通知", Keys.ENTER)
    WebDriverWait(ja, 15).until(lambda d: listed(d) == {rows["anonymous"]})
    # Messages too: a bad filter value, a recording that is not there.
    ja.get(f"{url}/ui/recordings?since=yesterday")
    shown = ja.find_element(By.TAG_NAME, "main").text
    assert "「開始日時（以降）」の値が正しくありません。" in shown
    ja.get(f"{url}/ui/recordings/{max(rows.values()) + 1000}/audio")
    assert ja.find_element(By.TAG_NAME, "h1").text == "404 見つかりません"
    assert ja.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja"
    assert_accessible(ja, figures, "not found ja")
    ja.get(f"{url}/ui/recordings?remote=0399990022")
    assert listed(ja) == {rows["failed"]}
    assert_accessible(ja, figures, "recordings filtered ja")

    # The switch: English, the filter kept; remembered on the next page; and back.
    submit(ja, "lang-switch")
    assert_english(ja)
    assert listed(ja) == {rows["failed"]}
    assert "no audio" in ja.find_element(By.ID, f"rec-{rows['failed']}").text
    ja.get(f"{url}/ui/recordings")
    assert_english(ja)
    assert ja.find_element(By.TAG_NAME, "h1").text.startswith("Recordings of contract")
    submit(ja, "lang-switch")
    assert_japanese(ja, {"English"})

    # A browser asking for English gets English throughout, just as accessible.
    en.get(f"{url}/ui/login")
    assert_english(en)
    assert en.find_element(By.ID, "signin").text == "Sign in"
    assert_accessible(en, figures, "sign-in en")
    sign_in(en, f"{url}/ui/login", f1_token, "contract")
    assert_english(en)
    assert listed(en) == set(rows.values())
    heads = [th.text for th in en.find_elements(By.CSS_SELECTOR, "thead th")]
    assert heads == ["Started (JST)", "Dir", "Our number", "Other party", "Length", "Status",
                     "Play / download"]
    assert en.find_element(By.ID, f"audio-{rows['real']}").get_attribute(
        "aria-label") == f"play {cell_texts(en, rows['real'])[0]} {REAL_CALLER}"
    assert cell_texts(en, rows["anonymous"])[3] == "anonymous"
    assert_accessible(en, figures, "recordings en")


def test_overview_japanese_first_and_accessible(clean: Engine, stack: Settings, f1_token: str,
                                                ja: webdriver.Chrome, en: webdriver.Chrome,
                                                figures: dict[str, Any]) -> None:
    """#18's overview page, like the recordings page: Japanese first, English by
    Accept-Language or the switch; accessible for an operator and for a contract."""
    url = base(stack)
    ja.get(f"{url}/ui/overview")
    assert ja.current_url.endswith("/ui/overview/login")
    assert_japanese(ja, {"English"})
    assert_accessible(ja, figures, "overview sign-in ja")
    for who, token, scope in (("operator", stack.api_token, "全契約"),
                              ("contract", f1_token, "契約 F1")):
        sign_in(ja, f"{url}/ui/overview/login", token, "scope")
        assert ja.find_element(By.ID, "scope").text == scope
        assert ja.find_element(By.TAG_NAME, "h1").text.startswith("概要")
        assert_japanese(ja, {"English"})
        assert_accessible(ja, figures, f"overview {who} ja")
    # The switch, then back; an English browser.
    submit(ja, "lang-switch")
    assert_english(ja)
    assert ja.find_element(By.ID, "scope").text == "Contract F1"
    submit(ja, "lang-switch")
    assert_japanese(ja, {"English"})
    for who, token, scope in (("operator", stack.api_token, "All contracts"),
                              ("contract", f1_token, "Contract F1")):
        sign_in(en, f"{url}/ui/overview/login", token, "scope")
        assert en.find_element(By.ID, "scope").text == scope
        assert en.find_element(By.TAG_NAME, "h1").text.startswith("Overview")
        assert_english(en)
        assert_accessible(en, figures, f"overview {who} en")
    # One page session serves both pages: the overview's sign-in opens the recordings page.
    en.find_element(By.LINK_TEXT, "Recordings").click()
    WebDriverWait(en, 10).until(lambda d: d.find_elements(By.ID, "contract"))
    assert en.find_element(By.ID, "contract").text == "F1"
    assert all(c["value"] not in (f1_token, stack.api_token) for c in en.get_cookies())
