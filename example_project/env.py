"""Tiny helpers that read service URLs from the environment (no extra dependency)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

_ENGINES = {
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "pgsql": "django.db.backends.postgresql",
    "sqlite": "django.db.backends.sqlite3",
}


def parse_database_url(url: str) -> dict[str, Any]:
    """Turn ``postgres://user:pass@host:port/name?opt=v`` into a DATABASES entry.

    Also accepts ``sqlite:///relative.db`` and ``sqlite:////abs/path.db``.
    Query parameters (``sslmode=require``, ...) become ``OPTIONS``.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _ENGINES:
        raise ValueError(f"unsupported database URL scheme {parts.scheme!r}")
    engine = _ENGINES[scheme]
    if engine.endswith("sqlite3"):
        name = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        return {"ENGINE": engine, "NAME": name or ":memory:"}
    config: dict[str, Any] = {
        "ENGINE": engine,
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": unquote(parts.hostname or ""),
        "PORT": str(parts.port or ""),
    }
    options = dict(parse_qsl(parts.query))
    if options:
        config["OPTIONS"] = options
    return config


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """The (host, port) a service URL points at, for a quick reachability probe."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port
