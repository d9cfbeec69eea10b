"""REDIS_WAIT_REPLICAS on a single Redis and on other caches: the revocation always holds,
replicas that fall short are logged once, and caches that cannot WAIT are left alone.

The failover itself is in tests/test_redis_sentinel.py (it needs a Sentinel set).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.core.cache import caches
from django.urls import reverse

from cocart_jwt.store import cached, replication
from tests.factories import bearer, login

pytestmark = pytest.mark.django_db

ME = "/api/me/"


@pytest.fixture(autouse=True)
def cached_mode_waiting_for_a_replica(settings: Any) -> Any:
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "SESSION_CACHE_TTL": 300,
        "REDIS_WAIT_REPLICAS": 1,
        "REDIS_WAIT_TIMEOUT": 0.05,
    }
    replication.acknowledgements.short = False
    caches["default"].clear()
    yield
    replication.acknowledgements.short = False
    caches["default"].clear()


def log_out(api_client: Any, tokens: dict[str, Any]) -> int:
    return int(
        api_client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"])).status_code
    )


@pytest.mark.redis
def test_a_redis_without_replicas_still_revokes_and_says_so_once(
    api_client: Any, user: Any, password: str, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="cocart_jwt")
    sessions = [login(api_client, "alice", password).json() for _ in range(3)]
    for tokens in sessions:
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200

    assert [log_out(api_client, tokens) for tokens in sessions] == [204] * 3

    for tokens in sessions:
        assert caches["default"].get(cached.session_key(tokens["sid"])) == cached.REVOKED
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401
    warnings = [r.getMessage() for r in caplog.records if "replica" in r.getMessage()]
    assert warnings == [
        "Only 0 of 1 Redis replica(s) acknowledged a session-cache tombstone within 50 ms "
        "(REDIS_WAIT_TIMEOUT); a failover now may lose it, and the revoked session's tokens "
        "would be accepted again until its cache entry expires (at most SESSION_CACHE_TTL). "
        "Not logged again until the replicas catch up."
    ]


def test_a_cache_that_cannot_wait_is_left_alone(
    api_client: Any, user: Any, password: str, settings: Any, caplog: Any
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "CACHE": "locmem"}
    caplog.set_level(logging.WARNING, logger="cocart_jwt")
    tokens = login(api_client, "alice", password).json()
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200

    assert replication.on_master(caches["locmem"]) == {}
    assert log_out(api_client, tokens) == 204
    assert caches["locmem"].get(cached.session_key(tokens["sid"])) == cached.REVOKED
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401
    assert not [r for r in caplog.records if "replica" in r.getMessage()]


def test_wait_never_gets_a_timeout_of_zero(settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "REDIS_WAIT_TIMEOUT": 0.0001}
    assert replication.wait_milliseconds() == 1  # WAIT n 0 would block for ever
