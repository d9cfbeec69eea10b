"""System checks of the Redis caches ``COCART_JWT`` uses; ``checks.check_settings`` runs them.

E017 bad ``REDIS_WAIT_REPLICAS`` / ``REDIS_WAIT_TIMEOUT``. W008 ``REDIS_WAIT_REPLICAS`` with a
``CACHE`` that cannot ``WAIT`` (not django-redis). W009 a Redis cache of ``CACHE`` or
``RATE_LIMIT_CACHE`` without a socket timeout: a hung Redis then hangs every request. W010
``REDIS_WAIT_TIMEOUT`` not shorter than the ``CACHE``'s socket timeout: a ``WAIT`` that waits
its full time ends in a socket error.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from .settings import jwt_settings

DJANGO_REDIS = "django_redis.cache.RedisCache"
# Redis cache backends -> the OPTIONS key of their socket (read) timeout, in seconds.
SOCKET_TIMEOUT_OPTION = {
    DJANGO_REDIS: "SOCKET_TIMEOUT",
    "django.core.cache.backends.redis.RedisCache": "socket_timeout",
    "cocart_jwt.cache.RedisClusterCache": "socket_timeout",
}
TIMEOUT_HINT = (
    'Give the cache a timeout well under a second: for django-redis OPTIONS {"SOCKET_TIMEOUT": '
    '0.25, "SOCKET_CONNECT_TIMEOUT": 0.25}, for Django\'s RedisCache OPTIONS {"socket_timeout": '
    '0.25, "socket_connect_timeout": 0.25}. A request then waits at most that long for a hung '
    "Redis before the strict query answers it."
)


def error(check_id: int, msg: str, hint: str) -> Error:
    return Error(msg, hint=hint, id=f"cocart_jwt.E{check_id:03d}")


def warning(check_id: int, msg: str, hint: str) -> Warning:
    return Warning(msg, hint=hint, id=f"cocart_jwt.W{check_id:03d}")


def _cache_config(alias: Any) -> dict[str, Any]:
    config = getattr(settings, "CACHES", {}).get(alias)
    return config if isinstance(config, dict) else {}


def socket_timeout(alias: Any) -> float | None:
    """The socket timeout configured for a Redis cache alias; None when it has none."""
    config = _cache_config(alias)
    option = SOCKET_TIMEOUT_OPTION.get(config.get("BACKEND", ""))
    options = config.get("OPTIONS")
    value = options.get(option) if option and isinstance(options, dict) else None
    return (
        value if isinstance(value, int | float) and not isinstance(value, bool) and value else None
    )


def _is_redis(alias: Any) -> bool:
    return _cache_config(alias).get("BACKEND") in SOCKET_TIMEOUT_OPTION


def _cached_mode() -> bool:
    ttl = jwt_settings.SESSION_CACHE_TTL
    return isinstance(ttl, timedelta) and ttl > timedelta(0)


def _wait_replicas() -> int | None:
    replicas = jwt_settings.REDIS_WAIT_REPLICAS
    valid = isinstance(replicas, int) and not isinstance(replicas, bool) and replicas >= 0
    return replicas if valid else None


def check_redis() -> Iterator[CheckMessage]:
    yield from check_wait()
    yield from check_socket_timeouts()


def check_wait() -> Iterator[CheckMessage]:
    replicas = _wait_replicas()
    if replicas is None:
        yield error(
            17,
            "COCART_JWT REDIS_WAIT_REPLICAS must be an integer of at least 0.",
            hint="Use the number of Redis replicas that must hold a tombstone before a "
            "revocation returns (1 with one replica), or 0 (the default) not to wait.",
        )
        return
    try:
        timeout = jwt_settings.REDIS_WAIT_TIMEOUT
    except (TypeError, ValueError, OverflowError):  # E005 reports a timeout of the wrong type
        return
    if replicas and timeout <= timedelta(0):
        yield error(
            17,
            "COCART_JWT REDIS_WAIT_TIMEOUT must be positive when REDIS_WAIT_REPLICAS is set.",
            hint="Use a fraction of a second, such as timedelta(milliseconds=100) (the "
            "default): a revocation waits at most that long for the replicas.",
        )
    if not replicas or not _cached_mode():
        return
    if _cache_config(jwt_settings.CACHE).get("BACKEND") != DJANGO_REDIS:
        yield warning(
            8,
            "COCART_JWT REDIS_WAIT_REPLICAS is set, but CACHE is not a django-redis cache: "
            "tombstones are written without waiting for replicas.",
            hint="Use django-redis (with its SentinelClient behind Sentinel) for CACHE, or set "
            "REDIS_WAIT_REPLICAS = 0.",
        )
        return
    limit = socket_timeout(jwt_settings.CACHE)
    if limit is not None and timeout.total_seconds() >= limit:
        yield warning(
            10,
            "COCART_JWT REDIS_WAIT_TIMEOUT is not shorter than the SOCKET_TIMEOUT of CACHE: "
            "when replicas lag, the WAIT ends in a socket timeout, logged as a cache outage.",
            hint=f"Lower REDIS_WAIT_TIMEOUT below {limit} s (0.1 s is the default), or raise "
            "the cache's SOCKET_TIMEOUT above it.",
        )


def check_socket_timeouts() -> Iterator[CheckMessage]:
    used = []
    if _cached_mode():
        used.append(("CACHE", jwt_settings.CACHE))
    rates = jwt_settings.RATE_LIMITS
    if isinstance(rates, dict) and any(rate is not None for rate in rates.values()):
        used.append(("RATE_LIMIT_CACHE", jwt_settings.RATE_LIMIT_CACHE))
    for name, alias in used:
        if _is_redis(alias) and socket_timeout(alias) is None:
            yield warning(
                9,
                f"COCART_JWT {name} is the Redis cache {alias!r}, which has no socket timeout: "
                "a Redis that hangs (no answer, connection open) holds every request for as "
                "long as the hang.",
                hint=TIMEOUT_HINT,
            )
