"""Step-up (RFC 9470): ``auth_time`` in access tokens, ``RecentLogin``, ``reauthenticate/``.

A login sets ``auth_time``, a refresh keeps it, a login carrying its Bearer and
``reauthenticate/`` renew it; sessions made in the admin or the CLI have none. ``RecentLogin``
answers a stale login with the 401 challenge a client can act on.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import time_machine
from django.contrib.auth.signals import user_login_failed
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from cocart_jwt.choices import Event
from cocart_jwt.keys import keyring
from cocart_jwt.models import RefreshToken, RevokeReason, Token, TokenEvent
from cocart_jwt.signals import token_revoked
from cocart_jwt.tokens import verify_access_token
from tests.factories import bearer, login, refresh

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RECENT = "/api/recent/"
LAST_MINUTE = "/api/recent/minute/"
SESSION_OR_TOKEN = "/api/recent/session-or-token/"
ME = "/api/me/"
REAUTHENTICATE = reverse("cocart_jwt:reauthenticate")
CHALLENGE = 'Bearer realm="api", error="insufficient_user_authentication", max_age=%d'


def auth_time_of(access_token: str) -> Any:
    return verify_access_token(access_token).get("auth_time")


def reauthenticate(client: Any, access_token: str, password: str, **extra: Any) -> Any:
    return client.post(
        REAUTHENTICATE, {"password": password}, format="json", **bearer(access_token), **extra
    )


def log_in(client: Any, password: str) -> dict[str, Any]:
    response = login(client, "alice", password)
    assert response.status_code == 200, response.content
    return dict(response.json())


def assert_step_up_challenge(response: Any, max_age: int = 300) -> None:
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == CHALLENGE % max_age
    assert response.json()["code"] == "reauthentication_required"
    assert response.json()["detail"]


# -- auth_time --------------------------------------------------------------------------------


def test_a_login_sets_auth_time_and_a_refresh_keeps_it(api_client, user, password):
    with time_machine.travel(T0, tick=False) as clock:
        pair = log_in(api_client, password)
        first = verify_access_token(pair["access_token"])
        clock.shift(timedelta(minutes=20))
        refreshed = verify_access_token(
            refresh(api_client, pair["refresh_token"]).json()["access_token"]
        )

    assert first["auth_time"] == int(T0.timestamp())
    assert refreshed["auth_time"] == int(T0.timestamp())
    assert refreshed["iat"] > int(T0.timestamp())
    assert Token.objects.get(pk=pair["sid"]).authenticated_at == T0


def test_a_login_carrying_its_bearer_renews_auth_time(api_client, user, password):
    with time_machine.travel(T0, tick=False) as clock:
        pair = log_in(api_client, password)
        clock.shift(timedelta(minutes=10))  # the access token is still valid
        again = login(api_client, "alice", password, **bearer(pair["access_token"])).json()

        assert again["sid"] == pair["sid"]
        assert auth_time_of(again["access_token"]) == int((T0 + timedelta(minutes=10)).timestamp())


def test_a_session_made_in_the_admin_or_the_cli_has_no_auth_time_and_still_works(api_client, user):
    issued = Token.objects.issue(user)

    assert "auth_time" not in verify_access_token(issued.access_token)
    assert api_client.get(ME, **bearer(issued.access_token)).status_code == 200
    refreshed = refresh(api_client, issued.refresh_token)
    assert refreshed.status_code == 200
    assert "auth_time" not in verify_access_token(refreshed.json()["access_token"])


def resigned(access_token: str, **changes: Any) -> str:
    """The token with some claims changed, signed again with the site's own key."""
    claims = {**verify_access_token(access_token), **changes}
    key = keyring().signing_key
    assert key is not None
    return jwt.encode(
        claims, key.signer, algorithm=key.algorithm, headers={"typ": "at+jwt", "kid": key.kid}
    )


