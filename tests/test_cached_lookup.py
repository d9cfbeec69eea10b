"""Cached mode's lookup on Redis: one command per request (the entry and the touch claim),
keys and values as the Django cache backend makes them, and the strict query when it fails.

Run on django-redis (the suite's default cache) and on Django's own RedisCache, both with a
KEY_PREFIX and a VERSION of their own. Commands are counted where the client sends them.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from redis import Redis

from cocart_jwt.models import Token
from cocart_jwt.store import cached, redis_lookup
from cocart_jwt.utils import now
from tests import services
from tests.factories import bearer, login

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

ME = "/api/me/"
BACKENDS = {
    "django-redis": "django_redis.cache.RedisCache",
    "django": "django.core.cache.backends.redis.RedisCache",
}


@pytest.fixture(params=list(BACKENDS))
def alias(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    """Cached mode on a Redis cache alias with its own KEY_PREFIX and VERSION."""
    settings.CACHES = {
        **settings.CACHES,
        "sessions": {
            "BACKEND": BACKENDS[request.param],
            "LOCATION": services.redis_url(),
            "KEY_PREFIX": "shop",
            "VERSION": 3,
        },
    }
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300, "CACHE": "sessions"}
    for log in (cached.reads, cached.writes):
        log.failing = False
    caches["sessions"].clear()
    yield "sessions"
    caches["sessions"].clear()


@pytest.fixture
def tokens(api_client: Any, user: Any, password: str) -> dict[str, Any]:
    return login(api_client, "alice", password).json()


def counting(commands: list[str]) -> Any:
    execute = Redis.execute_command

    def counted(self: Redis, *args: Any, **options: Any) -> Any:
        commands.append(str(args[0]).upper())
        return execute(self, *args, **options)

    return counted


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every command any redis-py client of this process sends, from here on."""
    commands: list[str] = []
    monkeypatch.setattr(Redis, "execute_command", counting(commands))
    return commands


def raw_redis() -> Redis:
    return Redis.from_url(services.redis_url() or "")


def stored(alias: str, key: str) -> str:
    """The key in Redis: prefixed and versioned by the alias."""
    return str(caches[alias].make_key(key))


def status_and_queries(api_client: Any, access_token: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        status = api_client.get(ME, **bearer(access_token)).status_code
    return status, len(queries)


def test_a_warm_request_is_one_redis_command_and_no_sql(alias, api_client, tokens, sent):
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    sent.clear()

    assert status_and_queries(api_client, tokens["access_token"]) == (200, 0)

    assert sent == ["EVALSHA"]


def test_the_request_that_claims_the_touch_is_one_redis_command_and_one_write(
    alias, api_client, tokens, sent
):
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    caches[alias].delete(cached.touch_key(tokens["sid"]))  # as its expiry would
    long_ago = now() - timedelta(hours=1)
    Token.objects.filter(pk=tokens["sid"]).update(last_used_at=long_ago)
    sent.clear()

    assert status_and_queries(api_client, tokens["access_token"]) == (200, 1)  # the UPDATE
    assert sent == ["EVALSHA"]
    assert Token.objects.get(pk=tokens["sid"]).last_used_at > long_ago
    assert 0 < raw_redis().ttl(stored(alias, cached.touch_key(tokens["sid"]))) <= 60
    assert status_and_queries(api_client, tokens["access_token"]) == (200, 0)


def test_the_keys_are_the_backends_own_with_its_prefix_and_version(alias, api_client, tokens):
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200

    session, touch = (
        stored(alias, cached.session_key(tokens["sid"])),
        stored(alias, cached.touch_key(tokens["sid"])),
    )
    assert session == f"shop:3:cocart_jwt:{{{tokens['sid']}}}:session"
    assert raw_redis().exists(session, touch) == 2
    # The touch value reads back through the Django API, as the one add() wrote did.
    assert caches[alias].get(cached.touch_key(tokens["sid"])) == 1


def test_a_tombstone_written_through_the_django_api_refuses_without_sql(alias, api_client, tokens):
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    caches[alias].set_many({cached.session_key(tokens["sid"]): cached.REVOKED}, 60)

    assert status_and_queries(api_client, tokens["access_token"]) == (401, 0)


def test_a_tombstone_of_another_version_is_not_this_versions(alias, api_client, tokens):
    caches[alias].set(cached.session_key(tokens["sid"]), cached.REVOKED, 60, version=2)

    assert status_and_queries(api_client, tokens["access_token"]) == (200, 2)  # read, touch


def test_a_refused_session_never_claims_the_touch(alias, api_client, tokens, user):
    """Its retries cost one read each and write nothing: no touch key, no last_used_at."""
    Token.objects.filter(pk=tokens["sid"]).update(revoked_at=now())  # behind the app's back

    statuses = [status_and_queries(api_client, tokens["access_token"]) for _ in range(3)]

    assert statuses == [(401, 1), (401, 0), (401, 0)]  # the refusal is remembered
    caches[alias].delete(cached.touch_key(tokens["sid"]))  # spent by the miss that was refused
    assert status_and_queries(api_client, tokens["access_token"]) == (401, 0)
    assert not raw_redis().exists(stored(alias, cached.touch_key(tokens["sid"])))
    assert Token.objects.get(pk=tokens["sid"]).last_used_at is None


def test_a_redis_that_does_not_answer_falls_back_to_the_strict_query(
    settings, api_client, tokens, caplog
):
    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        },
    }
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300, "CACHE": "down"}
    Token.objects.filter(pk=tokens["sid"]).update(last_used_at=now())  # no touch due
    cached.reads.failing = False

    with caplog.at_level(logging.WARNING, logger="cocart_jwt"):
        statuses = [status_and_queries(api_client, tokens["access_token"]) for _ in "ab"]

    assert statuses == [(200, 1), (200, 1)]
    assert [r.getMessage() for r in caplog.records if r.name == "cocart_jwt"] == [
        "Session cache unavailable (ConnectionError); using the strict query until it is back"
    ]
    cached.reads.failing = False


def test_a_changed_cache_setting_is_seen_by_the_next_request(alias, settings, api_client, tokens):
    """The client is resolved once per process, and again when CACHES changes."""
    assert status_and_queries(api_client, tokens["access_token"]) == (200, 2)
    settings.CACHES = {
        **settings.CACHES,
        "sessions": {**settings.CACHES["sessions"], "KEY_PREFIX": "other"},
    }

    # New keys: a miss and a touch claim again, under the new prefix.
    assert status_and_queries(api_client, tokens["access_token"]) == (200, 2)
    assert raw_redis().exists(f"other:3:cocart_jwt:{{{tokens['sid']}}}:session")


def test_a_server_that_does_not_know_the_script_is_sent_it_whole_once(
    alias, api_client, tokens, sent, monkeypatch
):
    """NOSCRIPT (a new, restarted or promoted server): that request sends EVAL, and later
    ones are one EVALSHA again."""
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    unknown = hashlib.sha1(f"-- {uuid.uuid4()}".encode()).hexdigest()  # noqa: S324
    monkeypatch.setattr(redis_lookup, "LOOKUP_SHA", unknown)
    sent.clear()

    assert status_and_queries(api_client, tokens["access_token"]) == (200, 0)
    assert sent == ["EVALSHA", "EVAL"]
    monkeypatch.undo()  # the real SHA; the server knows the script now
    sent.clear()
    monkeypatch.setattr(Redis, "execute_command", counting(sent))
    assert status_and_queries(api_client, tokens["access_token"]) == (200, 0)
    assert sent == ["EVALSHA"]
