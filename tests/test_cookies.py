"""Cookie transport: the refresh token in an HttpOnly cookie, optional access cookie + CSRF."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.middleware.csrf import get_token
from django.test import Client
from django.urls import reverse

from cocart_jwt.models import RevokeReason, Token
from tests.factories import bearer, login

pytestmark = pytest.mark.django_db

ME = "/api/me/"
COOKIE = "cocart_refresh"


@pytest.fixture(autouse=True)
def cookie_transport(settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "COOKIE_TRANSPORT": True}


def cookie_refresh(client):
    return client.post(reverse("cocart_jwt:refresh"), content_type="application/json")


def test_login_sets_the_refresh_cookie_with_every_attribute(api_client, user, password):
    response = login(api_client, "alice", password)

    assert response.status_code == 200
    morsel = response.cookies[COOKIE]
    assert morsel["httponly"] is True
    assert morsel["secure"] is True
    assert morsel["samesite"] == "Lax"
    assert morsel["path"] == "/api/auth/"
    assert int(morsel["max-age"]) == 30 * 24 * 3600
    body = response.json()
    assert "refresh_token" not in body
    assert body["access_token"] and body["refresh_expires_in"] == 30 * 24 * 3600


def test_the_cookie_holds_a_working_refresh_token(api_client, user, password):
    login(api_client, "alice", password)

    response = cookie_refresh(api_client)

    assert response.status_code == 200
    assert "refresh_token" not in response.json()
    assert api_client.get(ME, **bearer(response.json()["access_token"])).status_code == 200


def test_refresh_through_the_cookie_rotates_it(api_client, user, password):
    first = login(api_client, "alice", password).cookies[COOKIE].value

    second = cookie_refresh(api_client).cookies[COOKIE].value

    assert second and second != first
    assert cookie_refresh(api_client).status_code == 200


def test_an_old_cookie_value_is_reuse_and_revokes_the_session(api_client, user, password):
    tokens = login(api_client, "alice", password).json()
    stolen = api_client.cookies[COOKIE].value
    cookie_refresh(api_client)

    attacker = type(api_client)()
    attacker.cookies[COOKIE] = stolen
    refused = cookie_refresh(attacker)

    assert refused.status_code == 401
    assert refused.cookies[COOKIE]["max-age"] == 0
    assert Token.objects.get(pk=tokens["sid"]).revoke_reason == RevokeReason.REFRESH_TOKEN_REUSED
    assert cookie_refresh(api_client).status_code == 401


def test_a_body_token_still_works_for_mobile_clients(api_client, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "COOKIE_TRANSPORT": False}
    tokens = login(api_client, "alice", password).json()
    settings.COCART_JWT = {**settings.COCART_JWT, "COOKIE_TRANSPORT": True}
    response = api_client.post(
        reverse("cocart_jwt:refresh"), {"refresh_token": tokens["refresh_token"]}, format="json"
    )
    assert response.status_code == 200


def test_logout_clears_the_cookie_and_revokes(api_client, user, password):
    tokens = login(api_client, "alice", password).json()
    old_cookie = api_client.cookies[COOKIE].value

    response = api_client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"]))

    assert response.status_code == 204
    assert response.cookies[COOKIE]["max-age"] == 0
    assert response.cookies[COOKIE]["path"] == "/api/auth/"
    assert api_client.cookies[COOKIE].value == ""
    replay = type(api_client)()
    replay.cookies[COOKIE] = old_cookie
    assert cookie_refresh(replay).status_code == 401


def test_logout_through_the_refresh_cookie_alone(api_client, user, password):
    tokens = login(api_client, "alice", password).json()

    response = api_client.post(reverse("cocart_jwt:logout"))

    assert response.status_code == 204
    assert Token.objects.get(pk=tokens["sid"]).revoke_reason == RevokeReason.LOGOUT
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401


def test_logout_all_through_the_refresh_cookie_clears_it(api_client, user, password):
    other = login(type(api_client)(), "alice", password).json()
    login(api_client, "alice", password)

    response = api_client.post(reverse("cocart_jwt:logout-all"))

    assert response.status_code == 204
    assert response.cookies[COOKIE]["max-age"] == 0
    assert api_client.get(ME, **bearer(other["access_token"])).status_code == 401


def test_logout_without_token_or_cookie_is_401(api_client, db):
    assert api_client.post(reverse("cocart_jwt:logout")).status_code == 401


def test_cookie_path_domain_and_samesite_settings_place_the_cookie_and_its_deletion(
    api_client, user, password, settings
):
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "COOKIE_PATH": "/shop/api/auth/",
        "COOKIE_DOMAIN": ".shop.example",
        "COOKIE_SAMESITE": "Strict",
    }
    response = login(api_client, "alice", password)

    logout = api_client.post(
        reverse("cocart_jwt:logout"), **bearer(response.json()["access_token"])
    )

    assert logout.status_code == 204
    for morsel in (response.cookies[COOKIE], logout.cookies[COOKIE]):
        assert morsel["path"] == "/shop/api/auth/"
        assert morsel["domain"] == ".shop.example"
        assert morsel["samesite"] == "Strict"
    assert logout.cookies[COOKIE]["max-age"] == 0


def test_an_access_cookie_is_not_read_without_cookie_transport(
    api_client, user, password, settings
):
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "COOKIE_TRANSPORT": False,
        "ACCESS_COOKIE_NAME": "cocart_access",
    }
    access = login(api_client, "alice", password).json()["access_token"]
    browser = Client()
    browser.cookies["cocart_access"] = access

    assert browser.get(ME).status_code == 401
    assert Client().get(ME, **bearer(access)).status_code == 200


class TestAccessCookie:
    @pytest.fixture(autouse=True)
    def access_cookie(self, settings):
        settings.COCART_JWT = {**settings.COCART_JWT, "ACCESS_COOKIE_NAME": "cocart_access"}

    @pytest.fixture
    def browser(self, user, password):
        client = Client(enforce_csrf_checks=True)
        response = client.post(
            reverse("cocart_jwt:login"),
            {"username": "alice", "password": password},
            content_type="application/json",
        )
        assert response.status_code == 200
        assert "access_token" not in response.json()
        assert response.cookies["cocart_access"]["httponly"] is True
        return client

    def test_the_access_cookie_goes_to_the_whole_site_for_the_tokens_lifetime(
        self, user, password, settings
    ):
        settings.COCART_JWT = {
            **settings.COCART_JWT,
            "COOKIE_DOMAIN": ".shop.example",
            "COOKIE_SAMESITE": "Strict",
        }

        morsel = login(Client(), "alice", password).cookies["cocart_access"]

        assert morsel["path"] == "/"
        assert int(morsel["max-age"]) == 15 * 60
        assert morsel["domain"] == ".shop.example"
        assert morsel["samesite"] == "Strict"
        assert morsel["secure"] is True and morsel["httponly"] is True

    def test_logout_deletes_both_cookies_where_they_were_set(self, user, password, settings):
        settings.COCART_JWT = {
            **settings.COCART_JWT,
            "COOKIE_DOMAIN": ".shop.example",
            "COOKIE_SAMESITE": "Strict",
        }
        client = Client()
        access = login(client, "alice", password).cookies["cocart_access"].value

        response = client.post(reverse("cocart_jwt:logout"), **bearer(access))

        assert response.status_code == 204
        for name, path in (("cocart_access", "/"), (COOKIE, "/api/auth/")):
            morsel = response.cookies[name]
            assert (morsel.value, morsel["max-age"]) == ("", 0)
            assert (morsel["path"], morsel["domain"], morsel["samesite"]) == (
                path,
                ".shop.example",
                "Strict",
            )
        assert client.cookies["cocart_access"].value == ""
        assert client.get(ME).status_code == 401

    def test_a_cookie_authenticated_get_needs_no_csrf_token(self, browser):
        assert browser.get(ME).status_code == 200

    def test_a_cookie_authenticated_post_without_csrf_is_403(self, browser):
        response = browser.post(reverse("cocart_jwt:validate"))
        assert response.status_code == 403
        assert "CSRF" in response.json()["detail"]

    def test_a_cookie_authenticated_post_with_csrf_passes(self, browser, rf):
        csrf = get_token(rf.get("/"))
        browser.cookies["csrftoken"] = csrf
        response = browser.post(reverse("cocart_jwt:validate"), HTTP_X_CSRFTOKEN=csrf)
        assert response.status_code == 200

    def test_a_bearer_post_needs_no_csrf(self, user, password):
        client = Client(enforce_csrf_checks=True)
        tokens = login(client, "alice", password).json()
        assert "access_token" not in tokens
        access = client.cookies["cocart_access"].value
        bare = Client(enforce_csrf_checks=True)
        response = bare.post(reverse("cocart_jwt:validate"), **bearer(access))
        assert response.status_code == 200


def ids(settings, **cookie_settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "COOKIE_TRANSPORT": True, **cookie_settings}
    return sorted(m.id for m in run_checks() if m.id and m.id.startswith("cocart_jwt."))


def test_insecure_cookies_with_debug_off_fail_the_checks(settings):
    settings.DEBUG = False
    assert "cocart_jwt.E013" in ids(settings, COOKIE_SECURE=False)


def test_insecure_cookies_are_allowed_in_debug(settings):
    settings.DEBUG = True
    assert "cocart_jwt.E013" not in ids(settings, COOKIE_SECURE=False)


def test_samesite_none_without_secure_fails_the_checks(settings):
    settings.DEBUG = True
    assert "cocart_jwt.E014" in ids(settings, COOKIE_SECURE=False, COOKIE_SAMESITE="None")


def test_an_unknown_samesite_value_fails_the_checks(settings):
    assert "cocart_jwt.E014" in ids(settings, COOKIE_SAMESITE="lax-ish")