@pytest.mark.parametrize(
    ("auth_time", "reason"),
    [
        ("1700000000", "auth_time claim is not an integer NumericDate"),
        (1700000000.5, "auth_time claim is not an integer NumericDate"),
        (True, "auth_time claim is not an integer NumericDate"),
        (None, "auth_time claim is not an integer NumericDate"),
        ("future", "auth_time claim is in the future"),
    ],
)
def test_a_token_with_a_bad_auth_time_is_refused_and_the_log_says_why(
    api_client, user, password, caplog, auth_time, reason
):
    pair = log_in(api_client, password)
    if auth_time == "future":
        auth_time = int(datetime.now(UTC).timestamp()) + 120
    forged = resigned(pair["access_token"], auth_time=auth_time)
    caplog.set_level(logging.INFO, logger="cocart_jwt")

    response = api_client.get(ME, **bearer(forged))

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'
    assert f"Access token refused: {reason}" in caplog.messages
    assert api_client.get(ME, **bearer(pair["access_token"])).status_code == 200


def test_an_auth_time_ahead_within_the_leeway_is_accepted(api_client, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "LEEWAY": 60}
    pair = log_in(api_client, password)
    ahead = resigned(pair["access_token"], auth_time=int(datetime.now(UTC).timestamp()) + 30)

    assert api_client.get(ME, **bearer(ahead)).status_code == 200


# -- RecentLogin ------------------------------------------------------------------------------


def test_a_fresh_login_passes_recent_login(api_client, user, password):
    pair = log_in(api_client, password)

    response = api_client.post(RECENT, **bearer(pair["access_token"]))

    assert response.status_code == 200
    assert response.json() == {"sid": pair["sid"]}


@pytest.mark.parametrize(
    "handler", [None, "cocart_jwt.views.exception_handler"], ids=["drf-handler", "our-handler"]
)
def test_a_stale_login_gets_the_rfc_9470_challenge_with_any_exception_handler(
    api_client, user, password, settings, handler
):
    if handler:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "EXCEPTION_HANDLER": handler}
    with time_machine.travel(T0, tick=False) as clock:
        pair = log_in(api_client, password)
        clock.shift(timedelta(minutes=5))
        assert api_client.post(RECENT, **bearer(pair["access_token"])).status_code == 200
        clock.shift(timedelta(seconds=1))

        response = api_client.post(RECENT, **bearer(pair["access_token"]))

    assert_step_up_challenge(response)
    assert set(response.json()) == {"detail", "code"}


def test_a_refresh_does_not_make_a_login_recent(api_client, user, password, caplog):
    with time_machine.travel(T0, tick=False) as clock:
        pair = log_in(api_client, password)
        clock.shift(timedelta(minutes=6))
        refreshed = refresh(api_client, pair["refresh_token"]).json()

        assert_step_up_challenge(api_client.post(RECENT, **bearer(refreshed["access_token"])))
    assert (
        f"Recent login required: session {pair['sid']} authenticated too long ago"
        in caplog.messages
    )


def test_max_age_comes_from_the_attribute_or_the_setting(api_client, user, password, settings):
    with time_machine.travel(T0, tick=False) as clock:
        pair = log_in(api_client, password)
        clock.shift(timedelta(seconds=61))
        token = bearer(pair["access_token"])

        assert_step_up_challenge(api_client.post(LAST_MINUTE, **token), max_age=60)
        assert api_client.post(RECENT, **token).status_code == 200
        settings.COCART_JWT = {**settings.COCART_JWT, "REAUTH_MAX_AGE": timedelta(seconds=30)}
        assert_step_up_challenge(api_client.post(RECENT, **token), max_age=30)


def test_a_token_without_auth_time_is_refused_the_same_way(api_client, user, caplog):
    issued = Token.objects.issue(user)  # as the admin and the CLI make them

    assert_step_up_challenge(api_client.post(RECENT, **bearer(issued.access_token)))
    assert f"Recent login required: session {issued.session.pk} has no auth_time" in caplog.messages


def test_recent_login_costs_no_query(api_client, user, password, django_assert_num_queries):
    pair = log_in(api_client, password)
    api_client.get(ME, **bearer(pair["access_token"]))  # the first use's touch is done

    with django_assert_num_queries(1):  # strict mode's one query, as for any view
        assert api_client.post(RECENT, **bearer(pair["access_token"])).status_code == 200


