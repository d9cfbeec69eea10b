"""A Redis Cluster cache backend, and the redis-py client behind a cache alias.

Django ships no cache for Redis Cluster and django-redis supports none. ``RedisClusterCache``
is Django's own ``RedisCache`` with redis-py's ``RedisCluster`` as its client::

    CACHES = {
        "default": {
            "BACKEND": "cocart_jwt.cache.RedisClusterCache",
            # Startup nodes: any of the cluster's nodes; the client discovers the rest.
            "LOCATION": ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"],
            # Passed to RedisCluster (and on to each node's connections).
            "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
        },
    }

Set ``socket_timeout`` and ``socket_connect_timeout``. Unless ``OPTIONS`` names a ``retry``,
a command that times out or loses its connection is not retried: it fails after the timeout
and the caller falls back (the strict query, the rate limits' fail-open setting), where
redis-py's default retries with backoff would hold each request for seconds.

A command of one key goes to the node that holds its slot (redis-py follows MOVED and ASK).
The commands of several keys are split by slot: ``get_many`` sends one MGET per slot and
``set_many`` one ``SET key value EX ttl`` per key, in one pipeline per node, so the keys of one
session, which share a hash tag (``cocart_jwt:{<sid>}:...``), cost one command on one node.

This module imports nothing of the package.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from django.core.cache.backends.base import BaseCache
    from redis.cluster import RedisCluster


class RedisClusterCacheClient(RedisCacheClient):
    """Django's Redis cache client, talking to a cluster through one ``RedisCluster``."""

    _servers: list[str]
    _serializer: Any

    def __init__(self, servers: list[str], serializer: Any = None, **options: Any) -> None:
        super().__init__(servers, serializer)
        self._cluster_options = options

    @cached_property
    def _cluster(self) -> RedisCluster:
        return _shared_cluster(self._servers, self._cluster_options)

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        return self._cluster

    def get_many(self, keys: Iterable[Any]) -> dict[Any, Any]:
        keys = list(keys)
        values = self._cluster.mget_nonatomic(keys)
        return {
            key: self._serializer.loads(value)
            for key, value in zip(keys, values, strict=True)
            if value is not None
        }

    def set_many(self, data: Mapping[Any, Any], timeout: Any) -> list[Any]:  # type: ignore[override]
        """Each key with its own SET (and its TTL), in one pipeline per node.

        Returns the keys a node refused; raises when every key failed, as a single-node
        Redis would.
        """
        pipeline = self._cluster.pipeline()
        for key, value in data.items():
            if timeout == 0:  # Django's meaning of a zero timeout: gone at once
                pipeline.delete(key)
            else:
                pipeline.set(key, self._serializer.dumps(value), ex=timeout)
        results = pipeline.execute(raise_on_error=False)
        errors = {
            key: result
            for key, result in zip(data, results, strict=True)
            if isinstance(result, Exception)
        }
        if errors and len(errors) == len(data):
            raise next(iter(errors.values()))
        return list(errors)

    def clear(self) -> bool:
        self._cluster.flushdb(target_nodes=self._cluster.PRIMARIES)
        return True


class RedisClusterCache(RedisCache):
    """``CACHES`` backend for a Redis Cluster: ``LOCATION`` one or more ``redis://host:port``
    startup nodes (``rediss://`` for TLS; user and password in the first URL apply to every
    node), ``OPTIONS`` keyword arguments of redis-py's ``RedisCluster``."""

    _servers: list[str]
    _options: dict[str, Any]

    @cached_property
    def _cache(self) -> RedisClusterCacheClient:
        return RedisClusterCacheClient(self._servers, **self._options)

    def set_many(
        self, data: dict[str, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[str]:
        """Django's contract, which its own RedisCache does not keep: the keys not written."""
        if not data:
            return []
        made = {self.make_and_validate_key(key, version=version): key for key in data}
        failed = self._cache.set_many(
            {made_key: data[key] for made_key, key in made.items()},
            self.get_backend_timeout(timeout),
        )
        return [made[key] for key in failed]


def django_redis_client(cache: Any) -> Any | None:
    """django-redis's client object (``DefaultClient``, ``SentinelClient``...), or None."""
    client = getattr(cache, "client", None)
    return client if hasattr(client, "get_client") else None


def redis_client(cache: BaseCache) -> Any | None:
    """The redis-py client that writes for ``cache``, or None when it is not a Redis cache.

    django-redis: its primary's client. Django's ``RedisCache``: its first server's.
    ``RedisClusterCache``: the ``RedisCluster``, which sends each command of one key to the
    node that holds it.
    """
    client = django_redis_client(cache)
    if client is not None:
        return client.get_client(write=True)
    if isinstance(cache, RedisCache):
        return cache._cache.get_client(write=True)
    return None


# One RedisCluster per configuration and process, shared by the threads (Django makes a cache
# object per thread; RedisCluster is thread-safe and each one maps the slots when it starts).
_clusters: dict[str, RedisCluster] = {}
_clusters_lock = threading.Lock()


def _shared_cluster(servers: list[str], options: dict[str, Any]) -> RedisCluster:
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.retry import Retry

    identity = repr((servers, sorted(options.items())))
    with _clusters_lock:
        if identity not in _clusters:
            first, *others = servers
            nodes = [ClusterNode(*_host_port(url)) for url in others]
            # No retry unless OPTIONS asks: redis-py's default retries with backoff and would
            # hold a request for seconds on a node that hangs; the caller has a fallback.
            options = {"retry": Retry(NoBackoff(), 0), **options}
            _clusters[identity] = RedisCluster(url=first, startup_nodes=nodes, **options)
        return _clusters[identity]


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379
