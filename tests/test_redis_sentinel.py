"""Cached mode behind Redis Sentinel: reads from the master, WAIT for replicas, failover.

Needs the Sentinel set of ``.ci/services/redis-sentinel`` (REDIS_SENTINEL_URL, of the form
``redis://host:port,host:port/service``): a master, one replica, three sentinels. The cache is
django-redis with its ``SentinelClient``, configured as docs/redis-sentinel.md says. Tests
that fail over leave a working master behind (whichever port it is on) and wait until the set
is whole again, so the next test and ``stop`` find it as they expect.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.cache import caches
from django.urls import reverse
from redis import Redis
from redis.sentinel import MasterNotFoundError, Sentinel

from cocart_jwt.store import cached, replication
from tests import services
from tests.factories import bearer, login

pytestmark = [pytest.mark.redis_sentinel, pytest.mark.django_db]

ME = "/api/me/"
SET_TIMEOUT = 30.0  # seconds a failover, or the set becoming whole again, may take


def sentinel_url() -> str:
    topology = next(t for t in services.TOPOLOGIES if t.marker == "redis_sentinel")
    url = topology.url()
    assert url, "the redis_sentinel marker skips this module without REDIS_SENTINEL_URL"
    return url


def sentinels_and_service() -> tuple[list[tuple[str, int]], str]:
    parts = urlsplit(sentinel_url())
    hosts = []
    for address in parts.netloc.split(","):
        host, _, port = address.rpartition(":")
        hosts.append((host, int(port)))
    return hosts, parts.path.strip("/")


def sentinel_cache(prefix: str) -> dict[str, Any]:
    """The CACHES entry docs/redis-sentinel.md gives, with a private key prefix. (django-redis
    keeps one connection pool per LOCATION for the whole process: every test has one timeout.)
    """
    hosts, service = sentinels_and_service()
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": f"redis://{service}/0",
        "KEY_PREFIX": prefix,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.SentinelClient",
            "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
            "SENTINELS": hosts,
            "SOCKET_CONNECT_TIMEOUT": 0.25,
            "SOCKET_TIMEOUT": 1.0,
        },
    }


class SentinelSet:
    """Direct access to the set, outside the app: who is master, the replica, failing over."""

    def __init__(self) -> None:
        hosts, self.service = sentinels_and_service()
        self.sentinel = Sentinel(hosts, socket_timeout=1.0)
        self.sentinels = [Redis(host=h, port=p, socket_timeout=1.0) for h, p in hosts]

    def master(self) -> Redis:
        host, port = self.sentinel.discover_master(self.service)
        return Redis(host=host, port=port, socket_timeout=5.0)

    def replica(self) -> Redis:
        (host, port), *_ = self.sentinel.discover_slaves(self.service)
        return Redis(host=host, port=port, socket_timeout=5.0)

    def whole(self) -> bool:
        """Every sentinel names one master, which is one, with its replica online."""
        try:
            named = {
                s.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", self.service)[1]
                for s in self.sentinels
            }
            info = self.master().info("replication")
        except Exception:  # the set is between states: not whole yet
            return False
        return (
            len(named) == 1
            and info["role"] == "master"
            and info["connected_slaves"] >= 1
            and (info["slave0"]["state"] == "online")
        )

    def wait_whole(self) -> None:
        deadline = time.monotonic() + SET_TIMEOUT
        while not self.whole():
            assert time.monotonic() < deadline, "the Sentinel set is not whole after 30 s"
            time.sleep(0.1)

    def named_master(self) -> tuple[str, int] | None:
        """The master the sentinels name; None while they see it down and have none yet."""
        try:
            return self.sentinel.discover_master(self.service)  # type: ignore[no-any-return]
        except MasterNotFoundError:
            return None

    def fail_over(self, how: str, meanwhile: Callable[[], None]) -> None:
        """Promote the replica and wait until the set is whole again, calling ``meanwhile``
        all along. ``command``: SENTINEL FAILOVER. ``kill``: SIGKILL the master's process
        (started again once a new master is named, so the set is whole afterwards)."""
        before = self.sentinel.discover_master(self.service)
        server = self.master().info("server")
        if how == "kill":
            os.kill(int(server["process_id"]), signal.SIGKILL)
        else:
            self.sentinels[0].execute_command("SENTINEL FAILOVER", self.service)
        try:
            deadline = time.monotonic() + SET_TIMEOUT
            while self.named_master() in (before, None):
                assert time.monotonic() < deadline, f"no new master 30 s after {how}"
                meanwhile()
                time.sleep(0.05)
        finally:
            if how == "kill":  # its config has daemonize yes and its pid file: stop finds it
                subprocess.run(["redis-server", server["config_file"]], check=True)  # noqa: S603, S607
        self.wait_whole()

    def key(self, sid: str) -> str:
        return caches["default"].make_key(cached.session_key(sid))  # type: ignore[attr-defined]


@pytest.fixture
def redis_set() -> SentinelSet:
    pytest.importorskip("django_redis")
    found = SentinelSet()
    found.wait_whole()
    return found


@pytest.fixture(autouse=True)
def sentinel_cached_mode(settings: Any, request: pytest.FixtureRequest) -> Iterator[None]:
    settings.CACHES = {**settings.CACHES, "default": sentinel_cache(f"s{uuid.uuid4().hex[:8]}")}
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}
    replication.acknowledgements.short = False
    yield
    replication.acknowledgements.short = False


@pytest.fixture
def tokens(api_client: Any, user: Any, password: str) -> dict[str, Any]:
    return login(api_client, "alice", password).json()


def wait_settings(settings: Any, replicas: int, timeout: float = 0.1) -> None:
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "REDIS_WAIT_REPLICAS": replicas,
        "REDIS_WAIT_TIMEOUT": timeout,
    }


def warm(api_client: Any, tokens: dict[str, Any], redis_set: SentinelSet) -> None:
    """Authenticate once (the entry is filled), and wait until the replica has it too."""
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    key, replica = redis_set.key(tokens["sid"]), redis_set.replica()
    deadline = time.monotonic() + 5
    while replica.get(key) is None:
        assert time.monotonic() < deadline, "the replica never got the session's entry"
        time.sleep(0.02)


def logout(api_client: Any, tokens: dict[str, Any]) -> None:
    response = api_client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"]))
    assert response.status_code == 204


def replica_paused(redis_set: SentinelSet, milliseconds: int) -> Redis:
    """The replica stops applying the master's writes (it still answers reads) for a while."""
    replica = redis_set.replica()
    replica.execute_command("CLIENT PAUSE", milliseconds, "WRITE")
    return replica


