"""REFRESH_REUSE_GRACE: the immediate parent of the newest refresh token, presented again soon
after its rotation while its child is unused, gets a new pair; anything else is reuse.

Each test runs on both paths of ``Token.objects.rotate``: PostgreSQL's one statement, and the
ORM path of other databases (forced on PostgreSQL too, so the locks are real).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection, connections, transaction
from django.urls import reverse
from rest_framework.test import APIClient

from bench.roundtrips import round_trips
from cocart_jwt import postgres
from cocart_jwt.choices import Event
from cocart_jwt.models import RefreshToken, RevokeReason, Token, TokenEvent
from cocart_jwt.settings import jwt_settings
from cocart_jwt.signals import refresh_token_reused
from cocart_jwt.utils import sha256_hex
from tests.factories import bearer, login, refresh, signed_in
from tests.test_concurrency import run_together
from tests.test_round_trips import wait_until_blocked

ME = "/api/me/"
GRACE = timedelta(seconds=10)
T0 = "2026-01-01 00:00:00+00:00"
TICK = timedelta(microseconds=1)


@pytest.fixture(params=[pytest.param("statement", marks=pytest.mark.postgres), "orm"])
def rotation_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """PostgreSQL's one statement, or the portable ORM path (forced wherever it runs)."""
    if request.param == "orm":
        monkeypatch.setattr(postgres, "supported", lambda using: False)
    return str(request.param)


@pytest.fixture
def grace(settings: Any, rotation_path: str) -> timedelta:
    settings.COCART_JWT = {**settings.COCART_JWT, "REFRESH_REUSE_GRACE": GRACE.total_seconds()}
    return GRACE


@pytest.fixture
def reuses() -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    refresh_token_reused.connect(receiver, weak=False, dispatch_uid="test_reuse_grace")
    try:
        yield received
    finally:
        refresh_token_reused.disconnect(dispatch_uid="test_reuse_grace")


@pytest.fixture
def clock() -> Iterator[Any]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def rotated(refresh_token: str) -> dict[str, Any]:
    response = refresh(APIClient(), refresh_token)
    assert response.status_code == 200, response.content
    return response.json()


def unused_refresh_tokens(sid: str) -> list[str]:
    return list(
        RefreshToken.objects.filter(session_id=sid, used_at__isnull=True).values_list(
            "token_hash", flat=True
        )
    )


def assert_reuse(sid: str, response: Any, reuses: list[dict[str, Any]]) -> None:
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_grant"
    assert Token.objects.get(pk=sid).revoke_reason == RevokeReason.REFRESH_TOKEN_REUSED
    assert [signal["token"].pk for signal in reuses] == [sid]


def test_seconds_are_accepted_and_the_default_is_off(settings: Any) -> None:
    assert jwt_settings.REFRESH_REUSE_GRACE == timedelta(0)
    settings.COCART_JWT = {**settings.COCART_JWT, "REFRESH_REUSE_GRACE": 10}
    assert jwt_settings.REFRESH_REUSE_GRACE == timedelta(seconds=10)


@pytest.mark.django_db
def test_without_a_grace_a_parent_presented_again_is_reuse(
    user: Any, password: str, rotation_path: str, reuses: list[dict[str, Any]]
) -> None:
    first = signed_in(user, password)
    rotated(first["refresh_token"])

    assert_reuse(first["sid"], refresh(APIClient(), first["refresh_token"]), reuses)


@pytest.mark.django_db
def test_a_parent_presented_again_within_the_grace_gets_a_new_pair_and_spends_its_child(
    user: Any, password: str, grace: timedelta, reuses: list[dict[str, Any]], clock: Any
) -> None:
    first = signed_in(user, password)
    lost = rotated(first["refresh_token"])  # the response a flaky network never delivered
    clock.shift(grace / 2)

    retry = refresh(APIClient(), first["refresh_token"])

    assert retry.status_code == 200, retry.content
    pair = retry.json()
    assert pair["sid"] == first["sid"]
    assert pair["refresh_token"] not in (first["refresh_token"], lost["refresh_token"])
    assert unused_refresh_tokens(first["sid"]) == [sha256_hex(pair["refresh_token"])]
    assert APIClient().get(ME, **bearer(pair["access_token"])).status_code == 200
    assert rotated(pair["refresh_token"])["sid"] == first["sid"]
    assert reuses == []
    # The security log tells the retry from a refresh.
    assert list(
        TokenEvent.objects.filter(sid=first["sid"]).order_by("at", "id").values_list("event")
    ) == [(Event.ISSUED,), (Event.REFRESHED,), (Event.REUSE_GRACE,), (Event.REFRESHED,)]


