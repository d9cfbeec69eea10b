"""Cached mode on a replicated Redis (a master, its replicas, Sentinel): what ``cached`` needs
beyond the Django cache API, through the cache alias's own django-redis client.

* Reads that decide acceptance go to the master (``on_master``). django-redis sends reads to a
  replica when it has several servers (``SentinelClient`` always does); a replica a few writes
  behind still holds the live snapshot of a session just revoked, and would let its token in.
* After a tombstone or stale marker, ``WAIT`` for ``REDIS_WAIT_REPLICAS`` replicas
  (``write_and_wait``). Redis replicates asynchronously: a master that fails over just after
  a write can take the write with it, and the promoted replica then still holds the live
  snapshot. ``WAIT`` counts the writes of its own connection, so the markers and the ``WAIT``
  go in one pipeline, one connection, one master, one round trip.

``WAIT`` narrows the loss, it does not rule it out: it returns after ``REDIS_WAIT_TIMEOUT``
with fewer replicas when they lag or are cut off (logged here, once until they catch up), and
Sentinel may still promote a replica that had not received the write. Nothing here raises
beyond what the cache itself raises; ``cached`` turns that into its outage log.

Caches other than django-redis are left alone: both functions then change nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from ..cache import django_redis_client
from ..settings import jwt_settings

logger = logging.getLogger("cocart_jwt")


def on_master(cache: Any) -> dict[str, Any]:
    """Keyword arguments that send a django-redis read to the master (none for other caches)."""
    client = django_redis_client(cache)
    return {} if client is None else {"client": client.get_client(write=True)}


def write_and_wait(cache: Any, values: dict[str, Any], ttl: int) -> list[str] | None:
    """Write ``values`` (cache key -> marker) for ``ttl`` seconds and ``WAIT`` for
    ``REDIS_WAIT_REPLICAS`` replicas, in one pipeline on the master; the keys not written.

    None when there is nothing to wait for (``REDIS_WAIT_REPLICAS = 0``, or not django-redis):
    the caller writes the markers itself.
    """
    replicas = jwt_settings.REDIS_WAIT_REPLICAS
    client = django_redis_client(cache)
    if not replicas or client is None:
        return None
    pipeline = client.get_client(write=True).pipeline(transaction=False)
    for key, value in values.items():
        cache.set(key, value, ttl, client=pipeline)  # queued: encoded and prefixed as usual
    # Inside MULTI, WAIT would answer at once without waiting: hence transaction=False.
    pipeline.execute_command("WAIT", replicas, wait_milliseconds())
    *written, acknowledged = pipeline.execute()
    acknowledgements.record(int(acknowledged), replicas)
    return [key for key, done in zip(values, written, strict=True) if not done]


def wait_milliseconds() -> int:
    """``REDIS_WAIT_TIMEOUT`` for ``WAIT``, never 0 (which would wait for ever)."""
    return max(1, round(jwt_settings.REDIS_WAIT_TIMEOUT.total_seconds() * 1000))


class Acknowledgements:
    """Logs replicas that fall short once, and that they are back once: not per revocation."""

    def __init__(self) -> None:
        self.short = False

    def record(self, acknowledged: int, wanted: int) -> None:
        if acknowledged < wanted and not self.short:
            self.short = True
            logger.warning(
                "Only %d of %d Redis replica(s) acknowledged a session-cache tombstone within "
                "%d ms (REDIS_WAIT_TIMEOUT); a failover now may lose it, and the revoked "
                "session's tokens would be accepted again until its cache entry expires "
                "(at most SESSION_CACHE_TTL). Not logged again until the replicas catch up.",
                acknowledged,
                wanted,
                wait_milliseconds(),
            )
        elif acknowledged >= wanted and self.short:
            self.short = False
            logger.warning("Redis replicas acknowledge session-cache tombstones again")


acknowledgements = Acknowledgements()
