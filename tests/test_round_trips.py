"""Login and refresh on PostgreSQL: the round trips they cost, and what they still guarantee.

Round trips are counted from libpq's protocol trace (``bench/roundtrips.py``): statements sent
together in pipeline mode are one. The requests run outside any test transaction
(``transaction=True``), so BEGIN and COMMIT are counted as in production.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import update_last_login
from django.contrib.auth.signals import user_logged_in
from django.db import connection, connections, transaction
from rest_framework.test import APIClient

from bench.roundtrips import round_trips
from cocart_jwt.models import Event, RefreshToken, RevokeReason, Token, TokenEvent
from cocart_jwt.utils import now
from tests.factories import bearer, login, refresh

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ME = "/api/me/"
CAP = 10  # MAX_TOKENS_PER_USER's default


@pytest.fixture
def without_update_last_login() -> Iterator[None]:
    """Django's own ``update_last_login`` receiver disconnected: a site's receivers of
    ``user_logged_in`` are outside the login's budget."""
    user_logged_in.disconnect(dispatch_uid="update_last_login")
    try:
        yield
    finally:
        user_logged_in.connect(update_last_login, dispatch_uid="update_last_login")


def at_the_cap(user: Any) -> list[Any]:
    return [Token.objects.issue(user) for _ in range(CAP)]


def test_a_login_that_evicts_is_four_round_trips(
    user: Any, password: str, without_update_last_login: None
) -> None:
    """The user lookup, BEGIN, the lock and the one statement (pipelined), COMMIT."""
    issued = at_the_cap(user)
    client = APIClient()

    with round_trips() as counted:
        response = login(client, user.username, password)

    assert response.status_code == 200, response.content
    assert counted.total <= 4, counted
    user.refresh_from_db()
    new = Token.objects.get(pk=response.json()["sid"])
    assert user.last_login == new.created_at  # set by the statement that locks the user
    oldest, kept = issued[0], issued[1:]
    assert Token.objects.get(pk=oldest.session.pk).revoke_reason == RevokeReason.MAX_TOKENS
    assert set(Token.objects.live().filter(user=user).values_list("pk", flat=True)) == {
        new.pk,
        *(tokens.session.pk for tokens in kept),
    }
    assert client.get(ME, **bearer(response.json()["access_token"])).status_code == 200
    assert APIClient().get(ME, **bearer(oldest.access_token)).status_code == 401
    assert APIClient().get(ME, **bearer(kept[0].access_token)).status_code == 200
    assert RefreshToken.objects.filter(session=new, used_at__isnull=True).count() == 1
    # The events, written by the same statement: the login's, and the eviction's.
    assert TokenEvent.objects.filter(sid=new.pk, event=Event.ISSUED).count() == 1
    evicted = TokenEvent.objects.get(sid=oldest.session.pk, event=Event.REVOKED)
    assert evicted.reason == RevokeReason.MAX_TOKENS


def test_djangos_update_last_login_costs_one_round_trip_more(user: Any, password: str) -> None:
    at_the_cap(user)

    with round_trips() as counted:
        response = login(APIClient(), user.username, password)

    assert response.status_code == 200, response.content
    assert counted.total <= 5, counted
    user.refresh_from_db()
    assert user.last_login is not None
    assert user.last_login >= Token.objects.get(pk=response.json()["sid"]).created_at


def test_a_refresh_is_three_round_trips_and_still_rotates(user: Any, password: str) -> None:
    """BEGIN, one statement (claim, slide, insert the next token), COMMIT."""
    pair = login(APIClient(), user.username, password).json()
    client = APIClient()

    with round_trips() as counted:
        response = refresh(client, pair["refresh_token"])

    assert response.status_code == 200, response.content
    assert counted.total <= 3, counted
    new = response.json()
    assert new["sid"] == pair["sid"] and new["refresh_token"] != pair["refresh_token"]
    assert TokenEvent.objects.filter(sid=pair["sid"], event=Event.REFRESHED).count() == 1
    assert client.get(ME, **bearer(new["access_token"])).status_code == 200
    # The spent token is reuse: the session is revoked, the new pair with it.
    assert refresh(APIClient(), pair["refresh_token"]).status_code == 401
    assert Token.objects.get(pk=pair["sid"]).revoke_reason == RevokeReason.REFRESH_TOKEN_REUSED
    assert client.get(ME, **bearer(new["access_token"])).status_code == 401


def test_a_refresh_of_an_inactive_users_session_changes_nothing(user: Any, password: str) -> None:
    """The statement claims before Python sees the user: the refusal rolls the claim back."""
    pair = login(APIClient(), user.username, password).json()
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)  # bypasses save()

    assert refresh(APIClient(), pair["refresh_token"]).status_code == 401
    assert not RefreshToken.objects.filter(session_id=pair["sid"], used_at__isnull=False).exists()
    assert RefreshToken.objects.filter(session_id=pair["sid"]).count() == 1
    get_user_model().objects.filter(pk=user.pk).update(is_active=True)
    assert refresh(APIClient(), pair["refresh_token"]).status_code == 200


def wait_until_blocked(pid: int) -> None:
    """Until backend ``pid`` waits for a lock (bounded: 20 s)."""
    deadline = time.monotonic() + 20
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
            row = cursor.fetchone()
            if row and row[0] == "Lock":
                return
            time.sleep(0.01)
    raise AssertionError("the login never waited for the user's lock")


def test_a_login_that_waited_for_the_lock_comes_out_newest(settings: Any, user: Any) -> None:
    """A login reads its clock before its lock is granted (both go in one round trip). When
    another login holds the lock and commits a session dated later, the waiting one must
    still come out newest: the cap keeps it and revokes the other."""
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": 1}
    later = now() + timedelta(seconds=5)
    holding, release = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def other_login() -> None:
        try:
            with transaction.atomic():
                get_user_model().objects.select_for_update().get(pk=user.pk)
                outcome["other"] = Token.objects.create(
                    user=user, created_at=later, expires_at=later + timedelta(days=1)
                )
                holding.set()
                release.wait(30)
        finally:
            connections.close_all()

    def waiting_login() -> None:
        try:
            connection.ensure_connection()
            outcome["pid"] = connection.connection.info.backend_pid
            started.set()
            outcome["issued"] = Token.objects.issue(user)
        except Exception as exc:  # reported below
            outcome["error"] = exc
        finally:
            connections.close_all()

    started = threading.Event()
    holder = threading.Thread(target=other_login)
    holder.start()
    assert holding.wait(30)
    waiter = threading.Thread(target=waiting_login)
    waiter.start()
    try:
        assert started.wait(30)
        wait_until_blocked(outcome["pid"])
    finally:
        release.set()
        holder.join(30)
        waiter.join(30)
    assert "error" not in outcome, outcome.get("error")

    issued = Token.objects.get(pk=outcome["issued"].session.pk)
    other = Token.objects.get(pk=outcome["other"].pk)
    assert issued.created_at >= other.created_at
    assert outcome["issued"].session.created_at == issued.created_at
    assert other.revoke_reason == RevokeReason.MAX_TOKENS
    assert list(Token.objects.live().filter(user=user)) == [issued]