def holds_tombstone(client: Redis, key: str) -> bool:
    return caches["default"].client.decode(client.get(key)) == cached.REVOKED  # type: ignore[attr-defined]


def test_cached_mode_serves_from_the_sentinel_master(
    api_client: Any, tokens: dict[str, Any], redis_set: SentinelSet, django_assert_num_queries: Any
) -> None:
    warm(api_client, tokens, redis_set)

    with django_assert_num_queries(0):
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    assert redis_set.master().exists(redis_set.key(tokens["sid"]))


def commands_run(client: Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in stats.items()}


def test_the_lookup_is_one_command_on_the_master_and_none_on_the_replica(
    api_client: Any, tokens: dict[str, Any], redis_set: SentinelSet, django_assert_num_queries: Any
) -> None:
    """django-redis's SentinelClient would read a replica; the lookup's script goes to the
    master, whatever the number of requests."""
    warm(api_client, tokens, redis_set)
    master, replica = redis_set.master(), redis_set.replica()
    for server in (master, replica):
        server.config_resetstat()

    with django_assert_num_queries(0):
        for _ in range(3):
            assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200

    assert commands_run(master).get("evalsha") == 3
    assert not {"evalsha", "get", "mget", "exists"} & set(commands_run(replica))


def test_a_revocation_holds_at_once_while_the_replica_lags(
    api_client: Any, tokens: dict[str, Any], redis_set: SentinelSet
) -> None:
    """django-redis's SentinelClient reads from a replica; a replica a few writes behind still
    holds the live snapshot. The lookup reads the master, so the logout holds at once."""
    warm(api_client, tokens, redis_set)
    replica = replica_paused(redis_set, 3000)
    try:
        logout(api_client, tokens)
        status = api_client.get(ME, **bearer(tokens["access_token"])).status_code
        replica_had_it = holds_tombstone(replica, redis_set.key(tokens["sid"]))
    finally:
        replica.execute_command("CLIENT UNPAUSE")

    assert not replica_had_it  # the replica really lagged: it would have said "live"
    assert status == 401