@pytest.mark.django_db
def test_retries_within_the_grace_each_spend_the_previous_retrys_child(
    user: Any, password: str, grace: timedelta, reuses: list[dict[str, Any]], clock: Any
) -> None:
    first = signed_in(user, password)
    rotated(first["refresh_token"])

    for _ in range(3):
        clock.shift(grace / 4)
        pair = rotated(first["refresh_token"])
        assert unused_refresh_tokens(first["sid"]) == [sha256_hex(pair["refresh_token"])]
    assert reuses == []


@pytest.mark.django_db
def test_the_grace_ends_exactly_its_length_after_the_rotation(
    user: Any, password: str, grace: timedelta, reuses: list[dict[str, Any]], clock: Any
) -> None:
    first = signed_in(user, password)
    rotated(first["refresh_token"])
    clock.shift(grace)
    rotated(first["refresh_token"])  # the grace runs from the rotation, not from a retry
    clock.shift(TICK)

    assert_reuse(first["sid"], refresh(APIClient(), first["refresh_token"]), reuses)


@pytest.mark.django_db
def test_a_grandparent_inside_the_grace_is_reuse(
    user: Any, password: str, grace: timedelta, reuses: list[dict[str, Any]]
) -> None:
    """A parent whose child was used (the client got the child, and rotated it) is reuse:
    django-oauth-toolkit's grace let tokens several generations old through (its #1617)."""
    first = signed_in(user, password)
    second = rotated(first["refresh_token"])
    third = rotated(second["refresh_token"])

    assert_reuse(first["sid"], refresh(APIClient(), first["refresh_token"]), reuses)
    assert refresh(APIClient(), third["refresh_token"]).status_code == 401
    assert APIClient().get(ME, **bearer(third["access_token"])).status_code == 401


@pytest.mark.django_db
def test_a_parent_whose_child_a_renewal_spent_is_reuse(
    user: Any, password: str, grace: timedelta, reuses: list[dict[str, Any]]
) -> None:
    first = signed_in(user, password)
    second = rotated(first["refresh_token"])
    renewed = login(APIClient(), user.username, password, **bearer(second["access_token"]))
    assert renewed.json()["sid"] == first["sid"]

    assert_reuse(first["sid"], refresh(APIClient(), first["refresh_token"]), reuses)


@pytest.mark.django_db
def test_a_token_spent_by_a_renewal_is_reuse_at_once(
    user: Any, password: str, grace: timedelta, reuses: list[dict[str, Any]]
) -> None:
    """Only a rotation by refresh/ opens the grace: a re-login carrying the session's Bearer
    spends its refresh token for good."""
    first = signed_in(user, password)
    renewed = login(APIClient(), user.username, password, **bearer(first["access_token"]))
    assert renewed.json()["sid"] == first["sid"]

    assert_reuse(first["sid"], refresh(APIClient(), first["refresh_token"]), reuses)


@pytest.mark.django_db
def test_the_child_a_retry_spent_is_reuse_at_once(
    user: Any, password: str, grace: timedelta, reuses: list[dict[str, Any]]
) -> None:
    first = signed_in(user, password)
    lost = rotated(first["refresh_token"])
    retry = rotated(first["refresh_token"])

    assert_reuse(first["sid"], refresh(APIClient(), lost["refresh_token"]), reuses)
    assert refresh(APIClient(), retry["refresh_token"]).status_code == 401


@pytest.mark.django_db
def test_a_retry_of_a_logged_out_session_is_refused_and_changes_nothing(
    user: Any, password: str, grace: timedelta, reuses: list[dict[str, Any]], caplog: Any
) -> None:
    first = signed_in(user, password)
    second = rotated(first["refresh_token"])
    logout = APIClient().post(reverse("cocart_jwt:logout"), **bearer(second["access_token"]))
    assert logout.status_code == 204
    caplog.set_level(logging.INFO, logger="cocart_jwt")

    response = refresh(APIClient(), first["refresh_token"])

    assert response.status_code == 401
    assert Token.objects.get(pk=first["sid"]).revoke_reason == RevokeReason.LOGOUT
    assert unused_refresh_tokens(first["sid"]) == [sha256_hex(second["refresh_token"])]
    assert reuses == []
    assert f"session {first['sid']} is revoked" in caplog.text