def test_a_request_without_a_token_gets_drfs_usual_refusal(api_client, user):
    anonymous = api_client.post(RECENT)

    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="api"'
    assert "code" not in anonymous.json()  # DRF's handler, the test site's
    browser = Client()
    browser.force_login(user)
    signed_in = browser.post(SESSION_OR_TOKEN)
    assert signed_in.status_code == 403  # authenticated, but not by an access token
    assert "WWW-Authenticate" not in signed_in


# -- reauthenticate/ --------------------------------------------------------------------------


def test_reauthenticate_gives_a_pair_of_the_same_session_with_a_fresh_auth_time(
    api_client, user, password
):
    with time_machine.travel(T0, tick=False) as clock:
        pair = log_in(api_client, password)
        clock.shift(timedelta(minutes=1))
        refreshed = refresh(api_client, pair["refresh_token"]).json()
        clock.shift(timedelta(minutes=10))
        assert_step_up_challenge(api_client.post(RECENT, **bearer(refreshed["access_token"])))

        response = reauthenticate(api_client, refreshed["access_token"], password)

        assert response.status_code == 200, response.content
        assert response["Cache-Control"] == "no-store"
        stepped = response.json()
        assert stepped["sid"] == pair["sid"]
        assert stepped["refresh_token"] not in (pair["refresh_token"], refreshed["refresh_token"])
        assert auth_time_of(stepped["access_token"]) == int(
            (T0 + timedelta(minutes=11)).timestamp()
        )
        assert api_client.post(RECENT, **bearer(stepped["access_token"])).status_code == 200
        assert Token.objects.get(pk=pair["sid"]).authenticated_at == T0 + timedelta(minutes=11)
        # The security log says what happened: a reauthentication, not a refresh.
        assert list(
            TokenEvent.objects.filter(sid=pair["sid"]).order_by("at", "id").values_list("event")
        ) == [(Event.ISSUED,), (Event.REFRESHED,), (Event.REAUTHENTICATED,)]


def test_every_earlier_refresh_token_is_spent_so_presenting_one_is_reuse(
    api_client, user, password
):
    pair = log_in(api_client, password)  # its refresh token was never used
    stepped = reauthenticate(api_client, pair["access_token"], password).json()

    assert refresh(api_client, pair["refresh_token"]).status_code == 401

    session = Token.objects.get(pk=pair["sid"])
    assert session.revoke_reason == RevokeReason.REFRESH_TOKEN_REUSED
    assert api_client.get(ME, **bearer(stepped["access_token"])).status_code == 401


def test_the_new_refresh_token_works(api_client, user, password):
    pair = log_in(api_client, password)
    stepped = reauthenticate(api_client, pair["access_token"], password).json()

    refreshed = refresh(api_client, stepped["refresh_token"])

    assert refreshed.status_code == 200
    assert refreshed.json()["sid"] == pair["sid"]


def test_a_wrong_password_changes_nothing(api_client, user, password):
    pair = log_in(api_client, password)
    failures: list[dict[str, Any]] = []

    def failed(sender: Any, **kwargs: Any) -> None:
        failures.append(kwargs["credentials"])

    user_login_failed.connect(failed)
    try:
        response = reauthenticate(api_client, pair["access_token"], "not the password")
    finally:
        user_login_failed.disconnect(failed)

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    assert response["WWW-Authenticate"].startswith("Bearer ")
    assert [f["username"] for f in failures] == ["alice"]
    assert "not the password" not in str(failures)  # Django masks it
    session = Token.objects.get(pk=pair["sid"])
    assert session.authenticated_at == session.created_at
    assert not RefreshToken.objects.filter(session=session, used_at__isnull=False).exists()
    assert refresh(api_client, pair["refresh_token"]).status_code == 200


