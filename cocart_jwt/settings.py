"""The ``COCART_JWT`` setting, read through one object.

``jwt_settings.ACCESS_TOKEN_LIFETIME`` reads ``settings.COCART_JWT`` lazily, fills in the
default, normalises durations to ``timedelta``, lays a user's ``RATE_LIMITS`` over the
default limits (so ``jwt_settings.RATE_LIMITS`` is the effective dict) and remembers the
result until Django's ``setting_changed`` says ``COCART_JWT`` changed; then the same object
forgets everything in place, so ``override_settings`` and pytest-django's ``settings``
fixture just work. Nothing is read at import time and nothing is written onto
``django.conf.settings``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

SETTING_NAME = "COCART_JWT"

DEFAULTS: dict[str, Any] = {
    "SIGNING_KEY": None,
    "VERIFYING_KEY": None,
    "ALGORITHM": "HS256",
    "KEY_ID": None,
    "FALLBACK_KEYS": [],
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=30),
    "SESSION_MAX_LIFETIME": timedelta(days=90),
    "ADMIN_TOKEN_LIFETIME": timedelta(hours=24),
    "LOGIN_LINK_LIFETIME": timedelta(minutes=10),
    "ISSUER": None,
    "AUDIENCE": None,
    "LEEWAY": timedelta(0),
    "MAX_TOKENS_PER_USER": 10,
    # Personal access tokens (tokens/): the scopes they may be given ({name: description}),
    # their longest life and how many live ones a user may hold.
    "SCOPES": {},
    "PAT_MAX_LIFETIME": timedelta(days=365),
    "MAX_PATS_PER_USER": 20,
    # The client_id claim of every access token (RFC 9068 section 2.2).
    "CLIENT_ID": "cocart_jwt",
    "ROTATE_REFRESH_TOKENS": True,
    "BIND_TO_IP": False,
    "BIND_TO_USER_AGENT": False,
    "TOKEN_PREFIX": "",
    "USER_CLAIMS": None,
    "PAYLOAD_HOOK": None,
    "REVOKE_ON": ["password_change", "email_change", "deactivation", "logout"],
    "SESSION_CACHE_TTL": timedelta(0),
    "TOUCH_INTERVAL": timedelta(seconds=60),
    # RecentLogin's default max_age: how long ago a login or reauthentication may be.
    "REAUTH_MAX_AGE": timedelta(minutes=5),
    # How long after refresh/ rotated a token it may come back while its child is unused (0: off).
    "REFRESH_REUSE_GRACE": timedelta(0),
    # A session unused for this long is refused (None: never).
    "SESSION_IDLE_TIMEOUT": None,
    # Merged with the user's dict (MERGED_DICTS): naming one limit keeps the others.
    "RATE_LIMITS": {
        "login": "5/min",
        "refresh": "10/min",
        "validate": "2/min",
        "login_link": "5/min",
        "reauthenticate": "5/min",
        "revoke": "10/min",
        "introspect": None,
    },
    "RATE_LIMIT_CACHE": "default",
    "RATE_LIMIT_FAIL_OPEN": True,
    "RATE_LIMIT_IPV6_PREFIX": 64,
    "TRUSTED_PROXIES": [],
    "CACHE": "default",
    # After a tombstone, WAIT for this many Redis replicas, at most REDIS_WAIT_TIMEOUT.
    "REDIS_WAIT_REPLICAS": 0,
    "REDIS_WAIT_TIMEOUT": timedelta(milliseconds=100),
    "COOKIE_TRANSPORT": False,
    "REFRESH_COOKIE_NAME": "cocart_refresh",
    "ACCESS_COOKIE_NAME": None,
    "COOKIE_DOMAIN": None,
    "COOKIE_PATH": None,
    "COOKIE_SECURE": True,
    "COOKIE_SAMESITE": "Lax",
    # Security events older than this are deleted by `jwt cleanup`; None keeps them forever.
    "EVENT_RETENTION": timedelta(days=90),
    # DPoP (RFC 9449, dpop.py): how long a proof (and a server nonce) stays fresh, the proof
    # algorithms accepted, and whether every proof must carry a nonce of this server.
    "DPOP_PROOF_LIFETIME": timedelta(seconds=60),
    "DPOP_ALGORITHMS": ["ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "EdDSA"],
    "DPOP_REQUIRE_NONCE": False,
}

DURATIONS = frozenset(
    {
        "ACCESS_TOKEN_LIFETIME",
        "REFRESH_TOKEN_LIFETIME",
        "SESSION_MAX_LIFETIME",
        "ADMIN_TOKEN_LIFETIME",
        "LOGIN_LINK_LIFETIME",
        "LEEWAY",
        "SESSION_CACHE_TTL",
        "TOUCH_INTERVAL",
        "REDIS_WAIT_TIMEOUT",
        "EVENT_RETENTION",
        "REAUTH_MAX_AGE",
        "REFRESH_REUSE_GRACE",
        "PAT_MAX_LIFETIME",
        "DPOP_PROOF_LIFETIME",
    }
)
# Durations for which None means "no limit" (EVENT_RETENTION) or "off" (SESSION_IDLE_TIMEOUT,
# checked by idle_checks.py).
OPTIONAL_DURATIONS = frozenset({"EVENT_RETENTION", "SESSION_IDLE_TIMEOUT"})

IMPORT_STRINGS = frozenset({"USER_CLAIMS", "PAYLOAD_HOOK"})

# Dicts whose user value fills in the default's keys instead of replacing the whole dict.
MERGED_DICTS = frozenset({"RATE_LIMITS"})

REVOKE_EVENTS = frozenset({"password_change", "email_change", "deactivation", "logout"})


def as_timedelta(value: Any) -> timedelta:
    """Durations may be given as ``timedelta`` or as a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a timedelta or a number of seconds, got {type(value).__name__}")
    return timedelta(seconds=value)


class JWTSettings:
    """Attribute access to ``settings.COCART_JWT`` with defaults, cached until it changes."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}
        self._reload_callbacks: list[Callable[[], None]] = []

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, SETTING_NAME, None)
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown {SETTING_NAME} setting: {name!r}")
        try:
            return self._cache[name]
        except KeyError:
            pass
        value = self.user_settings.get(name, DEFAULTS[name])
        if name in DURATIONS | OPTIONAL_DURATIONS and not (
            value is None and name in OPTIONAL_DURATIONS
        ):
            value = as_timedelta(value)
        elif name in IMPORT_STRINGS and isinstance(value, str):
            value = import_string(value)
        elif name in MERGED_DICTS and isinstance(value, dict):
            value = {**DEFAULTS[name], **value}
        self._cache[name] = value
        return value

    def unlimited(self) -> frozenset[str]:
        """The ``OPTIONAL_DURATIONS`` set to None: no limit, nothing to check."""
        return frozenset(
            name
            for name in OPTIONAL_DURATIONS
            if self.user_settings.get(name, DEFAULTS[name]) is None
        )

    def on_reload(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Register ``callback`` to forget objects derived from these settings (keys...)."""
        self._reload_callbacks.append(callback)
        return callback

    def reload(self) -> None:
        self._cache.clear()
        for callback in self._reload_callbacks:
            callback()


jwt_settings = JWTSettings()


@receiver(setting_changed)
def _reload_jwt_settings(*, setting: str, **kwargs: Any) -> None:
    if setting in (SETTING_NAME, "SECRET_KEY", "CACHES"):
        jwt_settings.reload()
