"""The two commands of the README, run as written.

Command 1 (``./run-example``) is started, polled until the store answers, its printed curl
lines are run against it, and it is stopped. Command 2 (``./runtests``) is run on a small
selection (CI runs it whole: .ci/run ends with ``exec ./runtests``). Both use the virtualenv
running this suite (``VENV_DIR``), so nothing is installed unless pyproject.toml changed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_store import JWT_PATTERN, ROOT, free_port

# A first run may have to install the project (pyproject.toml newer than the venv's stamp).
START_TIMEOUT = 300.0

pytestmark = pytest.mark.skipif(
    sys.prefix == sys.base_prefix, reason="the README commands need the suite to run in a venv"
)


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n\s*```", section, re.S)


def example_env(**extra: str) -> dict[str, str]:
    """Our environment without the settings of the suite's own services (CI sets them)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "COCART_JWT_", "EXAMPLE_"))
        and name not in ("DATABASE_URL", "REDIS_URL", "PORT")
    }
    env.update(VENV_DIR=sys.prefix, **extra)
    return env


def test_the_readme_names_exactly_these_two_commands() -> None:
    commands = [command.strip() for command in readme_commands()]

    assert commands == ["./run-example", "./runtests"]
    for command in commands:
        assert os.access(ROOT / command, os.X_OK), f"{command} is not executable"


@pytest.fixture
def run_example(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    log_path = tmp_path / "run-example.log"
    env = example_env(
        PORT=str(port),
        # The store's data and development key in our temporary directory, not the tree.
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        EXAMPLE_SIGNING_KEY_FILE=str(tmp_path / "signing-key"),
        PYTHONUNBUFFERED="1",
    )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["./run-example"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # runserver and its reloader child: one process group
        )
    try:
        yield process, f"http://127.0.0.1:{port}", log_path
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def wait_until_up(process: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"./run-example exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base}/api/products/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"./run-example did not answer in {START_TIMEOUT} s:\n{log_path.read_text()}")


def test_run_example_serves_the_store_and_its_curl_lines_work(
    run_example: tuple[subprocess.Popen[bytes], str, Path], tmp_path: Path
) -> None:
    process, base, log_path = run_example

    wait_until_up(process, base, log_path)

    output = log_path.read_text()
    assert "demo / demo-password-123" in output
    assert "demo2 / demo2-password-123" in output
    assert "WARNING: COCART_JWT_SIGNING_KEY is not set" in output
    assert output.count("WARNING: COCART_JWT_SIGNING_KEY is not set") == 1
    assert f"Starting development server at {base}/" in output
    block = re.search(r"# --- curl lines ---\n(.*?)# --- end ---", output, re.S)
    assert block, output
    curl_lines = block.group(1)
    assert f"BASE={base}\n" in curl_lines
    for path in ("auth/login/", "cart/items/", "cart/", "auth/refresh/", "auth/logout/"):
        assert f"$BASE/api/{path}" in curl_lines

    if not (shutil.which("curl") and shutil.which("python3")):
        pytest.skip("curl or python3 missing: the printed curl lines cannot be tried")
    script = tmp_path / "curl-lines.sh"
    script.write_text(curl_lines)
    result = subprocess.run(  # noqa: S603 - the lines run-example printed
        ["bash", "-eu", str(script)],  # noqa: S607 - bash from PATH, as a user runs it
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6, result.stdout
    products, added, cart, order, logout, refused = lines
    assert '"slug":"coffee-mug"' in products
    assert '"product":"coffee-mug"' in added and '"quantity":2' in added
    assert '"total":"25.00"' in cart
    assert '"status":"placed"' in order and '"total":"25.00"' in order
    assert logout == "204"
    assert refused == '{"detail":"Invalid or expired token.","code":"invalid_token"} 401'
    assert not JWT_PATTERN.search(log_path.read_text())


def test_runtests_runs_pytest_with_the_given_arguments() -> None:
    # Our environment as it is (CI's DATABASE_URL, COCART_JWT_TEST_SERVICES...): the same run.
    env = {**os.environ, "VENV_DIR": sys.prefix}

    result = subprocess.run(
        [
            "./runtests",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_store.py::test_settings_refuse_to_start_with_debug_off_and_no_signing_key",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^1 passed", result.stdout, re.M), result.stdout


def test_runtests_collects_the_whole_suite() -> None:
    env = {**os.environ, "VENV_DIR": sys.prefix}

    result = subprocess.run(
        ["./runtests", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    collected = re.search(r"^(\d+) tests? collected", result.stdout, re.M)
    assert collected, result.stdout[-2000:]
    assert int(collected.group(1)) > 100
    for module in ("test_store.py", "test_client_script.py", "test_readme_commands.py"):
        assert f"tests/{module}::" in result.stdout
