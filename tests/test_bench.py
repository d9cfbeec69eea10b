"""The benchmarks run, and their query and round-trip counts are what the docs claim; their
targets are reported (times are not tested, only that each verdict is printed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent


def fresh_database(name: str) -> str | None:
    """The URL of a benchmark database of these tests' own, dropped first so the bench makes it
    afresh: one left by other code (an earlier checkout, on the same server) could hold
    migrations this code does not have. None without PostgreSQL."""
    from tests.services import postgres_url

    url = postgres_url()
    if url is None:
        return None
    import psycopg

    server = urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def bench_database() -> dict[str, str]:
    url = fresh_database("cocart_jwt_bench_tests")
    return {} if url is None else {"BENCH_DATABASE_URL": url}


def run_bench(*arguments: str) -> str:
    result = subprocess.run(  # noqa: S603 (the scripts and arguments of these tests)
        [sys.executable, *arguments],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", **bench_database()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def auth_report() -> str:
    """bench/auth.py, two quick runs."""
    return run_bench("bench/auth.py", "--runs", "2", "--quick")


def counts(report: str) -> dict[str, tuple[str, str]]:
    """Per case of the last run: its SQL queries and its PostgreSQL round trips."""
    last = report.split("## Run 2 of 2")[1]
    rows = re.findall(r"^\| ([^|]+?) \| [\d,.]+ \| (\d+) \| ([\d-]+) \| ", last, re.M)
    return {name: (queries, trips) for name, queries, trips in rows}


def verdicts(section: str) -> dict[str, str]:
    return dict(re.findall(r"^\| ([^|]+?) \|.*\| (holds|misses) \|$", section, re.M))


@pytest.mark.postgres
@pytest.mark.redis
def test_bench_auth_counts_queries_and_round_trips(auth_report):
    rows = counts(auth_report)
    assert rows["cocart_jwt strict"] == ("1", "1")
    assert rows["cocart_jwt cached"] == ("0", "0")
    assert rows["simplejwt"] == ("1", "1")
    assert rows["knox"] == ("2", "2")
    assert rows["floor: no auth + verify + one primary-key SELECT"] == ("1", "1")
    assert rows["floor: no auth + verify + one Redis GET"] == ("0", "0")
    # Django's update_last_login is one UPDATE: the login without it makes one query less.
    with_receiver = int(rows["cocart_jwt login"][0])
    assert int(rows["cocart_jwt login, without update_last_login"][0]) == with_receiver - 1
    # BEGIN, one statement (claim, slide the session, insert the next token), COMMIT.
    assert rows["cocart_jwt refresh (rotation + reuse detection)"] == ("3", "3")
    section = auth_report.split("### Overhead over no authentication, in floors")[1]
    section = section.split("###")[0]
    overheads = re.findall(
        r"^\| (cocart_jwt \w+) \| [-\d,.]+ \| [\d,.]+ \| -?[\d.]+x \|$", section, re.M
    )
    assert overheads == ["cocart_jwt cached", "cocart_jwt strict"]
    # DPoP adds no query: the proof's jti is claimed in Redis.
    assert rows["cocart_jwt strict, DPoP"] == ("1", "1")
    assert rows["cocart_jwt cached, DPoP"] == ("0", "0")
    dpop = auth_report.split("### DPoP beside Bearer")[1].split("###")[0]
    compared = re.findall(
        r"^\| (cocart_jwt \w+) \| [\d,.]+ \| [\d,.]+ \| -?[\d,.]+ \| [\d.]+x \|$", dpop, re.M
    )
    assert compared == ["cocart_jwt strict", "cocart_jwt cached"]


@pytest.mark.postgres
@pytest.mark.redis
def test_bench_auth_login_and_refresh_within_round_trip_budget(auth_report):
    """The budgets of login and refresh in PostgreSQL round trips: a login in at most 4
    (update_last_login, a receiver the site connects, is outside the budget), a refresh in at
    most 3 (cocart_jwt/postgres.py; tests/test_round_trips.py asserts the same on the views)."""
    rows = counts(auth_report)
    assert int(rows["cocart_jwt login, without update_last_login"][1]) <= 4
    assert int(rows["cocart_jwt refresh (rotation + reuse detection)"][1]) <= 3


@pytest.mark.postgres
@pytest.mark.redis
def test_bench_auth_reports_every_target_per_run_and_on_the_median(auth_report):
    from bench.auth import TARGETS

    runs = auth_report.split("## Run ")[1:]
    assert len(runs) == 2
    wanted = {target.measure for target in TARGETS}
    for run in runs:
        assert set(verdicts(run.split("### Targets")[1].split("##")[0])) == wanted
    summary = auth_report.split("## Summary of 2 runs")[1]
    assert set(verdicts(summary)) == wanted
    # SQL queries are the same in every run: the median and the spread say so.
    assert "| cocart_jwt strict request SQL queries | 1 | 1-1 | <= 1 | holds |" in summary


@pytest.mark.postgres
@pytest.mark.redis
def test_bench_throughput_answers_every_request_and_reports_its_targets():
    """Two short runs under gunicorn: the script exits 0 only when every response was a 200."""
    report = run_bench("bench/throughput.py", "--runs", "2", "--seconds", "1", "--python-load")
    for run in report.split("## Run ")[1:]:
        rates = re.findall(r"^\| ([^|]+?) \| [\d,]+ \| (\d+) \|$", run, re.M)
        assert [name for name, _ in rates] == [
            "no auth",
            "simplejwt",
            "knox",
            "cocart_jwt strict",
            "cocart_jwt cached",
        ]
        assert {failed for _, failed in rates} == {"0"}
    summary = report.split("## Summary of 2 runs")[1]
    assert set(verdicts(summary)) == {
        "cocart_jwt cached req/s / no auth req/s",
        "cocart_jwt strict req/s / simplejwt req/s",
    }


@pytest.mark.postgres
def test_bench_scale_loads_and_measures_every_admin_page():
    """bench/scale.py on a small data set of its own, loaded afresh."""
    database = fresh_database("cocart_jwt_scale_smoke")
    result = subprocess.run(
        [
            sys.executable,
            "bench/scale.py",
            "--sessions",
            "3000",
            "--log-entries",
            "300",
            "--runs",
            "1",
            "--cleanup-batches",
            "1",
            "--no-explain",
        ],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
            "BENCH_SCALE_DATABASE_URL": database,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    pages = dict(re.findall(r"^\| ([^|]+?) \| [\d,.]+ \| (\d+) \|$", result.stdout, re.M))
    assert set(pages) >= {"list, first page", "list, page 30", "search by username"}
    assert "user filter" in pages and "status filter: valid" in pages
    # The session, its user, the count, the page's sessions and "revoked by": none per row.
    assert int(pages["list, first page"]) == int(pages["list, page 30"]) <= 6
    assert "strict authentication, one request" in result.stdout
    assert "jwt cleanup: 1 batches" in result.stdout
