"""Rate limits: counted atomically in the shared cache, with the standard headers."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import time_machine
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.checks import run_checks
from django.db import connection
from django.urls import reverse

from cocart_jwt import http, ratelimit
from cocart_jwt.models import Token
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
    # Reset is ceil(now) + 60 when the response is made: bound it by the clock after it.
    assert before < int(response["X-RateLimit-Reset"]) <= time.time() + 61
    # Spelt as documented on the wire (HTTP/1.1 keeps a header name's case).
    sent = [name for name, _ in response.items() if name.lower().startswith("x-ratelimit-")]
    assert sent == ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]


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
        received.append((sender, name, request.path, usage.limit, usage.count))

    rate_limited.connect(receiver)
    try:
        login(api_client, "alice", password)
        with caplog.at_level(logging.INFO, logger="cocart_jwt"):
            login(api_client, "alice", password)
    finally:
        rate_limited.disconnect(receiver)

    assert received == [(ratelimit.RateLimitExceeded, "login", reverse("cocart_jwt:login"), 1, 2)]
    lines = [r.getMessage() for r in caplog.records if "Rate limit" in r.getMessage()]
    assert lines == ["Rate limit 'login' exceeded (1/60s)"]
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


@pytest.mark.redis
def test_a_hit_on_redis_is_one_round_trip_whatever_the_count(settings, monkeypatch):
    """The Lua script counts and sets the expiry in one command: no add/incr/get sequence."""
    limits(settings, login="5/min")
    redis = caches["default"].client.get_client(write=True)
    sent: list[str] = []
    execute = redis.execute_command

    def counted(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]).upper())
        return execute(*args, **options)

    monkeypatch.setattr(redis, "execute_command", counted)

    for expected_count in (1, 2, 3):
        sent.clear()
        assert ratelimit.hit("login", "192.0.2.70").count == expected_count
        assert sent == ["EVAL"]


@pytest.mark.redis
def test_a_counter_found_without_an_expiry_gets_one_and_never_locks_out_for_good(
    api_client, user, password, settings
):
    """A counter left without an expiry (by a crash between INCR and EXPIRE in an older
    release, or by hand) would refuse its client forever: the next hit gives it one."""
    from django.core.cache import caches

    limits(settings, login="5/min")
    cache = caches["default"]
    key = cache.make_key(f"cocart_jwt:rl:login:{ratelimit.sha256_hex('127.0.0.1')}")
    redis = cache.client.get_client(write=True)
    redis.set(key, 5)
    assert redis.ttl(key) == -1

    refused = login(api_client, "alice", password)

    assert refused.status_code == 429
    assert 0 < redis.ttl(key) <= 60
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert int(refused["X-RateLimit-Reset"]) > time.time() + 1


@pytest.mark.redis
def test_with_a_read_replica_the_count_is_kept_on_the_primary(settings):
    """django-redis with a primary and a replica (here one that is down): a hit is a write,
    made on the primary, so the limit holds."""
    primary = settings.CACHES["default"]
    settings.CACHES = {
        **settings.CACHES,
        "replicated": {
            **primary,
            "LOCATION": [primary["LOCATION"], "redis://127.0.0.1:1/0"],
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        },
    }
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMIT_CACHE": "replicated"}
    limits(settings, login="2/min")

    assert [ratelimit.hit("login", "192.0.2.60").count for _ in range(2)] == [1, 2]
    with pytest.raises(ratelimit.RateLimitExceeded):
        ratelimit.hit("login", "192.0.2.60")


@pytest.mark.redis
def test_djangos_own_redis_cache_counts_with_the_script_and_gives_the_counter_an_expiry(
    settings,
):
    settings.CACHES = {
        **settings.CACHES,
        "django-redis-cache": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.CACHES["default"]["LOCATION"],
            "KEY_PREFIX": "cocart_jwt_tests_builtin",
        },
    }
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMIT_CACHE": "django-redis-cache"}
    limits(settings, login="2/min")
    cache = caches["django-redis-cache"]
    key = cache.make_key(f"cocart_jwt:rl:login:{ratelimit.sha256_hex('192.0.2.80')}")
    redis = cache._cache.get_client(write=True)
    redis.delete(key)

    assert [ratelimit.hit("login", "192.0.2.80").count for _ in range(2)] == [1, 2]
    with pytest.raises(ratelimit.RateLimitExceeded):
        ratelimit.hit("login", "192.0.2.80")
    assert int(redis.get(key)) == 3  # one counter, in Redis: no ":reset" key beside it
    assert 0 < redis.ttl(key) <= 60
    assert not redis.exists(f"{key}:reset")


def test_a_multiplied_window_lasts_all_of_it(api_client, db, settings):
    """ "100/5m" is 100 requests per 300 seconds, not per minute."""
    limits(settings, validate="100/5m")
    url = reverse("cocart_jwt:validate")
    before = time.time()

    responses = [api_client.post(url, **bearer("forged")) for _ in range(101)]

    assert [r.status_code for r in responses[:100]] == [401] * 100
    assert before + 299 <= int(responses[0]["X-RateLimit-Reset"]) <= time.time() + 301
    assert responses[100].status_code == 429
    assert 240 < int(responses[100]["Retry-After"]) <= 300


def test_a_multiplied_window_still_counts_after_one_unit(api_client, db, settings):
    """On the local-memory cache, whose clock time_machine moves: where "100/m" would have
    started a new window after a minute, "100/5m" refuses the 101st request until 300 s."""
    from django.core.cache import caches

    limits(settings, validate="100/5m")
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMIT_CACHE": "locmem"}
    caches["locmem"].clear()
    url = reverse("cocart_jwt:validate")
    with time_machine.travel("2026-01-01 00:00:00+00:00", tick=False) as clock:
        statuses = {api_client.post(url, **bearer("forged")).status_code for _ in range(100)}
        assert statuses == {401}
        clock.shift(61)

        assert api_client.post(url, **bearer("forged")).status_code == 429
        clock.shift(240)  # 301 s after the first request: a new window
        assert api_client.post(url, **bearer("forged")).status_code == 401


# --- the local-memory counter: one fixed window per identity ----------------------------------

T0 = 1_767_225_600  # 2026-01-01 00:00:00 UTC, a whole second


@pytest.fixture
def local_memory(settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMIT_CACHE": "locmem"}
    caches["locmem"].clear()
    return caches["locmem"]


def counter_key(name: str, identity: str) -> str:
    return f"cocart_jwt:rl:{name}:{ratelimit.sha256_hex(identity)}"


def test_the_window_is_fixed_by_its_first_request_and_the_next_one_starts_afresh(
    api_client, db, settings, local_memory
):
    limits(settings, validate="3/min")
    url = reverse("cocart_jwt:validate")

    def validate():
        response = api_client.post(url, **bearer("forged"))
        return (
            response.status_code,
            response["X-RateLimit-Remaining"],
            response["X-RateLimit-Reset"],
        )

    with time_machine.travel(T0, tick=False) as clock:
        assert validate() == (401, "2", str(T0 + 60))
        clock.shift(40)
        assert validate() == (401, "1", str(T0 + 60))
        clock.shift(19)  # one second left
        assert validate() == (401, "0", str(T0 + 60))
        refused = api_client.post(url, **bearer("forged"))
        assert (refused.status_code, refused["Retry-After"]) == (429, "1")
        clock.shift(1)  # exactly a minute after the first request: a new window

        assert validate() == (401, "2", str(T0 + 120))


def test_a_window_that_ends_between_add_and_incr_starts_a_new_one(
    settings, local_memory, monkeypatch
):
    """The counter expires between the hit's ``add`` and its ``incr``: the hit is the first of
    a new window, which lasts a whole window."""
    limits(settings, login="3/min")
    key = counter_key("login", "192.0.2.1")
    incr = local_memory.incr

    def expiring_incr(*args, **kwargs):
        local_memory.delete(key)  # the window ended just now
        return incr(*args, **kwargs)

    with time_machine.travel(T0, tick=False) as clock:
        assert ratelimit.hit("login", "192.0.2.1").count == 1
        clock.shift(30)
        monkeypatch.setattr(local_memory, "incr", expiring_incr)
        assert ratelimit.hit("login", "192.0.2.1").count == 1
        monkeypatch.undo()
        clock.shift(59)
        assert ratelimit.hit("login", "192.0.2.1").count == 2
        clock.shift(1)  # a minute after the new window's first hit
        assert ratelimit.hit("login", "192.0.2.1").count == 1


def test_a_counter_whose_reset_time_is_culled_mid_hit_says_a_whole_window(
    settings, local_memory, monkeypatch
):
    """The reset time is evicted between the hit's ``add`` and its ``get`` (a full local
    memory culls entries): the headers promise a whole window, never a time in the past."""
    limits(settings, login="3/min")
    get = local_memory.get

    def culled_get(key, *args, **kwargs):
        local_memory.delete(key)
        return get(key, *args, **kwargs)

    with time_machine.travel(T0, tick=False) as clock:
        ratelimit.hit("login", "192.0.2.1")
        clock.shift(10)
        monkeypatch.setattr(local_memory, "get", culled_get)

        usage = ratelimit.hit("login", "192.0.2.1")

    assert (usage.count, usage.reset_in) == (2, 60)


@pytest.mark.parametrize("step", range(4))
def test_a_hit_that_lands_in_the_middle_of_another_still_counts(
    settings, local_memory, monkeypatch, step
):
    """Two threads of one process hit a fresh counter at once: whichever cache call of the
    first the second lands before, the two hits count 1 and 2 (local memory locks each call,
    so the counter is made with ``add`` before its ``incr``)."""
    limits(settings, login="3/min")
    calls = 0
    second = []

    def interleaved(method):
        def call(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == step + 1 and not second:
                monkeypatch.undo()  # the second hit runs whole, uninterrupted
                second.append(ratelimit.hit("login", "192.0.2.1").count)
            return method(*args, **kwargs)

        return call

    for name in ("add", "incr", "set", "get"):
        monkeypatch.setattr(local_memory, name, interleaved(getattr(local_memory, name)))

    first = ratelimit.hit("login", "192.0.2.1").count

    assert sorted([first, *second]) == [1, 2]


class LocMemWithAClient(LocMemCache):
    """A cache with a ``client`` of its own that is not django-redis's."""

    client = object()


