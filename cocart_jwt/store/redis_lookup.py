"""Cached mode's lookup on Redis: the session entry and the touch claim in one command.

A Lua script (``LOOKUP_SCRIPT``) on the session's two keys, which share its hash tag (one
Redis Cluster slot, one node), GETs the entry and, unless the entry is a tombstone or the
touch key exists, claims the touch key with ``SET key 1 NX EX <TOUCH_INTERVAL>``. It is sent
as EVALSHA; a server that does not know it yet (new, restarted, promoted) answers NOSCRIPT, and
that request sends it whole (EVAL), which teaches the server its SHA.

The keys are the ones the cache alias makes (``KEY_PREFIX``, ``VERSION``, ``KEY_FUNCTION``)
and the entry is decoded with the alias's own serializer and compressor, so the entries,
tombstones and fills written through the Django cache API are the ones read here. The script
goes to the alias's primary: django-redis's master (its ``SentinelClient`` included: a replica
may not hold a tombstone yet), the first server of Django's ``RedisCache``, the node of the
slot in a ``RedisClusterCache``.

Which caches: django-redis with its ``DefaultClient`` or ``SentinelClient``, Django's
``RedisCache``, ``cocart_jwt.cache.RedisClusterCache``. Any other cache (local memory,
memcached, django-redis's herd and shard clients, which store or place keys their own way)
keeps the Django cache API (``for_alias`` answers None).

What is resolved from the alias (the redis-py client, the script, the key and value
functions) is resolved once per process, not per request: redis-py clients are thread-safe,
and the functions kept are pure. It is forgotten when ``CACHES`` or ``COCART_JWT`` change.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

try:
    from redis.exceptions import NoScriptError
except ImportError:  # redis-py is optional (the "redis" extra): then no cache here is Redis

    class NoScriptError(Exception):  # type: ignore[no-redef]
        """Stands in for redis-py's; never raised without redis-py."""


from ..cache import django_redis_client, redis_client
from ..settings import jwt_settings

# KEYS: the session entry, its touch key. ARGV: the touch interval in seconds, the tombstone
# as the cache encodes it. Returns {entry, claim}: the claim is SET's reply (OK: claimed) when
# the touch key was absent and the entry is no tombstone, else nil. Only a due touch writes,
# with redis.pcall: a Redis at maxmemory refuses the SET, and the read is still answered.
LOOKUP_SCRIPT = """
local entry = redis.call('GET', KEYS[1])
if entry == ARGV[2] or redis.call('EXISTS', KEYS[2]) == 1 then
  return {entry, false}
end
return {entry, redis.pcall('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1])}
"""
LOOKUP_SHA = hashlib.sha1(LOOKUP_SCRIPT.encode()).hexdigest()  # noqa: S324  # Redis's script id


@dataclass(frozen=True)
class Found:
    """The entry (decoded, or None), and whether this request claimed the touch: True,
    False, or the error the write met."""

    entry: Any
    claim: bool | Exception


@dataclass(frozen=True)
class RedisLookup:
    """The one-command lookup for one cache alias."""

    client: Any  # redis-py's Redis (the primary) or RedisCluster: thread-safe, shared
    make_key: Callable[[str], Any]
    loads: Callable[[bytes], Any]
    tombstone: bytes

    def read(self, session_key: str, touch_key: str, touch_seconds: int) -> Found:
        # redis-py's Script object does the same with more work per call.
        arguments = (
            2,
            self.make_key(session_key),
            self.make_key(touch_key),
            touch_seconds,
            self.tombstone,
        )
        try:
            raw, claim = self.client.evalsha(LOOKUP_SHA, *arguments)
        except NoScriptError:
            raw, claim = self.client.eval(LOOKUP_SCRIPT, *arguments)
        entry = None if raw is None else self.loads(raw)
        return Found(entry, claim if isinstance(claim, Exception) else claim is not None)


_resolved: dict[str, RedisLookup | None] = {}
_lock = threading.Lock()


def for_alias(alias: str, tombstone: Any) -> RedisLookup | None:
    """The lookup for cache ``alias``, or None when it is not a Redis this module reads."""
    try:
        return _resolved[alias]
    except KeyError:
        pass
    with _lock:
        if alias not in _resolved:
            _resolved[alias] = _resolve(caches[alias], tombstone)
        return _resolved[alias]


@jwt_settings.on_reload
def forget() -> None:
    """``CACHES`` or ``COCART_JWT`` changed: resolve again on the next lookup."""
    with _lock:
        _resolved.clear()


def _resolve(cache: Any, tombstone: Any) -> RedisLookup | None:
    codec = _codec(cache)
    client = None if codec is None else redis_client(cache)
    if codec is None or client is None:
        return None
    loads, dumps = codec
    return RedisLookup(
        client=client,
        make_key=cache.make_key,
        loads=loads,
        tombstone=dumps(tombstone),
    )


def _codec(cache: Any) -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]] | None:
    """How the cache decodes and encodes a value; None for a cache read otherwise."""
    client = django_redis_client(cache)
    if client is not None:
        # django-redis is optional; a cache with its client has imported it already.
        from django_redis.client import DefaultClient, SentinelClient

        if type(client) not in (DefaultClient, SentinelClient):
            return None
        return client.decode, lambda value: client.encode(value, allow_int=False)
    if isinstance(cache, RedisCache):  # Django's, and RedisClusterCache
        serializer = cache._cache._serializer  # type: ignore[attr-defined]
        return serializer.loads, serializer.dumps
    return None
