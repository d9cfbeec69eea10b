"""Rate limits: counted atomically in the shared cache, with the standard headers."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection
from django.urls import reverse

from cocart_jwt import ratelimit
from cocart_jwt.signals import rate_limited
from tests.factories import bearer, login, refresh
from tests.servers import ServerProcess

pytestmark = [pytest.mark.django_db, pytest.mark.rate_limits]


def limits(settings, **rates):
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": rates}


def test_a_limited_response_carries_the_standard_headers(api_client, user, password, settings):
    limits(settings, login="5/min")
    before = time.time()

    response = login(api_client, "alice", password)

    assert response.status_code == 200
    assert response["X-RateLimit-Limit"] == "5"
    assert response["X-RateLimit-Remaining"] == "4"
    assert before < int(response["X-RateLimit-Reset"]) <= before + 61


def test_going_over_the_limit_is_429_with_retry_after(api_client, user, password, settings):
    limits(settings, login="5/min")
    for remaining in (4, 3, 2, 1, 0):
        response = login(api_client, "alice", "wrong")
        assert response["X-RateLimit-Remaining"] == str(remaining)

    refused = login(api_client, "alice", password)

    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "rate_limited"
    wait = int(refused["Retry-After"])
    assert 1 <= wait <= 60
    assert (
        body["detail"]
        == f"Too many requests. Try again later. Expected available in {wait} seconds."
    )
    assert refused["X-RateLimit-Remaining"] == "0"


def test_the_limit_counts_before_credentials_are_checked(api_client, user, password, settings):
    limits(settings, login="1/min")
    login(api_client, "alice", "wrong")
    assert login(api_client, "alice", password).status_code == 429


def test_a_refusal_sends_a_signal_and_logs_one_line_without_secrets(
    api_client, user, password, settings, caplog
):
    limits(settings, login="1/min")
    received = []

    def receiver(sender, name, request, usage, **kwargs):
        received.append((name, usage.limit))

    rate_limited.connect(receiver)
    try:
        login(api_client, "alice", password)
        with caplog.at_level(logging.INFO, logger="cocart_jwt"):
            login(api_client, "alice", password)
    finally:
        rate_limited.disconnect(receiver)

    assert received == [("login", 1)]
    lines = [r.getMessage() for r in caplog.records if "Rate limit" in r.getMessage()]
    assert len(lines) == 1
    assert password not in lines[0] and "alice" not in lines[0]


def test_after_the_window_requests_pass_again(api_client, user, password, settings):
    limits(settings, login="2/2s")
    login(api_client, "alice", password)
    login(api_client, "alice", password)
    refused = login(api_client, "alice", password)
    assert refused.status_code == 429

    time.sleep(int(refused["Retry-After"]) + 0.2)

    assert login(api_client, "alice", password).status_code == 200


def test_each_client_ip_has_its_own_count(api_client, user, password, settings):
    limits(settings, login="1/min")
    assert login(api_client, "alice", password, REMOTE_ADDR="192.0.2.1").status_code == 200
    assert login(api_client, "alice", password, REMOTE_ADDR="192.0.2.2").status_code == 200
    assert login(api_client, "alice", password, REMOTE_ADDR="192.0.2.1").status_code == 429


def test_forwarded_for_from_an_untrusted_peer_changes_nothing(api_client, user, password, settings):
    limits(settings, login="1/min")
    first = login(api_client, "alice", password, HTTP_X_FORWARDED_FOR="203.0.113.1")
    spoofed = login(api_client, "alice", password, HTTP_X_FORWARDED_FOR="203.0.113.2")
    assert (first.status_code, spoofed.status_code) == (200, 429)


def test_forwarded_for_from_a_trusted_proxy_names_the_client(api_client, user, password, settings):
    limits(settings, login="1/min")
    settings.COCART_JWT = {**settings.COCART_JWT, "TRUSTED_PROXIES": ["127.0.0.1"]}
    one = login(api_client, "alice", password, HTTP_X_FORWARDED_FOR="203.0.113.1")
    two = login(api_client, "alice", password, HTTP_X_FORWARDED_FOR="203.0.113.2")
    again = login(api_client, "alice", password, HTTP_X_FORWARDED_FOR="203.0.113.1")
    assert (one.status_code, two.status_code, again.status_code) == (200, 200, 429)


def test_the_username_limit_holds_when_the_ip_changes(api_client, user, password, settings):
    limits(settings, login="100/min", login_username="2/min")
    statuses = [
        login(api_client, "alice", "wrong", REMOTE_ADDR=f"198.51.100.{n}").status_code
        for n in range(1, 4)
    ]
    assert statuses == [401, 401, 429]
    assert login(api_client, "ALICE", password, REMOTE_ADDR="198.51.100.9").status_code == 429
    assert login(api_client, "bob", "wrong", REMOTE_ADDR="198.51.100.9").status_code == 401


def test_refresh_and_validate_have_their_own_limits(api_client, user, password, settings):
    limits(settings, refresh="1/min", validate="2/min")
    tokens = login(api_client, "alice", password).json()

    assert refresh(api_client, tokens["refresh_token"]).status_code == 200
    assert refresh(api_client, "x" * 43).status_code == 429
    url = reverse("cocart_jwt:validate")
    statuses = [api_client.post(url, **bearer(tokens["access_token"])).status_code for _ in "abc"]
    assert statuses == [200, 200, 429]


def test_validate_counts_before_the_token_is_checked(api_client, db, settings):
    limits(settings, validate="2/min")
    url = reverse("cocart_jwt:validate")
    statuses = [api_client.post(url, **bearer("forged")).status_code for _ in "abc"]
    assert statuses == [401, 401, 429]


def test_a_limit_of_none_is_off(api_client, user, password, settings):
    limits(settings, login=None)
    responses = [login(api_client, "alice", password) for _ in range(8)]
    assert {r.status_code for r in responses} == {200}
    assert "X-RateLimit-Limit" not in responses[0]


def test_local_memory_counts_within_one_process(api_client, user, password, settings):
    limits(settings, login="2/min")
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMIT_CACHE": "locmem"}
    from django.core.cache import caches

    caches["locmem"].clear()
    statuses = [login(api_client, "alice", password).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


@pytest.mark.redis
def test_a_counter_always_has_an_expiry(settings):
    limits(settings, login="5/min")
    from django.core.cache import caches

    ratelimit.hit("login", "192.0.2.50")
    cache = caches["default"]
    key = cache.make_key(f"cocart_jwt:rl:login:{ratelimit.sha256_hex('192.0.2.50')}")
    assert 0 < cache.client.get_client().ttl(key) <= 60


class TestCacheDown:
    @pytest.fixture(autouse=True)
    def unreachable(self, settings, unreachable_cache):
        settings.COCART_JWT = {
            **settings.COCART_JWT,
            "RATE_LIMITS": {"login": "1/min"},
            "RATE_LIMIT_CACHE": unreachable_cache,
        }
        ratelimit.outage.failing = False

    def test_fail_open_lets_requests_through_and_logs_once(
        self, api_client, user, password, caplog
    ):
        with caplog.at_level(logging.ERROR, logger="cocart_jwt"):
            statuses = [login(api_client, "alice", password).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1

    def test_fail_closed_refuses_without_a_500(self, api_client, user, password, settings):
        settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMIT_FAIL_OPEN": False}
        response = login(api_client, "alice", password)
        assert response.status_code == 429
        assert int(response["Retry-After"]) >= 1


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_count_is_exact_across_worker_processes(db):
    """30 concurrent refreshes against gunicorn with 3 workers: exactly 10 pass the limiter."""
    from django.core.cache import caches

    caches["default"].delete_pattern("cocart_jwt:rl:*")
    overrides = {"RATE_LIMITS": {"refresh": "10/min"}}
    server = ServerProcess("gunicorn", connection.settings_dict["NAME"], overrides, workers=3)
    try:
        server.wait_until_up()

        def attempt(n: int) -> int:
            body = {"refresh_token": f"unknown-refresh-token-{n:02d}".ljust(43, "x")}
            return requests.post(
                server.url("/api/auth/refresh/"), json=body, timeout=30
            ).status_code

        with ThreadPoolExecutor(max_workers=30) as pool:
            statuses = list(pool.map(attempt, range(30)))
    finally:
        server.stop()
        server.remove_log()

    assert statuses.count(429) == 20
    assert statuses.count(401) == 10