def test_a_cache_with_a_client_that_is_not_django_redis_counts_locally(settings):
    settings.CACHES = {
        **settings.CACHES,
        "own-client": {"BACKEND": f"{__name__}.LocMemWithAClient", "LOCATION": "own-client"},
    }
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMIT_CACHE": "own-client"}
    limits(settings, login="2/min")
    caches["own-client"].clear()

    assert [ratelimit.hit("login", "192.0.2.1").count for _ in range(2)] == [1, 2]
    with pytest.raises(ratelimit.RateLimitExceeded):
        ratelimit.hit("login", "192.0.2.1")


def serious_cocart_ids():
    return sorted(
        m.id for m in run_checks() if m.id and m.id.startswith("cocart_jwt.") and m.is_serious()
    )


# int() reads "+5", " 5" and "5_0": each is refused, not read as a number.
NOT_DIGITS = ["10/xm", "1x/m", "+10/m", "1_0/m", "10 /m", "10/+5m", "10/5_0m", "10/ 5m", "10/-5m"]


@pytest.mark.parametrize("rate", [*NOT_DIGITS, "10/0m"])
def test_a_rate_whose_count_or_multiplier_is_not_digits_is_check_e006(rate, settings):
    limits(settings, login=rate)
    assert serious_cocart_ids() == ["cocart_jwt.E006"]


