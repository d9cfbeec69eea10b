"""The benchmark runs, and its query counts are what the docs claim (times are not tested)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
    # BEGIN, the locked lookup, claim, slide the session, insert the next token, COMMIT.
    assert rows["cocart_jwt refresh (rotation + reuse detection)"] == "6"
