"""The banner at the end of a run names why tests that need PostgreSQL or Redis were skipped.

``COCART_JWT_TEST_SERVICES=none`` turns the services off on purpose: the banner says so and
how to turn them on, not that a service is missing. A service that is really missing keeps the
alarm and the help to start it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests import conftest, services

ROOT = Path(__file__).resolve().parent.parent
# Files whose postgres/redis tests are skipped without either service: a selection of
# tests that are all skipped, so the run takes a second.
SELECTION = ["tests/test_canonical_tokens.py", "tests/test_rate_limits.py"]


def run_pytest_without_services() -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        # CI=1 turns a missing service into a failed run; the URLs would override "none".
        if name not in ("CI", "DATABASE_URL", "REDIS_URL")
    }
    env["COCART_JWT_TEST_SERVICES"] = "none"
    return subprocess.run(  # noqa: S603 - our interpreter and arguments
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "postgres or redis"]
        + SELECTION,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_services_turned_off_on_purpose_are_not_called_missing() -> None:
    result = run_pytest_without_services()

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "skipped" in out and "passed" not in out, out[-2000:]
    assert "missing" not in out
    assert "Start them" not in out
    assert (
        "NOT TESTED: some tests were skipped because COCART_JWT_TEST_SERVICES=none "
        "turned services off"
    ) in out
    assert "test(s) skipped: PostgreSQL is turned off (COCART_JWT_TEST_SERVICES=none)" in out
    assert "test(s) skipped: Redis is turned off (COCART_JWT_TEST_SERVICES=none)" in out
    assert "unset COCART_JWT_TEST_SERVICES" in out


class FakeReporter:
    """What pytest_terminal_summary uses of pytest's TerminalReporter."""

    def __init__(self, *reasons: str) -> None:
        skips = [SimpleNamespace(longrepr=("file.py", 1, reason)) for reason in reasons]
        self.stats: dict[str, Any] = {"skipped": skips}
        self.lines: list[str] = []

    def write_line(self, line: str, **markup: bool) -> None:
        self.lines.append(line)


@pytest.mark.parametrize("services", ["", "all"])
def test_a_service_that_is_really_missing_is_still_called_missing(
    monkeypatch: pytest.MonkeyPatch, services: str
) -> None:
    monkeypatch.setenv("COCART_JWT_TEST_SERVICES", services)
    reporter = FakeReporter(conftest.NO_POSTGRES_REASON, conftest.NO_REDIS_REASON)

    conftest.pytest_terminal_summary(reporter, 0, pytest.Config.__new__(pytest.Config))

    text = "\n".join(reporter.lines)
    assert "NOT TESTED: some tests were skipped because a service is missing" in text
    assert "1 test(s) skipped: PostgreSQL is not the test database" in text
    assert "1 test(s) skipped: Redis is not available" in text
    assert "Start them" in text
    assert "turned off" not in text


def test_a_url_given_beside_none_is_a_missing_service_not_a_turned_off_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DATABASE_URL wins over "none" (tests/services.py): a skip then is no choice of the user.
    monkeypatch.setenv("COCART_JWT_TEST_SERVICES", "none")
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cocart_jwt")
    monkeypatch.delenv("REDIS_URL", raising=False)
    reporter = FakeReporter(conftest.NO_POSTGRES_REASON, conftest.NO_REDIS_REASON)

    conftest.pytest_terminal_summary(reporter, 0, pytest.Config.__new__(pytest.Config))

    text = "\n".join(reporter.lines)
    assert "because a service is missing" in text
    assert "PostgreSQL is not the test database" in text
    assert "Redis is turned off (COCART_JWT_TEST_SERVICES=none)" in text
    assert "Start them" in text and "unset COCART_JWT_TEST_SERVICES" in text


def test_a_missing_topology_is_named_with_the_script_that_starts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = next(t for t in services.TOPOLOGIES if t.marker == "redis_cluster")
    monkeypatch.delenv(cluster.variable, raising=False)
    reporter = FakeReporter(cluster.reason, cluster.reason)

    conftest.pytest_terminal_summary(reporter, 0, pytest.Config.__new__(pytest.Config))

    text = "\n".join(reporter.lines)
    assert "because a service is missing" in text
    assert (
        "2 test(s) skipped: a Redis Cluster is not available "
        "(start one with `.ci/services/redis-cluster start` and set what it prints)"
    ) in text
    assert cluster.reason == "[no-redis-cluster] needs a Redis Cluster (set REDIS_CLUSTER_URL)"
