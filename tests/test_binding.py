"""BIND_TO_IP / BIND_TO_USER_AGENT for tokens issued without their holder's request.

A login records its client; a token made by ``jwt create`` or by an administrator for another
user has no holder's request to record (the admin's own IP is not the holder's), so it binds
to its first use: that client is recorded, every other one refused from then on. An admin's
token for themself keeps the admin's IP. On PostgreSQL, racing first uses from two addresses
leave exactly one accepted; in cached mode (Redis) the same holds.
"""

from __future__ import annotations

import json
import re
import threading
from io import StringIO
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import connections
from rest_framework.test import APIClient

from cocart_jwt.models import Token
from cocart_jwt.store import cached
from cocart_jwt.store.live import restore
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


@pytest.mark.django_db
def test_a_cli_token_binds_to_its_first_client_ip(api_client, user, bind_to_ip):
    token, sid = cli_token("alice")

    assert me(api_client, token, "10.0.0.5") == 200
    assert me(api_client, token, "10.0.0.6") == 401
    assert me(api_client, token, "10.0.0.5") == 200
    session = Token.objects.get(pk=sid)
    assert (session.ip, session.user_agent, session.bind_on_first_use) == (
        "10.0.0.5",
        "App/1",
        False,
    )


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


# -- cached mode (Redis) ----------------------------------------------------------------


@pytest.fixture
def cached_mode(settings: Any) -> Any:
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.mark.redis
@pytest.mark.django_db
def test_cached_mode_binds_to_the_first_client_ip(api_client, user, bind_to_ip, cached_mode):
    token, sid = cli_token("alice")

    assert me(api_client, token, "10.0.0.5") == 200
    # The snapshot filled before the binding said "unbound": it is marked stale.
    assert caches["default"].get(cached.session_key(sid)) == cached.STALE
    assert me(api_client, token, "10.0.0.6") == 401
    assert me(api_client, token, "10.0.0.5") == 200
    assert Token.objects.get(pk=sid).ip == "10.0.0.5"


@pytest.mark.redis
@pytest.mark.django_db
def test_cached_mode_a_stale_unbound_snapshot_cannot_bind_again(
    api_client, user, bind_to_ip, cached_mode, monkeypatch
):
    token, sid = cli_token("alice")
    monkeypatch.setattr(cached, "mark_stale", lambda sids: None)  # a lost cache write

    assert me(api_client, token, "10.0.0.5") == 200
    snapshot = restore(caches["default"].get(cached.session_key(sid)))
    assert snapshot is not None and snapshot.bind_on_first_use  # it still says "unbound"
    assert me(api_client, token, "10.0.0.6") == 401
    assert me(api_client, token, "10.0.0.5") == 200
