"""Login CSRF in a real browser (Playwright + Debian's Chromium): a page on another origin
that auto-submits a login form with the attacker's credentials leaves the visitor's browser
without any cookie of the site; the site's own page still logs in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.test_cookies_browser import browser, page  # noqa: F401 - fixtures

ATTACKER_PASSWORD = "attacker-password-123"
FORM = """<!doctype html>
<html><body>
<form method="post" action="{action}">
<input name="username" value="mallory"><input name="password" value="{password}">
</form>
<script>document.forms[0].submit();</script>
</body></html>"""


@pytest.fixture
def site(settings: Any, live_server: Any, django_user_model: Any) -> str:
    """The site on http://localhost:<port>, cookie transport on, with the attacker's account."""
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "COOKIE_TRANSPORT": True,
        "ACCESS_COOKIE_NAME": "cocart_access",
    }
    django_user_model.objects.create_user(username="mallory", password=ATTACKER_PASSWORD)
    url = str(live_server.url)
    assert url.startswith("http://localhost:"), url
    return url


@pytest.fixture
def attacker(site: str) -> Iterator[str]:
    """Another origin (127.0.0.1, its own port) serving the auto-submitting form."""
    body = FORM.format(action=f"{site}/api/auth/login/", password=ATTACKER_PASSWORD).encode()

    class AttackerPage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), AttackerPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def cocart_cookies(context: Any, site: str) -> set[str]:
    """The site's cookies of this app, whatever their path (a 403 page may set Django's
    csrftoken, which is not ours)."""
    return {
        cookie["name"]
        for cookie in context.cookies([site, f"{site}/api/auth/"])
        if cookie["name"].startswith("cocart")
    }


@pytest.mark.django_db(transaction=True)
def test_another_sites_form_cannot_log_the_browser_in(
    page: Any,  # noqa: F811 - the fixture
    site: str,
    attacker: str,
) -> None:
    with page.expect_response(lambda response: "/api/auth/login/" in response.url) as login:
        page.goto(attacker)
    response = login.value

    assert response.status == 403
    assert response.request.headers.get("origin") == attacker.rstrip("/")
    assert cocart_cookies(page.context, site) == set()


@pytest.mark.django_db(transaction=True)
def test_the_sites_own_form_still_logs_in(
    page: Any,  # noqa: F811 - the fixture
    site: str,
) -> None:
    """The same form, posted from a page of the site: the cookies are set (the check above
    would see them)."""
    page.goto(f"{site}/spa/")
    with page.expect_response(lambda response: "/api/auth/login/" in response.url) as login:
        page.evaluate(
            """(password) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = "/api/auth/login/";
                for (const [name, value] of [["username", "mallory"], ["password", password]]) {
                    const input = document.createElement("input");
                    input.name = name;
                    input.value = value;
                    form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            ATTACKER_PASSWORD,
        )

    assert login.value.status == 200
    assert cocart_cookies(page.context, site) == {"cocart_refresh", "cocart_access"}
