"""The recordings page in a real browser (REC-FILE-4, SEC-2): headless Chromium, driven by
Selenium, signs in with a contract token on the running `callguard-api`, sees the recording of
a call sipp placed in this test, and plays it; the file is fetched with HTTP ranges; another
contract's token sees nothing of it.

Run alone: `.venv/bin/pytest -q -p no:cacheprovider tests/e2e/test_recordings_page.py`
(needs `make run`'s stack; Debian `chromium` and `chromium-driver`, see tests/e2e/browser.py).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import Engine, text

from callguard.config import PROJECT_ROOT, Settings
from tests.e2e.browser import browser_for
from tests.e2e.conftest import AppLog
from tests.e2e.sipp import Phone, UacSpec, audio, uac

CLI = str(PROJECT_ROOT / ".venv" / "bin" / "callguard")



@pytest.fixture
def tokens(stack: Settings) -> Iterator[dict[str, str]]:
    """Contract tokens of F1 (the callee's) and M1 (anyone else), revoked afterwards."""
    made: dict[str, str] = {}
    try:
        for code in ("F1", "M1"):
            run = subprocess.run([CLI, "tokens", "create", "--contract", code, "--label",
                                  "e2e browser test", "--json"], capture_output=True,
                                 text=True, check=True)
            data = json.loads(run.stdout)
            made[code] = data["token"]
            made[f"{code}-id"] = str(data["id"])
        yield made
    finally:
        for key, value in made.items():
            if key.endswith("-id"):
                subprocess.run([CLI, "tokens", "revoke", value], capture_output=True,
                               check=False)


@pytest.fixture
def browser(work: Path) -> Iterator[webdriver.Chrome]:
    """A browser asking for English: the messages this file reads are the English ones
    (the Japanese page, the default, is tests/e2e/test_recordings_page_i18n.py)."""
    with browser_for(work, "en-US,en;q=0.9") as driver:
        yield driver


def complete_recording(engine: Engine, wait_s: float = 15) -> int:
    deadline = time.monotonic() + wait_s
    while True:
        with engine.connect() as c:
            row = c.execute(text("SELECT id, status FROM recordings WHERE number = '0312345679'"
                                 " ORDER BY id DESC LIMIT 1")).first()
        if row is not None and row.status == "complete":
            return int(row.id)
        assert time.monotonic() < deadline, f"no complete recording: {row}"
        time.sleep(0.2)


def sign_in(driver: webdriver.Chrome, base: str, token: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{base}/ui/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "signin").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "contract"))


def test_recordings_page_plays_the_call(clean: Engine, stack: Settings, work: Path,
                                        tokens: dict[str, str],
                                        browser: webdriver.Chrome) -> None:
    base = f"http://{stack.api_host}:{stack.api_port}"
    api_log = AppLog(stack, "api.log")
    # The carrier calls f1-b's dial-in number; the desk phone answers and talks 3 s.
    with Phone("127.0.1.2", work / "phone", audio_s=3):
        call = uac(UacSpec(to="0312345679", steps=[audio(3)]), work / "carrier")
    assert call.final_status() == 200
    rec_id = complete_recording(clean)

    sign_in(browser, base, tokens["F1"])
    assert browser.find_element(By.ID, "contract").text == "F1"
    row = browser.find_element(By.ID, f"rec-{rec_id}")
    assert "0312345679" in row.text and "0399990000" in row.text and "complete" in row.text
    # Filters: direction "out" hides it, "in" shows it again.
    browser.get(f"{base}/ui/recordings?direction=out")
    assert not browser.find_elements(By.ID, f"rec-{rec_id}")
    browser.get(f"{base}/ui/recordings?direction=in&number=0312345679")
    player = browser.find_element(By.ID, f"audio-{rec_id}")
    error = browser.execute_async_script(
        "const [a, done] = arguments;"
        "a.play().then(() => done(null), e => done(String(e)));", player)
    assert error is None, error
    WebDriverWait(browser, 15).until(lambda d: d.execute_script(
        "const a = arguments[0]; return a.ended || a.currentTime > 0.5;", player))
    duration = browser.execute_script("return arguments[0].duration;", player)
    assert 2.0 < duration < 6.0, duration
    # The browser's media requests were answered with ranges (206), by the contract's cookie.
    fetched = [entry for entry in api_log.records()
               if str(entry.get("msg", "")).startswith(f"GET /ui/recordings/{rec_id}/audio")]
    assert fetched and any(str(e["msg"]).endswith("-> 206") for e in fetched), fetched

    # Another contract's token: the row is not listed and the file is "not found".
    sign_in(browser, base, tokens["M1"])
    assert browser.find_element(By.ID, "contract").text == "M1"
    assert not browser.find_elements(By.ID, f"rec-{rec_id}")
    # The page's CSP forbids script fetches, so the M1 browser session's own cookie is sent
    # from here, exactly as the browser would send it for the file.
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in browser.get_cookies())
    req = urllib.request.Request(  # noqa: S310 - loopback
        f"{base}/ui/recordings/{rec_id}/audio", headers={"Cookie": cookie})
    with pytest.raises(urllib.error.HTTPError) as hidden:
        urllib.request.urlopen(req, timeout=10)  # noqa: S310
    hidden.value.close()
    assert hidden.value.code == 404
    req = urllib.request.Request(  # noqa: S310 - loopback
        f"{base}/api/v1/recordings/{rec_id}/audio",
        headers={"Authorization": f"Bearer {tokens['M1']}", "Range": "bytes=0-99"})
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(req, timeout=10)  # noqa: S310
    denied.value.close()
    assert denied.value.code == 404
    # …while F1's token gets exactly the bytes asked for.
    req = urllib.request.Request(  # noqa: S310 - loopback
        f"{base}/api/v1/recordings/{rec_id}/audio",
        headers={"Authorization": f"Bearer {tokens['F1']}", "Range": "bytes=0-99"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        assert resp.status == 206 and len(resp.read()) == 100


def test_sign_in_refuses_unknown_and_operator_tokens(stack: Settings,
                                                     browser: webdriver.Chrome) -> None:
    base = f"http://{stack.api_host}:{stack.api_port}"
    browser.get(f"{base}/ui/recordings")
    assert browser.current_url.endswith("/ui/login")  # not signed in: to the sign-in form
    for token, message in (("cgt_nope", "Unknown token."),
                           (stack.api_token, "sign in with a contract token")):
        form = browser.find_element(By.ID, "token")
        form.send_keys(token)
        browser.find_element(By.ID, "signin").click()
        # The answer is a new page: wait until the old form is gone before reading it.
        WebDriverWait(browser, 10).until(staleness_of(form))
        assert message in browser.find_element(By.ID, "error").text
