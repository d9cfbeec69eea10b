"""Revocation across processes and the whole life cycle over real HTTP.

Two ``runserver`` processes (A and B) share the pytest test database (through
``COCART_JWT_TEST_DB_NAME``, read by tests/settings.py) with the test process. Every test
commits its data (``transaction=True``) so the servers see it. The servers are killed at the
end of the module whatever happens; when a test fails, what they wrote is printed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.db import connection

from cocart_jwt.models import RevokeReason, Token
from tests.servers import NO_RATE_LIMITS, ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REQUEST_TIMEOUT = 10.0

AUTH = "/api/auth/"
ME = "/api/me/"


class Server(ServerProcess):
    """One ``runserver`` process without rate limits."""

    def __init__(self, name: str, db_name: str) -> None:
        super().__init__(name, db_name, NO_RATE_LIMITS)


class Cluster:
    """Servers A and B, and every token they handed out (which must never be in their output)."""

    def __init__(self, a: Server, b: Server) -> None:
        self.a, self.b = a, b
        self.secrets: set[str] = set()

    def output(self, since: tuple[int, int] = (0, 0)) -> str:
        return "".join(
            f"----- server {server.name} ({server.base}) -----\n{server.output(start)}\n"
            for server, start in zip((self.a, self.b), since, strict=True)
        )

    def sizes(self) -> tuple[int, int]:
        return self.a.size(), self.b.size()

    def remember(self, response: requests.Response) -> None:
        if response.headers.get("Content-Type", "").startswith("application/json"):
            body = response.json()
            if isinstance(body, dict):
                for field in ("access_token", "refresh_token"):
                    if body.get(field):
                        self.secrets.add(body[field])

    def login(self, server: Server, username: str, password: str) -> dict[str, Any]:
        response = requests.post(
            server.url(f"{AUTH}login/"),
            json={"username": username, "password": password},
            timeout=REQUEST_TIMEOUT,
        )
        self.remember(response)
        assert response.status_code == 200, (server.name, response.status_code, response.text)
        return response.json()

    def refresh(self, server: Server, refresh_token: str) -> requests.Response:
        response = requests.post(
            server.url(f"{AUTH}refresh/"),
            json={"refresh_token": refresh_token},
            timeout=REQUEST_TIMEOUT,
        )
        self.remember(response)
        return response

    def get(self, server: Server, path: str, access_token: str) -> requests.Response:
        return requests.get(
            server.url(path),
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=REQUEST_TIMEOUT,
        )

    def post(self, server: Server, path: str, access_token: str) -> requests.Response:
        return requests.post(
            server.url(path),
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=REQUEST_TIMEOUT,
        )

    def delete(self, server: Server, path: str, access_token: str) -> requests.Response:
        return requests.delete(
            server.url(path),
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=REQUEST_TIMEOUT,
        )

    def me(self, server: Server, access_token: str) -> int:
        return self.get(server, ME, access_token).status_code

    def assert_no_token_in_output(self) -> None:
        output = self.output()
        leaked = [secret[:12] + "..." for secret in self.secrets if secret in output]
        assert not leaked, f"tokens found in the servers' output: {leaked}"


@pytest.fixture(scope="module")
def cluster(django_db_setup: None, django_db_blocker: Any) -> Iterator[Cluster]:
    with django_db_blocker.unblock():
        db_name = connection.settings_dict["NAME"]
    servers: list[Server] = []
    try:
        for name in ("A", "B"):
            servers.append(Server(name, db_name))
        for server in servers:
            server.wait_until_up()
        live = Cluster(*servers)
        yield live
        for server in servers:
            server.stop()
        # Once stopped, everything they wrote is in the files: check all of it once more.
        live.assert_no_token_in_output()
    finally:
        for server in servers:
            server.stop()
            server.remove_log()


@pytest.fixture
def live(
    cluster: Cluster, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cluster]:
    """The servers for one test; if the test failed, print what they wrote."""
    failed_before = request.session.testsfailed
    since = cluster.sizes()
    yield cluster
    if request.session.testsfailed > failed_before:
        with capsys.disabled():
            print(f"\n===== output of the live servers during {request.node.nodeid} =====")
            print(cluster.output(since))


def test_life_cycle_over_http_across_two_servers(
    live: Cluster, user: Any, other_user: Any, password: str
) -> None:
    a, b = live.a, live.b

    # Login on A; the access token works on both processes.
    first = live.login(a, user.username, password)
    assert first["token_type"] == "Bearer"
    assert first["user"] == {"id": user.pk, "username": user.username}
    me_a = live.get(a, ME, first["access_token"])
    assert me_a.status_code == 200
    assert me_a.json() == {"id": str(user.pk), "username": "alice", "sid": first["sid"]}
    assert live.me(b, first["access_token"]) == 200

    # Refresh on B rotates; the old refresh token replayed on A is reuse: the session dies.
    renewed_response = live.refresh(b, first["refresh_token"])
    assert renewed_response.status_code == 200, renewed_response.text
    assert renewed_response.headers["Cache-Control"] == "no-store"
    renewed = renewed_response.json()
    assert renewed["sid"] == first["sid"]
    assert live.me(a, renewed["access_token"]) == 200
    reused = live.refresh(a, first["refresh_token"])
    assert reused.status_code == 401
    assert reused.json()["code"] == "invalid_grant"
    assert live.me(a, renewed["access_token"]) == 401
    assert live.me(b, renewed["access_token"]) == 401
    assert live.refresh(b, renewed["refresh_token"]).status_code == 401
    assert Token.objects.get(pk=first["sid"]).revoke_reason == RevokeReason.REFRESH_TOKEN_REUSED

    # Logout on B; A refuses that token at once.
    second = live.login(a, user.username, password)
    assert live.me(a, second["access_token"]) == 200
    logout = live.post(b, f"{AUTH}logout/", second["access_token"])
    assert logout.status_code == 204
    refused = live.get(a, ME, second["access_token"])
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert live.refresh(a, second["refresh_token"]).status_code == 401

    # The session list marks the caller's own session as current.
    third = live.login(a, user.username, password)
    fourth = live.login(b, user.username, password)
    listing = live.get(b, f"{AUTH}sessions/", third["access_token"])
    assert listing.status_code == 200
    current = {row["id"]: row["current"] for row in listing.json()}
    assert current == {third["sid"]: True, fourth["sid"]: False}
    listing = live.get(a, f"{AUTH}sessions/", fourth["access_token"])
    assert {row["id"]: row["current"] for row in listing.json()} == {
        third["sid"]: False,
        fourth["sid"]: True,
    }

    # Another user's session cannot be deleted: 404, and it keeps working.
    bobs = live.login(b, other_user.username, password)
    forbidden = live.delete(a, f"{AUTH}sessions/{bobs['sid']}/", third["access_token"])
    assert forbidden.status_code == 404
    assert live.me(b, bobs["access_token"]) == 200

    # Logout-all through A: every session of alice is refused on B; bob is untouched.
    fifth = live.login(b, user.username, password)
    assert live.post(a, f"{AUTH}logout/all/", third["access_token"]).status_code == 204
    for pair in (third, fourth, fifth):
        assert live.me(b, pair["access_token"]) == 401
        assert live.refresh(b, pair["refresh_token"]).status_code == 401
    assert not Token.objects.live().filter(user=user).exists()
    assert live.me(b, bobs["access_token"]) == 200

    live.assert_no_token_in_output()


def test_logout_on_one_server_is_refused_on_the_next_request_to_the_other(
    live: Cluster, user: Any, password: str
) -> None:
    pair = live.login(live.a, user.username, password)
    assert live.me(live.a, pair["access_token"]) == 200
    assert live.me(live.b, pair["access_token"]) == 200

    assert live.post(live.a, f"{AUTH}logout/", pair["access_token"]).status_code == 204

    assert live.me(live.b, pair["access_token"]) == 401
    assert live.post(live.b, f"{AUTH}validate/", pair["access_token"]).status_code == 401
    live.assert_no_token_in_output()


def test_session_deleted_through_one_server_is_refused_by_the_other(
    live: Cluster, user: Any, password: str
) -> None:
    doomed = live.login(live.a, user.username, password)
    keeper = live.login(live.b, user.username, password)
    assert live.me(live.a, doomed["access_token"]) == 200

    deleted = live.delete(live.b, f"{AUTH}sessions/{doomed['sid']}/", keeper["access_token"])
    assert deleted.status_code == 204

    assert live.me(live.a, doomed["access_token"]) == 401
    assert live.refresh(live.a, doomed["refresh_token"]).status_code == 401
    assert live.me(live.a, keeper["access_token"]) == 200
    assert Token.objects.get(pk=doomed["sid"]).revoke_reason == RevokeReason.SESSION_DELETED
    live.assert_no_token_in_output()


def test_password_change_in_another_process_is_refused_by_both_servers(
    live: Cluster, user: Any, password: str
) -> None:
    on_a = live.login(live.a, user.username, password)
    on_b = live.login(live.b, user.username, password)
    for pair in (on_a, on_b):
        assert live.me(live.a, pair["access_token"]) == 200
        assert live.me(live.b, pair["access_token"]) == 200

    user.set_password("a brand new password 42")
    user.save()

    for pair in (on_a, on_b):
        assert live.me(live.a, pair["access_token"]) == 401
        assert live.me(live.b, pair["access_token"]) == 401
        assert live.refresh(live.b, pair["refresh_token"]).status_code == 401
    live.assert_no_token_in_output()


def test_deactivation_in_another_process_is_refused_by_both_servers(
    live: Cluster, user: Any, password: str
) -> None:
    pair = live.login(live.a, user.username, password)
    assert live.me(live.a, pair["access_token"]) == 200
    assert live.me(live.b, pair["access_token"]) == 200

    user.is_active = False
    user.save()

    assert live.me(live.a, pair["access_token"]) == 401
    assert live.me(live.b, pair["access_token"]) == 401
    assert live.refresh(live.a, pair["refresh_token"]).status_code == 401
    live.assert_no_token_in_output()


def test_eleventh_login_on_one_server_evicts_the_first_session_on_the_other(
    live: Cluster, user: Any, password: str
) -> None:
    pairs = [live.login(live.a, user.username, password) for _ in range(10)]
    assert live.me(live.b, pairs[0]["access_token"]) == 200

    eleventh = live.login(live.a, user.username, password)

    assert live.me(live.b, pairs[0]["access_token"]) == 401
    assert live.refresh(live.b, pairs[0]["refresh_token"]).status_code == 401
    assert Token.objects.get(pk=pairs[0]["sid"]).revoke_reason == RevokeReason.MAX_TOKENS
    for pair in [*pairs[1:], eleventh]:
        assert live.me(live.b, pair["access_token"]) == 200
    assert Token.objects.live().filter(user=user).count() == 10
    live.assert_no_token_in_output()


def test_refused_tokens_are_never_written_to_the_servers_output(
    live: Cluster, user: Any, password: str
) -> None:
    pair = live.login(live.a, user.username, password)
    tampered = pair["access_token"][:-4] + (
        "AAAA" if not pair["access_token"].endswith("AAAA") else "BBBB"
    )
    unknown_refresh = "x" * 43
    live.secrets.update({tampered, unknown_refresh, password})

    assert live.me(live.b, tampered) == 401
    assert live.refresh(live.b, unknown_refresh).status_code == 401
    assert live.refresh(live.a, pair["refresh_token"]).status_code == 200
    assert live.refresh(live.b, pair["refresh_token"]).status_code == 401  # reuse, logged
    assert live.me(live.a, pair["access_token"]) == 401  # revoked session, logged
    wrong = requests.post(
        live.a.url(f"{AUTH}login/"),
        json={"username": user.username, "password": password + "!"},
        timeout=REQUEST_TIMEOUT,
    )
    assert wrong.status_code == 401
    live.secrets.add(password + "!")

    output = live.output()
    assert "Refresh token reused" in output  # the servers do log, to this output
    live.assert_no_token_in_output()