@pytest.mark.parametrize("rate", ["100/5m", "10/2h", "5/30s", "1000/7d"])
def test_a_rate_with_a_multiplier_is_clean(rate, settings):
    limits(settings, login=rate)
    assert serious_cocart_ids() == []


@pytest.mark.parametrize(
    ("rate", "why"),
    [
        (5, "a rate is a string such as '5/min'"),
        ("10/xm", "'10/xm' is not a rate such as '5/min'"),
        ("1x/m", "'1x/m' is not a rate such as '5/min'"),
        ("10/+5m", "'10/+5m' is not a rate such as '5/min'"),
        ("0/min", "'0/min' must allow at least one request per period"),
        ("10/0m", "'10/0m' must allow at least one request per period"),
    ],
)
def test_check_e006_says_what_is_wrong_with_a_rate(rate, why, settings):
    limits(settings, login=rate)
    errors = [m for m in run_checks() if m.id == "cocart_jwt.E006"]
    assert [m.msg for m in errors] == [f"COCART_JWT RATE_LIMITS['login']: {why}."]


def test_rate_limits_that_are_not_a_dict_keep_the_default_limits(
    api_client, user, password, settings
):
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": ["login", "5/min"]}
    assert serious_cocart_ids() == ["cocart_jwt.E006"]

    logins = [login(api_client, "alice", password) for _ in range(6)]

    assert [r.status_code for r in logins] == [200] * 5 + [429]
    assert logins[0]["X-RateLimit-Limit"] == "5"


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
        assert [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()] == [
            "Rate-limit cache unavailable (ConnectionError); requests are let through"
        ]

    def test_fail_closed_refuses_without_a_500(self, api_client, user, password, settings, caplog):
        settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMIT_FAIL_OPEN": False}
        with caplog.at_level(logging.ERROR, logger="cocart_jwt"):
            response = login(api_client, "alice", password)
        assert response.status_code == 429
        assert response["Retry-After"] == "1"
        assert (response["X-RateLimit-Limit"], response["X-RateLimit-Remaining"]) == ("0", "0")
        assert [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()] == [
            "Rate-limit cache unavailable (ConnectionError); requests are refused"
        ]


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


