"""Races on a real PostgreSQL: refresh-token reuse, the per-user cap, logout against refresh.

Every test runs its requests in threads released together by a ``threading.Barrier``; each
thread has its own ``APIClient`` (and so its own database connection), and closes its
connections when done. The data must be committed for the threads to see it, hence
``transaction=True``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, connections, transaction
from django.urls import reverse
from rest_framework.test import APIClient

from cocart_jwt.models import RevokeReason, Token
from cocart_jwt.signals import refresh_token_reused
from tests.factories import bearer, login, refresh

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ME = "/api/me/"
# Far above what any of these races sends: the races are about locking, not rate limits.
GENEROUS_RATES = {
    "login": "100000/min",
    "refresh": "100000/min",
    "validate": "100000/min",
    "login_link": "100000/min",
}
JOIN_TIMEOUT = 60


@pytest.fixture(autouse=True)
def generous_rate_limits(settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": GENEROUS_RATES}


def run_together(count: int, work: Callable[[int, APIClient], Any]) -> list[Any]:
    """Run ``work(i, client)`` in ``count`` threads started at once; return their results.

    An exception in a thread is re-raised here, so a 500 or a crash fails the test.
    """
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def target(index: int) -> None:
        try:
            client = APIClient()
            barrier.wait(timeout=JOIN_TIMEOUT)
            results[index] = work(index, client)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a thread hung (deadlock?)"
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def reuse_signals() -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    refresh_token_reused.connect(receiver, weak=False, dispatch_uid="test_concurrency_reuse")
    try:
        yield received
    finally:
        refresh_token_reused.disconnect(dispatch_uid="test_concurrency_reuse")


def fresh_login(user: Any, password: str) -> dict[str, Any]:
    response = login(APIClient(), user.username, password)
    assert response.status_code == 200, response.content
    return response.json()


def me_status(access_token: str) -> int:
    return APIClient().get(ME, **bearer(access_token)).status_code


@pytest.mark.parametrize("round_number", range(3))
def test_concurrent_reuse_of_one_refresh_token_has_one_winner_and_revokes_the_session(
    user: Any, password: str, reuse_signals: list[dict[str, Any]], round_number: int
) -> None:
    pair = fresh_login(user, password)
    sid = pair["sid"]

    responses = run_together(12, lambda _i, client: refresh(client, pair["refresh_token"]))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [401] * 11, statuses
    winner = next(response.json() for response in responses if response.status_code == 200)
    assert winner["sid"] == sid
    assert winner["refresh_token"] != pair["refresh_token"]

    session = Token.objects.get(pk=sid)
    assert session.revoked_at is not None
    assert session.revoke_reason == RevokeReason.REFRESH_TOKEN_REUSED
    assert not Token.objects.live().filter(user=user).exists()

    assert me_status(winner["access_token"]) == 401
    assert me_status(pair["access_token"]) == 401
    assert refresh(APIClient(), winner["refresh_token"]).status_code == 401

    assert len(reuse_signals) >= 1
    assert {received["token"].pk for received in reuse_signals} == {sid}
    assert all(received["user"].pk == user.pk for received in reuse_signals)


@pytest.mark.parametrize(
    ("cap", "logins"),
    [(None, 24), (3, 10)],
    ids=["default-cap-10-with-24-logins", "cap-3-with-10-logins"],
)
def test_concurrent_logins_keep_exactly_the_newest_sessions_under_the_cap(
    settings: Any, user: Any, password: str, cap: int | None, logins: int
) -> None:
    if cap is not None:
        settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": cap}
    expected_live = cap or 10

    responses = run_together(logins, lambda _i, client: login(client, user.username, password))

    assert [response.status_code for response in responses] == [200] * logins
    sids = {response.json()["sid"] for response in responses}
    assert len(sids) == logins
    assert set(Token.objects.filter(user=user).values_list("pk", flat=True)) == sids

    live = list(Token.objects.live().filter(user=user))
    revoked = list(Token.objects.filter(user=user, revoked_at__isnull=False))
    assert len(live) == expected_live
    assert len(revoked) == logins - expected_live
    assert {session.revoke_reason for session in revoked} == {RevokeReason.MAX_TOKENS}
    # The survivors are the newest: none of them is older than any evicted session.
    assert min(s.created_at for s in live) >= max(s.created_at for s in revoked), sorted(
        (s.created_at.isoformat(), s.status) for s in live + revoked
    )

    # What the clients see matches the registry: exactly the live sessions' tokens work.
    by_sid = {response.json()["sid"]: response.json() for response in responses}
    live_ids = {session.pk for session in live}
    for sid, pair in by_sid.items():
        assert me_status(pair["access_token"]) == (200 if sid in live_ids else 401), sid


def test_concurrent_refreshes_of_different_sessions_of_one_user_all_succeed(
    user: Any, password: str
) -> None:
    pairs = [fresh_login(user, password) for _ in range(8)]

    responses = run_together(8, lambda i, client: refresh(client, pairs[i]["refresh_token"]))

    assert [response.status_code for response in responses] == [200] * 8
    renewed = [response.json() for response in responses]
    assert [pair["sid"] for pair in renewed] == [pair["sid"] for pair in pairs]
    assert Token.objects.live().filter(user=user).count() == 8
    assert not Token.objects.filter(user=user, revoked_at__isnull=False).exists()
    for pair in renewed:
        assert me_status(pair["access_token"]) == 200
    # Each rotation spent only its own token: the next refresh of every session works too.
    for pair in renewed:
        assert refresh(APIClient(), pair["refresh_token"]).status_code == 200


@pytest.mark.parametrize("round_number", range(4))
def test_concurrent_logout_and_refresh_of_one_session_never_leave_it_live(
    user: Any, password: str, round_number: int
) -> None:
    pair = fresh_login(user, password)

    def work(index: int, client: APIClient) -> Any:
        if index == 0:
            return client.post(reverse("cocart_jwt:logout"), **bearer(pair["access_token"]))
        return refresh(client, pair["refresh_token"])

    logout_response, refresh_response = run_together(2, work)

    assert logout_response.status_code == 204
    assert refresh_response.status_code in (200, 401), refresh_response.content
    session = Token.objects.get(pk=pair["sid"])
    assert session.revoked_at is not None
    assert session.revoke_reason == RevokeReason.LOGOUT
    assert not Token.objects.live().filter(user=user).exists()
    assert me_status(pair["access_token"]) == 401
    if refresh_response.status_code == 200:
        won = refresh_response.json()
        assert won["sid"] == pair["sid"]
        assert me_status(won["access_token"]) == 401
        assert refresh(APIClient(), won["refresh_token"]).status_code == 401
    assert not Token.objects.live().filter(user=user).exists()


# --- a session's lock is its own: never its user's row -----------------------------------------


@contextmanager
def users_row_locked(user: Any, *, no_key: bool = False) -> Iterator[None]:
    """Another connection holds ``user``'s row lock, as a login of that user in progress does
    (its last_login write, then the lock of MAX_TOKENS_PER_USER), until the block ends.
    ``no_key``: only the lock of an UPDATE such as the last_login write, which leaves a new row
    that refers to the user (a session) free to be inserted."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                get_user_model().objects.select_for_update(no_key=no_key).get(pk=user.pk)
                locked.set()
                release.wait(JOIN_TIMEOUT)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(JOIN_TIMEOUT)
        yield
    finally:
        release.set()
        holder.join(JOIN_TIMEOUT)


