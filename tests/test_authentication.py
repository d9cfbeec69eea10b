"""JWTAuthentication, the DRF class: which header or cookie it reads, what it refuses and
logs, when it records a session's use, the signal it sends."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.cache import caches
from django.urls import reverse
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from cocart_jwt.authentication import JWTAuthentication
from cocart_jwt.models import Token
from cocart_jwt.signals import token_authenticated
from cocart_jwt.utils import now
from tests.factories import bearer, login

pytestmark = pytest.mark.django_db

ME = "/api/me/"
T0 = "2026-01-01 00:00:00+00:00"
REFUSED = "Invalid or expired token."


def info_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the ``cocart_jwt`` logger said at INFO, each line as shown."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "cocart_jwt" and r.levelno == logging.INFO
    ]


@pytest.fixture
def tokens(api_client: APIClient, user: Any, password: str) -> dict[str, Any]:
    return login(api_client, "alice", password).json()


@pytest.fixture
def cached_mode(settings: Any) -> Any:
    """Cached mode on the local-memory cache (the same code runs on Redis: test_cached_mode)."""
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300, "CACHE": "locmem"}
    caches["locmem"].clear()
    yield caches["locmem"]
    caches["locmem"].clear()


def authenticate(access_token: str) -> Any:
    """``JWTAuthentication().authenticate()`` of a GET with this Bearer token."""
    request = APIRequestFactory().get(ME, **bearer(access_token))
    return JWTAuthentication().authenticate(Request(request))


# -- what a refused client sees --------------------------------------------------------------


def test_a_refused_token_is_a_401_invalid_token_on_any_view(api_client, tokens):
    api_client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"]))

    me = api_client.get(ME, **bearer(tokens["access_token"]))
    validate = api_client.post(reverse("cocart_jwt:validate"), **bearer(tokens["access_token"]))

    for response in (me, validate):
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'
    assert me.json() == {"detail": REFUSED}  # DRF's own exception handler
    assert validate.json() == {"detail": REFUSED, "code": "invalid_token"}


# -- why: the log tells ops which check refused a token ---------------------------------------


def two_tokens_in_one_header(api_client, tokens, user, settings):
    return {"HTTP_AUTHORIZATION": f"Bearer {tokens['access_token']} {tokens['access_token']}"}


def no_such_session(api_client, tokens, user, settings):
    Token.objects.filter(pk=tokens["sid"]).delete()
    return bearer(tokens["access_token"])


def revoked(api_client, tokens, user, settings):
    api_client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"]))
    return bearer(tokens["access_token"])


def expired(api_client, tokens, user, settings):
    # The session ended behind the app's back; its access token has 15 minutes left.
    Token.objects.filter(pk=tokens["sid"]).update(expires_at=now() - timedelta(seconds=1))
    return bearer(tokens["access_token"])


def user_inactive(api_client, tokens, user, settings):
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    return bearer(tokens["access_token"])


def another_ip(api_client, tokens, user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "BIND_TO_IP": True}
    return {**bearer(tokens["access_token"]), "REMOTE_ADDR": "203.0.113.9"}


def another_user_agent(api_client, tokens, user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "BIND_TO_USER_AGENT": True}
    return {**bearer(tokens["access_token"]), "HTTP_USER_AGENT": "curl/8"}


@pytest.mark.parametrize(
    ("refuse", "reason"),
    [
        (two_tokens_in_one_header, "malformed Authorization header"),
        (no_such_session, "no such session"),
        (revoked, "session {sid} is revoked"),
        (expired, "session {sid} is expired"),
        (user_inactive, "user of session {sid} is inactive"),
        (another_ip, "session {sid} is bound to another IP address"),
        (another_user_agent, "session {sid} is bound to another user agent"),
    ],
    ids=lambda value: value.__name__ if callable(value) else None,
)
def test_each_refusal_logs_its_reason_and_session(
    api_client, tokens, user, settings, caplog, refuse, reason
):
    headers = refuse(api_client, tokens, user, settings)
    caplog.clear()

    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        response = api_client.get(ME, **headers)

    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    expected = f"Access token refused: {reason.format(sid=tokens['sid'])}"
    assert info_records(caplog) == [expected]


def test_a_tombstone_in_the_session_cache_is_logged_as_such(
    api_client, tokens, cached_mode, caplog
):
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    api_client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"]))

    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401

    expected = f"Access token refused: session {tokens['sid']} is revoked (session cache)"
    assert info_records(caplog) == [expected]


# -- another scheme: told to the log, never the header ------------------------------------------


def test_a_request_without_credentials_is_a_401_that_logs_nothing(api_client, db, caplog):
    with caplog.at_level(logging.DEBUG, logger="cocart_jwt"):
        response = api_client.get(ME)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert [r for r in caplog.records if r.name.startswith("cocart_jwt")] == []


@pytest.mark.parametrize(
    ("scheme", "logged"),
    [
        ("Abcdefghijklmnopqrs", "Authorization header with scheme Abcdefghijklmnopqrs ignored"),
        ("Abcdefghijklmnopqrst", "Authorization header with scheme Abcdefghijklmnopqrst ignored"),
        ("Abcdefghijklmnopqrstu", "Authorization header with an unknown scheme ignored"),
    ],
    ids=["19-letters", "20-letters", "21-letters"],
)
def test_a_scheme_is_named_in_the_log_up_to_20_letters(api_client, db, caplog, scheme, logged):
    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        response = api_client.get(ME, HTTP_AUTHORIZATION=f"{scheme} 0123456789abcdef")

    assert response.status_code == 401
    assert info_records(caplog) == [f"{logged}: send Bearer <token>"]


class ApiKeyAuthentication(BaseAuthentication):
    """Another scheme of the site, whose challenge names the host: ``ApiKey realm="<host> API"``.

    It authenticates no one here: only its challenge matters.
    """

    def authenticate(self, request: Request) -> None:
        return None

    def authenticate_header(self, request: Request) -> str:
        return f'ApiKey realm="{request.get_host()} API"'


class JWTOrApiKey(APIView):
    authentication_classes = [JWTAuthentication, ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return Response({})


class JWTOrSession(APIView):
    """SessionAuthentication announces no challenge (its authenticate_header is None)."""

    authentication_classes = [JWTAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return Response({})


@pytest.mark.parametrize(
    ("view", "authorization", "logged"),
    [
        (JWTOrApiKey, "ApiKey 0123456789abcdef", []),
        (JWTOrApiKey, "apikey 0123456789abcdef", []),
        (
            JWTOrApiKey,
            "JWT 0123456789abcdef",
            ["Authorization header with scheme JWT ignored: send Bearer <token>"],
        ),
        (
            JWTOrSession,
            "JWT 0123456789abcdef",
            ["Authorization header with scheme JWT ignored: send Bearer <token>"],
        ),
        (  # a documentation's placeholder, sent as is: no challenge announced matches it
            JWTOrSession,
            "XXXX 0123456789abcdef",
            ["Authorization header with scheme XXXX ignored: send Bearer <token>"],
        ),
    ],
    ids=[
        "apikey-read-elsewhere",
        "apikey-any-case",
        "jwt-beside-apikey",
        "jwt-beside-session",
        "placeholder-beside-session",
    ],
)
def test_a_scheme_is_logged_unless_another_authenticator_of_the_view_announces_it(
    db, caplog, view, authorization, logged
):
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=authorization)

    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        response = view.as_view()(request)

    assert response.status_code == 401
    assert info_records(caplog) == logged


# -- the session returned as request.auth, and its recorded use ------------------------------


def test_the_session_returned_is_its_row_after_its_use_is_recorded(api_client, user, password):
    with time_machine.travel(T0, tick=False):
        tokens = login(api_client, "alice", password).json()

        _user, session = authenticate(tokens["access_token"])

        row = Token.objects.get(pk=tokens["sid"])
        assert row.last_used_at == now()
        assert session.last_used_at == row.last_used_at


def test_a_use_is_recorded_on_its_own_session_only(api_client, user, password):
    used = login(api_client, "alice", password).json()
    idle = login(api_client, "alice", password).json()

    assert api_client.get(ME, **bearer(used["access_token"])).status_code == 200

    assert Token.objects.get(pk=used["sid"]).last_used_at is not None
    assert Token.objects.get(pk=idle["sid"]).last_used_at is None


def test_a_cache_restart_records_no_second_use_within_the_interval(
    api_client, user, password, cached_mode
):
    with time_machine.travel(T0, tick=False) as clock:
        tokens = login(api_client, "alice", password).json()
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
        first_use = Token.objects.get(pk=tokens["sid"]).last_used_at
        cached_mode.clear()  # restarted: every entry lost, the mark of the recent use too
        clock.shift(timedelta(seconds=30))

        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200

        # The database still knows the last use is fresh: no second write of it.
        assert Token.objects.get(pk=tokens["sid"]).last_used_at == first_use


def test_in_cached_mode_each_session_records_its_own_use(api_client, user, password, cached_mode):
    with time_machine.travel(T0, tick=False) as clock:
        first = login(api_client, "alice", password).json()
        second = login(api_client, "alice", password).json()
        for tokens in (first, second):
            assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
        # Past TOUCH_INTERVAL (the local-memory cache's clock is moved too): each session's
        # snapshot is still cached, the mark of its recent use has expired.
        clock.shift(timedelta(seconds=61))

        for tokens in (first, second):
            assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200

        for tokens in (first, second):
            assert Token.objects.get(pk=tokens["sid"]).last_used_at == now()


# -- the signal -----------------------------------------------------------------------------


def test_token_authenticated_reaches_a_receiver_of_this_class_with_the_request(
    api_client, tokens, user
):
    received = []

    def receiver(sender, token, user, claims, request, **kwargs):
        received.append((token.pk, user, claims["sid"], request.path))

    token_authenticated.connect(receiver, sender=JWTAuthentication, weak=False)
    try:
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    finally:
        token_authenticated.disconnect(receiver, sender=JWTAuthentication)

    assert received == [(tokens["sid"], user, tokens["sid"], ME)]