# --- RATE_LIMITS is laid over the defaults ---------------------------------------------------


def test_naming_one_limit_keeps_the_default_limits(api_client, user, password, settings):
    limits(settings, login_username="20/hour")

    logins = [login(api_client, "alice", password) for _ in range(6)]
    assert [r.status_code for r in logins] == [200] * 5 + [429]
    assert logins[0]["X-RateLimit-Limit"] == "5"
    refreshes = [refresh(api_client, "x" * 43).status_code for _ in range(11)]
    assert refreshes == [401] * 10 + [429]
    url = reverse("cocart_jwt:validate")
    validations = [api_client.post(url, **bearer("forged")).status_code for _ in "abc"]
    assert validations == [401, 401, 429]
    link = reverse("cocart_jwt:login-link")
    links = [api_client.get(f"{link}?token=unknown").status_code for _ in range(6)]
    assert links[-1] == 429 and 429 not in links[:5]


def test_none_turns_off_one_limit_and_keeps_the_others(api_client, user, password, settings):
    limits(settings, login=None)

    assert {login(api_client, "alice", password).status_code for _ in range(20)} == {200}
    refreshes = [refresh(api_client, "x" * 43).status_code for _ in range(11)]
    assert refreshes == [401] * 10 + [429]


# --- A proxy on a unix socket (empty REMOTE_ADDR) -------------------------------------------

UNIX_PEER = {"REMOTE_ADDR": ""}


@pytest.fixture
def fresh_unix_warning(monkeypatch):
    """The warning is said once per process: start each test as a new process would."""
    monkeypatch.setattr(http.unix_peer_warning, "said", False)


def test_behind_a_trusted_unix_socket_each_forwarded_client_has_its_own_count(
    api_client, user, password, settings
):
    settings.COCART_JWT = {**settings.COCART_JWT, "TRUSTED_PROXIES": ["unix"]}

    def attempts(client_ip: str, count: int) -> list[int]:
        return [
            login(
                api_client, "alice", password, HTTP_X_FORWARDED_FOR=client_ip, **UNIX_PEER
            ).status_code
            for _ in range(count)
        ]

    assert attempts("203.0.113.1", 5) == [200] * 5
    assert attempts("203.0.113.2", 5) == [200] * 5
    assert attempts("203.0.113.1", 1) == [429]


