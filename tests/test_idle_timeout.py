"""SESSION_IDLE_TIMEOUT: a session unused for longer is refused like an expired one, by the
access token in both verification modes and on refresh; the touch keeps a session in use alive.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.cache import caches
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from cocart_jwt.models import LoginLink, RefreshToken, Token
from cocart_jwt.settings import jwt_settings
from cocart_jwt.store import cached
from cocart_jwt.store.live import restore
from tests.factories import bearer, refresh, signed_in
from tests.test_admin import change_url, mint_url

pytestmark = pytest.mark.django_db

ME = "/api/me/"
T0 = "2026-01-01 00:00:00+00:00"
TICK = timedelta(microseconds=1)
TOUCH = timedelta(seconds=60)  # TOUCH_INTERVAL's default
TIMEOUT = timedelta(minutes=5)
IDLE_LOG = "was unused for longer than SESSION_IDLE_TIMEOUT"


@pytest.fixture
def idle_timeout(settings: Any) -> timedelta:
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_IDLE_TIMEOUT": TIMEOUT.total_seconds()}
    return TIMEOUT


@pytest.fixture
def clock() -> Iterator[Any]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def me(access_token: str) -> Any:
    return APIClient().get(ME, **bearer(access_token))


def status_and_queries(access_token: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        status = me(access_token).status_code
    return status, len(queries)


def test_seconds_are_accepted_and_the_default_is_none(settings: Any) -> None:
    assert jwt_settings.SESSION_IDLE_TIMEOUT is None
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_IDLE_TIMEOUT": 1800}
    assert jwt_settings.SESSION_IDLE_TIMEOUT == timedelta(minutes=30)


# -- strict mode ----------------------------------------------------------------------------


def test_a_session_is_refused_from_exactly_the_timeout_after_its_last_use(
    user: Any, password: str, idle_timeout: timedelta, clock: Any, caplog: Any
) -> None:
    tokens = signed_in(user, password)
    clock.shift(idle_timeout - TICK)
    assert me(tokens["access_token"]).status_code == 200  # a use: the clock starts again
    clock.shift(idle_timeout - TICK)
    assert me(tokens["access_token"]).status_code == 200
    clock.shift(idle_timeout)
    caplog.set_level(logging.INFO, logger="cocart_jwt")

    response = me(tokens["access_token"])

    assert response.status_code == 401
    # What an expired session answers.
    assert response.json() == {"detail": "Invalid or expired token."}
    assert response["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'
    assert f"session {tokens['sid']} {IDLE_LOG}" in caplog.text
    assert tokens["access_token"] not in caplog.text
    assert Token.objects.get(pk=tokens["sid"]).revoked_at is None


def test_a_never_used_session_times_out_from_its_creation(
    user: Any, password: str, idle_timeout: timedelta, clock: Any
) -> None:
    tokens = signed_in(user, password)
    clock.shift(idle_timeout)

    assert me(tokens["access_token"]).status_code == 401


def test_without_a_timeout_an_unused_session_is_served(
    user: Any, password: str, clock: Any
) -> None:
    tokens = signed_in(user, password)
    clock.shift(timedelta(minutes=14))  # the access token lives 15

    assert me(tokens["access_token"]).status_code == 200


def test_a_session_used_every_touch_interval_never_times_out(
    user: Any, password: str, idle_timeout: timedelta, clock: Any
) -> None:
    tokens = signed_in(user, password)
    for _ in range(14):  # 14 minutes, nearly three timeouts, within the access token's life
        clock.shift(TOUCH)
        assert me(tokens["access_token"]).status_code == 200


def test_a_session_idle_for_less_than_the_timeout_minus_the_touch_interval_is_served(
    user: Any, password: str, idle_timeout: timedelta, clock: Any
) -> None:
    """The precision is TOUCH_INTERVAL: last_used_at is written at most once per interval, so
    the last write may be nearly an interval older than the last use."""
    tokens = signed_in(user, password)
    assert me(tokens["access_token"]).status_code == 200  # written
    clock.shift(TOUCH - TICK)
    assert me(tokens["access_token"]).status_code == 200  # not written: the last use
    clock.shift(idle_timeout - TOUCH)

    assert me(tokens["access_token"]).status_code == 200


# -- refresh --------------------------------------------------------------------------------


def test_a_refresh_of_an_idle_session_is_refused_and_spends_nothing(
    user: Any, password: str, idle_timeout: timedelta, clock: Any, caplog: Any
) -> None:
    tokens = signed_in(user, password)
    clock.shift(idle_timeout)
    caplog.set_level(logging.INFO, logger="cocart_jwt")

    response = refresh(APIClient(), tokens["refresh_token"])

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_grant"
    assert f"session {tokens['sid']} {IDLE_LOG}" in caplog.text
    session = Token.objects.get(pk=tokens["sid"])
    assert session.revoked_at is None
    assert session.last_used_at is None  # not slid either
    assert RefreshToken.objects.filter(session=session, used_at__isnull=True).count() == 1


def test_a_refresh_is_a_use(user: Any, password: str, idle_timeout: timedelta, clock: Any) -> None:
    tokens = signed_in(user, password)
    clock.shift(idle_timeout - TICK)
    renewed = refresh(APIClient(), tokens["refresh_token"]).json()
    clock.shift(idle_timeout - TICK)

    assert me(renewed["access_token"]).status_code == 200
    assert refresh(APIClient(), renewed["refresh_token"]).status_code == 200


# -- cached mode ----------------------------------------------------------------------------


@pytest.fixture(params=[pytest.param("default", marks=pytest.mark.redis, id="redis"), "locmem"])
def cache_alias(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    """Cached mode, on Redis (the default cache when Redis answers) and on local memory."""
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "SESSION_CACHE_TTL": 3600,
        "CACHE": request.param,
    }
    caches[request.param].clear()
    yield str(request.param)
    caches[request.param].clear()


def entry(alias: str, sid: str) -> Any:
    return caches[alias].get(cached.session_key(sid))


def use_with_the_touch_due(alias: str, tokens: dict[str, Any]) -> int:
    """A request as it is once TOUCH_INTERVAL has passed: the touch key lives in the cache's
    own time (Redis's is not the test's clock), so drop it as its expiry would."""
    caches[alias].delete(cached.touch_key(tokens["sid"]))
    return int(me(tokens["access_token"]).status_code)


def test_with_a_timeout_a_warm_entry_still_costs_no_sql_query(
    user: Any, password: str, idle_timeout: timedelta, cache_alias: str
) -> None:
    tokens = signed_in(user, password)
    assert me(tokens["access_token"]).status_code == 200
    assert isinstance(entry(cache_alias, tokens["sid"]), tuple)

    assert status_and_queries(tokens["access_token"]) == (200, 0)


def test_a_cached_session_idle_in_its_snapshot_but_touched_in_the_database_is_served(
    user: Any, password: str, idle_timeout: timedelta, cache_alias: str, clock: Any
) -> None:
    tokens = signed_in(user, password)
    assert me(tokens["access_token"]).status_code == 200  # the snapshot: last used at login
    for _ in range(4):
        clock.shift(TOUCH)
        assert use_with_the_touch_due(cache_alias, tokens) == 200
    assert isinstance(entry(cache_alias, tokens["sid"]), tuple)
    clock.shift(TOUCH)  # the snapshot says 5 minutes unused; the database, 1

    assert use_with_the_touch_due(cache_alias, tokens) == 200

    assert entry(cache_alias, tokens["sid"]) == cached.STALE
    assert status_and_queries(tokens["access_token"]) == (200, 1)  # the database answers
    caches[cache_alias].delete(cached.session_key(tokens["sid"]))  # as the marker expires
    assert me(tokens["access_token"]).status_code == 200
    assert (
        restore_last_used(cache_alias, tokens["sid"])
        == Token.objects.get(pk=tokens["sid"]).last_used_at
    )
    assert status_and_queries(tokens["access_token"]) == (200, 0)


def restore_last_used(alias: str, sid: str) -> Any:
    snapshot = restore(entry(alias, sid))
    assert snapshot is not None
    return snapshot.last_used_at


def test_a_cached_session_idle_in_the_database_too_is_refused_and_remembered(
    user: Any, password: str, idle_timeout: timedelta, cache_alias: str, clock: Any, caplog: Any
) -> None:
    tokens = signed_in(user, password)
    assert me(tokens["access_token"]).status_code == 200
    clock.shift(idle_timeout)
    caplog.set_level(logging.INFO, logger="cocart_jwt")

    assert status_and_queries(tokens["access_token"]) == (401, 1)

    assert f"session {tokens['sid']} {IDLE_LOG}" in caplog.text
    assert entry(cache_alias, tokens["sid"]) == cached.REVOKED
    assert status_and_queries(tokens["access_token"]) == (401, 0)


# -- the system check ---------------------------------------------------------------------


def idle_check_errors() -> list[Any]:
    return [m for m in run_checks() if m.id == "cocart_jwt.E018"]


@pytest.mark.parametrize("timeout", [60, 30, 0, -5, timedelta(seconds=60), "30 minutes"])
def test_a_timeout_not_above_the_touch_interval_is_refused_by_a_check(
    settings: Any, timeout: Any
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_IDLE_TIMEOUT": timeout}

    (error,) = idle_check_errors()

    assert "SESSION_IDLE_TIMEOUT" in error.msg
    assert "timedelta(minutes=30)" in error.hint


@pytest.mark.parametrize("timeout", [None, 61, timedelta(minutes=30)])
def test_a_timeout_above_the_touch_interval_passes_the_check(settings: Any, timeout: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_IDLE_TIMEOUT": timeout}

    assert idle_check_errors() == []


def test_the_check_compares_with_the_configured_touch_interval(settings: Any) -> None:
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "SESSION_IDLE_TIMEOUT": 300,
        "TOUCH_INTERVAL": 300,
    }

    (error,) = idle_check_errors()

    assert "(300 s) is not above TOUCH_INTERVAL (300 s)" in error.msg


# -- the admin and the CLI say why a token of an idle session would be refused -------------


def test_the_admin_mints_nothing_for_an_idle_session(
    admin_client: Any, user: Any, idle_timeout: timedelta, clock: Any
) -> None:
    session = Token.objects.issue(user).session
    clock.shift(idle_timeout)

    response = admin_client.post(mint_url(session), follow=True)

    assert response.redirect_chain == [(change_url(session), 302)]
    assert "This session was unused for longer than its idle timeout" in response.content.decode()
    assert not LoginLink.objects.exists()


def test_jwt_view_of_a_token_of_an_idle_session_fails(
    user: Any, idle_timeout: timedelta, clock: Any
) -> None:
    issued = Token.objects.issue(user)
    clock.shift(idle_timeout)

    with pytest.raises(CommandError, match="unused for longer than SESSION_IDLE_TIMEOUT"):
        call_command("jwt", "view", issued.access_token, stdout=StringIO(), stderr=StringIO())
