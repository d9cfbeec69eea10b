"""BIND_TO_IP / BIND_TO_USER_AGENT for tokens issued without their holder's request.

A login records its client; a token made by ``jwt create`` or by an administrator for another
user has no holder's request to record (the admin's own IP is not the holder's), so it binds
to its first use: that client is recorded, every other one refused from then on. An admin's
token for themself keeps the admin's IP. On PostgreSQL, racing first uses from two addresses
leave exactly one accepted; in cached mode (Redis, local memory) the same holds.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from io import StringIO
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection, connections
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from cocart_jwt.authentication import JWTAuthentication
from cocart_jwt.models import RefreshToken, Token
from cocart_jwt.store import cached as session_cache
from cocart_jwt.store import live as store_live
from tests.factories import bearer

ME = "/api/me/"
ADD = "/admin/cocart_jwt/token/add/"
ACCESS_TOKEN = re.compile(r'<textarea id="cocart-jwt-access-token"[^>]*>([^<]*)</textarea>')
JOIN_TIMEOUT = 60


@pytest.fixture
def bind_to_ip(settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "BIND_TO_IP": True}


def cli_token(username: str) -> tuple[str, str]:
    """``manage.py jwt create <username> --format json``: the access token and its sid."""
    out = StringIO()
    call_command("jwt", "create", username, "--format", "json", stdout=out)
    pair = json.loads(out.getvalue())
    return pair["access_token"], pair["sid"]


def me(client: Any, token: str, ip: str = "127.0.0.1", agent: str = "App/1") -> int:
    return client.get(ME, REMOTE_ADDR=ip, HTTP_USER_AGENT=agent, **bearer(token)).status_code


def admin_token(client: Any, user: Any, ip: str) -> str:
    """The access token the admin create page shows, created from ``ip``."""
    data = {"user": user.pk, "lifetime": "24h", "claims": "", "description": ""}
    page = client.post(ADD, data, REMOTE_ADDR=ip, HTTP_USER_AGENT="AdminBrowser/1")
    match = ACCESS_TOKEN.search(page.content.decode())
    assert match, page.content.decode()[:2000]
    return match.group(1)


def info_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "cocart_jwt" and r.levelno == logging.INFO
    ]


@pytest.mark.django_db
def test_a_cli_token_binds_to_its_first_client_ip(api_client, user, bind_to_ip, caplog):
    token, sid = cli_token("alice")

    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        assert me(api_client, token, "10.0.0.5") == 200
    assert info_records(caplog) == [f"Session {sid} bound to its first client"]
    assert me(api_client, token, "10.0.0.6") == 401
    assert me(api_client, token, "10.0.0.5") == 200
    session = Token.objects.get(pk=sid)
    assert (session.ip, session.user_agent, session.bind_on_first_use) == (
        "10.0.0.5",
        "App/1",
        False,
    )


@pytest.mark.django_db
def test_each_cli_token_binds_to_its_own_first_client(api_client, user, bind_to_ip):
    first, first_sid = cli_token("alice")
    second, second_sid = cli_token("alice")

    assert me(api_client, first, "10.0.0.5") == 200
    assert me(api_client, second, "10.0.0.6") == 200

    assert me(api_client, first, "10.0.0.6") == 401
    assert me(api_client, second, "10.0.0.5") == 401
    assert Token.objects.get(pk=first_sid).ip == "10.0.0.5"
    assert Token.objects.get(pk=second_sid).ip == "10.0.0.6"


@pytest.mark.django_db
def test_the_session_returned_on_first_use_carries_its_binding(user, bind_to_ip):
    """``request.auth`` is the session as its row now is: bound, to this client."""
    token, sid = cli_token("alice")
    request = APIRequestFactory().get(ME, REMOTE_ADDR="10.0.0.5", **bearer(token))

    _user, session = JWTAuthentication().authenticate(Request(request))

    row = Token.objects.get(pk=sid)
    assert (session.ip, session.bind_on_first_use) == (row.ip, row.bind_on_first_use)
    assert (row.ip, row.bind_on_first_use) == ("10.0.0.5", False)


@pytest.mark.django_db
def test_a_cli_token_binds_to_its_first_user_agent(api_client, user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "BIND_TO_USER_AGENT": True}
    token, _sid = cli_token("alice")

    assert me(api_client, token, agent="Scanner/2") == 200
    assert me(api_client, token, agent="curl/8") == 401
    assert me(api_client, token, "10.9.9.9", agent="Scanner/2") == 200  # IP is not bound


@pytest.mark.django_db
def test_an_admin_token_for_another_user_binds_to_its_holder_not_the_admin(
    admin_client, api_client, user, bind_to_ip
):
    token = admin_token(admin_client, user, "192.0.2.10")

    session = Token.objects.get(user=user)
    assert session.ip is None and session.user_agent == ""  # not the admin's
    assert me(api_client, token, "203.0.113.7") == 200
    assert me(api_client, token, "192.0.2.10") == 401  # the admin's address is another one
    session.refresh_from_db()
    assert session.ip == "203.0.113.7"


@pytest.mark.django_db
def test_an_admin_token_for_oneself_keeps_the_admins_ip(
    admin_client, admin_user, api_client, bind_to_ip
):
    token = admin_token(admin_client, admin_user, "192.0.2.10")

    session = Token.objects.get(user=admin_user)
    assert (session.ip, session.user_agent) == ("192.0.2.10", "AdminBrowser/1")
    assert session.bind_on_first_use is False
    assert me(api_client, token, "203.0.113.7") == 401
    assert me(api_client, token, "192.0.2.10") == 200


@pytest.mark.django_db
def test_without_bind_settings_first_use_writes_nothing(api_client, user):
    token, sid = cli_token("alice")

    assert me(api_client, token, "10.0.0.5") == 200
    assert me(api_client, token, "10.0.0.6") == 200
    session = Token.objects.get(pk=sid)
    assert (session.ip, session.user_agent, session.bind_on_first_use) == (None, "", True)


# -- races on PostgreSQL ----------------------------------------------------------------


def first_uses_together(token: str, addresses: list[str]) -> list[int]:
    """One request per address, each from its own thread and database connection, released
    together; their status codes."""
    barrier = threading.Barrier(len(addresses))
    statuses: list[int] = [0] * len(addresses)
    errors: list[BaseException] = []

    def use(index: int) -> None:
        try:
            client = APIClient()
            barrier.wait(timeout=JOIN_TIMEOUT)
            statuses[index] = me(client, token, addresses[index])
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=use, args=(i,)) for i in range(len(addresses))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]
    return statuses


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_first_uses_bind_exactly_one_address(api_client, user, bind_to_ip):
    addresses = ["198.51.100.1", "198.51.100.2"]
    for _round in range(8):  # several rounds, so the requests really overlap at least once
        token, sid = cli_token("alice")

        statuses = first_uses_together(token, addresses)

        assert sorted(statuses) == [200, 401], statuses
        winner = addresses[statuses.index(200)]
        loser = addresses[statuses.index(401)]
        assert Token.objects.get(pk=sid).ip == winner
        assert me(api_client, token, winner) == 200
        assert me(api_client, token, loser) == 401


# -- cached mode (Redis, local memory) -------------------------------------------------


@pytest.fixture(params=[pytest.param("default", marks=pytest.mark.redis, id="redis"), "locmem"])
def cached_mode(request: pytest.FixtureRequest, settings: Any) -> Any:
    """Cached mode on Redis (the default cache when Redis answers), and on local memory."""
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "SESSION_CACHE_TTL": 300,
        "CACHE": request.param,
    }
    cache = caches[request.param]
    cache.clear()
    yield cache
    cache.clear()


@pytest.mark.django_db
def test_cached_mode_binds_to_the_first_client_ip(api_client, user, bind_to_ip, cached_mode):
    token, sid = cli_token("alice")

    assert me(api_client, token, "10.0.0.5") == 200
    # The snapshot filled before the binding said "unbound": it is marked stale.
    assert cached_mode.get(session_cache.session_key(sid)) == session_cache.STALE
    assert me(api_client, token, "10.0.0.6") == 401
    assert me(api_client, token, "10.0.0.5") == 200
    assert Token.objects.get(pk=sid).ip == "10.0.0.5"


@pytest.mark.django_db
def test_cached_mode_a_stale_unbound_snapshot_cannot_bind_again(
    api_client, user, bind_to_ip, cached_mode, monkeypatch
):
    token, sid = cli_token("alice")
    monkeypatch.setattr(session_cache, "mark_stale", lambda sids: None)  # a lost cache write

    assert me(api_client, token, "10.0.0.5") == 200
    snapshot = store_live.restore(cached_mode.get(session_cache.session_key(sid)))
    assert snapshot is not None and snapshot.bind_on_first_use  # it still says "unbound"
    assert me(api_client, token, "10.0.0.6") == 401
    assert me(api_client, token, "10.0.0.5") == 200


class ReplicaRouter:
    """This app's reads go to a read replica, its writes to the primary, by app label as in
    Django's multi-database examples; these tests may not use the replica, so any read sent
    to it fails the request."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return "replica" if model._meta.app_label == "cocart_jwt" else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "default" if model._meta.app_label == "cocart_jwt" else None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True


