"""Reads that decide acceptance go to the primary, whatever a read replica still shows.

docs/security.md, "Read replicas". ``ReplicaRouter`` (installed with
settings.DATABASE_ROUTERS) sends every read to the database ``replica`` and every write to
``default``, as a site with a read replica does. ``replica`` is no test mirror: it holds a
stale copy of the rows, taken by ``snapshot()`` before a change, as a replica that lags behind
would. Each case goes through the HTTP API; the change is made on the primary, the replica
still shows the old state, and the app must answer from the primary:

- logout, logout everywhere and ``DELETE sessions/<id>/`` refuse the old access token at once,
  strict mode and cached mode (a cache miss after the revocation must not re-cache the
  replica's live copy); a session the replica has not seen yet can be revoked, also by its
  refresh cookie alone;
- a reused refresh token revokes its session for good;
- ``MAX_TOKENS_PER_USER`` holds against the replica's stale list of sessions;
- a password change: the old password no longer logs in (any authentication backend's reads
  go to the primary: ``cocart_jwt.primary.primary_reads``), the sessions are revoked, their
  refresh tokens refused; also for a user the replica has not seen yet; ``reauthenticate/``
  checks the new password, not the replica's old one;
- deactivation of a user the replica has not seen yet revokes (strict and cached mode), and
  with deactivation left out of REVOKE_ON the cached snapshots still go stale;
- a login link of a revoked session, or made before a password change, is refused; one the
  replica has not seen yet signs in;
- introspection reads the session and the caller's permission on the primary; ``revoke/``
  finds tokens of sessions the replica has not seen yet.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.db import router
from django.urls import reverse

from cocart_jwt import login_links
from cocart_jwt.models import LoginLink, RefreshToken, RevokeReason, Token
from cocart_jwt.store import cached
from tests.factories import bearer, login, refresh

pytestmark = pytest.mark.django_db(databases=["default", "replica"])

ME = "/api/me/"
NEW_PASSWORD = "a new password, changed a moment ago"


class ReplicaRouter:
    """Reads from the replica, writes to the primary: Django's documented primary/replica set-up."""

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return "replica"

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True


class EmailBackend:
    """A site's own authentication backend (log in with an email address): its query is a plain
    read, which the site's router sends to the replica."""

    def authenticate(self, request: Any, username: str = "", password: str = "") -> Any:
        user = get_user_model()._default_manager.filter(email__iexact=username).first()
        return user if user is not None and user.check_password(password) else None

    def get_user(self, user_id: Any) -> Any:
        return get_user_model()._default_manager.filter(pk=user_id).first()


def models_in_order() -> list[Any]:
    return [get_user_model(), Token, RefreshToken, LoginLink]


def snapshot() -> None:
    """The replica becomes a copy of the primary as it is now; later changes stay on the primary."""
    for model in reversed(models_in_order()):
        model._base_manager.using("replica").all().delete()
    for model in models_in_order():
        rows = list(model._base_manager.using("default").order_by("pk"))
        model._base_manager.using("replica").bulk_create(rows)


class AppLabelRouter:
    """The same set-up written as most routers are, by the model's app label: it reads
    ``model._meta``, so a question about no model at all fails instead of being answered."""

    APPS = frozenset({"auth", "cocart_jwt"})

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return "replica" if model._meta.app_label in self.APPS else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "default" if model._meta.app_label in self.APPS else None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True


@pytest.fixture(autouse=True, params=["ReplicaRouter", "AppLabelRouter"])
def replica(request: pytest.FixtureRequest, settings: Any) -> None:
    settings.DATABASE_ROUTERS = [f"tests.test_replica_reads.{request.param}"]


@pytest.fixture(params=["strict", "cached"])
def mode(request: pytest.FixtureRequest, settings: Any) -> Any:
    if request.param == "cached":
        settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}
        caches["default"].clear()
        yield request.param
        caches["default"].clear()
    else:
        yield request.param


def sign_in(api_client: Any, password: str, username: str = "alice") -> dict[str, Any]:
    response = login(api_client, username, password)
    assert response.status_code == 200, response.content
    return dict(response.json())


