"""A hung Redis (stopped with SIGSTOP: connections open, no answer) costs a request at most its
cache calls' socket timeouts, then the strict query answers, revocations included.

The test starts its own redis-server on 127.0.0.1:7209 and always stops it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.urls import reverse
from redis import Redis

from tests.factories import bearer, login

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

PORT = 7209
ME = "/api/me/"
SOCKET_TIMEOUT = 0.25
# Scheduling slack on a loaded machine; a request without a timeout would wait for ever.
SLACK = 0.5


@pytest.fixture
def hangable_redis(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("[no-redis] needs redis-server on PATH")
    command = [binary, "--port", str(PORT), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(tmp_path)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        probe = Redis(port=PORT, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                break
            except Exception:  # not listening yet
                assert process.poll() is None, "redis-server on port 7209 exited"
                assert time.monotonic() < deadline, "redis-server on port 7209 never answered"
                time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture(autouse=True)
def cached_mode_on_it(settings: Any, hangable_redis: Any) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{PORT}/0",
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": SOCKET_TIMEOUT,
            },
        },
    }
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}


def timed(call: Any) -> tuple[int, float]:
    started = time.monotonic()
    status = call().status_code
    return status, time.monotonic() - started


def test_a_hung_redis_costs_a_request_its_socket_timeout_and_no_wrong_answer(
    api_client: Any, user: Any, password: str, hangable_redis: Any, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="cocart_jwt")
    revoked = login(api_client, "alice", password).json()
    alive = login(api_client, "alice", password).json()
    for tokens in (revoked, alive):  # both entries cached
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200

    os.kill(hangable_redis.pid, signal.SIGSTOP)
    try:
        read = timed(lambda: api_client.get(ME, **bearer(alive["access_token"])))
        # The logout authenticates (one lookup) and writes a tombstone: two cache calls.
        logout = timed(
            lambda: api_client.post(reverse("cocart_jwt:logout"), **bearer(revoked["access_token"]))
        )
        refused = timed(lambda: api_client.get(ME, **bearer(revoked["access_token"])))
    finally:
        os.kill(hangable_redis.pid, signal.SIGCONT)

    assert read[0] == 200 and read[1] < SOCKET_TIMEOUT + SLACK
    assert logout[0] == 204 and logout[1] < 2 * SOCKET_TIMEOUT + SLACK
    assert refused[0] == 401 and refused[1] < SOCKET_TIMEOUT + SLACK
    assert read[1] >= SOCKET_TIMEOUT * 0.9  # it did wait for the hung Redis, and no longer

    # Back: served from the cache again. The outage was one line per consequence (reads fell
    # back to the database; the logout's tombstone was not written), never one per request,
    # and the reads' return one more.
    assert api_client.get(ME, **bearer(alive["access_token"])).status_code == 200
    assert caches["default"].get("any") is None
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Session cache")]
    assert len(lines) == 3, lines
    assert lines[0].startswith("Session cache unavailable (TimeoutError)")
    assert lines[1].startswith("Session cache (tombstones) unavailable (TimeoutError)")
    assert lines[2] == "Session cache is back"


@pytest.mark.rate_limits
def test_a_rate_limited_endpoint_waits_once_more_for_its_counter(
    api_client: Any, user: Any, password: str, hangable_redis: Any, settings: Any
) -> None:
    """validate/ counts the request in RATE_LIMIT_CACHE (the same hung Redis) before it
    authenticates: two timeouts, then RATE_LIMIT_FAIL_OPEN lets it through."""
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": {"validate": "100/min"}}
    tokens = login(api_client, "alice", password).json()

    os.kill(hangable_redis.pid, signal.SIGSTOP)
    try:
        status, took = timed(
            lambda: api_client.post(
                reverse("cocart_jwt:validate"), **bearer(tokens["access_token"])
            )
        )
    finally:
        os.kill(hangable_redis.pid, signal.SIGCONT)

    assert status == 200
    assert took < 2 * SOCKET_TIMEOUT + SLACK
