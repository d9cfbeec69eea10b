"""Which real services the test suite can use.

Order for each service:
1. ``DATABASE_URL`` / ``REDIS_URL`` when set: used as given (CI sets them).
2. ``COCART_JWT_TEST_SERVICES=none``: no service, SQLite and local memory.
3. Otherwise a quick TCP connect to the local default; used when it answers.

The topologies of a scaled-out deployment (a Redis Cluster, a Sentinel set, PgBouncer) are used
only when their variable names them (``TOPOLOGIES``); ``.ci/run`` starts each and sets it.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass

from example_project.env import host_port

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/cocart_jwt"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
PROBE_TIMEOUT = 0.3


def reachable(url: str, default_port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when something accepts a TCP connection at the URL's host and port."""
    host, port = host_port(url, default_port)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _services_disabled() -> bool:
    return os.environ.get("COCART_JWT_TEST_SERVICES", "").strip().lower() == "none"


@functools.cache
def postgres_url() -> str | None:
    """A PostgreSQL URL to test against, or None for SQLite."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if _services_disabled():
        return None
    return DEFAULT_POSTGRES_URL if reachable(DEFAULT_POSTGRES_URL, 5432) else None


@functools.cache
def redis_url() -> str | None:
    """A Redis URL to test against, or None for the local-memory cache."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if _services_disabled():
        return None
    return DEFAULT_REDIS_URL if reachable(DEFAULT_REDIS_URL, 6379) else None


def in_ci() -> bool:
    """CI is set (CI=true, CI=1, ...); empty, 0, false and no count as unset."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class Topology:
    """A deployment topology some tests need besides PostgreSQL and Redis: started by
    ``.ci/services/<script> start`` (which prints ``VARIABLE=url``), found through
    ``VARIABLE``. Tests that need one carry its marker; without it they are skipped (and in CI
    the run fails)."""

    marker: str
    variable: str
    what: str
    script: str

    def url(self) -> str | None:
        return os.environ.get(self.variable) or None

    @property
    def reason(self) -> str:
        return f"[no-{self.marker.replace('_', '-')}] needs {self.what} (set {self.variable})"


TOPOLOGIES = (
    Topology("redis_cluster", "REDIS_CLUSTER_URL", "a Redis Cluster", "redis-cluster"),
    Topology("redis_sentinel", "REDIS_SENTINEL_URL", "a Redis Sentinel set", "redis-sentinel"),
    Topology("pgbouncer", "PGBOUNCER_URL", "PgBouncer in transaction mode", "pgbouncer"),
)