@pytest.mark.django_db
def test_a_retry_is_logged_without_any_token(
    user: Any, password: str, grace: timedelta, caplog: Any
) -> None:
    first = signed_in(user, password)
    rotated(first["refresh_token"])
    caplog.set_level(logging.INFO, logger="cocart_jwt")

    pair = rotated(first["refresh_token"])

    assert f"Refresh of session {first['sid']} within REFRESH_REUSE_GRACE" in caplog.text
    for secret in (first["refresh_token"], pair["refresh_token"], pair["access_token"]):
        assert secret not in caplog.text


# -- PostgreSQL: real concurrency, and the refresh's round trips --------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_retries_within_the_grace_all_succeed_and_leave_one_live_pair(
    user: Any, password: str, grace: timedelta, reuses: list[dict[str, Any]]
) -> None:
    first = signed_in(user, password)
    rotated(first["refresh_token"])

    responses = run_together(20, lambda _i, client: refresh(client, first["refresh_token"]))

    assert [response.status_code for response in responses] == [200] * 20
    issued = {response.json()["refresh_token"] for response in responses}
    assert len(issued) == 20
    unused = unused_refresh_tokens(first["sid"])
    assert len(unused) == 1
    (live,) = [token for token in issued if sha256_hex(token) == unused[0]]
    assert Token.objects.get(pk=first["sid"]).revoked_at is None
    assert reuses == []
    assert rotated(live)["sid"] == first["sid"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_retries_racing_the_childs_own_refresh_never_deadlock(
    user: Any, password: str, grace: timedelta
) -> None:
    """Whoever wins, no request fails (a deadlock would be a database error, a 500), and the
    session ends revoked: of six presentations of the child five at least are reuse."""
    first = signed_in(user, password)
    second = rotated(first["refresh_token"])
    presented = [first["refresh_token"], second["refresh_token"]] * 6

    responses = run_together(12, lambda i, client: refresh(client, presented[i]))

    assert {response.status_code for response in responses} <= {200, 401}
    session = Token.objects.get(pk=first["sid"])
    assert session.revoke_reason == RevokeReason.REFRESH_TOKEN_REUSED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_with_a_grace_a_refresh_is_still_three_round_trips(
    user: Any, password: str, settings: Any
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "REFRESH_REUSE_GRACE": GRACE}
    pair = signed_in(user, password)

    with round_trips() as counted:
        response = refresh(APIClient(), pair["refresh_token"])

    assert response.status_code == 200, response.content
    assert counted.total <= 3, counted
    child = RefreshToken.objects.get(token_hash=sha256_hex(response.json()["refresh_token"]))
    assert child.parent == RefreshToken.objects.get(token_hash=sha256_hex(pair["refresh_token"]))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_refresh_locks_its_session_before_its_token(
    user: Any, password: str, grace: timedelta
) -> None:
    """A retry locks the session, then spends the newest token; the newest token's own refresh
    must take the two locks in the same order, or each may wait for the other's (PostgreSQL
    then aborts one: a 500). While the session is locked, a refresh waits with its token
    unlocked."""
    first = signed_in(user, password)
    second = rotated(first["refresh_token"])
    child = RefreshToken.objects.get(token_hash=sha256_hex(second["refresh_token"]))
    holding, release, started = threading.Event(), threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def hold_the_session() -> None:
        try:
            with transaction.atomic():
                Token.objects.select_for_update().get(pk=first["sid"])
                holding.set()
                release.wait(30)
        finally:
            connections.close_all()

    def refresh_the_child() -> None:
        try:
            connection.ensure_connection()
            outcome["pid"] = connection.connection.info.backend_pid
            started.set()
            outcome["status"] = refresh(APIClient(), second["refresh_token"]).status_code
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_session)
    refresher = threading.Thread(target=refresh_the_child)
    holder.start()
    assert holding.wait(30)
    refresher.start()
    try:
        assert started.wait(30)
        wait_until_blocked(outcome["pid"])
        with transaction.atomic():
            locked = RefreshToken.objects.select_for_update(nowait=True).filter(pk=child.pk)
            assert list(locked) == [child]  # NOWAIT: an error if the refresh held it
    finally:
        release.set()
        holder.join(30)
        refresher.join(30)
    assert outcome["status"] == 200