@pytest.mark.parametrize(("replicas", "on_the_replica"), [(0, False), (1, True)])
def test_with_wait_a_logout_returns_once_the_replica_holds_the_tombstone(
    api_client: Any,
    tokens: dict[str, Any],
    redis_set: SentinelSet,
    settings: Any,
    replicas: int,
    on_the_replica: bool,
) -> None:
    """The replica is paused for 0.6 s. Without WAIT the logout returns while only the master
    has the tombstone (a failover then would lose it); with WAIT it returns once the replica
    holds it too."""
    wait_settings(settings, replicas, timeout=0.9)
    warm(api_client, tokens, redis_set)
    replica = replica_paused(redis_set, 600)
    try:
        started = time.monotonic()
        logout(api_client, tokens)
        took = time.monotonic() - started
        held = holds_tombstone(replica, redis_set.key(tokens["sid"]))
    finally:
        replica.execute_command("CLIENT UNPAUSE")

    assert held is on_the_replica
    assert (took > 0.3) is on_the_replica  # WAIT waited for the replica, no longer


def test_replicas_that_do_not_acknowledge_are_logged_once_never_raised(
    api_client: Any, user: Any, password: str, redis_set: SentinelSet, settings: Any, caplog: Any
) -> None:
    wait_settings(settings, replicas=2)  # the set has one replica: never enough
    caplog.set_level(logging.WARNING, logger="cocart_jwt")
    for _ in range(3):
        logout(api_client, login(api_client, "alice", password).json())
    wait_settings(settings, replicas=1)
    logout(api_client, login(api_client, "alice", password).json())

    lines = [r.getMessage() for r in caplog.records if "replica" in r.getMessage()]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Only 1 of 2 Redis replica(s) acknowledged")
    assert lines[1] == "Redis replicas acknowledge session-cache tombstones again"


@pytest.mark.parametrize("how", ["command", "kill"])
def test_a_logout_just_before_a_failover_holds_after_it(
    api_client: Any,
    user: Any,
    password: str,
    redis_set: SentinelSet,
    settings: Any,
    caplog: Any,
    how: str,
) -> None:
    """Logout, then the master goes (SENTINEL FAILOVER, or SIGKILL) while requests go on: the
    revoked token is refused before, during and after; the live one is served all along; the
    process logs one outage and its end."""
    wait_settings(settings, replicas=1)
    caplog.set_level(logging.DEBUG, logger="cocart_jwt")
    revoked = login(api_client, "alice", password).json()
    alive = login(api_client, "alice", password).json()
    warm(api_client, revoked, redis_set)
    warm(api_client, alive, redis_set)
    old_master = redis_set.master().connection_pool.connection_kwargs["port"]
    statuses: list[int] = []

    def requests() -> None:
        for tokens in (revoked, alive):
            statuses.append(api_client.get(ME, **bearer(tokens["access_token"])).status_code)

    logout(api_client, revoked)
    redis_set.fail_over(how, meanwhile=requests)

    new_master = redis_set.master()
    assert new_master.connection_pool.connection_kwargs["port"] != old_master
    assert holds_tombstone(new_master, redis_set.key(revoked["sid"]))
    seen = len(caplog.records)
    for _ in range(5):
        requests()
    assert len(statuses) >= 10 and statuses == [401, 200] * (len(statuses) // 2)
    after = [r.getMessage() for r in caplog.records[seen:]]
    assert f"session {revoked['sid']} is revoked (session cache)" in " ".join(after)
    messages = [r.getMessage() for r in caplog.records]
    outages = [m for m in messages if m.startswith("Session cache unavailable")]
    backs = [m for m in messages if m == "Session cache is back"]
    assert len(outages) <= 1 and len(backs) == len(outages), outages + backs
