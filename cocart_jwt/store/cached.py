"""Cached mode (``SESSION_CACHE_TTL > 0``): an entry per sid in the cache.

One entry per session, ``cocart_jwt:{<sid>}:session``, holds one of:

* a snapshot: the session's and its user's field values (never the password hash);
* ``REVOKED``, a tombstone: refuse without asking the database;
* ``STALE``: the user changed; ask the database, and cache nothing until the entry expires.

The rules that keep a revoked session from coming back:

* revoking writes a tombstone (``set_many`` with an explicit TTL), it never merely deletes;
  only when the tombstone cannot be written is the entry deleted instead;
* a miss fills the entry with ``add`` (only if absent), never ``set``, so a request that read
  the database just before a revocation cannot replace the tombstone with a live snapshot;
* ``STALE`` may replace anything: it only ever sends requests to the database.

A second key, ``cocart_jwt:{<sid>}:touch``, exists while ``last_used_at`` is fresh; it is read
in the same round trip (MGET) as the entry. Both keys carry the sid as their hash tag, so a
Redis Cluster keeps them in one slot and the MGET stays one command on one node. Any cache
error falls back to the strict query.
On a replicated Redis the lookup reads the master, and markers can WAIT for replicas
(``replication``).

This module imports no model: the managers write tombstones from inside a revocation, and
``store.live`` makes and reads the snapshots.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.cache import caches

from ..settings import jwt_settings
from ..utils import OutageLog
from . import replication

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache

logger = logging.getLogger("cocart_jwt")

REVOKED = "revoked"
STALE = "stale"


def enabled() -> bool:
    return bool(jwt_settings.SESSION_CACHE_TTL > timedelta(0))


def session_key(sid: str) -> str:
    return f"cocart_jwt:{{{sid}}}:session"


def touch_key(sid: str) -> str:
    return f"cocart_jwt:{{{sid}}}:touch"


def _cache() -> BaseCache:
    return caches[jwt_settings.CACHE]


def _ttl() -> int:
    return max(1, int(jwt_settings.SESSION_CACHE_TTL.total_seconds()))


# Reads and writes fail apart (a Redis at maxmemory answers reads and refuses writes): each
# has its own log, so one outage is one line per process, not a line per request.
reads = OutageLog("Session cache")
writes = OutageLog("Session cache (writes)")
markers = OutageLog("Session cache (tombstones)")
STRICT_FALLBACK = "using the strict query until it is back"
UNCACHED = "sessions are answered by the database and not cached until it is back"
UNMARKED = (
    "revocations meanwhile write no tombstone, user changes no stale marker: if it comes "
    "back with its old entries, those can serve until they expire"
)
DELETED = (
    "revocations and user changes meanwhile delete the entries they name instead (their "
    "next request asks the database)"
)


@dataclass(frozen=True)
class Lookup:
    """What the cache knows of a session: ``entry`` is a snapshot, a marker, or None."""

    entry: Any = None
    touch_due: bool = True
    available: bool = True

    @property
    def revoked(self) -> bool:
        return self.entry == REVOKED

    @property
    def fillable(self) -> bool:
        return self.available and self.entry is None


def lookup(sid: str) -> Lookup:
    """One round trip: the session entry and its touch key."""
    key = session_key(sid)
    try:
        cache = _cache()
        # The read from the master: django-redis only, out of the mutation run's reach.
        master = replication.on_master(cache)  # pragma: no mutate
        found = cache.get_many([key, touch_key(sid)], **master)
    except Exception as exc:  # any backend error: fall back to the database
        reads.failed(exc, STRICT_FALLBACK)
        return Lookup(available=False)
    reads.ok()
    return Lookup(entry=found.get(key), touch_due=touch_key(sid) not in found)


def add(sid: str, entry: Any, ttl: int) -> None:
    """Store ``entry`` for ``sid`` unless any entry is there: a fill never replaces a tombstone."""
    _safely(lambda c: c.add(session_key(sid), entry, min(_ttl(), ttl)))


def remember_refused(sid: str) -> None:
    """A sid the database refuses (revoked, gone): answer from the cache next time."""
    _safely(lambda c: c.add(session_key(sid), REVOKED, _ttl()))


def mark_revoked(sids: Iterable[str]) -> None:
    _mark(sids, REVOKED)


def mark_stale(sids: Iterable[str]) -> None:
    _mark(sids, STALE)


def _mark(sids: Iterable[str], marker: str) -> None:
    keys = {session_key(sid): marker for sid in sids}
    if not keys or not enabled():
        return
    try:
        cache = _cache()
        # REDIS_WAIT_REPLICAS > 0 on django-redis: markers and WAIT in one pipeline.
        result = replication.write_and_wait(cache, keys, _ttl())  # pragma: no mutate
        if result is None:
            result = cache.set_many(keys, _ttl())
        failed = unwritten(keys, result)
    except Exception as exc:  # any backend error: logged once per outage, not per revocation
        markers.failed(exc, DELETED if _delete(keys) else UNMARKED)
        return
    markers.ok()
    if failed:
        logger.error(
            "Could not write %d of %d %s marker(s) to the session cache; %s",
            len(failed),
            len(keys),
            marker,
            "deleted those entries instead" if _delete(failed) else "they serve until they expire",
        )


def unwritten(keys: Iterable[str], result: Any) -> list[str]:
    """The keys ``set_many`` did not write, read from what the backend really returns.

    Django's contract is the list of keys that failed (memcached reports them; Django's
    RedisCache returns [] and raises instead); django-redis returns None (it raises too). A
    backend that answers one result per key (True/False) is read in that order.
    """
    if result is None:
        return []
    keys, results = list(keys), list(result)
    if len(results) == len(keys) and all(isinstance(r, bool) for r in results):
        return [key for key, ok in zip(keys, results, strict=True) if not ok]
    named = [key for key in keys if key in results]
    return named if named or not results else keys  # failures it cannot name: assume all


def _delete(keys: Iterable[str]) -> bool:
    """Drop entries whose tombstone could not be written: their next request asks the
    database. (A Redis at maxmemory refuses SET and still deletes.)"""
    try:
        _cache().delete_many(list(keys))
    except Exception:  # the same outage: the caller logs it
        return False
    return True


def claim_touch(sid: str) -> bool | None:
    """True for the one request per TOUCH_INTERVAL that should write ``last_used_at``; None
    when the cache cannot say (the caller then asks the session's own ``last_used_at``)."""
    interval = max(1, int(jwt_settings.TOUCH_INTERVAL.total_seconds()))
    claimed = _safely(lambda c: c.add(touch_key(sid), 1, interval))
    return None if claimed is None else bool(claimed)


def _safely(operation: Any) -> Any:
    try:
        result = operation(_cache())
    except Exception as exc:  # any backend error: the caller degrades to the database
        writes.failed(exc, UNCACHED)
        return None
    writes.ok()
    return result