def me(api_client: Any, access_token: str) -> int:
    return int(api_client.get(ME, **bearer(access_token)).status_code)


def live_on_primary(user: Any) -> int:
    return Token.objects.using("default").live().filter(user=user).count()


def set_revoke_on(settings: Any, *events: str) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "REVOKE_ON": list(events)}


# -- revocations -----------------------------------------------------------------------------


def test_a_logout_refuses_the_access_token_at_once(api_client, user, password, mode):
    tokens = sign_in(api_client, password)
    assert me(api_client, tokens["access_token"]) == 200  # cached mode: the entry is warm
    snapshot()

    logout = api_client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"]))

    assert logout.status_code == 204
    assert me(api_client, tokens["access_token"]) == 401
    assert refresh(api_client, tokens["refresh_token"]).status_code == 401


def test_a_cache_miss_after_a_logout_does_not_cache_the_replicas_live_copy(
    api_client, user, password, settings
):
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}
    cache = caches[settings.COCART_JWT.get("CACHE", "default")]
    tokens = sign_in(api_client, password)
    snapshot()
    api_client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"]))
    cache.delete(cached.session_key(tokens["sid"]))  # the tombstone evicted, or a cache flush

    assert me(api_client, tokens["access_token"]) == 401
    assert cache.get(cached.session_key(tokens["sid"])) == cached.REVOKED
    assert me(api_client, tokens["access_token"]) == 401


def test_logout_everywhere_refuses_every_access_token(api_client, user, password, mode):
    first, second = sign_in(api_client, password), sign_in(api_client, password)
    snapshot()

    response = api_client.post(reverse("cocart_jwt:logout-all"), **bearer(first["access_token"]))

    assert response.status_code == 204
    assert me(api_client, first["access_token"]) == 401
    assert me(api_client, second["access_token"]) == 401


def test_revoking_a_session_through_the_api_holds(api_client, user, password, mode):
    mine, other = sign_in(api_client, password), sign_in(api_client, password)
    snapshot()
    url = reverse("cocart_jwt:session", args=[other["sid"]])

    assert api_client.delete(url, **bearer(mine["access_token"])).status_code == 204
    assert me(api_client, other["access_token"]) == 401
    # Revoked: no longer one of the caller's live sessions, whatever the replica says.
    assert api_client.delete(url, **bearer(mine["access_token"])).status_code == 404


def test_a_session_the_replica_has_not_seen_yet_can_be_revoked(api_client, user, password):
    mine = sign_in(api_client, password)
    snapshot()
    newer = sign_in(api_client, password)  # made after the replica's copy
    url = reverse("cocart_jwt:session", args=[newer["sid"]])

    assert me(api_client, newer["access_token"]) == 200
    assert api_client.delete(url, **bearer(mine["access_token"])).status_code == 204
    assert me(api_client, newer["access_token"]) == 401


def test_a_session_the_replica_has_not_seen_yet_can_log_out_by_its_refresh_cookie(
    api_client, user, password, settings
):
    settings.COCART_JWT = {**settings.COCART_JWT, "COOKIE_TRANSPORT": True}
    snapshot()
    tokens = sign_in(api_client, password)  # made after the replica's copy

    assert api_client.post(reverse("cocart_jwt:logout")).status_code == 204  # the cookie alone
    assert me(api_client, tokens["access_token"]) == 401


def test_a_reused_refresh_token_revokes_the_session_for_good(api_client, user, password, mode):
    first = sign_in(api_client, password)
    second = refresh(api_client, first["refresh_token"]).json()
    assert me(api_client, second["access_token"]) == 200
    snapshot()  # the replica: session live, first refresh token spent, second unused

    assert refresh(api_client, first["refresh_token"]).status_code == 401  # reuse

    assert me(api_client, second["access_token"]) == 401
    assert refresh(api_client, second["refresh_token"]).status_code == 401


# -- the cap ---------------------------------------------------------------------------------


