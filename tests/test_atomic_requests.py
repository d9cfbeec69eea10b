"""The views keep their guarantees under ``ATOMIC_REQUESTS``, however a site mounts them.

With ATOMIC_REQUESTS every view runs in a transaction, and DRF's exception handler marks it
for rollback on any error response. The revocation that answers a reused refresh token is
written behind a 401: in that transaction it would be undone, and the thief's refresh token
would keep working; a lockout record written when a login fails would vanish too. The views
step out of ATOMIC_REQUESTS by their own ``as_view()``, so a site that mounts
``RefreshView.as_view()`` in its own URLconf (no ``cocart_jwt.urls``) is as safe as one that
includes the app's URLs.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.signals import user_login_failed
from django.db import connection
from django.urls import include, path
from rest_framework.test import APIClient

from cocart_jwt.models import RevokeReason, Token
from cocart_jwt.views import LoginView, RefreshView
from tests.factories import bearer

# This module is the URLconf of its tests: the views mounted directly, as a site would.
urlpatterns = [
    path("site/login/", LoginView.as_view()),
    path("site/refresh/", RefreshView.as_view()),
    path("api/auth/", include("cocart_jwt.urls")),  # reverse() of the app's URL names
]

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def atomic_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """ATOMIC_REQUESTS on for the default database (read per request by Django's handler)."""
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)


def post(client: APIClient, url: str, data: dict[str, Any], **extra: Any) -> Any:
    return client.post(url, data, format="json", **extra)


def test_a_reused_refresh_token_revokes_the_session_under_atomic_requests(
    api_client: APIClient, user: Any, password: str
) -> None:
    first = post(api_client, "/site/login/", {"username": "alice", "password": password}).json()
    second = post(api_client, "/site/refresh/", {"refresh_token": first["refresh_token"]})
    assert second.status_code == 200

    reused = post(api_client, "/site/refresh/", {"refresh_token": first["refresh_token"]})

    assert reused.status_code == 401
    assert reused.json()["code"] == "invalid_grant"
    session = Token.objects.get(pk=first["sid"])
    assert session.revoked_at is not None
    assert session.revoke_reason == RevokeReason.REFRESH_TOKEN_REUSED
    child = post(api_client, "/site/refresh/", {"refresh_token": second.json()["refresh_token"]})
    assert child.status_code == 401
    access = second.json()["access_token"]
    assert api_client.post("/api/auth/validate/", **bearer(access)).status_code == 401


def test_what_a_failed_login_records_outlives_the_401(
    api_client: APIClient, user: Any, django_user_model: Any
) -> None:
    """A ``user_login_failed`` receiver (a lockout counter, as django-axes keeps) writes behind
    the 401: under ATOMIC_REQUESTS that write would be rolled back with the response."""

    def record_failure(sender: Any, credentials: dict[str, Any], **kwargs: Any) -> None:
        django_user_model.objects.filter(username=credentials["username"]).update(
            last_name="one failed login"
        )

    user_login_failed.connect(record_failure)
    try:
        refused = post(api_client, "/site/login/", {"username": "alice", "password": "wrong"})
    finally:
        user_login_failed.disconnect(record_failure)

    assert refused.status_code == 401
    user.refresh_from_db()
    assert user.last_name == "one failed login"


def test_the_views_still_answer_normally_under_atomic_requests(
    api_client: APIClient, user: Any, password: str
) -> None:
    login = post(api_client, "/site/login/", {"username": "alice", "password": password})
    refreshed = post(api_client, "/site/refresh/", {"refresh_token": login.json()["refresh_token"]})

    assert login.status_code == 200 and refreshed.status_code == 200
    assert Token.objects.get(pk=login.json()["sid"]).revoked_at is None
