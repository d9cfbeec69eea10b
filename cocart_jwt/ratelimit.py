"""Rate limits counted in a shared cache: one atomic step per hit, exact across processes.

A limit is a fixed window that starts at its first hit. On Redis (django-redis, Django's own
RedisCache, or ``cocart_jwt.cache.RedisClusterCache``), a Lua script does
``INCR`` and, on the first hit, ``EXPIRE`` in one atomic step and returns the count and the
window's remaining seconds, so a crash can never leave a counter without an expiry.
Other caches (local memory, for one process) use ``add`` + ``incr``.

``RATE_LIMITS`` names what is limited and by what; a user's dict is laid over the defaults
(settings.DEFAULTS), so naming one limit keeps the others and ``None`` turns one off:

=================  ===============================  ================
name               counts                           default
=================  ===============================  ================
``login``          logins per client IP             ``"5/min"``
``refresh``        refreshes per client IP          ``"10/min"``
``validate``       validations per client IP        ``"2/min"``
``login_link``     login-link uses per client IP    ``"5/min"``
``reauthenticate`` reauthentications per client IP  ``"5/min"``
                   and, apart, per user
``revoke``         revocation requests per client   ``"10/min"``
                   IP
``introspect``     introspections per client IP     off
``login_username`` logins per username              off
``refresh_token``  refreshes per refresh token      off
``validate_token`` validations per session          off
=================  ===============================  ================

A client IP counts as itself for IPv4, as its IPv4 address when IPv4-mapped, and as its
network (``RATE_LIMIT_IPV6_PREFIX``, a /64 by default) for IPv6.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import Throttled

from .cache import redis_client
from .http import rate_limit_address
from .settings import DEFAULTS, jwt_settings
from .signals import rate_limited
from .utils import OutageLog, sha256_hex

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache

logger = logging.getLogger("cocart_jwt")

UNITS = {
    **dict.fromkeys(("s", "sec", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
# The limits whose identity is the client IP (the others count a username or a token).
PER_IP_NAMES = frozenset(
    {"login", "refresh", "validate", "login_link", "reauthenticate", "revoke", "introspect"}
)
RATE_NAMES = frozenset(
    {
        "login",
        "refresh",
        "validate",
        "login_link",
        "reauthenticate",
        "revoke",
        "introspect",
        "login_username",
        "refresh_token",
        "validate_token",
    }
)

# INCR; on the first hit EXPIRE; a key found without expiry (never, but cheap) gets one.
HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


def parse_rate(rate: str) -> tuple[int, int]:
    """``"10/min"`` -> ``(10, 60)``; ``"100/5m"`` -> ``(100, 300)``. Raise ValueError otherwise."""
    if not isinstance(rate, str):
        raise ValueError("a rate is a string such as '5/min'")
    count_text, sep, period = rate.strip().partition("/")
    multiplier_text = period.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = period[len(multiplier_text) :]
    if not sep or not count_text.isdigit() or unit not in UNITS:
        raise ValueError(f"{rate!r} is not a rate such as '5/min'")
    if multiplier_text and not multiplier_text.isdigit():
        raise ValueError(f"{rate!r} is not a rate such as '5/min'")
    count, multiplier = int(count_text), int(multiplier_text or 1)
    if count < 1 or multiplier < 1:
        raise ValueError(f"{rate!r} must allow at least one request per period")
    return count, multiplier * UNITS[unit]


@dataclass(frozen=True)
class Usage:
    """One limit after a hit: what the X-RateLimit-* headers say."""

    limit: int
    count: int
    reset_in: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(time.time()) + self.reset_in),
        }


class RateLimitExceeded(Throttled):
    default_detail = _("Too many requests. Try again later.")
    default_code = "rate_limited"

    def __init__(self, usage: Usage) -> None:
        super().__init__(wait=max(1, usage.reset_in))
        self.usage = usage


def rate_for(name: str) -> tuple[int, int] | None:
    """The effective limit ``name``: the user's rate, else the default; None when off."""
    rates = jwt_settings.RATE_LIMITS  # already merged with the defaults
    if not isinstance(rates, dict):  # cocart_jwt.E006 reports it; keep the defaults meanwhile
        rates = DEFAULTS["RATE_LIMITS"]
    rate = rates.get(name)
    return parse_rate(rate) if rate else None


def hit(name: str, identity: str, request: Any = None) -> Usage | None:
    """Count one request of ``identity`` against limit ``name``; raise when it is exceeded.

    ``identity`` is the client IP for the per-IP limits (``PER_IP_NAMES``), else a username or
    a token; only its SHA-256 reaches the cache. ``reauthenticate`` also counts per user, under
    an identity no IP can spell (``user_identity``).

    Returns None when the limit is off, or when the cache failed and RATE_LIMIT_FAIL_OPEN
    lets the request through.
    """
    rate = rate_for(name)
    if rate is None:
        return None
    limit, window = rate
    if name in PER_IP_NAMES:
        identity = rate_limit_address(identity)
    key = f"cocart_jwt:rl:{name}:{sha256_hex(identity)}"
    try:
        count, reset_in = _count(caches[jwt_settings.RATE_LIMIT_CACHE], key, window)
    except Exception as exc:  # any cache error: the configured fail-open/closed answer
        _cache_failed(exc)
        return None
    outage.ok()
    usage = Usage(limit=limit, count=count, reset_in=max(1, reset_in))
    if usage.exceeded:
        logger.warning("Rate limit %r exceeded (%d/%ds)", name, limit, window)
        rate_limited.send(RateLimitExceeded, name=name, request=request, usage=usage)
        raise RateLimitExceeded(usage)
    return usage


def user_identity(user: Any) -> str:
    """A user as an identity of a per-IP limit: counted apart from every client IP."""
    return f"user:{user.pk}"


def _count(cache: BaseCache, key: str, window: int) -> tuple[int, int]:
    # Redis (django-redis, Django's RedisCache, RedisClusterCache, whose client sends the one
    # key to the node that holds it): one round trip, the Lua script. The mutation run (SQLite
    # and local memory) cannot reach these lines, so they are not mutated there; the tests
    # marked redis and redis_cluster pin them (docs/testing.md, "Lines the mutation run does
    # not mutate").
    redis = redis_client(cache)  # pragma: no mutate
    if redis is not None:  # pragma: no mutate block
        count, ttl = redis.eval(HIT_SCRIPT, 1, cache.make_key(key), window)
        return int(count), int(ttl)
    return _count_locally(cache, key, window)


def _count_locally(cache: BaseCache, key: str, window: int) -> tuple[int, int]:
    """For caches without scripts: exact within one process (local memory locks)."""
    now = time.time()
    cache.add(f"{key}:reset", now + window, window)
    cache.add(key, 0, window)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: a new window
        cache.set(key, 1, window)
        count = 1
    reset_at = cache.get(f"{key}:reset") or now + window
    return count, math.ceil(reset_at - now)


outage = OutageLog("Rate-limit cache")


def _cache_failed(exc: Exception) -> None:
    fail_open = jwt_settings.RATE_LIMIT_FAIL_OPEN
    outage.failed(exc, "requests are let through" if fail_open else "requests are refused")
    if not fail_open:
        raise RateLimitExceeded(Usage(limit=0, count=1, reset_in=1))
