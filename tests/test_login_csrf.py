"""Login CSRF with cookie transport: another site's page cannot sign a visitor in.

A cookie set by a response goes to the browser that sent the request, whoever made it send
it: a form on another site posting the attacker's password to login would leave the victim's
browser signed in as the attacker. With ``COOKIE_TRANSPORT`` on, login and refresh refuse a
request whose ``Origin`` is neither the site's nor in ``CSRF_TRUSTED_ORIGINS``, or that the
browser marks ``Sec-Fetch-Site: cross-site``: 403, code ``cross_site_request``, no cookie.
Native clients (no ``Origin``) and the site's own pages work as before.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.middleware.csrf import CsrfViewMiddleware
from django.test import Client, RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from cocart_jwt.models import Token

pytestmark = pytest.mark.django_db

LOGIN = "cocart_jwt:login"
REFRESH = "cocart_jwt:refresh"
COOKIE = "cocart_refresh"
ACCESS_COOKIE = "cocart_access"
SITE = "http://testserver"  # the test client's host, over http


@pytest.fixture(autouse=True)
def cookie_transport(settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "COOKIE_TRANSPORT": True}


def log_in(client: Any, password: str, **headers: str) -> Any:
    return client.post(
        reverse(LOGIN),
        {"username": "alice", "password": password},
        content_type="application/json",
        headers=headers,
    )


def cookie_refresh(client: Any, **headers: str) -> Any:
    return client.post(reverse(REFRESH), content_type="application/json", headers=headers)


def assert_refused(response: Any) -> None:
    assert response.status_code == 403, (response.status_code, response.content[:300])
    assert response.json() == {
        "detail": "Cross-site request refused.",
        "code": "cross_site_request",
    }
    assert not response.cookies, "a refused request sets or deletes no cookie"


# -- login -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://attacker.example"},
        {"Origin": "http://attacker.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
        {"Origin": "https://testserver"},  # the site's host on another scheme
        {"Origin": "http://testserver:8000"},  # ... on another port
        {"Origin": "http://testserver.attacker.example"},
        {"Origin": "http://blog.testserver", "Sec-Fetch-Site": "same-site"},  # a sibling host
        {"Sec-Fetch-Site": "cross-site"},  # no Origin, but the browser says cross-site
        {"Origin": SITE, "Sec-Fetch-Site": "cross-site"},
    ],
    ids=[
        "other-site",
        "other-site-and-sec-fetch",
        "origin-null",
        "other-scheme",
        "other-port",
        "site-as-subdomain",
        "same-site-sibling",
        "sec-fetch-site-only",
        "own-origin-but-cross-site",
    ],
)
def test_a_cross_site_login_is_403_and_sets_no_cookie(
    user: Any, password: str, headers: dict[str, str]
) -> None:
    client = Client()

    response = log_in(client, password, **headers)

    assert_refused(response)
    assert COOKIE not in client.cookies
    assert not Token.objects.exists()


@pytest.mark.parametrize(
    "headers",
    [
        {},  # a native client
        {"Origin": SITE},
        {"Origin": SITE, "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed by the user, a bookmark
    ],
    ids=["native", "same-origin", "same-origin-sec-fetch", "sec-fetch-only", "sec-fetch-none"],
)
def test_a_same_origin_or_native_login_sets_the_cookie(
    user: Any, password: str, headers: dict[str, str]
) -> None:
    client = Client()

    response = log_in(client, password, **headers)

    assert response.status_code == 200, response.content
    assert client.cookies[COOKIE].value


def test_the_origin_of_a_secure_request_is_https(user: Any, password: str) -> None:
    client = Client()
    url, body = reverse(LOGIN), {"username": "alice", "password": password}

    http_origin = client.post(
        url, body, content_type="application/json", secure=True, headers={"Origin": SITE}
    )
    https_origin = client.post(
        url,
        body,
        content_type="application/json",
        secure=True,
        headers={"Origin": "https://testserver"},
    )

    assert_refused(http_origin)
    assert https_origin.status_code == 200


def test_a_refused_login_is_logged_with_its_origin(
    user: Any, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        log_in(Client(), password, Origin="https://attacker.example")

    refusals = [r for r in caplog.records if "Cross-site" in r.getMessage()]
    assert len(refusals) == 1
    assert refusals[0].levelno == logging.INFO and refusals[0].name == "cocart_jwt"
    assert "https://attacker.example" in refusals[0].getMessage()
    assert password not in caplog.text


def test_without_cookie_transport_nothing_changes(settings: Any, user: Any, password: str) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "COOKIE_TRANSPORT": False}

    response = log_in(
        Client(), password, Origin="https://other.example", **{"Sec-Fetch-Site": "cross-site"}
    )

    assert response.status_code == 200
    assert response.json()["refresh_token"]


# -- CSRF_TRUSTED_ORIGINS ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "origin", "allowed"),
    [
        (["https://app.example.com"], "https://app.example.com", True),
        (["https://app.example.com"], "https://App.example.com", False),
        (["https://app.example.com"], "http://app.example.com", False),
        (["https://app.example.com"], "https://app.example.com:8443", False),
        (["https://*.example.com"], "https://shop.example.com", True),
        (["https://*.example.com"], "https://a.b.example.com", True),
        (["https://*.example.com"], "https://example.com", True),
        (["https://*.example.com"], "http://shop.example.com", False),
        (["https://*.example.com"], "https://shop.example.com:8443", False),
        (["https://*.example.com"], "https://evilexample.com", False),
        (["https://*.example.com"], "https://shop.example.com.evil.test", False),
        (["https://*.example.com:8443"], "https://shop.example.com:8443", True),
        (["https://*.Example.com"], "https://shop.example.com", True),
        # An Origin spelled as a wildcard entry is no exact match: its host is compared.
        (["https://*.Example.com"], "https://*.Example.com", False),
        # A wildcard without a dot matches the host itself, whatever the host starts with.
        (["https://*Xample.com"], "https://xample.com", True),
        # An Origin that is no URL (an unclosed IPv6 bracket) is trusted by no entry.
        (["https://*.example.com"], "https://[shop.example.com", False),
        ([], "https://shop.example.com", False),
    ],
)
def test_trusted_origins_are_matched_as_django_matches_them(
    settings: Any,
    user: Any,
    password: str,
    trusted: list[str],
    origin: str,
    allowed: bool,
) -> None:
    settings.CSRF_TRUSTED_ORIGINS = trusted
    # Django's own verdict on this Origin, so "as Django does" is checked, not assumed.
    request = RequestFactory().post("/", headers={"Origin": origin})
    assert CsrfViewMiddleware(lambda request: None)._origin_verified(request) is allowed

    response = log_in(Client(), password, Origin=origin)

    assert response.status_code == (200 if allowed else 403), response.content


def test_a_trusted_origin_logs_in_same_site_but_never_cross_site(
    settings: Any, user: Any, password: str
) -> None:
    """docs/cookies.md: Sec-Fetch-Site: cross-site is refused, whatever CSRF_TRUSTED_ORIGINS says;
    a trusted front end on a sibling host of the same site (same-site) logs in."""
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.frontend.test"]

    same_site = log_in(
        Client(), password, Origin="https://shop.frontend.test", **{"Sec-Fetch-Site": "same-site"}
    )
    cross_site = log_in(
        Client(), password, Origin="https://shop.frontend.test", **{"Sec-Fetch-Site": "cross-site"}
    )

    assert same_site.status_code == 200
    assert_refused(cross_site)


# -- refresh ---------------------------------------------------------------------------------


def test_a_cross_site_refresh_is_403_and_leaves_the_session_alone(user: Any, password: str) -> None:
    client = Client()
    sid = log_in(client, password).json()["sid"]
    cookie = client.cookies[COOKIE].value

    refused = cookie_refresh(client, Origin="https://attacker.example")
    by_sec_fetch = cookie_refresh(client, **{"Sec-Fetch-Site": "cross-site"})

    assert_refused(refused)
    assert_refused(by_sec_fetch)
    assert client.cookies[COOKIE].value == cookie  # neither replaced nor deleted
    same_site = cookie_refresh(client, Origin=SITE)
    assert same_site.status_code == 200
    assert same_site.json()["sid"] == sid


def test_a_cross_site_refresh_with_a_body_token_is_refused_too(user: Any, password: str) -> None:
    client = Client()
    log_in(client, password)
    token = client.cookies[COOKIE].value

    response = Client().post(
        reverse(REFRESH),
        {"refresh_token": token},
        content_type="application/json",
        headers={"Origin": "https://attacker.example"},
    )

    assert_refused(response)
    assert cookie_refresh(client).status_code == 200  # the token was not spent


def test_a_native_refresh_works(user: Any, password: str) -> None:
    client = APIClient()
    log_in(client, password)

    assert cookie_refresh(client).status_code == 200


# -- re-login with the access cookie ------------------------------------------------------------


class TestReloginWithAccessCookie:
    @pytest.fixture(autouse=True)
    def access_cookie(self, settings: Any) -> None:
        settings.COCART_JWT = {**settings.COCART_JWT, "ACCESS_COOKIE_NAME": ACCESS_COOKIE}

    @pytest.mark.parametrize("headers", [{}, {"Origin": SITE}], ids=["native", "same-origin"])
    def test_a_relogin_keeps_the_session_without_a_csrf_token(
        self, user: Any, password: str, headers: dict[str, str]
    ) -> None:
        browser = Client(enforce_csrf_checks=True)
        first = log_in(browser, password, **headers)
        assert first.status_code == 200
        assert browser.cookies[ACCESS_COOKIE].value

        again = log_in(browser, password, **headers)

        assert again.status_code == 200, again.content
        assert again.json()["sid"] == first.json()["sid"]
        assert Token.objects.filter(revoked_at__isnull=True).count() == 1

    def test_a_cookie_authenticated_post_elsewhere_still_needs_csrf(
        self, user: Any, password: str
    ) -> None:
        browser = Client(enforce_csrf_checks=True)
        log_in(browser, password)

        response = browser.post(reverse("cocart_jwt:validate"))

        assert response.status_code == 403
        assert "CSRF" in response.json()["detail"]

    def test_a_cross_site_relogin_is_refused_and_keeps_the_cookies(
        self, user: Any, password: str
    ) -> None:
        browser = Client(enforce_csrf_checks=True)
        log_in(browser, password)
        access = browser.cookies[ACCESS_COOKIE].value

        response = log_in(browser, password, Origin="https://attacker.example")

        assert_refused(response)
        assert browser.cookies[ACCESS_COOKIE].value == access