def test_the_cap_holds_against_the_replicas_stale_list(api_client, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": 3}
    logins = [sign_in(api_client, password) for _ in range(2)]
    snapshot()  # the replica lists two live sessions, and will go on listing two

    logins += [sign_in(api_client, password) for _ in range(3)]

    assert live_on_primary(user) == 3
    assert [me(api_client, tokens["access_token"]) for tokens in logins] == [401] * 2 + [200] * 3


# -- password changes and deactivation -------------------------------------------------------


def test_a_password_change_holds_at_once(api_client, user, password, mode):
    tokens = sign_in(api_client, password)
    assert me(api_client, tokens["access_token"]) == 200
    snapshot()  # the replica keeps the old password hash and the live session

    user.set_password(NEW_PASSWORD)
    user.save()

    assert login(api_client, "alice", password).status_code == 401
    assert me(api_client, tokens["access_token"]) == 401
    assert refresh(api_client, tokens["refresh_token"]).status_code == 401
    assert me(api_client, sign_in(api_client, NEW_PASSWORD)["access_token"]) == 200


def test_the_credential_check_survives_the_routers_being_rebuilt(
    api_client, user, password, settings
):
    snapshot()
    user.set_password(NEW_PASSWORD)
    user.save()
    # An override of DATABASE_ROUTERS makes Django rebuild its list of routers.
    settings.DATABASE_ROUTERS = ["tests.test_replica_reads.ReplicaRouter"]

    assert login(api_client, "alice", password).status_code == 401
    assert login(api_client, "alice", NEW_PASSWORD).status_code == 200
    # Outside the credential check, reads go where the site's router sends them.
    assert router.db_for_read(get_user_model()) == "replica"


def test_any_authentication_backend_checks_credentials_on_the_primary(
    api_client, user, password, settings
):
    settings.AUTHENTICATION_BACKENDS = ["tests.test_replica_reads.EmailBackend"]
    snapshot()
    user.set_password(NEW_PASSWORD)
    user.save()

    assert login(api_client, "alice@example.com", password).status_code == 401
    assert login(api_client, "alice@example.com", NEW_PASSWORD).status_code == 200


def test_reauthentication_checks_the_password_on_the_primary(api_client, user, password, settings):
    set_revoke_on(settings, "logout")  # the session outlives the password change
    tokens = sign_in(api_client, password)
    snapshot()  # the replica keeps the old password hash

    user.set_password(NEW_PASSWORD)
    user.save()

    reauthenticate = reverse("cocart_jwt:reauthenticate")
    old = api_client.post(
        reauthenticate, {"password": password}, format="json", **bearer(tokens["access_token"])
    )
    new = api_client.post(
        reauthenticate, {"password": NEW_PASSWORD}, format="json", **bearer(tokens["access_token"])
    )
    assert old.status_code == 401
    assert new.status_code == 200, new.content
    assert new.json()["sid"] == tokens["sid"]


def test_a_password_change_revokes_sessions_of_a_user_the_replica_has_not_seen(
    api_client, user, password
):
    tokens = sign_in(api_client, password)  # the replica has no copy of alice yet

    user.set_password(NEW_PASSWORD)
    user.save()

    assert me(api_client, tokens["access_token"]) == 401
    assert Token.objects.using("default").get(pk=tokens["sid"]).revoke_reason == "password_change"


def test_deactivating_a_user_the_replica_has_not_seen_revokes_for_good(
    api_client, user, password, mode
):
    tokens = sign_in(api_client, password)  # the replica has no copy of alice yet
    assert me(api_client, tokens["access_token"]) == 200

    user.is_active = False
    user.save()
    assert me(api_client, tokens["access_token"]) == 401
    assert login(api_client, "alice", password).status_code == 401

    user.is_active = True
    user.save()
    assert me(api_client, tokens["access_token"]) == 401
    assert refresh(api_client, tokens["refresh_token"]).status_code == 401


def test_deactivation_outside_revoke_on_reaches_cached_snapshots(
    api_client, user, password, settings
):
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}
    set_revoke_on(settings, "password_change", "email_change", "logout")
    snapshot()
    tokens = sign_in(api_client, password)  # a session the replica does not list
    assert me(api_client, tokens["access_token"]) == 200  # its snapshot cached: user active

    user.is_active = False
    user.save()

    assert me(api_client, tokens["access_token"]) == 401