@contextmanager
def no_lock_waits() -> Iterator[None]:
    """Any lock this connection would wait for fails at once (PostgreSQL's lock_timeout)
    instead of waiting: a test that passes waited for nothing."""
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '100ms'")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


def test_refresh_logout_and_renew_never_wait_for_a_login_of_the_same_user(
    user: Any, password: str
) -> None:
    pairs = [fresh_login(user, password) for _ in range(3)]
    client = APIClient()

    with users_row_locked(user), no_lock_waits():
        refreshed = refresh(client, pairs[0]["refresh_token"])
        logged_out = client.post(reverse("cocart_jwt:logout"), **bearer(pairs[1]["access_token"]))
        renewed = Token.objects.renew(Token.objects.get(pk=pairs[2]["sid"]))

    assert refreshed.status_code == 200
    assert logged_out.status_code == 204
    assert renewed is not None and renewed.session.pk == pairs[2]["sid"]


def test_a_new_session_waits_for_another_login_of_the_same_user_under_the_cap(user: Any) -> None:
    """The cap's lock is the user's row: a session cannot count the live sessions while a
    login of that user that wrote its last_login has not committed."""
    with users_row_locked(user, no_key=True), no_lock_waits():
        with pytest.raises(OperationalError, match="lock timeout"):
            Token.objects.issue(user)

    assert Token.objects.issue(user).session.user_id == user.pk
