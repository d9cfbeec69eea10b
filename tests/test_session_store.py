"""The session store: the strict query (one SELECT of session and user) and cached mode's
entries (snapshots, tombstones, stale markers, touch keys), as the verifier reads them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.cache import caches
from django.db import connection
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from cocart_jwt.authentication import JWTAuthentication
from cocart_jwt.models import RevokeReason, Token
from cocart_jwt.store import cached as session_cache
from cocart_jwt.utils import now
from tests.factories import bearer, login

pytestmark = pytest.mark.django_db

ME = "/api/me/"


def cached_mode(settings: Any, ttl: float = 300, **extra: Any) -> Any:
    """Cached mode on the local-memory cache, whose clock time_machine moves (Redis's it does
    not): the tests of how long an entry lives use it."""
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "SESSION_CACHE_TTL": ttl,
        "CACHE": "locmem",
        **extra,
    }
    cache = caches["locmem"]
    cache.clear()
    return cache


@pytest.fixture
def tokens(api_client: Any, user: Any, password: str) -> dict[str, Any]:
    return login(api_client, "alice", password).json()


def status_and_queries(client: Any, access_token: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        status = client.get(ME, **bearer(access_token)).status_code
    return status, len(queries)


def authenticate(access_token: str) -> tuple[Any, Token]:
    request = Request(APIRequestFactory().get(ME, **bearer(access_token)))
    result = JWTAuthentication().authenticate(request)
    assert result is not None
    return result


# -- the strict query --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["strict", "cached"])
def test_the_verifier_gives_the_session_and_user_with_their_python_types(
    api_client: Any, tokens: dict[str, Any], user: Any, settings: Any, mode: str
) -> None:
    Token.objects.filter(pk=tokens["sid"]).update(claims={"plan": "gold", "seats": 3})
    if mode == "cached":
        cached_mode(settings)
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200

    request_user, session = authenticate(tokens["access_token"])

    stored = Token.objects.get(pk=tokens["sid"])
    assert session.claims == {"plan": "gold", "seats": 3}
    assert session.expires_at == stored.expires_at and timezone.is_aware(session.expires_at)
    assert session.created_at == stored.created_at and timezone.is_aware(session.created_at)
    assert session.revoked_at is None
    assert session.refreshable is True and session.bind_on_first_use is False
    assert session.ip == "127.0.0.1"
    assert request_user.pk == user.pk and request_user.get_username() == "alice"
    assert request_user.is_active is True and request_user.is_staff is False
    assert request_user.date_joined == user.date_joined
    assert timezone.is_aware(request_user.date_joined)


@pytest.mark.parametrize("mode", ["strict", "cached"])
def test_the_request_user_can_be_added_to_a_group(
    api_client: Any, tokens: dict[str, Any], user: Any, settings: Any, mode: str
) -> None:
    """The user a view gets is bound to its database like one Django loaded: a many-to-many
    add checks that both objects come from the same database."""
    group = Group.objects.create(name="customers")
    if mode == "cached":
        cached_mode(settings)
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    request_user, _session = authenticate(tokens["access_token"])

    request_user.groups.add(group)

    assert list(user.groups.all()) == [group]


def test_the_strict_query_is_compiled_once_not_per_request(
    api_client: Any, tokens: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/verification-modes.md: compiled once per process and alias, then only executed."""
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    compiled = []
    as_sql = SQLCompiler.as_sql

    def counting_as_sql(compiler: SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        compiled.append(compiler.query.model)
        return as_sql(compiler, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counting_as_sql)

    assert status_and_queries(api_client, tokens["access_token"]) == (200, 1)
    assert compiled == []


class ByAppLabelRouter:
    """A database router as Django's documentation writes them: it reads ``model._meta``."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return "default" if model._meta.app_label == "cocart_jwt" else None

    db_for_write = db_for_read


@pytest.mark.parametrize("mode", ["strict", "cached"])
def test_sessions_are_verified_under_a_router_that_routes_by_app_label(
    api_client: Any, tokens: dict[str, Any], settings: Any, mode: str
) -> None:
    settings.DATABASE_ROUTERS = [f"{__name__}.ByAppLabelRouter"]
    if mode == "cached":
        cached_mode(settings)
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200

    response = api_client.get(ME, **bearer(tokens["access_token"]))

    assert response.status_code == 200
    assert response.json()["sid"] == tokens["sid"]


# -- cached mode: how long entries live ----------------------------------------------------


def revoke_through_logout(client: Any, tokens: dict[str, Any]) -> int:
    assert client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"])).status_code
    return 401


def refuse_behind_the_apps_back(client: Any, tokens: dict[str, Any]) -> int:
    Token.objects.filter(pk=tokens["sid"]).update(revoked_at=now())
    assert status_and_queries(client, tokens["access_token"]) == (401, 1)  # remembered
    return 401


def keep_live(client: Any, tokens: dict[str, Any]) -> int:
    assert client.get(ME, **bearer(tokens["access_token"])).status_code == 200  # filled
    return 200


ENTRIES = {
    "snapshot": keep_live,
    "tombstone": revoke_through_logout,
    "remembered-refusal": refuse_behind_the_apps_back,
}


@pytest.mark.parametrize("entry", list(ENTRIES))
@pytest.mark.parametrize(
    ("ttl", "lifetime"), [(120, 120), (1, 1), (0.5, 1)], ids=["120s", "1s", "half-a-second"]
)
def test_an_entry_lives_session_cache_ttl_then_the_database_is_asked_again(
    api_client: Any,
    user: Any,
    password: str,
    settings: Any,
    entry: str,
    ttl: float,
    lifetime: int,
) -> None:
    """Every entry lives SESSION_CACHE_TTL (at least a second), not the cache's own default
    timeout (300 s) nor forever: that bounds how long a change behind the app's back lasts."""
    cached_mode(settings, ttl, TOUCH_INTERVAL=3600)
    with time_machine.travel(now(), tick=False) as clock:
        tokens = login(api_client, "alice", password).json()
        status = ENTRIES[entry](api_client, tokens)
        clock.shift(timedelta(seconds=lifetime - 0.5))
        assert status_and_queries(api_client, tokens["access_token"]) == (status, 0)

        clock.shift(timedelta(seconds=1))

        assert status_and_queries(api_client, tokens["access_token"]) == (status, 1)


@pytest.mark.parametrize(("left", "cached"), [(0.5, False), (1.5, True)])
def test_a_session_with_under_a_second_left_is_not_cached(
    api_client: Any, user: Any, password: str, settings: Any, left: float, cached: bool
) -> None:
    cache = cached_mode(settings)
    with time_machine.travel(now(), tick=False):
        tokens = login(api_client, "alice", password).json()
        Token.objects.filter(pk=tokens["sid"]).update(expires_at=now() + timedelta(seconds=left))
        assert status_and_queries(api_client, tokens["access_token"]) == (200, 2)  # read, touch

        second = status_and_queries(api_client, tokens["access_token"])

    assert second == (200, 0 if cached else 1)
    assert isinstance(cache.get(session_cache.session_key(tokens["sid"])), tuple) is cached


# -- one clock reading per request -------------------------------------------------------------

SLOW = timedelta(seconds=2)


@contextmanager
def slow_session_reads(clock: Any, monkeypatch: Any) -> Iterator[None]:
    """The session's row and the session cache's answer arrive SLOW after they were asked
    for (a loaded database or Redis), on time_machine's clock."""

    def late_row(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if sql.lstrip().upper().startswith("SELECT") and "cocart_jwt_token" in sql:
            clock.shift(SLOW)
        return result

    cache = caches["locmem"]
    ask = cache.get_many

    def late_answer(keys: Any, version: Any = None) -> Any:
        found = ask(keys, version=version)
        clock.shift(SLOW)
        return found

    monkeypatch.setattr(cache, "get_many", late_answer)
    with connection.execute_wrapper(late_row):
        yield
    monkeypatch.undo()


@pytest.mark.parametrize("path", ["strict", "cached-miss", "cached-hit"])
def test_a_request_is_judged_when_it_arrived_however_slowly_its_session_is_read(
    api_client: Any, user: Any, password: str, settings: Any, monkeypatch: Any, path: str
) -> None:
    """A session live when the request arrived serves it even if it expires while its row
    or cache entry is on the way: the access token's expiry and the session's are judged at
    the same instant."""
    if path != "strict":
        cached_mode(settings, TOUCH_INTERVAL=3600)
    with time_machine.travel(now(), tick=False) as clock:
        tokens = login(api_client, "alice", password).json()
        Token.objects.filter(pk=tokens["sid"]).update(expires_at=now() + timedelta(seconds=1))
        if path == "cached-hit":
            assert status_and_queries(api_client, tokens["access_token"]) == (200, 2)  # fills

        with slow_session_reads(clock, monkeypatch):
            status = api_client.get(ME, **bearer(tokens["access_token"])).status_code

        assert status == 200
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401


# -- cached mode: touch keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "lifetime"), [(60, 60), (1, 1), (0, 1)], ids=["60s", "1s", "zero"]
)
def test_last_used_at_is_written_again_once_the_touch_interval_has_passed(
    api_client: Any, user: Any, password: str, settings: Any, interval: int, lifetime: int
) -> None:
    """In cached mode the touch key claims the write for TOUCH_INTERVAL (at least a second)."""
    cached_mode(settings, 3600, TOUCH_INTERVAL=interval)
    with time_machine.travel(now(), tick=False) as clock:
        tokens = login(api_client, "alice", password).json()
        assert status_and_queries(api_client, tokens["access_token"]) == (200, 2)  # read, touch
        first_use = Token.objects.get(pk=tokens["sid"]).last_used_at
        clock.shift(timedelta(seconds=lifetime - 0.5))
        assert status_and_queries(api_client, tokens["access_token"]) == (200, 0)

        clock.shift(timedelta(seconds=1))

        assert status_and_queries(api_client, tokens["access_token"]) == (200, 1)
        assert Token.objects.get(pk=tokens["sid"]).last_used_at == now()
        assert first_use == now() - timedelta(seconds=lifetime + 0.5)


def test_each_session_has_its_own_touch_key(
    api_client: Any, user: Any, password: str, settings: Any
) -> None:
    cache = cached_mode(settings)
    first = login(api_client, "alice", password).json()
    second = login(api_client, "alice", password).json()

    for tokens in (first, second):
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200

    for tokens in (first, second):
        assert Token.objects.get(pk=tokens["sid"]).last_used_at is not None
        assert cache.get(session_cache.touch_key(tokens["sid"])) is not None


class CacheCalls(list):
    """The session cache's operations, each a round trip (calls inside another not counted)."""

    OPERATIONS = ("get", "get_many", "set", "set_many", "add", "delete", "delete_many", "touch")

    def __init__(self, cache: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        self.depth = 0
        for name in self.OPERATIONS:
            monkeypatch.setattr(cache, name, self.wrap(name, getattr(cache, name)))

    def wrap(self, name: str, operation: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            if not self.depth:
                self.append(name)
            self.depth += 1
            try:
                return operation(*args, **kwargs)
            finally:
                self.depth -= 1

        return counted


def test_a_warm_request_costs_one_cache_round_trip_and_no_query(
    api_client: Any, tokens: dict[str, Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/verification-modes.md: the entry and the touch key are read together."""
    cache = cached_mode(settings)
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    calls = CacheCalls(cache, monkeypatch)

    assert status_and_queries(api_client, tokens["access_token"]) == (200, 0)
    assert calls == ["get_many"]


# -- cached mode: keys ---------------------------------------------------------------------------


def test_the_keys_of_a_session_carry_its_sid_as_their_hash_tag() -> None:
    sid = "P87Q1j9HD9yKUQu9ws3J2Q"
    assert session_cache.session_key(sid) == "cocart_jwt:{P87Q1j9HD9yKUQu9ws3J2Q}:session"
    assert session_cache.touch_key(sid) == "cocart_jwt:{P87Q1j9HD9yKUQu9ws3J2Q}:touch"


@pytest.mark.parametrize(
    ("key_prefix", "spread"), [("", True), ("shop", True), ("shop:{eu}", False)]
)
def test_a_redis_cluster_puts_every_key_of_a_session_in_one_slot(
    settings: Any, key_prefix: str, spread: bool
) -> None:
    """Django's cache puts KEY_PREFIX and the version in front of the key; Redis hashes the
    first {...} of the whole key: the sid's, so sessions spread over the nodes, unless the
    prefix has a {...} of its own (docs/deployment.md: then every key is on one node)."""
    key_slot = pytest.importorskip("redis.crc").key_slot
    settings.CACHES = {**settings.CACHES, "prefixed": {**settings.CACHES["locmem"]}}
    settings.CACHES["prefixed"]["KEY_PREFIX"] = key_prefix
    cache = caches["prefixed"]
    slots = {
        sid: {
            key_slot(cache.make_key(key(sid)).encode())
            for key in (session_cache.session_key, session_cache.touch_key)
        }
        for sid in ("P87Q1j9HD9yKUQu9ws3J2Q", "x-_yz0123456789abcdefg")
    }
    assert [len(found) for found in slots.values()] == [1, 1]
    assert (slots["P87Q1j9HD9yKUQu9ws3J2Q"] != slots["x-_yz0123456789abcdefg"]) is spread


# -- cached mode: what the entry holds ---------------------------------------------------------


def test_a_user_change_leaves_a_stale_marker_that_sends_requests_to_the_database(
    api_client: Any, tokens: dict[str, Any], user: Any, settings: Any
) -> None:
    cache = cached_mode(settings)
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200

    user.first_name = "Alice"
    user.save()

    key = session_cache.session_key(tokens["sid"])
    assert cache.get(key) == session_cache.STALE
    for _ in range(2):
        assert status_and_queries(api_client, tokens["access_token"]) == (200, 1)
    assert cache.get(key) == session_cache.STALE  # nothing cached over it
    assert authenticate(tokens["access_token"])[0].first_name == "Alice"


def test_a_snapshot_of_another_layout_is_not_served(
    api_client: Any, tokens: dict[str, Any], settings: Any
) -> None:
    """Another release sharing the cache may hold other fields: its snapshots are ignored."""
    cache = cached_mode(settings)
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    key = session_cache.session_key(tokens["sid"])
    (token_fields, user_fields), token_values, user_values = cache.get(key)
    other_layout = ((*token_fields, "a_field_of_another_release"), user_fields)
    cache.set(key, (other_layout, token_values, user_values))
    Token.objects.filter(pk=tokens["sid"]).update(revoked_at=now())

    assert status_and_queries(api_client, tokens["access_token"]) == (401, 1)


def update_statements(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries if query["sql"].startswith("UPDATE")]


def test_saving_the_cached_session_never_writes_its_password_fingerprint(
    api_client: Any, tokens: dict[str, Any], settings: Any
) -> None:
    cached_mode(settings)
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    fingerprint = Token.objects.get(pk=tokens["sid"]).password_fingerprint
    _user, session = authenticate(tokens["access_token"])

    session.description = "kitchen tablet"
    with CaptureQueriesContext(connection) as queries:
        session.save()

    [update] = update_statements(queries)
    assert '"description"' in update and '"password_fingerprint"' not in update
    stored = Token.objects.get(pk=tokens["sid"])
    assert (stored.description, stored.password_fingerprint) == ("kitchen tablet", fingerprint)


# -- strict mode leaves the cache alone --------------------------------------------------------


def test_strict_mode_writes_no_entry_on_revocation(
    api_client: Any, tokens: dict[str, Any], user: Any
) -> None:
    cache = caches["default"]
    cache.delete(session_cache.session_key(tokens["sid"]))

    api_client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"]))
    Token.objects.revoke_all(user, RevokeReason.ADMIN)

    assert cache.get(session_cache.session_key(tokens["sid"])) is None
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401


def test_strict_mode_logs_nothing_when_the_cache_is_down(
    api_client: Any,
    tokens: dict[str, Any],
    user: Any,
    settings: Any,
    unreachable_cache: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "CACHE": unreachable_cache}
    monkeypatch.setattr(session_cache.reads, "failing", False)

    with caplog.at_level(logging.DEBUG, logger="cocart_jwt"):
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
        user.first_name = "Alice"
        user.save()
        Token.objects.revoke_all(user, RevokeReason.ADMIN)

    assert [r.getMessage() for r in caplog.records if "cache" in r.getMessage().lower()] == []
