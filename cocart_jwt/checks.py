"""System checks for ``COCART_JWT``. Ids are stable; docs/settings.md lists them.

Errors: E001 unknown algorithm, E002 missing or short HMAC secret, E003 asymmetric algorithm
without a usable key, E004 key that does not fit its algorithm, E005 bad lifetime or number,
E006 bad rate limit, E007 bad KEY_ID / FALLBACK_KEYS, E008 unknown REVOKE_ON event, E009
import string that does not import, E010 cache alias not in CACHES, E011 bad TRUSTED_PROXIES,
E012 COCART_JWT is not a dict, E013 cookie transport with insecure cookies while DEBUG is off,
E014 bad COOKIE_SAMESITE (or SameSite=None without Secure) or cookie name, E015 bad
RATE_LIMIT_IPV6_PREFIX, E016 a site that issues tokens without ``cocart_jwt.urls`` routed,
E017, W008, W009, W010 (redis_checks); E018 (idle_checks); E019 E020 W011 (scope_checks); E021 W012.
Warnings: W001 signing key equal to SECRET_KEY, W002 process-local rate-limit cache with DEBUG
off, W003 cached mode without a shared cache, W004 unknown setting name, W005 no signing key,
W006 signed-cookie sessions (a login link's Django session cannot be ended by a revocation),
W007 a key that is not there yet, while migrating (E002/E003 for every other command).

Every message says how to fix it (a ``hint``), and names settings as ``COCART_JWT NAME``.

A key that is not there yet (an unset ``env:`` variable, a key file that does not exist) is
an error for ``check``, ``check --deploy`` and ``runserver``, but only W007 for ``migrate``: a
release step may migrate before the secrets are mounted, and migrating needs no key. Django
tells the two apart for us: ``migrate`` runs the checks with ``databases=[its alias]``, the
others without (``collectstatic`` runs only the ``staticfiles`` checks, none of these). So
``check --database default`` answers as ``migrate`` would. A key that is there but wrong
(too short, wrong type, a PEM that does not parse) is an error for every command.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .browser_sessions import revocable_browser_sessions
from .cookies import SAMESITE_VALUES
from .http import UNIX_SOCKET_PROXY, valid_ipv6_prefix
from .keys import KeyConfigurationError, build_keyring, is_hmac, keyring, read_key_material
from .link_views import URLS_HINT, login_link_routed
from .ratelimit import RATE_NAMES, parse_rate
from .redis_checks import check_redis
from .settings import DEFAULTS, DURATIONS, IMPORT_STRINGS, REVOKE_EVENTS, SETTING_NAME, jwt_settings

PROCESS_LOCAL_CACHES = frozenset(
    {
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
    }
)
POSITIVE_DURATIONS = (
    "ACCESS_TOKEN_LIFETIME",
    "REFRESH_TOKEN_LIFETIME",
    "SESSION_MAX_LIFETIME",
    "ADMIN_TOKEN_LIFETIME",
    "LOGIN_LINK_LIFETIME",
    "REAUTH_MAX_AGE",
)


def error(check_id: int, msg: str, hint: str | None = None) -> Error:
    return Error(msg, hint=hint, id=f"cocart_jwt.E{check_id:03d}")


def warning(check_id: int, msg: str, hint: str | None = None) -> Warning:
    return Warning(msg, hint=hint, id=f"cocart_jwt.W{check_id:03d}")


@register(Tags.security, "cocart_jwt")
def check_settings(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    raw = getattr(settings, SETTING_NAME, {})
    if not isinstance(raw, dict):
        return [
            error(
                12,
                f"{SETTING_NAME} must be a dict, not {type(raw).__name__}.",
                hint='For example COCART_JWT = {"SIGNING_KEY": "env:COCART_JWT_SIGNING_KEY"}.',
            )
        ]
    messages: list[CheckMessage] = [
        warning(4, f"{SETTING_NAME} has an unknown setting {name!r}.", hint=spelling_hint(name))
        for name in sorted(set(raw) - set(DEFAULTS), key=str)
    ]
    # Only migrate (and check --database) pass databases: see the module's docstring.
    messages.extend(check_keys(migrating=databases is not None))
    for check in (
        check_durations,
        check_numbers,
        check_rates,
        check_revoke_on,
        check_import_strings,
        check_caches,
        check_trusted_proxies,
        check_ipv6_prefix,
        check_cookies,
        check_session_engine,
        check_redis,
    ):
        messages.extend(check())
    return messages


def spelling_hint(name: Any) -> str:
    close = difflib.get_close_matches(str(name), list(DEFAULTS), n=1)
    if close:
        return f"Did you mean {close[0]!r}? docs/settings.md lists every setting."
    return "Check its spelling: docs/settings.md lists every setting."


def check_keys(*, migrating: bool) -> Iterator[CheckMessage]:
    try:
        ring = build_keyring()
    except KeyConfigurationError as exc:  # its message and hint never hold a key value
        if exc.absent and migrating:
            yield warning(
                7,
                f"{exc.message} Migrating goes on without it, but check, runserver and "
                "every request that signs or verifies a token fail until it is there.",
                hint=exc.hint,
            )
        else:
            yield Error(exc.message, hint=exc.hint, id=exc.check_id)
        return
    if ring.signing_key is None:
        yield warning(
            5,
            "No SIGNING_KEY: this site verifies tokens but cannot issue any.",
            hint="Right for a site that only verifies tokens. To issue them, set SIGNING_KEY "
            "to the private key (python manage.py jwt keygen --algorithm "
            f"{jwt_settings.ALGORITHM} makes a pair).",
        )
    elif is_hmac(ring.signing_key.algorithm) and ring.signing_key.signer == _secret_key_bytes():
        yield warning(
            1,
            "COCART_JWT SIGNING_KEY is the same as SECRET_KEY.",
            hint="Use a separate secret so rotating one does not break or expose the other.",
        )


def _secret_key_bytes() -> bytes | None:
    try:
        return read_key_material(settings.SECRET_KEY, asymmetric=False, setting="SECRET_KEY")
    except KeyConfigurationError:
        return None


def _duration(name: str) -> timedelta | None:
    try:
        value = getattr(jwt_settings, name)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if isinstance(value, timedelta) else None


def duration_hint(name: str) -> str:
    seconds = int(DEFAULTS[name].total_seconds())
    return f"Use a timedelta or a number of seconds; the default is timedelta(seconds={seconds})."


def check_durations() -> Iterator[CheckMessage]:
    for name in sorted(DURATIONS - jwt_settings.unlimited()):
        value = _duration(name)
        if value is None:
            yield error(
                5,
                f"COCART_JWT {name} must be a timedelta or a number of seconds.",
                hint=duration_hint(name),
            )
        elif name in POSITIVE_DURATIONS and value <= timedelta(0):
            yield error(5, f"COCART_JWT {name} must be positive.", hint=duration_hint(name))
        elif value < timedelta(0):
            yield error(5, f"COCART_JWT {name} must not be negative.", hint=duration_hint(name))
    access, refresh = _duration("ACCESS_TOKEN_LIFETIME"), _duration("REFRESH_TOKEN_LIFETIME")
    longest = _duration("SESSION_MAX_LIFETIME")
    if access and refresh and access > refresh:
        yield error(
            5,
            "COCART_JWT ACCESS_TOKEN_LIFETIME is longer than REFRESH_TOKEN_LIFETIME.",
            hint="Access tokens live minutes (default 15), refresh tokens days (default 30): "
            "shorten the first or lengthen the second.",
        )
    if refresh and longest and refresh > longest:
        yield error(
            5,
            "COCART_JWT REFRESH_TOKEN_LIFETIME is longer than SESSION_MAX_LIFETIME.",
            hint="A session ends at SESSION_MAX_LIFETIME (default 90 days) whatever its "
            "refresh token says: shorten REFRESH_TOKEN_LIFETIME or lengthen the maximum.",
        )


def check_numbers() -> Iterator[CheckMessage]:
    cap = jwt_settings.MAX_TOKENS_PER_USER
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        yield error(
            5,
            "COCART_JWT MAX_TOKENS_PER_USER must be a positive integer or None.",
            hint="Use 10 (the default), or None for no cap on a user's live sessions.",
        )
    if not isinstance(jwt_settings.TOKEN_PREFIX, str) or len(jwt_settings.TOKEN_PREFIX) > 32:
        yield error(
            5,
            "COCART_JWT TOKEN_PREFIX must be a string of at most 32 characters.",
            hint='For example "shop_rt_", or "" (the default) for no prefix.',
        )


def check_rates() -> Iterator[CheckMessage]:
    rates = jwt_settings.RATE_LIMITS
    if not isinstance(rates, dict):
        yield error(
            6,
            "COCART_JWT RATE_LIMITS must be a dict such as {'login': '5/min'}.",
            hint="Name only the limits to change: the others keep their defaults.",
        )
        return
    for name, rate in rates.items():
        if name not in RATE_NAMES:
            yield error(
                6,
                f"COCART_JWT RATE_LIMITS has an unknown endpoint {name!r}.",
                hint=f"Use {', '.join(sorted(RATE_NAMES))}.",
            )
        elif rate is not None:
            try:
                parse_rate(rate)
            except ValueError as exc:
                yield error(
                    6,
                    f"COCART_JWT RATE_LIMITS[{name!r}]: {exc}.",
                    hint="Use None for no limit, or e.g. '5/min', '100/hour'.",
                )


def check_revoke_on() -> Iterator[CheckMessage]:
    events = jwt_settings.REVOKE_ON
    if isinstance(events, str) or not isinstance(events, list | tuple | set | frozenset):
        yield error(
            8,
            "COCART_JWT REVOKE_ON must be a list.",
            hint=f"A list of events among {', '.join(sorted(REVOKE_EVENTS))}; [] for none.",
        )
        return
    for event in set(events) - REVOKE_EVENTS:
        yield error(
            8,
            f"COCART_JWT REVOKE_ON has an unknown event {event!r}.",
            hint=f"Use {', '.join(sorted(REVOKE_EVENTS))}.",
        )


def check_import_strings() -> Iterator[CheckMessage]:
    for name in sorted(IMPORT_STRINGS):
        hint = f'Give the dotted path of a function, such as "myshop.jwt.{name.lower()}".'
        try:
            value = getattr(jwt_settings, name)
        except ImportError as exc:
            reason = str(exc).rstrip(".")
            yield error(9, f"COCART_JWT {name} does not import: {reason}.", hint=hint)
            continue
        if value is not None and not callable(value):
            yield error(9, f"COCART_JWT {name} must be an import path of a callable.", hint=hint)


def check_caches() -> Iterator[CheckMessage]:
    caches = getattr(settings, "CACHES", {})
    for name in ("CACHE", "RATE_LIMIT_CACHE"):
        if getattr(jwt_settings, name) not in caches:
            yield error(
                10,
                f"COCART_JWT {name} names a cache alias that is not in CACHES.",
                hint=f"Use one of {', '.join(map(repr, caches)) or 'the CACHES aliases'}, or "
                "add the alias to CACHES.",
            )
    rate_cache = caches.get(jwt_settings.RATE_LIMIT_CACHE, {})
    if not settings.DEBUG and rate_cache.get("BACKEND") in PROCESS_LOCAL_CACHES:
        yield warning(
            2,
            "COCART_JWT RATE_LIMIT_CACHE is process-local: each process counts on its own.",
            hint="Use a shared cache (django-redis) in production.",
        )
    ttl = _duration("SESSION_CACHE_TTL")
    session_cache = caches.get(jwt_settings.CACHE, {})
    if ttl and session_cache.get("BACKEND") in PROCESS_LOCAL_CACHES:
        yield warning(
            3,
            "COCART_JWT SESSION_CACHE_TTL > 0 with a process-local CACHE: a revocation in one "
            "process is not seen by the others.",
            hint="Use a shared cache (django-redis), or SESSION_CACHE_TTL = 0.",
        )


def check_trusted_proxies() -> Iterator[CheckMessage]:
    proxies = jwt_settings.TRUSTED_PROXIES
    if isinstance(proxies, str) or not isinstance(proxies, list | tuple):
        yield error(
            11,
            "COCART_JWT TRUSTED_PROXIES must be a list of IP addresses or networks.",
            hint='For example ["10.0.0.0/8"], or ["unix"] for a proxy on a unix socket.',
        )
        return
    for proxy in proxies:
        if proxy == UNIX_SOCKET_PROXY:
            continue
        try:
            ipaddress.ip_network(proxy, strict=False)
        except (TypeError, ValueError):
            yield error(
                11,
                f"COCART_JWT TRUSTED_PROXIES has {proxy!r}, not an IP or network.",
                hint='Use IPs or networks such as "10.0.0.0/8", or "unix" for a proxy on a '
                "unix socket.",
            )


def check_ipv6_prefix() -> Iterator[CheckMessage]:
    if not valid_ipv6_prefix(jwt_settings.RATE_LIMIT_IPV6_PREFIX):
        yield error(
            15,
            "COCART_JWT RATE_LIMIT_IPV6_PREFIX must be an integer from 1 to 128.",
            hint="Use 64 (the default: one count per /64, what one IPv6 host usually holds), "
            "or 128 to count each address on its own.",
        )


def check_cookies() -> Iterator[CheckMessage]:
    if not jwt_settings.COOKIE_TRANSPORT:
        return
    secure, samesite = bool(jwt_settings.COOKIE_SECURE), jwt_settings.COOKIE_SAMESITE
    if not secure and not settings.DEBUG:
        yield error(
            13,
            "COCART_JWT COOKIE_TRANSPORT puts tokens in cookies without Secure, DEBUG off.",
            hint="Set COOKIE_SECURE = True (browsers accept Secure cookies on http://localhost).",
        )
    if samesite not in SAMESITE_VALUES:
        yield error(
            14,
            "COCART_JWT COOKIE_SAMESITE must be 'Lax', 'Strict' or 'None'.",
            hint="'Lax' (the default) suits a front end on the API's own site.",
        )
    elif samesite == "None" and not secure:
        yield error(
            14,
            "COCART_JWT COOKIE_SAMESITE 'None' needs COOKIE_SECURE = True.",
            hint="Browsers drop SameSite=None cookies that are not Secure: set COOKIE_SECURE = "
            "True, or use 'Lax'.",
        )
    for name in ("REFRESH_COOKIE_NAME", "ACCESS_COOKIE_NAME"):
        value = getattr(jwt_settings, name)
        if name == "ACCESS_COOKIE_NAME" and value is None:
            continue
        if not isinstance(value, str) or not value or not value.isascii() or ";" in value:
            yield error(
                14,
                f"COCART_JWT {name} must be a plain ASCII cookie name.",
                hint=f"Use letters, digits and _, such as {DEFAULTS['REFRESH_COOKIE_NAME']!r}.",
            )


def check_session_engine() -> Iterator[CheckMessage]:
    try:
        revocable = revocable_browser_sessions()
    except (ImportError, AttributeError):  # a SESSION_ENGINE that does not import fails anyway
        return
    if not revocable:
        yield warning(
            6,
            "SESSION_ENGINE keeps sessions in signed cookies: a Django session started by a "
            "login link cannot be ended from the server. Revoking its registry session leaves "
            "that browser signed in until its cookie expires.",
            hint="Use the db, cache or cached_db session engine "
            '(for example SESSION_ENGINE = "django.contrib.sessions.backends.cached_db").',
        )


@register(Tags.urls, "cocart_jwt")
def check_urls(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A site that issues tokens needs ``cocart_jwt.urls``: login, refresh, the login-link page
    (the admin's create and mint pages make one). A resource server that only verifies tokens
    (a VERIFYING_KEY alone) serves none of them."""
    try:
        issues_tokens = keyring().signing_key is not None
    except KeyConfigurationError:  # check_keys reports it; whether the site issues is unknown
        return []
    if not issues_tokens or login_link_routed():
        return []
    return [
        error(
            16,
            "COCART_JWT has a SIGNING_KEY, but cocart_jwt.urls is not in the URLconf: "
            "clients have no login or refresh endpoint, and the admin cannot make login links.",
            hint=f"{URLS_HINT} A site that only verifies tokens sets VERIFYING_KEY alone "
            "(an RS, PS or ES algorithm) and needs no urls; one that shares an HMAC secret "
            'to verify only adds "cocart_jwt.E016" to SILENCED_SYSTEM_CHECKS.',
        )
    ]
