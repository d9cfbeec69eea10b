"""Cached mode across processes: every revocation route holds on the very next request.

Two ``runserver`` processes (A and B) run with ``SESSION_CACHE_TTL`` 300 and share the pytest
test database and the test Redis (same ``tests.settings``: DB 15, prefix ``cocart_jwt_tests``)
with the test process, which also runs in cached mode so its revocations write tombstones.
Each test first makes the session warm (a 200 through A and through B, so its snapshot is in
Redis), then revokes it and expects a 401 from the other process on the next request.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection

from cocart_jwt.models import Kind, RevokeReason, Token
from cocart_jwt.store import cached
from cocart_jwt.store.live import fill
from cocart_jwt.utils import now
from tests.servers import NO_RATE_LIMITS, ServerProcess

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

TIMEOUT = 10.0
AUTH = "/api/auth/"
ME = "/api/me/"
CACHED = {"SESSION_CACHE_TTL": 300}
SERVER_OVERRIDES = {**CACHED, **NO_RATE_LIMITS}


class Server(ServerProcess):
    """One ``runserver`` process in cached mode."""

    def __init__(self, name: str, db_name: str) -> None:
        super().__init__(name, db_name, SERVER_OVERRIDES)

    def stop(self) -> None:
        super().stop()
        self.remove_log()

    # -- HTTP --------------------------------------------------------------------------------
    def login(self, username: str, password: str) -> dict[str, Any]:
        response = requests.post(
            f"{self.base}{AUTH}login/",
            json={"username": username, "password": password},
            timeout=TIMEOUT,
        )
        assert response.status_code == 200, (self.name, response.status_code, response.text)
        return response.json()

    def refresh(self, refresh_token: str) -> requests.Response:
        return requests.post(
            f"{self.base}{AUTH}refresh/", json={"refresh_token": refresh_token}, timeout=TIMEOUT
        )

    def call(self, method: str, path: str, access_token: str) -> requests.Response:
        return requests.request(
            method,
            f"{self.base}{path}",
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=TIMEOUT,
        )

    def me(self, access_token: str) -> int:
        return self.call("GET", ME, access_token).status_code

    def revoke(self, token: str, hint: str | None = None) -> requests.Response:
        """RFC 7009's request: form-encoded, no credentials but the token."""
        data = {"token": token} if hint is None else {"token": token, "token_type_hint": hint}
        return requests.post(f"{self.base}{AUTH}revoke/", data=data, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def servers(django_db_setup: None, django_db_blocker: Any) -> Iterator[tuple[Server, Server]]:
    with django_db_blocker.unblock():
        db_name = connection.settings_dict["NAME"]
    started: list[Server] = []
    try:
        started = [Server("A", db_name), Server("B", db_name)]
        for server in started:
            server.wait_until_up()
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def live(
    servers: tuple[Server, Server],
    settings: Any,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[tuple[Server, Server]]:
    """Both servers; the test process in cached mode too; Redis emptied of the suite's keys."""
    settings.COCART_JWT = {**settings.COCART_JWT, **CACHED}
    assert cached.enabled()
    caches["default"].delete_pattern("*")  # type: ignore[attr-defined]  # KEY_PREFIX keys
    failed_before = request.session.testsfailed
    since = [server.size() for server in servers]
    yield servers
    if request.session.testsfailed > failed_before:
        with capsys.disabled():
            print(f"\n===== live servers' output during {request.node.nodeid} =====")
            for server, start in zip(servers, since, strict=True):
                print(f"----- server {server.name} -----\n{server.output(start)}")


def entry(sid: str) -> Any:
    return caches["default"].get(session_key(sid))


def session_key(sid: str) -> str:
    return "cocart_jwt:{" + sid + "}:session"


def warm(live: tuple[Server, Server], *pairs: dict[str, Any]) -> None:
    """A 200 through A and through B: the session's snapshot is now in Redis."""
    for pair in pairs:
        for server in live:
            assert server.me(pair["access_token"]) == 200, server.name
        assert isinstance(entry(pair["sid"]), tuple), entry(pair["sid"])


def assert_refused(first: Server, then: Server, *pairs: dict[str, Any]) -> None:
    """The next request through ``first`` is 401, then through ``then``; a tombstone is kept."""
    for pair in pairs:
        assert first.me(pair["access_token"]) == 401, first.name
        assert then.me(pair["access_token"]) == 401, then.name
        assert cached.lookup(pair["sid"]).revoked, entry(pair["sid"])


# -- revocations made by the servers -------------------------------------------------------


def test_logout_through_a_is_refused_by_b_on_the_next_request(
    live: tuple[Server, Server], user: Any, password: str
) -> None:
    a, b = live
    pair = a.login(user.username, password)
    warm(live, pair)

    assert a.call("POST", f"{AUTH}logout/", pair["access_token"]).status_code == 204

    assert_refused(b, a, pair)
    assert b.refresh(pair["refresh_token"]).status_code == 401
    assert Token.objects.get(pk=pair["sid"]).revoke_reason == RevokeReason.LOGOUT


def test_logout_all_through_b_refuses_every_session_on_a(
    live: tuple[Server, Server], user: Any, other_user: Any, password: str
) -> None:
    a, b = live
    mine = [a.login(user.username, password), b.login(user.username, password)]
    bobs = b.login(other_user.username, password)
    warm(live, *mine, bobs)

    assert b.call("POST", f"{AUTH}logout/all/", mine[1]["access_token"]).status_code == 204

    assert_refused(a, b, *mine)
    assert {t.revoke_reason for t in Token.objects.filter(user=user)} == {RevokeReason.LOGOUT_ALL}
    assert a.me(bobs["access_token"]) == 200
    assert b.me(bobs["access_token"]) == 200


def test_session_deleted_through_a_is_refused_by_b_on_the_next_request(
    live: tuple[Server, Server], user: Any, password: str
) -> None:
    a, b = live
    doomed = b.login(user.username, password)
    keeper = a.login(user.username, password)
    warm(live, doomed, keeper)

    deleted = a.call("DELETE", f"{AUTH}sessions/{doomed['sid']}/", keeper["access_token"])
    assert deleted.status_code == 204

    assert_refused(b, a, doomed)
    assert Token.objects.get(pk=doomed["sid"]).revoke_reason == RevokeReason.SESSION_DELETED
    assert b.me(keeper["access_token"]) == 200
    assert a.me(keeper["access_token"]) == 200


def test_refresh_token_reuse_on_a_refuses_the_session_on_b(
    live: tuple[Server, Server], user: Any, password: str
) -> None:
    a, b = live
    pair = a.login(user.username, password)
    warm(live, pair)
    rotated = a.refresh(pair["refresh_token"])
    assert rotated.status_code == 200
    newer = rotated.json()
    assert newer["sid"] == pair["sid"]
    assert b.me(newer["access_token"]) == 200

    assert a.refresh(pair["refresh_token"]).status_code == 401  # spent: reuse

    assert_refused(b, a, newer, pair)
    assert b.refresh(newer["refresh_token"]).status_code == 401
    assert Token.objects.get(pk=pair["sid"]).revoke_reason == RevokeReason.REFRESH_TOKEN_REUSED


def test_eleventh_login_on_b_evicts_the_oldest_session_on_a(
    live: tuple[Server, Server], user: Any, password: str
) -> None:
    a, b = live
    pairs = [a.login(user.username, password) for _ in range(10)]
    warm(live, pairs[0], pairs[1])

    eleventh = b.login(user.username, password)

    assert_refused(a, b, pairs[0])
    assert Token.objects.get(pk=pairs[0]["sid"]).revoke_reason == RevokeReason.MAX_TOKENS
    for pair in (pairs[1], eleventh):
        assert a.me(pair["access_token"]) == 200
        assert b.me(pair["access_token"]) == 200
    assert Token.objects.live().filter(user=user).count() == 10


def test_a_personal_token_revoked_through_a_is_refused_by_b_on_the_next_request(
    live: tuple[Server, Server], user: Any
) -> None:
    a, b = live
    issued = Token.objects.issue(user, kind=Kind.PERSONAL, scopes=["orders:read"])
    pair = {"access_token": issued.access_token, "sid": issued.session.pk}
    warm(live, pair)

    response = a.revoke(issued.access_token)
    assert (response.status_code, response.content) == (200, b"")

    assert_refused(b, a, pair)
    assert Token.objects.get(pk=pair["sid"]).revoke_reason == RevokeReason.REVOCATION_REQUEST


def test_a_refresh_token_revoked_through_b_is_refused_by_a_on_the_next_request(
    live: tuple[Server, Server], user: Any, password: str
) -> None:
    a, b = live
    pair = a.login(user.username, password)
    warm(live, pair)

    response = b.revoke(pair["refresh_token"], "refresh_token")
    assert (response.status_code, response.content) == (200, b"")

    assert_refused(a, b, pair)
    assert a.refresh(pair["refresh_token"]).status_code == 401
    assert Token.objects.get(pk=pair["sid"]).revoke_reason == RevokeReason.REVOCATION_REQUEST


# -- revocations made by another process (the test process: admin, CLI, user changes) ------


def admin_revoke(user: Any, sid: str) -> None:
    assert Token.objects.get(pk=sid).revoke(RevokeReason.ADMIN)


def cli_revoke(user: Any, sid: str) -> None:
    assert len(Token.objects.filter(user=user).revoke(RevokeReason.COMMAND)) == 1


def change_password(user: Any, sid: str) -> None:
    user.set_password("a brand new password 42")
    user.save()


def change_email(user: Any, sid: str) -> None:
    user.email = "alice.new@example.com"
    user.save()


def deactivate(user: Any, sid: str) -> None:
    user.is_active = False
    user.save()


def delete_user(user: Any, sid: str) -> None:
    user.delete()


def delete_session_row(user: Any, sid: str) -> None:
    deleted, _by_model = Token.objects.filter(pk=sid).delete()
    assert deleted >= 1


ROUTES: dict[str, tuple[Callable[[Any, str], None], str | None]] = {
    "admin": (admin_revoke, RevokeReason.ADMIN),
    "cli_queryset": (cli_revoke, RevokeReason.COMMAND),
    "password_change": (change_password, RevokeReason.PASSWORD_CHANGE),
    "email_change": (change_email, RevokeReason.EMAIL_CHANGE),
    "deactivation": (deactivate, RevokeReason.DEACTIVATION),
    "user_deleted": (delete_user, None),
    "session_row_deleted": (delete_session_row, None),
}


@pytest.mark.parametrize("route", list(ROUTES))
def test_revocation_in_another_process_is_refused_by_both_servers(
    live: tuple[Server, Server], user: Any, password: str, route: str
) -> None:
    a, b = live
    pair = a.login(user.username, password)
    warm(live, pair)
    revoke, reason = ROUTES[route]

    revoke(user, pair["sid"])

    assert_refused(b, a, pair)
    assert b.refresh(pair["refresh_token"]).status_code == 401
    row = Token.objects.filter(pk=pair["sid"]).first()
    if reason is None:
        assert row is None
    else:
        assert row is not None and row.revoke_reason == reason


def test_jwt_destroy_command_is_refused_by_both_servers(
    live: tuple[Server, Server], user: Any, password: str
) -> None:
    a, b = live
    pairs = [a.login(user.username, password), b.login(user.username, password)]
    warm(live, *pairs)

    call_command("jwt", "destroy", user.username, "--noinput", stdout=io.StringIO())

    assert_refused(b, a, *pairs)
    assert {t.revoke_reason for t in Token.objects.filter(user=user)} == {RevokeReason.COMMAND}


# -- the cache really answers, and a stale fill cannot undo a revocation -------------------


def test_warm_requests_are_served_from_the_cache_not_the_database(
    live: tuple[Server, Server], user: Any, password: str
) -> None:
    a, b = live
    pair = a.login(user.username, password)
    warm(live, pair)
    other = b.login(user.username, password)

    # A raw update bypasses the app: documented to hold only once the entry expires (TTL).
    assert Token.objects.filter(user=user).update(revoked_at=now()) == 2
    assert a.me(pair["access_token"]) == 200
    assert b.me(pair["access_token"]) == 200
    # A session that was never warm is read from the database: refused at once.
    assert b.me(other["access_token"]) == 401


def test_app_revocation_after_a_raw_update_is_refused_by_both_servers(
    live: tuple[Server, Server], user: Any, password: str
) -> None:
    a, b = live
    pair = a.login(user.username, password)
    warm(live, pair)
    assert Token.objects.filter(pk=pair["sid"]).update(revoked_at=now()) == 1
    assert b.me(pair["access_token"]) == 200  # still served from the cache (TTL window)

    Token.objects.get(pk=pair["sid"]).revoke(RevokeReason.ADMIN)  # the admin's revoke

    assert_refused(b, a, pair)


def test_stale_fill_after_a_revocation_does_not_bring_the_session_back(
    live: tuple[Server, Server], user: Any, password: str
) -> None:
    a, b = live
    pair = a.login(user.username, password)
    warm(live, pair)
    old_session = Token.objects.select_related("user").get(pk=pair["sid"])  # read while live
    assert old_session.revoked_at is None

    assert a.call("POST", f"{AUTH}logout/", pair["access_token"]).status_code == 204
    fill(old_session, now())  # a slow request storing what it read before

    assert entry(pair["sid"]) == cached.REVOKED
    assert_refused(b, a, pair)


# -- last_used_at: one write per TOUCH_INTERVAL, whichever process serves ----------------------


def test_a_due_touch_is_written_by_one_process_once_per_interval(
    live: tuple[Server, Server], user: Any, password: str
) -> None:
    """The touch key one process claims holds the other back: after A's write, B writes
    nothing even when last_used_at looks old to the database, until the key expires."""
    a, b = live
    pair = a.login(user.username, password)
    warm(live, pair)
    long_ago = now() - timedelta(hours=1)
    touched = Token.objects.filter(pk=pair["sid"])
    caches["default"].delete(touch_key(pair["sid"]))  # the touch is due, as its expiry makes it
    touched.update(last_used_at=long_ago)

    assert a.me(pair["access_token"]) == 200
    assert touched.get().last_used_at > long_ago  # A claimed the touch and wrote
    touched.update(last_used_at=long_ago)  # the database alone would let B write again
    assert [b.me(pair["access_token"]), a.me(pair["access_token"])] == [200, 200]
    assert touched.get().last_used_at == long_ago  # the touch key held both back

    caches["default"].delete(touch_key(pair["sid"]))  # the interval is over
    assert b.me(pair["access_token"]) == 200
    assert touched.get().last_used_at > long_ago


def touch_key(sid: str) -> str:
    return "cocart_jwt:{" + sid + "}:touch"


# -- DPoP: a proof is good once, in whichever process sees it first ------------------------------

SHOP = "shop.test"  # both servers answer to one host name, so one proof fits either


def dpop_post_login(server: Server, user: Any, password: str, key: Any) -> dict[str, Any]:
    from tests.dpop_clients import proof

    value = proof(key=key, htm="POST", htu=f"http://{SHOP}{AUTH}login/")
    response = requests.post(
        f"{server.base}{AUTH}login/",
        json={"username": user.username, "password": password},
        headers={"Host": SHOP, "DPoP": value},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_dpop_proof_used_on_a_is_a_replay_on_b(
    live: tuple[Server, Server], user: Any, password: str
) -> None:
    import hashlib
    from base64 import urlsafe_b64encode

    from tests.dpop_clients import private_key, proof

    a, b = live
    key = private_key("ES256", 3)
    pair = dpop_post_login(a, user, password, key)
    token = pair["access_token"]
    ath = urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()

    def headers() -> dict[str, str]:
        value = proof(key=key, htm="GET", htu=f"http://{SHOP}{ME}", claims={"ath": ath})
        return {"Host": SHOP, "Authorization": f"DPoP {token}", "DPoP": value}

    once = headers()
    assert requests.get(f"{a.base}{ME}", headers=once, timeout=TIMEOUT).status_code == 200
    replayed = requests.get(f"{b.base}{ME}", headers=once, timeout=TIMEOUT)
    assert replayed.status_code == 401
    assert replayed.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    assert "jti already used with this key" in b.output()
    # A fresh proof is fine on either; the token as a Bearer on neither.
    for server in (b, a):
        assert requests.get(f"{server.base}{ME}", headers=headers(), timeout=TIMEOUT).ok
        as_bearer = {"Host": SHOP, "Authorization": f"Bearer {token}"}
        assert (
            requests.get(f"{server.base}{ME}", headers=as_bearer, timeout=TIMEOUT).status_code
            == 401
        )
