"""Cached mode and rate limits on a real Redis Cluster, through the package's cache backend
``cocart_jwt.cache.RedisClusterCache``.

Needs ``REDIS_CLUSTER_URL`` (``.ci/services/redis-cluster start`` prints it): three masters, so
the sessions and counters of these tests land on different nodes, as in production.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import pytest
from django.core.cache import caches
from django.urls import reverse

from cocart_jwt import ratelimit
from cocart_jwt.store import cached
from cocart_jwt.utils import sha256_hex
from tests import services
from tests.factories import bearer, login, refresh

pytestmark = [pytest.mark.redis_cluster, pytest.mark.django_db]

ME = "/api/me/"
TTL = 300


@pytest.fixture
def cluster(settings: Any) -> Any:
    """The cache alias ``cluster`` on the Redis Cluster, for the session cache and the rate
    limits, flushed before and after; yields its RedisCluster client."""
    settings.CACHES = {
        **settings.CACHES,
        "cluster": {
            "BACKEND": "cocart_jwt.cache.RedisClusterCache",
            "LOCATION": services.TOPOLOGIES[0].url(),
            "KEY_PREFIX": "cocart_jwt_tests",
            "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
        },
    }
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "SESSION_CACHE_TTL": TTL,
        "CACHE": "cluster",
        "RATE_LIMIT_CACHE": "cluster",
    }
    for log in (cached.reads, cached.writes, cached.markers, ratelimit.outage):
        log.failing = False
    cache = caches["cluster"]
    cache.clear()
    client = cache._cache.get_client()
    yield client
    for node in client.get_primaries():
        client.config_set("maxmemory", "0", target_nodes=node)
    cache.clear()


@pytest.fixture
def tokens(api_client: Any, user: Any, password: str) -> dict[str, Any]:
    return login(api_client, "alice", password).json()


def stored_key(key: str) -> str:
    return caches["cluster"].make_key(key)


def warm(api_client: Any, tokens: dict[str, Any]) -> None:
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    assert isinstance(caches["cluster"].get(cached.session_key(tokens["sid"])), tuple)


def commands_sent(cluster: Any) -> Counter[str]:
    """The commands every primary ran since the last reset (INFO and CONFIG aside)."""
    sent: Counter[str] = Counter()
    for node in cluster.get_primaries():
        stats = cluster.info("commandstats", target_nodes=node)
        for name, stat in stats.items():
            command = name.removeprefix("cmdstat_")
            if command not in ("info", "config|resetstat", "config"):
                sent[command] += stat["calls"]
    return sent


def reset_command_stats(cluster: Any) -> None:
    for node in cluster.get_primaries():
        cluster.config_resetstat(target_nodes=node)


def refuse_writes_on_the_node_of(cluster: Any, key: str) -> None:
    """That node answers reads and refuses writes, as a Redis at maxmemory does."""
    node = cluster.get_node_from_key(stored_key(key))
    cluster.config_set("maxmemory", "1", target_nodes=node)


# -- keys ----------------------------------------------------------------------------------------


def test_every_key_of_a_session_is_in_one_slot(cluster, api_client, tokens):
    warm(api_client, tokens)

    keys = [
        stored_key(cached.session_key(tokens["sid"])),
        stored_key(cached.touch_key(tokens["sid"])),
    ]

    assert cluster.exists(*keys) == 2
    assert len({cluster.execute_command("CLUSTER KEYSLOT", key) for key in keys}) == 1


def test_sessions_spread_over_the_nodes(cluster, api_client, user, password):
    nodes = set()
    for _ in range(12):
        sid = login(api_client, "alice", password).json()["sid"]
        nodes.add(cluster.get_node_from_key(stored_key(cached.session_key(sid))).name)

    assert len(nodes) > 1


# -- cached mode ---------------------------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every command the cluster client of this process sends, from here on."""
    from redis.cluster import RedisCluster

    commands: list[str] = []
    execute = RedisCluster.execute_command

    def counted(self: RedisCluster, *args: Any, **options: Any) -> Any:
        commands.append(str(args[0]).upper())
        return execute(self, *args, **options)

    monkeypatch.setattr(RedisCluster, "execute_command", counted)
    return commands


def nodes_that_ran_commands(cluster: Any) -> dict[str, Counter[str]]:
    """The commands each primary ran since the last reset, for those that ran any (INFO and
    CONFIG aside); a script's own commands count on its node besides the script."""
    ran = {}
    for node in cluster.get_primaries():
        stats = cluster.info("commandstats", target_nodes=node)
        commands = Counter(
            {
                name.removeprefix("cmdstat_"): stat["calls"]
                for name, stat in stats.items()
                if name.removeprefix("cmdstat_") not in ("info", "config|resetstat", "config")
            }
        )
        if commands:
            ran[node.name] = commands
    return ran


