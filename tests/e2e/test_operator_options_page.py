"""Issue #14: the recordings page's operator view sets a contract's recording options and
retention (the same service functions as the API), in a real browser (headless Chromium via
Selenium) on the running `callguard-api`; the API and the database then show the change. The
view's session and CSRF protection hold: a POST without the form's token changes nothing, a
contract token cannot open the view, a bad public key is refused with a message.

Run alone: `.venv/bin/pytest -q -p no:cacheprovider tests/e2e/test_operator_options_page.py`
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import Engine, text

from callguard.config import Settings
from tests.e2e.test_recordings_page import browser, tokens  # noqa: F401 - fixtures
from tests.e2e.test_ui_session import request as http_request

CONTRACT = "F1"  # has a recording subscription: the retention field is shown


def api(stack: Settings, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(
        f"http://{stack.api_host}:{stack.api_port}/api/v1{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {stack.api_token}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        return json.loads(resp.read())


def retention(engine: Engine) -> int:
    with engine.connect() as c:
        return int(c.execute(text(
            "SELECT s.retention_days FROM recording_subscriptions s JOIN contracts c "
            "ON c.id = s.contract_id WHERE c.code = :code"), {"code": CONTRACT}).scalar_one())


@pytest.fixture
def restored(stack: Settings, engine: Engine) -> Iterator[int]:
    """F1's options and retention as the test found them, put back afterwards."""
    before_opts = api(stack, "GET", f"/contracts/{CONTRACT}/recording-options")
    before_days = retention(engine)
    try:
        yield before_days
    finally:
        api(stack, "PUT", f"/contracts/{CONTRACT}/recording-options",
            {k: before_opts[k] for k in ("stereo", "announce_in", "announce_out",
                                         "public_key", "pause_code", "resume_code")})
        api(stack, "PUT", f"/contracts/{CONTRACT}/subscriptions/recording",
            {"retention_days": before_days})


def submit(driver: webdriver.Chrome, button_id: str) -> None:
    button = driver.find_element(By.ID, button_id)
    button.click()
    WebDriverWait(driver, 10).until(staleness_of(button))


def test_operator_view_sets_options(stack: Settings, engine: Engine, restored: int,
                                    tokens: dict[str, str],  # noqa: F811
                                    browser: webdriver.Chrome) -> None:  # noqa: F811
    base = f"http://{stack.api_host}:{stack.api_port}"
    # A contract token does not open the operator view.
    browser.get(f"{base}/ui/operator")
    browser.find_element(By.ID, "token").send_keys(tokens["F1"])
    submit(browser, "signin")
    assert "operator" in browser.find_element(By.ID, "error").text
    # The operator token does.
    browser.find_element(By.ID, "token").send_keys(stack.api_token)
    submit(browser, "signin")
    assert browser.current_url.endswith("/ui/operator")
    form = browser.find_element(By.ID, f"opts-{CONTRACT}")
    assert "ステレオ" in form.text and "stereo" in form.text  # Japanese first
    stereo = browser.find_element(By.ID, f"stereo-{CONTRACT}")
    assert not stereo.is_selected()
    stereo.click()
    browser.find_element(By.ID, f"announce_out-{CONTRACT}").click()
    for name, value in (("pause_code", "*1"), ("resume_code", "*2"),
                        ("retention_days", str(restored + 7))):
        field = browser.find_element(By.ID, f"{name}-{CONTRACT}")
        field.clear()
        field.send_keys(value)
    submit(browser, f"save-{CONTRACT}")
    assert CONTRACT in browser.find_element(By.ID, "saved").text
    got = api(stack, "GET", f"/contracts/{CONTRACT}/recording-options")
    assert (got["stereo"], got["announce_in"], got["announce_out"]) == (True, False, True), got
    assert (got["pause_code"], got["resume_code"]) == ("*1", "*2"), got
    assert retention(engine) == restored + 7
    assert browser.find_element(By.ID, f"stereo-{CONTRACT}").is_selected()  # shown as saved

    # A bad public key: refused with the service's message, nothing changed.
    browser.find_element(By.ID, f"public_key-{CONTRACT}").send_keys("age1notakey")
    browser.find_element(By.ID, f"stereo-{CONTRACT}").click()  # would turn stereo off
    submit(browser, f"save-{CONTRACT}")
    assert "public key" in browser.find_element(By.ID, "error").text
    got = api(stack, "GET", f"/contracts/{CONTRACT}/recording-options")
    assert got["stereo"] is True and got["public_key"] is None, got

    # The page session without the form's CSRF token (a forged cross-site POST): refused.
    sid = browser.get_cookie("cg_session")
    assert sid is not None
    status, _, _ = http_request(
        stack, "POST", f"/ui/operator/contracts/{CONTRACT}/recording-options",
        {"stereo": "", "csrf": "forged"}, {"Cookie": f"cg_session={sid['value']}"})
    assert status == 403
    assert api(stack, "GET", f"/contracts/{CONTRACT}/recording-options")["stereo"] is True
    # Without a session at all: back to the sign-in, nothing changed.
    status, headers, _ = http_request(
        stack, "POST", f"/ui/operator/contracts/{CONTRACT}/recording-options", {"csrf": "x"})
    assert status == 303 and headers["location"] == ["/ui/operator"]
    assert api(stack, "GET", f"/contracts/{CONTRACT}/recording-options")["stereo"] is True
