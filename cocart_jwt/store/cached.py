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

A second key, ``cocart_jwt:{<sid>}:touch``, exists while ``last_used_at`` is fresh: the request
that creates it (``SET NX`` with a TTL of ``TOUCH_INTERVAL``) writes ``last_used_at``, once it
is accepted. The lookup reads the entry and claims the touch key together: on Redis in one
command, a Lua script (``redis_lookup``); on other caches ``get_many`` of both keys, then
``add`` of the touch key when it was absent. Both keys carry the sid as their hash tag, so a
Redis Cluster keeps them in one slot and the script runs on one node.

The claim is made before the session is judged, since on Redis it rides on the read:

* a tombstone never claims (the script compares the entry with the encoded tombstone): a
  refused session writes nothing, however often its tokens are retried;
* a miss or ``STALE`` claims: the session read from the database writes ``last_used_at`` if
  it is live; if the database refuses it, the claim is spent on nothing (its tombstone, written
  next, then answers);
* a snapshot claims, and writes if it is live.

Any cache error falls back to the strict query. A Redis that answers reads and refuses writes
(``maxmemory``) still answers the lookup: the touch claim then says it cannot tell, and the
request asks the session's own ``last_used_at``, as strict mode does.
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
from . import redis_lookup, replication

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
    """What the cache knows of a session: ``entry`` is a snapshot, a marker, or None.

    ``touch_claimed``: whether this request claimed the touch key (it then writes
    ``last_used_at``); None when the cache could not say (the caller asks the session's own
    ``last_used_at``, as strict mode does).
    """

    entry: Any = None
    touch_claimed: bool | None = None
    available: bool = True

    @property
    def revoked(self) -> bool:
        return self.entry == REVOKED

    @property
    def fillable(self) -> bool:
        return self.available and self.entry is None


def lookup(sid: str) -> Lookup:
    """The session's entry, and the touch claimed unless the entry is a tombstone: one
    command on Redis (``redis_lookup``); on other caches ``get_many``, then ``add`` of the
    touch key when it was absent."""
    key, touch = session_key(sid), touch_key(sid)
    try:
        redis = redis_lookup.for_alias(jwt_settings.CACHE, REVOKED)
        # Redis itself: out of the mutation run's reach (SQLite and local memory), pinned by
        # the tests marked redis (docs/testing.md, "Lines the mutation run does not mutate").
        if redis is not None:  # pragma: no mutate block
            scripted = redis.read(key, touch, _touch_seconds())
        else:
            cache = _cache()
            # The django-redis clients redis_lookup leaves to the cache API read the master.
            master = replication.on_master(cache)  # pragma: no mutate
            found = cache.get_many([key, touch], **master)
    except Exception as exc:  # any backend error: fall back to the database
        reads.failed(exc, STRICT_FALLBACK)
        return Lookup(available=False)
    reads.ok()
    if redis is not None:  # pragma: no mutate block
        return _claimed(scripted.entry, scripted.claim)
    entry = found.get(key)
    if touch in found or entry == REVOKED:
        return Lookup(entry=entry, touch_claimed=False)
    return _claimed(entry, _claim_touch(cache, touch))


def _claimed(entry: Any, claim: bool | Exception) -> Lookup:
    """The touch claimed or not, or the error its write met (a Redis at ``maxmemory`` answers
    the read and refuses the write): then the cache cannot say."""
    if isinstance(claim, Exception):
        writes.failed(claim, UNCACHED)
        return Lookup(entry=entry)
    if claim:
        writes.ok()
    return Lookup(entry=entry, touch_claimed=claim)


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


def _touch_seconds() -> int:
    return max(1, int(jwt_settings.TOUCH_INTERVAL.total_seconds()))


def _claim_touch(cache: BaseCache, touch: str) -> bool | Exception:
    """``add`` of the touch key: True for the one request per TOUCH_INTERVAL that writes
    ``last_used_at``; the error when the cache could not write."""
    try:
        return bool(cache.add(touch, 1, _touch_seconds()))
    except Exception as exc:  # any backend error: the caller degrades to the database
        return exc


def _safely(operation: Any) -> Any:
    try:
        result = operation(_cache())
    except Exception as exc:  # any backend error: the caller degrades to the database
        writes.failed(exc, UNCACHED)
        return None
    writes.ok()
    return result