def test_the_password_may_come_as_a_form(api_client, user, password):
    pair = log_in(api_client, password)

    response = api_client.post(
        REAUTHENTICATE, {"password": password}, format="multipart", **bearer(pair["access_token"])
    )
    encoded = api_client.post(
        REAUTHENTICATE,
        f"password={password.replace(' ', '+')}",
        content_type="application/x-www-form-urlencoded",
        **bearer(response.json()["access_token"]),
    )

    assert response.status_code == 200, response.content
    assert encoded.status_code == 200, encoded.content
    assert encoded.json()["sid"] == pair["sid"]


@pytest.mark.parametrize("body", [{}, {"password": ""}, {"password": "x" * 5000}])
def test_a_missing_or_odd_password_is_a_400(api_client, user, password, body):
    pair = log_in(api_client, password)

    response = api_client.post(REAUTHENTICATE, body, format="json", **bearer(pair["access_token"]))

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_a_session_no_login_started_is_403_and_no_password_is_checked(api_client, user, password):
    issued = Token.objects.issue(user)  # the admin's, the CLI's, a login link's
    failures: list[Any] = []
    user_login_failed.connect(receiver := lambda sender, **kwargs: failures.append(kwargs))
    try:
        response = reauthenticate(api_client, issued.access_token, "not the password")
        right = reauthenticate(api_client, issued.access_token, password)
    finally:
        user_login_failed.disconnect(receiver)

    assert response.status_code == right.status_code == 403
    assert right.json()["code"] == "not_a_login_session"
    assert failures == []
    assert refresh(api_client, issued.refresh_token).status_code == 200


def test_reauthenticate_needs_a_valid_token(api_client, user, password):
    pair = log_in(api_client, password)
    Token.objects.get(pk=pair["sid"]).revoke(RevokeReason.LOGOUT)

    revoked = reauthenticate(api_client, pair["access_token"], password)
    anonymous = api_client.post(REAUTHENTICATE, {"password": password}, format="json")

    assert revoked.status_code == anonymous.status_code == 401
    assert revoked.json()["code"] == "invalid_token"
    assert anonymous.json()["code"] == "not_authenticated"


