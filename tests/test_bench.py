"""The benchmark runs, and its query counts are what the docs claim (times are not tested)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.postgres
@pytest.mark.redis
def test_bench_auth_runs_and_counts_queries():
    result = subprocess.run(
        [sys.executable, "bench/auth.py", "--quick"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = dict(re.findall(r"^\| ([^|]+?) \| [\d,.]+ \| (\d+) \|", result.stdout, re.M))
    assert rows["cocart_jwt strict"] == "1"
    assert rows["cocart_jwt cached"] == "0"
    assert rows["simplejwt"] == "1"
    assert rows["knox"] == "2"
    # BEGIN, one statement (claim, slide the session, insert the next token), COMMIT.
    assert rows["cocart_jwt refresh (rotation + reuse detection)"] == "3"
    assert rows["floor: one primary-key SELECT"] == "1"
    assert rows["floor: one Redis GET"] == "0"
    section = result.stdout.split("### Overhead over no authentication, in floors")[1]
    section = section.split("###")[0]
    overheads = re.findall(
        r"^\| (cocart_jwt \w+) \| [-\d,.]+ \| [\d,.]+ \| -?[\d.]+x \|$", section, re.M
    )
    assert overheads == ["cocart_jwt cached", "cocart_jwt strict"]


@pytest.mark.postgres
def test_bench_scale_loads_and_measures_every_admin_page():
    """bench/scale.py on a small data set of its own (reused when loaded already)."""
    from tests.services import postgres_url

    database = urlsplit(str(postgres_url()))._replace(path="/cocart_jwt_scale_smoke").geturl()
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
