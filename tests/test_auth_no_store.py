"""Every answer of login and refresh carries ``Cache-Control: no-store``, errors too.

RFC 6749 (5.1, 5.2) asks it of a token endpoint's every response: a shared cache (a proxy, a
CDN) in front of the site must never keep a token pair, nor a refusal that it would then
serve to the next client posting to the same URL.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from tests.factories import login, refresh

pytestmark = pytest.mark.django_db

LOGIN = "cocart_jwt:login"
REFRESH = "cocart_jwt:refresh"


def assert_not_stored(response: Any, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"


def test_a_login_and_a_refresh_that_succeed_are_not_stored(api_client, user, password):
    pair = login(api_client, "alice", password)
    assert_not_stored(pair, 200)

    assert_not_stored(refresh(api_client, pair.json()["refresh_token"]), 200)


def test_a_wrong_password_is_a_401_not_stored(api_client, user):
    assert_not_stored(login(api_client, "alice", "wrong password"), 401)


def test_a_spent_or_unknown_refresh_token_is_a_401_not_stored(api_client, user, password):
    old = login(api_client, "alice", password).json()["refresh_token"]
    assert refresh(api_client, old).status_code == 200

    assert_not_stored(refresh(api_client, old), 401)  # reuse: the session is revoked
    assert_not_stored(refresh(api_client, "no-such-refresh-token"), 401)


@pytest.mark.parametrize("name", [LOGIN, REFRESH])
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{}", "application/json"),  # fields missing
        ('{"username": ', "application/json"),  # not JSON
        ("[" * 5000 + "]" * 5000, "application/json"),  # nested too deeply
    ],
    ids=["missing-fields", "malformed-json", "too-deep"],
)
def test_a_bad_request_is_a_400_not_stored(api_client, name, body, content_type):
    response = api_client.post(reverse(name), body, content_type=content_type)

    assert_not_stored(response, 400)


@pytest.mark.parametrize("name", [LOGIN, REFRESH])
def test_a_method_other_than_post_is_a_405_not_stored(api_client, name):
    assert_not_stored(api_client.get(reverse(name)), 405)


@pytest.mark.parametrize("name", [LOGIN, REFRESH])
def test_a_cross_site_request_with_cookie_transport_is_a_403_not_stored(api_client, settings, name):
    settings.COCART_JWT = {**settings.COCART_JWT, "COOKIE_TRANSPORT": True}

    response = api_client.post(
        reverse(name), {}, format="json", headers={"Origin": "https://attacker.example"}
    )

    assert_not_stored(response, 403)
    assert response.json()["code"] == "cross_site_request"


@pytest.mark.rate_limits
@pytest.mark.parametrize(("name", "limit"), [(LOGIN, "login"), (REFRESH, "refresh")])
def test_a_rate_limited_request_is_a_429_not_stored(api_client, settings, name, limit):
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": {limit: "1/min"}}
    api_client.post(reverse(name), {}, format="json")

    response = api_client.post(reverse(name), {}, format="json")

    assert_not_stored(response, 429)
    assert response["Retry-After"]


def test_a_login_link_page_is_not_stored_either(client):
    """The page of a login link sends the same two headers as a token answer: one
    ``no_store`` for both (the page's ``never_cache`` adds its own directives beside them)."""
    response = client.get(reverse("cocart_jwt:login-link"), {"token": "unknown"})

    assert response.status_code == 400
    assert "no-store" in [directive.strip() for directive in response["Cache-Control"].split(",")]
    assert response["Pragma"] == "no-cache"