@pytest.mark.rate_limits
def test_reauthenticate_is_rate_limited_per_ip(api_client, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": {"reauthenticate": "2/min"}}
    access = log_in(api_client, password)["access_token"]
    for _ in range(2):
        access = reauthenticate(api_client, access, password).json()["access_token"]

    response = reauthenticate(api_client, access, password)

    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert response["X-RateLimit-Limit"] == "2"


@pytest.mark.rate_limits
def test_reauthenticate_is_rate_limited_per_user_from_any_address(
    api_client, user, other_user, password, settings
):
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": {"reauthenticate": "2/min"}}
    access = log_in(api_client, password)["access_token"]
    bobs = login(api_client, "bob", password).json()["access_token"]
    for address in ("203.0.113.1", "203.0.113.2"):
        response = reauthenticate(api_client, access, "guess", REMOTE_ADDR=address)
        assert response.status_code == 401

    refused = reauthenticate(api_client, access, password, REMOTE_ADDR="203.0.113.3")

    assert refused.status_code == 429
    # Another user, from an address of the first ones, is counted apart.
    assert reauthenticate(api_client, bobs, password, REMOTE_ADDR="203.0.113.1").status_code == 200


class TestCookieTransport:
    COOKIE = "cocart_refresh"

    @pytest.fixture(autouse=True)
    def cookie_transport(self, settings):
        settings.COCART_JWT = {**settings.COCART_JWT, "COOKIE_TRANSPORT": True}

    def test_reauthenticate_sets_the_refresh_cookie(self, api_client, user, password):
        first = login(api_client, "alice", password)
        spent = first.cookies[self.COOKIE].value

        response = reauthenticate(api_client, first.json()["access_token"], password)

        assert response.status_code == 200
        assert "refresh_token" not in response.json()
        renewed = response.cookies[self.COOKIE]
        assert renewed.value and renewed.value != spent
        assert renewed["httponly"] is True and renewed["path"] == "/api/auth/"
        cookie_refresh = api_client.post(reverse("cocart_jwt:refresh"))
        assert cookie_refresh.status_code == 200

    def test_a_cross_site_reauthentication_is_refused_and_sets_no_cookie(
        self, api_client, user, password
    ):
        pair = login(api_client, "alice", password).json()

        response = reauthenticate(
            api_client, pair["access_token"], password, HTTP_ORIGIN="https://evil.example"
        )

        assert response.status_code == 403
        assert response.json()["code"] == "cross_site_request"
        assert self.COOKIE not in response.cookies
        session = Token.objects.get(pk=pair["sid"])
        assert not RefreshToken.objects.filter(session=session, used_at__isnull=False).exists()


# -- logout/others/ ---------------------------------------------------------------------------

LOGOUT_OTHERS = reverse("cocart_jwt:logout-others")


def test_with_cookie_transport_the_refresh_cookie_alone_names_the_kept_session(
    api_client, user, password, settings
):
    settings.COCART_JWT = {**settings.COCART_JWT, "COOKIE_TRANSPORT": True}
    other = log_in(APIClient(), password)
    this = log_in(api_client, password)  # the refresh cookie is in api_client now

    response = api_client.post(LOGOUT_OTHERS)

    assert response.status_code == 204
    assert "cocart_refresh" not in response.cookies  # this session's cookie stays
    assert api_client.get(ME, **bearer(other["access_token"])).status_code == 401
    assert api_client.get(ME, **bearer(this["access_token"])).status_code == 200


def test_logout_others_revokes_every_other_session_and_keeps_this_one(
    api_client, user, other_user, password
):
    mine = [log_in(APIClient(), password) for _ in range(3)]
    admin_made = Token.objects.issue(user)
    bobs = login(APIClient(), "bob", password).json()
    revoked: list[tuple[str, str]] = []

    def on_revoked(sender: Any, token: Any, reason: str, **kwargs: Any) -> None:
        revoked.append((token.pk, reason))

    token_revoked.connect(on_revoked)
    try:
        response = api_client.post(LOGOUT_OTHERS, **bearer(mine[0]["access_token"]))
    finally:
        token_revoked.disconnect(on_revoked)

    assert response.status_code == 204
    assert api_client.get(ME, **bearer(mine[0]["access_token"])).status_code == 200
    for pair in mine[1:]:
        assert api_client.get(ME, **bearer(pair["access_token"])).status_code == 401
        assert refresh(api_client, pair["refresh_token"]).status_code == 401
    assert api_client.get(ME, **bearer(admin_made.access_token)).status_code == 401
    assert api_client.get(ME, **bearer(bobs["access_token"])).status_code == 200
    others = {pair["sid"] for pair in mine[1:]} | {admin_made.session.pk}
    assert sorted(revoked) == sorted((sid, RevokeReason.LOGOUT_OTHERS) for sid in others)
    assert set(Token.objects.live().filter(user=user).values_list("pk", flat=True)) == {
        mine[0]["sid"]
    }
    logged = TokenEvent.objects.filter(event=Event.REVOKED, reason=RevokeReason.LOGOUT_OTHERS)
    assert set(logged.values_list("sid", flat=True)) == others
    assert {event.ip for event in logged} == {"127.0.0.1"}  # the client that asked


def test_logout_others_holds_at_once_in_cached_mode(api_client, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}
    this, other = log_in(APIClient(), password), log_in(APIClient(), password)
    assert api_client.get(ME, **bearer(other["access_token"])).status_code == 200  # cached

    assert api_client.post(LOGOUT_OTHERS, **bearer(this["access_token"])).status_code == 204

    assert api_client.get(ME, **bearer(other["access_token"])).status_code == 401
    assert api_client.get(ME, **bearer(this["access_token"])).status_code == 200


def test_logout_others_needs_a_valid_token(api_client, user, password):
    pair = log_in(api_client, password)

    assert api_client.post(LOGOUT_OTHERS).status_code == 401
    assert api_client.post(LOGOUT_OTHERS, **bearer(pair["access_token"] + "x")).status_code == 401
    assert Token.objects.get(pk=pair["sid"]).revoked_at is None
