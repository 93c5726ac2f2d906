"""Headless Chromium for the page tests (Debian `chromium` and `chromium-driver`; no browser
is downloaded), in a chosen language, and the accessibility check with axe-core (issue #15).

axe-core is vendored (tests/e2e/vendor/axe-core/axe.min.js, npm `axe-core`, MPL-2.0; the
version and sha256 are pinned below and checked, `tools/vendor_axe.sh` refreshes it). The
pages' CSP forbids scripts, but WebDriver's own script injection is not a page script, so
axe runs in the page as delivered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--mute-audio",
         "--autoplay-policy=no-user-gesture-required")
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
AXE_VERSION = "4.14.1"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
# WCAG 2.x A/AA and axe's best practices; a serious or critical finding fails.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
FAILING = ("serious", "critical")


def chromium(work: Path, accept_language: str) -> webdriver.Chrome:
    """A headless Chromium whose requests carry `Accept-Language: <accept_language>`."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    first = accept_language.split(",")[0]
    for flag in (*FLAGS, f"--user-data-dir={work / f'chromium-{first}'}", f"--lang={first}",
                 f"--accept-lang={accept_language}"):
        opts.add_argument(flag)
    opts.add_experimental_option("prefs", {"intl.accept_languages": accept_language})
    service = Service(executable_path=CHROMEDRIVER,
                      log_output=str(work / f"chromedriver-{first}.log"))
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_page_load_timeout(30)
    return driver


@contextmanager
def browser_for(work: Path, accept_language: str) -> Iterator[webdriver.Chrome]:
    """`chromium`, quit afterwards whatever happens (the tests' browser fixtures)."""
    driver = chromium(work, accept_language)
    try:
        yield driver
    finally:
        driver.quit()


def _axe_source() -> str:
    data = AXE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == AXE_SHA256, "vendored axe-core changed"
    return data.decode()


def axe(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """axe-core's violations on the page now shown (every impact)."""
    driver.execute_script(_axe_source())
    assert driver.execute_script("return axe.version") == AXE_VERSION
    result = driver.execute_async_script(
        "const [tags, done] = arguments;"
        "axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})"
        ".then(r => done(JSON.stringify(r.violations)), e => done(JSON.stringify("
        "{error: String(e)})));", AXE_TAGS)
    found = json.loads(result)
    assert isinstance(found, list), found
    return found


def serious(violations: list[dict[str, Any]]) -> list[str]:
    """The serious and critical ones, readable: rule, impact, the first offending nodes."""
    return [f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(str(n.get("target")) for n in v.get("nodes", [])[:3])
            for v in violations if v.get("impact") in FAILING]
