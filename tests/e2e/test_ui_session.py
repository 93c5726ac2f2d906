"""SEC-4 (issue 19 item 7): the recordings page has its own session: a random id (never the
API token) in an HttpOnly, SameSite=Strict cookie that expires; the sign-in form carries a
CSRF token; the page's cookie is refused by the API."""

from __future__ import annotations

import http.client
import re
import urllib.parse
from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest

from callguard.config import PROJECT_ROOT, Settings
from tests.e2e.conftest import contract_token

CLI = str(PROJECT_ROOT / ".venv" / "bin" / "callguard")


@pytest.fixture
def f1_token(stack: Settings) -> Iterator[str]:
    with contract_token("F1", "e2e session test") as token:
        yield token


def request(stack: Settings, method: str, path: str, body: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, list[str]], str]:
    conn = http.client.HTTPConnection(stack.api_host, stack.api_port, timeout=10)
    try:
        data = urllib.parse.urlencode(body) if body is not None else None
        hdrs = dict(headers or {})
        if data is not None:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        got: dict[str, list[str]] = {}
        for k, v in resp.getheaders():
            got.setdefault(k.lower(), []).append(v)
        return resp.status, got, resp.read().decode(errors="replace")
    finally:
        conn.close()


def cookies(headers: dict[str, list[str]]) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for line in headers.get("set-cookie", []):
        jar.load(line)
    return jar


def test_page_session_is_its_own_and_refused_by_the_api(stack: Settings,
                                                        f1_token: str) -> None:
    status, headers, page = request(stack, "GET", "/ui/login")
    assert status == 200
    csrf_cookie = cookies(headers)["cg_csrf"]
    assert csrf_cookie["httponly"] and csrf_cookie["samesite"] == "Strict"
    field = re.search(r'name="csrf" value="([^"]+)"', page)
    assert field is not None and field.group(1) == csrf_cookie.value

    # Without the form's CSRF token (a cross-site post): refused, no session.
    jar = f"cg_csrf={csrf_cookie.value}"
    for form, cookie in (({"token": f1_token}, jar),
                         ({"token": f1_token, "csrf": "forged"}, jar),
                         ({"token": f1_token, "csrf": csrf_cookie.value}, "")):
        status, headers, _ = request(stack, "POST", "/ui/login", form, {"Cookie": cookie})
        assert status == 403 and "cg_session" not in cookies(headers)

    status, headers, _ = request(stack, "POST", "/ui/login",
                                 {"token": f1_token, "csrf": csrf_cookie.value},
                                 {"Cookie": jar})
    assert status == 303
    session = cookies(headers)["cg_session"]
    assert session.value != f1_token and f1_token not in session.value
    assert len(session.value) >= 32
    assert session["httponly"] and session["samesite"] == "Strict"
    assert session["path"] == "/ui" and 0 < int(session["max-age"]) <= 24 * 3600

    page_cookie = {"Cookie": f"cg_session={session.value}"}
    status, _, page = request(stack, "GET", "/ui/recordings", headers=page_cookie)
    assert status == 200 and 'id="contract"' in page
    # The page's cookie is worth nothing against the API: neither as a cookie nor a bearer.
    for api_headers in (page_cookie, {"Authorization": f"Bearer {session.value}"}):
        status, _, _ = request(stack, "GET", "/api/v1/recordings", headers=api_headers)
        assert status == 401
    # A raw token as the page cookie is not a session either.
    status, headers, _ = request(stack, "GET", "/ui/recordings",
                                 headers={"Cookie": f"cg_session={f1_token}"})
    assert status in (302, 303) and headers["location"][0].endswith("/ui/login")

    # Signing out ends the session on the server.
    request(stack, "POST", "/ui/logout", {}, page_cookie)
    status, _, _ = request(stack, "GET", "/ui/recordings", headers=page_cookie)
    assert status in (302, 303)
