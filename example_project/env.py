"""Tiny helpers that read settings from the environment (no extra dependency)."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from pathlib import Path
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


def env_flag(name: str, *, default: bool) -> bool:
    """``1``/``true``/``yes``/``on`` (any case) is True, anything else False; unset: default."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_list(name: str) -> list[str]:
    """A comma-separated environment variable as a list, without blanks."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


DEV_KEY_WARNED = "EXAMPLE_DEV_SIGNING_KEY_WARNED"


def dev_signing_key(path: Path) -> str:
    """The development signing key kept in ``path``, made on first use; warns once.

    A key made fresh at every start would log everyone out at each restart and, under
    gunicorn, make each worker refuse the others' tokens: so it is made once, atomically
    (several workers may start together), kept in a git-ignored file of mode 0600, and read
    by every process after that.
    """
    created = False
    if not path.exists():
        fd, tmp = tempfile.mkstemp(prefix=".signing-key-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(64) + "\n")
            os.link(tmp, path)  # fails if another process got there first: keep theirs
            created = True
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    key = path.read_text().strip()
    if not os.environ.get(DEV_KEY_WARNED):
        # Child processes (runserver's reloader, manage.py commands run from a script that
        # already warned) inherit this and stay quiet.
        os.environ[DEV_KEY_WARNED] = "1"
        action = "Created" if created else "Using"
        bar = "*" * 78
        print(
            f"{bar}\n"
            f"WARNING: COCART_JWT_SIGNING_KEY is not set. {action} a DEVELOPMENT signing key\n"
            f"in {path}.\n"
            "Fine on this machine; never deploy it. Anywhere real, set COCART_JWT_SIGNING_KEY\n"
            "(python manage.py jwt keygen prints one). With DJANGO_DEBUG=0 the site refuses\n"
            f"to start without it.\n{bar}",
            file=sys.stderr,
        )
    return key