# -- revoke/ and introspect/ ------------------------------------------------------------------

INTROSPECT = reverse("cocart_jwt:introspect")


def introspector(api_client: Any, other_user: Any, password: str) -> dict[str, str]:
    """Bob, allowed to introspect (on the primary: the replica never copies permissions, and
    numbers its own)."""
    allowed = Permission.objects.using("default").get(codename="introspect_token")
    other_user.user_permissions.add(allowed)
    return bearer(sign_in(api_client, password, "bob")["access_token"])


def introspect(api_client: Any, caller: dict[str, str], token: str) -> dict[str, Any]:
    response = api_client.post(INTROSPECT, {"token": token}, **caller)
    assert response.status_code == 200, response.content
    return dict(response.json())


def test_introspection_answers_from_the_primary(api_client, user, other_user, password, mode):
    caller = introspector(api_client, other_user, password)
    revoked = sign_in(api_client, password)
    assert me(api_client, revoked["access_token"]) == 200  # cached mode: the entry is warm
    snapshot()  # the replica: alice's session live, bob without the permission
    newer = sign_in(api_client, password)  # a session the replica has not seen yet
    api_client.post(reverse("cocart_jwt:logout"), **bearer(revoked["access_token"]))

    assert introspect(api_client, caller, revoked["access_token"]) == {"active": False}
    assert introspect(api_client, caller, newer["access_token"])["sid"] == newer["sid"]


def test_revoke_finds_tokens_the_replica_has_not_seen_yet(api_client, user, password):
    snapshot()
    by_refresh, by_access = sign_in(api_client, password), sign_in(api_client, password)
    revoke = reverse("cocart_jwt:revoke")

    api_client.post(revoke, {"token": by_refresh["refresh_token"]})
    api_client.post(revoke, {"token": by_access["access_token"]})

    assert me(api_client, by_refresh["access_token"]) == 401
    assert me(api_client, by_access["access_token"]) == 401
    assert live_on_primary(user) == 0


# -- login links -----------------------------------------------------------------------------

LINK = reverse("cocart_jwt:login-link")


def new_link(user: Any) -> tuple[Token, str]:
    session = Token.objects.issue(user, refreshable=False).session
    return session, login_links.issue(session).token


def signed_in(user: Any) -> bool:
    """Whether a Django session on the primary has ``user`` signed in."""
    sessions = Session.objects.using("default").all()
    return any(s.get_decoded().get("_auth_user_id") == str(user.pk) for s in sessions)


def test_a_login_link_of_a_revoked_session_is_refused(client, user):
    session, token = new_link(user)
    snapshot()  # the replica: the session live, the link unused

    session.revoke(RevokeReason.ADMIN)

    assert client.get(f"{LINK}?{urlencode({'token': token})}").status_code == 410
    assert client.post(LINK, {"token": token}).status_code == 410
    assert not signed_in(user)


def test_a_login_link_made_before_a_password_change_is_refused(client, user, settings):
    set_revoke_on(settings)  # the session outlives the change: only the link's own check holds
    _, token = new_link(user)
    snapshot()  # the replica: the old password hash

    user.set_password(NEW_PASSWORD)
    user.save()

    assert client.get(f"{LINK}?{urlencode({'token': token})}").status_code == 410
    assert client.post(LINK, {"token": token}).status_code == 410
    assert not signed_in(user)


def test_a_login_link_used_once_is_refused_the_second_time_whatever_the_replica_shows(client, user):
    _, token = new_link(user)
    snapshot()  # the replica: the link unused, and it stays so

    assert client.post(LINK, {"token": token}).status_code == 302
    client.logout()
    again = client.post(LINK, {"token": token})

    assert again.status_code == 410
    assert b"already been used" in again.content
    assert LoginLink.objects.using("replica").get().used_at is None  # the replica still lags


def test_a_login_link_the_replica_has_not_seen_yet_signs_in(client, user):
    snapshot()
    _, token = new_link(user)  # made after the replica's copy

    assert client.get(f"{LINK}?{urlencode({'token': token})}").status_code == 200
    assert client.post(LINK, {"token": token}).status_code == 302
    assert signed_in(user)
