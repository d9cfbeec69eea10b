"""example_project/client.py, run as a user runs it, against a live example store.

The store's access tokens live 2 seconds here, so the client's refresh on expiry happens
for real: the first request after the wait is a 401, the client refreshes and retries. A login
counts as recent for 3 seconds, and the checkout comes at least 3.5 seconds after the login
(the wait): the step-up challenge happens for real too, and the client reauthenticates.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import redis_url
from tests.test_store import DEMO, JWT_PATTERN, ROOT, StoreServer, free_port

CLIENT = ROOT / "example_project" / "client.py"


@pytest.fixture(scope="module")
def short_lived_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreServer]:
    server = StoreServer(
        tmp_path_factory.mktemp("client-store"),
        COCART_JWT_ACCESS_TOKEN_LIFETIME="2",
        COCART_JWT_REAUTH_MAX_AGE="3",
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


def assert_in_order(out: str, steps: list[str]) -> None:
    """Each step is in ``out``, in this order."""
    position = 0
    for step in steps:
        found = out.find(step, position)
        assert found >= 0, f"{step!r} missing (or out of order) in:\n{out}"
        position = found + len(step)


def run_client(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, str(CLIENT), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_client_completes_the_journey_refreshing_and_reauthenticating_when_asked(
    short_lived_store: StoreServer,
) -> None:
    store = short_lived_store

    result = run_client("--base-url", store.base, "--max-wait", "10")

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    steps = [
        "1. Log in as demo",
        "2. Browse the products",
        "3. Fill the cart",
        "4. Refresh when the access token expires",
        "GET /api/cart/ -> 401 invalid_token: the access token expired; refreshing",
        "refreshed: new access token",
        "same session",
        "5. Check out",
        "POST /api/orders/ -> 401 insufficient_user_authentication: the login is older than 3 s;"
        " reauthenticating",
        "reauthenticated: new access token",
        "same session",
        "6. Log out",
        "204: the session is revoked",
        "7. The old tokens are refused",
        "access token: 401 invalid_token; refresh token: 401 invalid_grant",
        "Journey complete",
    ]
    assert_in_order(out, steps)
    assert not JWT_PATTERN.search(out), "the client printed a whole token"

    # The server saw the expiry, and the order the client reported is really there.
    assert "Access token refused: token expired" in store.output()
    assert "authenticated too long ago" in store.output()
    assert re.search(r"Session \S+ reauthenticated", store.output())
    order_id, total = re.search(r"201: order (\d+), total ([\d.]+)", out).groups()  # type: ignore[union-attr]
    demo = store.login(*DEMO)
    orders = store.call("GET", "/api/orders/", demo["access_token"]).json()["results"]
    assert [(o["id"], o["total"]) for o in orders] == [(int(order_id), total)]
    # Its session is revoked: only the login just made is live.
    sessions = store.call("GET", "/api/auth/sessions/", demo["access_token"]).json()
    assert [s["id"] for s in sessions] == [demo["sid"]]


def test_the_client_refreshes_on_purpose_when_the_token_outlives_max_wait(
    short_lived_store: StoreServer,
) -> None:
    result = run_client(
        "--base-url",
        short_lived_store.base,
        "--username",
        "demo2",
        "--password",
        "demo2-password-123",
        "--max-wait",
        "0",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "refreshing now to show the rotation" in result.stdout
    assert "the refresh token rotated" in result.stdout
    assert "Journey complete" in result.stdout


def test_the_client_fails_with_a_message_on_wrong_credentials(
    short_lived_store: StoreServer,
) -> None:
    result = run_client("--base-url", short_lived_store.base, "--password", "wrong-password")

    assert result.returncode == 1
    assert "FAILED: login: expected 200, got 401" in result.stderr
    assert "Journey complete" not in result.stdout


def test_the_client_fails_with_a_message_when_no_server_answers(tmp_path: Path) -> None:
    result = run_client("--base-url", f"http://127.0.0.1:{free_port()}")

    assert result.returncode == 1
    assert "FAILED: cannot talk to http://127.0.0.1:" in result.stderr


@pytest.fixture(scope="module")
def dpop_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreServer]:
    """Short-lived tokens and a server that wants DPoP nonces (RFC 9449 section 8). Its two
    workers claim proofs in the suite's Redis, as production would (W012); without Redis it
    runs one worker, whose local memory sees every proof."""
    shared = {"REDIS_URL": url} if (url := redis_url()) else {"WEB_CONCURRENCY": "1"}
    server = StoreServer(
        tmp_path_factory.mktemp("dpop-store"),
        COCART_JWT_ACCESS_TOKEN_LIFETIME="2",
        COCART_JWT_REAUTH_MAX_AGE="3",
        COCART_JWT_DPOP_REQUIRE_NONCE="1",
        **shared,
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_the_client_completes_the_journey_with_dpop(dpop_store: StoreServer) -> None:
    result = run_client("--base-url", dpop_store.base, "--max-wait", "10", "--dpop")

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    steps = [
        "1. Log in as demo with a DPoP key",
        "refreshed: new access token",
        "same session",
        "reauthenticated: new access token",
        "DPoP: the same access token without the key is refused",
        "as a Bearer: 401; with a replayed proof: 401",
        "204: the session is revoked",
        "access token: 401 invalid_token; refresh token: 401 invalid_grant",
        "Journey complete",
    ]
    assert_in_order(out, steps)
    assert not JWT_PATTERN.search(out), "the client printed a whole token"
    # The server bound the session, asked for a nonce first, and refused the stolen uses.
    log = dpop_store.output()
    assert "DPoP proof refused: nonce required but the proof has none" in log
    assert "a DPoP-bound token without the DPoP scheme" in log
    assert "jti already used with this key" in log
