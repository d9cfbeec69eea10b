"""A real browser (Playwright + Debian's Chromium): the refresh cookie keeps a page logged in
across reloads, and no script on the page can read it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import services

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def browser_missing() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = browser_missing()
    if missing and services.in_ci():
        pytest.fail(f"CI must run the browser tests, but {missing}")
    if missing:
        pytest.skip(f"[no-browser] {missing}")
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop in this thread
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


@pytest.fixture
def cookie_site(settings: Any, live_server: Any, user: Any) -> str:
    settings.COCART_JWT = {**settings.COCART_JWT, "COOKIE_TRANSPORT": True}
    return str(live_server.url)


@pytest.mark.django_db(transaction=True)
def test_a_page_stays_logged_in_across_reloads_through_the_cookie(
    page: Any, cookie_site: str, password: str
) -> None:
    page.goto(f"{cookie_site}/spa/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", password)
    page.click("button")
    page.wait_for_function("document.getElementById('who').textContent === 'alice'")
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))

    # The reloaded page has no token in memory: only the refresh cookie can log it back in.
    with page.expect_response("**/api/me/") as me:
        page.reload()

    assert me.value.status == 200
    page.wait_for_function("document.getElementById('who').textContent !== 'anonymous'")
    assert page.text_content("#who") == "alice"
    assert [url for url in sent if url.endswith("/api/auth/login/")] == []  # no new login
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "cookie-spa-after-reload.png"))
    # Control: the same page in a browser without the cookie stays logged out.
    stranger = page.context.browser.new_context()
    try:
        other = stranger.new_page()
        with other.expect_response("**/api/auth/refresh/") as refreshed:
            other.goto(f"{cookie_site}/spa/")
        assert not refreshed.value.ok  # no cookie, no session: the page stays logged out
    finally:
        stranger.close()


@pytest.mark.django_db(transaction=True)
def test_scripts_cannot_read_the_refresh_cookie(page: Any, cookie_site: str, password: str) -> None:
    page.goto(f"{cookie_site}/spa/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", password)
    page.click("button")
    page.wait_for_function("document.getElementById('who').textContent === 'alice'")

    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}

    assert cookies["cocart_refresh"]["httpOnly"] is True
    assert cookies["cocart_refresh"]["path"] == "/api/auth/"
    assert "cocart_refresh" not in page.evaluate("document.cookie")
    # Nor does the refresh token reach the page any other way: not in the JSON it read.
    body = page.evaluate("fetch('/api/auth/refresh/', {method: 'POST'}).then(r => r.text())")
    assert "refresh_token" not in body and cookies["cocart_refresh"]["value"] not in body


@pytest.mark.django_db(transaction=True)
def test_after_logout_a_reload_is_logged_out(page: Any, cookie_site: str, password: str) -> None:
    page.goto(f"{cookie_site}/spa/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", password)
    page.click("button")
    page.wait_for_function("document.getElementById('who').textContent === 'alice'")

    status = page.evaluate("fetch('/api/auth/logout/', {method: 'POST'}).then(r => r.status)")
    # Waits for the reloaded page's own refresh attempt (a fixed pause could end before it).
    with page.expect_response("**/api/auth/refresh/") as refreshed:
        page.reload()

    assert status == 204
    assert not refreshed.value.ok
    assert "cocart_refresh" not in {cookie["name"] for cookie in page.context.cookies()}
    assert page.text_content("#who") == "anonymous"
