"""Test infrastructure: service markers, the CI rule, the skip banner and basic fixtures.

- ``@pytest.mark.postgres`` tests run only when PostgreSQL is the test database,
  ``@pytest.mark.redis`` tests only when Redis answers; otherwise they are skipped
  and a banner at the end of the run says how many and how to start the services.
- Under CI (env ``CI`` set, not empty/0/false/no) a missing service is never a skip:
  the run stops at once with a non-zero exit status.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.conf import settings

from tests import services

NO_POSTGRES_REASON = "[no-postgres] needs PostgreSQL as the test database"
NO_REDIS_REASON = "[no-redis] needs Redis"

START_HELP = [
    "Start them (or point DATABASE_URL / REDIS_URL at running ones), then rerun ./runtests:",
    "  PostgreSQL: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    '  Redis:      redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" '
    "--appendonly no",
    "The suite looks for postgres://postgres@127.0.0.1:5432/cocart_jwt and "
    "redis://127.0.0.1:6379/15.",
]

PASSWORD = "correct horse battery staple"


def postgres_is_test_db() -> bool:
    return str(settings.DATABASES["default"]["ENGINE"]).endswith("postgresql")


def redis_available() -> bool:
    return bool(getattr(settings, "HAS_REDIS", services.redis_url() is not None))


def _describe_backends() -> str:
    db = settings.DATABASES["default"]
    engine = str(db["ENGINE"]).rsplit(".", 1)[-1]
    cache = str(settings.CACHES["default"]["BACKEND"]).rsplit(".", 1)[-1]
    return f"cocart_jwt tests: database={engine} ({db.get('HOST') or 'local'}), cache={cache}"


def pytest_report_header(config: pytest.Config) -> str:
    return _describe_backends()


def pytest_sessionstart(session: pytest.Session) -> None:
    if not services.in_ci():
        return
    problems = []
    if not postgres_is_test_db():
        problems.append("PostgreSQL is not the test database (set DATABASE_URL)")
    else:
        url = services.postgres_url()
        if url and not services.reachable(url, 5432, timeout=2):
            problems.append(f"PostgreSQL does not answer at {url}")
    if not redis_available():
        problems.append("Redis is not available (set REDIS_URL)")
    else:
        url = services.redis_url()
        if url and not services.reachable(url, 6379, timeout=2):
            problems.append(f"Redis does not answer at {url}")
    for topology in services.TOPOLOGIES:
        if topology.url() is None:
            problems.append(
                f"{topology.what} is not available (set {topology.variable}; "
                f".ci/services/{topology.script} start)"
            )
    if problems:
        pytest.exit(
            "CI is set, so a missing service fails the run instead of skipping tests: "
            + "; ".join(problems),
            returncode=3,
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_postgres = postgres_is_test_db()
    has_redis = redis_available()
    for item in items:
        if not has_postgres and item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.skip(reason=NO_POSTGRES_REASON))
        if not has_redis and item.get_closest_marker("redis"):
            item.add_marker(pytest.mark.skip(reason=NO_REDIS_REASON))
        for topology in services.TOPOLOGIES:
            if item.get_closest_marker(topology.marker) and topology.url() is None:
                item.add_marker(pytest.mark.skip(reason=topology.reason))


def _skip_reason(report: Any) -> str:
    longrepr = getattr(report, "longrepr", None)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr or "")


TURN_ON_HELP = [
    "They were turned off on purpose. To run them, unset COCART_JWT_TEST_SERVICES (the suite",
    "then uses PostgreSQL and Redis when they answer on localhost) or set DATABASE_URL /",
    "REDIS_URL, and rerun ./runtests.",
]


def _turned_off(url_variable: str) -> bool:
    """COCART_JWT_TEST_SERVICES=none chose SQLite / local memory, and no URL overrode it."""
    return services._services_disabled() and not os.environ.get(url_variable)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = [_skip_reason(r) for r in skipped]
    no_pg = sum("[no-postgres]" in r for r in reasons)
    no_redis = sum("[no-redis]" in r for r in reasons)
    no_browser = sum("[no-browser]" in r for r in reasons)
    no_topology = {
        topology: sum(topology.reason in r for r in reasons) for topology in services.TOPOLOGIES
    }
    no_topology = {topology: count for topology, count in no_topology.items() if count}
    if not (no_pg or no_redis or no_browser or no_topology):
        return
    pg_off = bool(no_pg) and _turned_off("DATABASE_URL")
    redis_off = bool(no_redis) and _turned_off("REDIS_URL")
    # Missing: a skip no one asked for. Services turned off on purpose are no alarm.
    missing = (no_pg and not pg_off) or (no_redis and not redis_off) or no_browser or no_topology
    bang = "!" * 78
    colour = {"red": True} if missing else {"yellow": True}
    write = terminalreporter.write_line
    write("")
    write(bang, bold=True, **colour)
    if missing:
        write("!!! NOT TESTED: some tests were skipped because a service is missing", bold=True)
    else:
        write(
            "!!! NOT TESTED: some tests were skipped because COCART_JWT_TEST_SERVICES=none "
            "turned services off",
            bold=True,
        )
    if no_pg:
        why = "turned off (COCART_JWT_TEST_SERVICES=none)" if pg_off else "not the test database"
        write(f"!!!   {no_pg} test(s) skipped: PostgreSQL is {why}", bold=True)
    if no_redis:
        why = "turned off (COCART_JWT_TEST_SERVICES=none)" if redis_off else "not available"
        write(f"!!!   {no_redis} test(s) skipped: Redis is {why}", bold=True)
    if no_browser:
        write(
            f"!!!   {no_browser} test(s) skipped: no browser (pip install playwright; "
            "apt-get install chromium)",
            bold=True,
        )
    for topology, count in no_topology.items():
        write(
            f"!!!   {count} test(s) skipped: {topology.what} is not available (start one with "
            f"`.ci/services/{topology.script} start` and set what it prints)",
            bold=True,
        )
    if pg_off or redis_off:
        for line in TURN_ON_HELP:
            write(f"!!! {line}")
    if (no_pg and not pg_off) or (no_redis and not redis_off):
        for line in START_HELP:
            write(f"!!! {line}")
    write(bang, bold=True, **colour)


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def api_client() -> Any:
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def user(db: None, django_user_model: Any, password: str) -> Any:
    return django_user_model.objects.create_user(
        username="alice", email="alice@example.com", password=password
    )


@pytest.fixture
def other_user(db: None, django_user_model: Any, password: str) -> Any:
    return django_user_model.objects.create_user(
        username="bob", email="bob@example.com", password=password
    )


@pytest.fixture(autouse=True)
def _rate_limits_off_unless_tested(request: pytest.FixtureRequest) -> Any:
    """Rate limits count per client IP, and every test client is 127.0.0.1: tests that are
    not about rate limits turn them off, so their logins never meet a 429. Tests marked
    ``rate_limits`` keep the settings' limits (and start from empty counters).
    """
    if request.node.get_closest_marker("rate_limits"):
        _clear_rate_limit_counters()
        yield
        return
    settings = request.getfixturevalue("settings")
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "RATE_LIMITS": dict.fromkeys(
            (
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
            )
        ),
    }
    yield


def _clear_rate_limit_counters() -> None:
    from django.core.cache import caches

    cache = caches["default"]
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("cocart_jwt:rl:*")
    else:
        cache.clear()


@pytest.fixture
def unreachable_cache(settings: Any) -> str:
    """A django-redis cache alias ``down`` pointing at a closed port."""
    pytest.importorskip("django_redis")
    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        },
    }
    return "down"