@pytest.mark.django_db
def test_cached_mode_a_stale_unbound_snapshot_reads_the_binding_from_the_primary(
    api_client, user, bind_to_ip, cached_mode, monkeypatch, settings
):
    """A replica may not have the binding another request just claimed on the primary."""
    token, _sid = cli_token("alice")
    monkeypatch.setattr(session_cache, "mark_stale", lambda sids: None)  # a lost cache write
    assert me(api_client, token, "10.0.0.5") == 200
    settings.DATABASE_ROUTERS = [f"{__name__}.ReplicaRouter"]

    assert me(api_client, token, "10.0.0.6") == 401
    assert me(api_client, token, "10.0.0.5") == 200


@pytest.mark.django_db
def test_cached_mode_an_unbound_snapshot_of_a_deleted_session_is_refused(
    api_client, user, cached_mode, settings, caplog
):
    """BIND_TO_IP turned on while an unbound snapshot is cached, and the row deleted behind
    the app's back (no tombstone): the first use finds nothing to bind, and is refused."""
    token, sid = cli_token("alice")
    assert me(api_client, token, "10.0.0.5") == 200  # snapshot: unbound
    with connection.cursor() as cursor:
        for model, column in ((RefreshToken, "session_id"), (Token, "id")):
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"DELETE FROM {table} WHERE {column} = %s", [sid])  # noqa: S608
    settings.COCART_JWT = {**settings.COCART_JWT, "BIND_TO_IP": True}

    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        assert me(api_client, token, "10.0.0.5") == 401

    assert info_records(caplog) == [f"Access token refused: session {sid} no longer exists"]