def test_a_unix_socket_session_records_the_forwarded_client_ip(
    api_client, user, password, settings
):
    settings.COCART_JWT = {**settings.COCART_JWT, "TRUSTED_PROXIES": ["unix"]}
    response = login(
        api_client, "alice", password, HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.9", **UNIX_PEER
    )
    assert Token.objects.get(pk=response.json()["sid"]).ip == "203.0.113.9"


def test_trusting_unix_does_not_trust_forwarded_for_from_a_tcp_peer(
    api_client, user, password, settings
):
    settings.COCART_JWT = {**settings.COCART_JWT, "TRUSTED_PROXIES": ["unix"]}
    limits(settings, login="1/min")
    first = login(api_client, "alice", password, HTTP_X_FORWARDED_FOR="203.0.113.1")
    spoofed = login(api_client, "alice", password, HTTP_X_FORWARDED_FOR="203.0.113.2")
    assert (first.status_code, spoofed.status_code) == (200, 429)


def test_an_empty_remote_addr_without_unix_trusted_is_logged_once(
    api_client, user, password, settings, caplog, fresh_unix_warning
):
    with caplog.at_level(logging.WARNING, logger="cocart_jwt"):
        statuses = [
            login(api_client, "alice", password, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}", **UNIX_PEER)
            for n in range(1, 4)
        ]
    assert [r.status_code for r in statuses] == [200, 200, 200]
    warnings = [
        r for r in caplog.records if r.name == "cocart_jwt" and "REMOTE_ADDR is empty" in r.message
    ]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert 'TRUSTED_PROXIES = ["unix"]' in warnings[0].getMessage()


def test_without_unix_trusted_unix_socket_clients_share_one_count(
    api_client, user, password, settings, fresh_unix_warning
):
    statuses = [
        login(
            api_client, "alice", password, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}", **UNIX_PEER
        ).status_code
        for n in range(1, 7)
    ]
    assert statuses == [200] * 5 + [429]


# --- IPv6 clients count per network ----------------------------------------------------------


def logins_from(api_client, password, addresses):
    return [
        login(api_client, "alice", password, REMOTE_ADDR=address).status_code
        for address in addresses
    ]


def test_ipv6_addresses_of_one_64_share_a_count(api_client, user, password, settings):
    addresses = [f"2001:db8:1:2::{n:x}" for n in range(1, 6)] + ["2001:db8:1:2:ffff:1:2:3"]
    assert logins_from(api_client, password, addresses) == [200] * 5 + [429]


def test_ipv6_addresses_of_different_64s_have_their_own_counts(
    api_client, user, password, settings
):
    assert logins_from(api_client, password, ["2001:db8:1:2::1"] * 5) == [200] * 5
    assert logins_from(api_client, password, ["2001:db8:1:3::1"]) == [200]
    assert logins_from(api_client, password, ["2001:db8:1:2::1"]) == [429]


def test_an_ipv6_prefix_of_128_counts_each_address(api_client, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMIT_IPV6_PREFIX": 128}
    addresses = [f"2001:db8:1:2::{n:x}" for n in range(1, 7)]
    assert logins_from(api_client, password, addresses) == [200] * 6
    assert logins_from(api_client, password, ["2001:db8:1:2::1"] * 5) == [200] * 4 + [429]


def test_a_wider_ipv6_prefix_groups_more_addresses(api_client, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMIT_IPV6_PREFIX": 48}
    addresses = [f"2001:db8:1:{n:x}::1" for n in range(1, 7)]
    assert logins_from(api_client, password, addresses) == [200] * 5 + [429]


def test_an_ipv4_mapped_address_counts_as_its_ipv4_client(api_client, user, password, settings):
    addresses = ["192.0.2.7", "::ffff:192.0.2.7"] * 3
    assert logins_from(api_client, password, addresses) == [200] * 5 + [429]


def test_a_session_keeps_the_full_ipv6_address(api_client, user, password, settings):
    response = login(api_client, "alice", password, REMOTE_ADDR="2001:db8:1:2:a:b:c:d")
    assert response.status_code == 200
    assert Token.objects.get(pk=response.json()["sid"]).ip == "2001:db8:1:2:a:b:c:d"
