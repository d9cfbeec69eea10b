"""The admin and the login link in a real browser: Playwright driving Debian's Chromium.

An administrator logs in to the admin, creates a token for a user, reads it off the page and
calls the API with it; the login link, opened in another browser, shows its confirm page and
then signs the user in; the administrator revokes the token and the API refuses it.
Screenshots go to tests/artifacts/ (list, create result, view page, confirm page).

Without Playwright or /usr/bin/chromium the test is skipped with the reason; under CI (env
``CI`` set) it fails instead: CI installs Chromium (.ci/run).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connections
from django.utils import timezone

from cocart_jwt.models import RevokeReason, Token
from tests import services

# Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
# meanwhile are synchronous and safe.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ADMIN_PASSWORD = "admin-password-for-the-browser-test"
TIMEOUT_MS = 15_000

pytestmark = pytest.mark.django_db(transaction=True)


def browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed: pip install -e '.[dev]'"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed at {CHROMIUM}: apt-get install -y chromium"
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = browser_missing()
    if missing:
        if services.in_ci():
            pytest.fail(f"CI is set, so a missing browser fails the test: {missing}")
        pytest.skip(f"[no-browser] NOT TESTED in a browser: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()
            # Code under sync_playwright runs in a greenlet with its own context variables,
            # so the ORM opened its own connection there: close it, or the test database
            # cannot be dropped at the end of the run.
            connections.close_all()


def new_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def api_me(base: str, token: str) -> requests.Response:
    return requests.get(
        f"{base}/api/me/",
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        timeout=10,
    )


def some_other_sessions(django_user_model: Any) -> None:
    """A few sessions in every status, so the list shows what an admin sees."""
    alice = django_user_model.objects.create_user("alice", "alice@example.com", "x")
    bob = django_user_model.objects.create_user("bob", "bob@example.com", "x")
    Token.objects.issue(alice, description="iPhone app")
    old = Token.objects.issue(bob, description="Old laptop").session
    Token.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=2))
    Token.objects.issue(alice, description="Lost tablet").session.revoke(RevokeReason.LOGOUT)


def admin_login(page: Any, base: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/cocart_jwt/token/")
    page.fill("#id_username", "root")
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/cocart_jwt/token/")


def create_token(page: Any, username: str) -> None:
    page.click(".object-tools a.addlink")
    page.wait_for_url("**/admin/cocart_jwt/token/add/")
    assert page.input_value("#id_lifetime") == "24h"
    page.click(".field-user .select2-selection")
    page.fill(".select2-search__field", username)
    page.click(f".select2-results__option:has-text('{username}')")
    page.fill("#id_claims", '{"region": "eu-west"}')
    page.fill("#id_description", "Warehouse scanner")
    page.click("input[name=_save]")
    page.wait_for_selector("#cocart-jwt-access-token")


def test_admin_token_journey_in_a_real_browser(browser, live_server, django_user_model, settings):
    from playwright.sync_api import expect

    settings.LOGIN_REDIRECT_URL = "/admin/"
    base = live_server.url
    django_user_model.objects.create_superuser("root", "root@example.com", ADMIN_PASSWORD)
    carol = django_user_model.objects.create_user("carol", "carol@example.com", "x", is_staff=True)
    some_other_sessions(django_user_model)
    admin = new_page(browser)
    admin.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)

    # The administrator logs in and creates a token for carol.
    admin_login(admin, base)
    create_token(admin, "carol")
    access_token = admin.input_value("#cocart-jwt-access-token")
    login_link = admin.input_value("#cocart-jwt-login-link")
    assert access_token.count(".") == 2
    assert login_link.startswith(f"{base}/api/auth/login-link/?token=")
    assert "shown only this once" in admin.inner_text("#content")
    assert '"region": "eu-west"' in admin.inner_text(".cocart-jwt-claims")
    copy = admin.locator("button[data-copy='cocart-jwt-access-token']")
    copy.click()
    expect(copy).to_have_text("Copied")  # the clipboard write is asynchronous
    assert admin.evaluate("navigator.clipboard.readText()") == access_token
    screenshot(admin, "admin-create-result.png")

    # The token works against the API.
    me = api_me(base, access_token)
    assert me.status_code == 200
    assert me.json()["username"] == "carol"
    session = Token.objects.get(user=carol)
    assert me.json()["sid"] == session.pk

    # Reloading the admin pages never shows the token again.
    admin.goto(f"{base}/admin/cocart_jwt/token/")
    assert access_token not in admin.content()
    assert admin.locator("#result_list tbody tr").count() == 4
    screenshot(admin, "admin-token-list.png")

    # The login link, opened in another browser: a confirm page, then carol is signed in.
    visitor = new_page(browser)
    visitor.goto(login_link)
    assert "Sign in as carol" in visitor.inner_text("button")
    screenshot(visitor, "login-link-confirm.png")
    visitor.click("button[type=submit]")
    visitor.wait_for_url(f"{base}/admin/")
    assert "token=" not in visitor.url
    assert visitor.inner_text("#user-tools strong").lower() == "carol"
    visitor.goto(login_link)  # a second use is refused
    assert "already been used" in visitor.inner_text("main")
    screenshot(visitor, "login-link-used.png")

    # The view page, then the administrator revokes the session.
    admin.click(f"#result_list a:has(code[title='{session.pk}'])")
    admin.wait_for_selector(".cocart-jwt-toolbar")
    assert admin.input_value("#id_description") == "Warehouse scanner"
    screenshot(admin, "admin-token-view.png")
    admin.click("text=Revoke this session")
    admin.wait_for_url("**/revoke/")
    admin.click("input[value='Yes, revoke']")
    admin.wait_for_selector(".messagelist")
    assert "Revoked 1 session" in admin.inner_text(".messagelist")
    session.refresh_from_db()
    assert session.revoke_reason == RevokeReason.ADMIN

    # The API refuses the token from the next request on.
    assert api_me(base, access_token).status_code == 401
    admin.goto(f"{base}/admin/cocart_jwt/token/?status=revoked")
    assert "Revoked by an administrator (root)" in admin.inner_text("#result_list")
    screenshot(admin, "admin-token-list-revoked.png")