@pytest.mark.parametrize("touch_due", [False, True], ids=["warm", "touch-due"])
def test_a_request_is_one_command_on_the_sessions_node(
    cluster, api_client, tokens, sent, django_assert_num_queries, touch_due
):
    """The entry and the touch claim: one EVALSHA, on the node of the session's slot, whose
    script GETs the entry, sees whether the touch key EXISTS, and SETs it when it is due; no
    SQL but the last_used_at write."""
    warm(api_client, tokens)
    if touch_due:
        caches["cluster"].delete(cached.touch_key(tokens["sid"]))  # as its expiry would
    node = cluster.get_node_from_key(stored_key(cached.session_key(tokens["sid"]))).name
    reset_command_stats(cluster)
    sent.clear()

    with django_assert_num_queries(1 if touch_due else 0):
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200

    assert sent == ["EVALSHA"]
    in_script = Counter({"get": 1, "exists": 1, "set": 1 if touch_due else 0})
    assert nodes_that_ran_commands(cluster) == {node: Counter({"evalsha": 1}) + in_script}


def logout(client: Any, tokens: dict[str, Any], password: str) -> None:
    assert (
        client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"])).status_code
        == 204
    )


def logout_all(client: Any, tokens: dict[str, Any], password: str) -> None:
    other = login(client, "alice", password).json()
    response = client.post(reverse("cocart_jwt:logout-all"), **bearer(other["access_token"]))
    assert response.status_code == 204


def revoke(client: Any, tokens: dict[str, Any], password: str) -> None:
    other = login(client, "alice", password).json()
    url = reverse("cocart_jwt:session", args=[tokens["sid"]])
    assert client.delete(url, **bearer(other["access_token"])).status_code == 204


def reuse(client: Any, tokens: dict[str, Any], password: str) -> None:
    assert refresh(client, tokens["refresh_token"]).status_code == 200
    assert refresh(client, tokens["refresh_token"]).status_code == 401  # reuse: revoked


REVOCATIONS = [logout, logout_all, revoke, reuse]


@pytest.mark.parametrize("revocation", REVOCATIONS, ids=[r.__name__ for r in REVOCATIONS])
def test_a_revocation_holds_on_the_next_request(
    cluster, api_client, tokens, password, revocation, django_assert_num_queries
):
    warm(api_client, tokens)

    revocation(api_client, tokens, password)

    with django_assert_num_queries(0):  # the tombstone answers, from the cluster
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401


def test_the_tombstone_is_in_the_cluster_under_the_hash_tagged_key_with_a_ttl(
    cluster, api_client, tokens, password
):
    warm(api_client, tokens)

    logout(api_client, tokens, password)

    key = stored_key(cached.session_key(tokens["sid"]))
    assert key == f"cocart_jwt_tests:1:cocart_jwt:{{{tokens['sid']}}}:session"
    assert caches["cluster"].get(cached.session_key(tokens["sid"])) == cached.REVOKED
    assert 0 < cluster.ttl(key) <= TTL


# -- a node that refuses writes ------------------------------------------------------------------


def cocart_jwt_lines(caplog: Any, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cocart_jwt" and r.levelno >= level]


def test_a_tombstone_a_node_refuses_is_logged_once_and_the_token_still_refused(
    cluster, api_client, tokens, password, caplog
):
    warm(api_client, tokens)
    refuse_writes_on_the_node_of(cluster, cached.session_key(tokens["sid"]))

    with caplog.at_level(logging.WARNING, logger="cocart_jwt"):
        logout(api_client, tokens, password)
        statuses = [api_client.get(ME, **bearer(tokens["access_token"])).status_code for _ in "ab"]

    assert statuses == [401, 401]
    assert cocart_jwt_lines(caplog) == [
        "Session cache (tombstones) unavailable (OutOfMemoryError); revocations and user changes "
        "meanwhile delete the entries they name instead (their next request asks the "
        "database)",
        "Session cache (writes) unavailable (OutOfMemoryError); sessions are answered by the "
        "database and not cached until it is back",
    ]


def test_a_node_that_refuses_writes_logs_one_line_and_last_used_at_is_still_written(
    cluster, api_client, tokens, caplog
):
    from cocart_jwt.models import Token

    refuse_writes_on_the_node_of(cluster, cached.session_key(tokens["sid"]))

    with caplog.at_level(logging.WARNING, logger="cocart_jwt"):
        statuses = [api_client.get(ME, **bearer(tokens["access_token"])).status_code for _ in "abc"]

    assert statuses == [200, 200, 200]
    assert cocart_jwt_lines(caplog) == [
        "Session cache (writes) unavailable (OutOfMemoryError); sessions are answered by the "
        "database and not cached until it is back"
    ]
    assert Token.objects.get(pk=tokens["sid"]).last_used_at is not None


# -- rate limits ---------------------------------------------------------------------------------


@pytest.mark.rate_limits
def test_the_login_limit_is_exact_on_the_cluster(cluster, settings, api_client, user, password):
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": {"login": "3/min"}}

    statuses = [login(api_client, "alice", password).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]


@pytest.mark.rate_limits
def test_counters_on_every_node_are_exact_and_expire(cluster, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": {"login": "2/min"}}
    addresses = [f"192.0.2.{n}" for n in range(1, 13)]
    keys = [stored_key(f"cocart_jwt:rl:login:{sha256_hex(ip)}") for ip in addresses]
    assert len({cluster.get_node_from_key(key).name for key in keys}) == 3

    counts = [[ratelimit.hit("login", ip).count for _ in range(2)] for ip in addresses]
    for ip in addresses:
        with pytest.raises(ratelimit.RateLimitExceeded):
            ratelimit.hit("login", ip)

    assert counts == [[1, 2]] * len(addresses)
    assert all(0 < cluster.ttl(key) <= 60 for key in keys)
    assert [int(cluster.get(key)) for key in keys] == [3] * len(addresses)


# -- the backend ---------------------------------------------------------------------------------


def test_many_keys_are_read_written_and_deleted_across_the_nodes(cluster):
    cache = caches["cluster"]
    data = {f"key-{n}": {"n": n} for n in range(30)}
    assert len({cluster.get_node_from_key(stored_key(key)).name for key in data}) == 3

    assert cache.set_many(data, 60) == []
    assert cache.get_many([*data, "absent"]) == data
    assert all(0 < cluster.ttl(stored_key(key)) <= 60 for key in data)

    cache.delete_many(list(data))
    assert cache.get_many(list(data)) == {}


def test_add_writes_only_an_absent_key_and_gives_it_its_ttl(cluster):
    cache = caches["cluster"]

    assert cache.add("claimed", "first", 30) is True
    assert cache.add("claimed", "second", 30) is False

    assert cache.get("claimed") == "first"
    assert 0 < cluster.ttl(stored_key("claimed")) <= 30


def test_set_many_names_the_keys_a_node_refused(cluster):
    cache = caches["cluster"]
    data = {f"key-{n}": n for n in range(30)}
    refuse_writes_on_the_node_of(cluster, "key-0")
    refused = {
        key
        for key in data
        if cluster.get_node_from_key(stored_key(key))
        == cluster.get_node_from_key(stored_key("key-0"))
    }

    assert set(cache.set_many(data, 60)) == refused
    assert set(cache.get_many(list(data))) == set(data) - refused


def test_an_unreachable_cluster_falls_back_to_the_strict_query(
    cluster, settings, api_client, tokens, caplog
):
    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "cocart_jwt.cache.RedisClusterCache",
            "LOCATION": "redis://127.0.0.1:1",
            "OPTIONS": {"socket_timeout": 0.2, "socket_connect_timeout": 0.2},
        },
    }
    settings.COCART_JWT = {**settings.COCART_JWT, "CACHE": "down"}

    with caplog.at_level(logging.WARNING, logger="cocart_jwt"):
        statuses = [api_client.get(ME, **bearer(tokens["access_token"])).status_code for _ in "ab"]
        logout(api_client, tokens, "")
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401

    assert statuses == [200, 200]
    assert [line.split(";")[0] for line in cocart_jwt_lines(caplog)] == [
        "Session cache unavailable (RedisClusterException)",
        "Session cache (tombstones) unavailable (RedisClusterException)",
    ]


def test_a_node_that_hangs_costs_about_the_socket_timeout_then_the_strict_query(
    cluster, settings, api_client, tokens, caplog
):
    """No retries with backoff (redis-py's default held each request for the whole pause)."""
    settings.CACHES["cluster"]["OPTIONS"] = {"socket_timeout": 0.2, "socket_connect_timeout": 0.2}
    settings.CACHES = {**settings.CACHES}
    warm(api_client, tokens)
    node = cluster.get_node_from_key(stored_key(cached.session_key(tokens["sid"])))
    cluster.execute_command("CLIENT PAUSE", 1500, "ALL", target_nodes=node)  # ends on its own

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="cocart_jwt"):
        status = api_client.get(ME, **bearer(tokens["access_token"])).status_code
    took = time.monotonic() - started
    time.sleep(max(0.0, 1.7 - took))  # the pause is over before the fixture cleans up

    assert status == 200
    assert took < 1.2
    assert cocart_jwt_lines(caplog) == [
        "Session cache unavailable (TimeoutError); using the strict query until it is back"
    ]
