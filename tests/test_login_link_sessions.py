"""The browser session a login link starts, and the link itself, end with the registry session.

A Django session started by a login link ends, on the browser's next request, when its
registry session is revoked by any route (API, admin, cap eviction, refresh-token reuse,
REVOKE_ON, ``jwt destroy``), under the db, cache and cached_db session engines; it expires no
later than the registry session. A link dies with any password change, also one that
bypassed ``save()``. The signed-cookie engine, which no server can revoke, gets a warning.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from importlib import import_module
from io import StringIO
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.contrib.admin.utils import quote
from django.contrib.auth import user_logged_in
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.crypto import get_random_string
from rest_framework.test import APIClient

from cocart_jwt import browser_sessions, login_links
from cocart_jwt.checks import check_settings
from cocart_jwt.models import LoginLink, RevokeReason, Token
from cocart_jwt.utils import now
from tests.factories import bearer, refresh

pytestmark = pytest.mark.django_db

LINK = reverse("cocart_jwt:login-link")
ADMIN = "/admin/"
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

ENGINES = [
    pytest.param("django.contrib.sessions.backends.db", id="db"),
    pytest.param("django.contrib.sessions.backends.cached_db", id="cached_db"),
    pytest.param("django.contrib.sessions.backends.cache", id="cache", marks=pytest.mark.redis),
]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, settings: Any) -> str:
    settings.SESSION_ENGINE = request.param
    return str(request.param)


@pytest.fixture
def staff(user: Any) -> Any:
    user.is_staff = True
    user.save()
    return user


class Linked:
    """A registry session of the staff user, its first tokens, and a browser signed in
    with a login link of it."""

    def __init__(self, user: Any, **issue_kwargs: Any) -> None:
        self.user = user
        self.issued = Token.objects.issue(user, **issue_kwargs)
        self.session = self.issued.session
        self.browser = Client(enforce_csrf_checks=True)
        self.response = use_link(self.browser, login_links.issue(self.session).token)

    def admin_status(self) -> int:
        return int(self.browser.get(ADMIN).status_code)


def use_link(browser: Client, token: str) -> Any:
    """What a person does: open the link (GET), press the confirm button (POST with CSRF)."""
    page = browser.get(f"{LINK}?{urlencode({'token': token})}")
    match = CSRF_INPUT.search(page.content.decode())
    csrf = match.group(1) if match else ""
    return browser.post(LINK, {"token": token, "csrfmiddlewaretoken": csrf})


def signed_out_of_admin(response: Any) -> bool:
    return response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


# -- every route that revokes the registry session --------------------------------------


def api_logout(linked: Linked, **_: Any) -> None:
    response = APIClient().post(reverse("cocart_jwt:logout"), **bearer(linked.issued.access_token))
    assert response.status_code == 204


def api_logout_all(linked: Linked, **_: Any) -> None:
    url = reverse("cocart_jwt:logout-all")
    assert APIClient().post(url, **bearer(linked.issued.access_token)).status_code == 204


def api_delete_session(linked: Linked, **_: Any) -> None:
    other = Token.objects.issue(linked.user)
    url = reverse("cocart_jwt:session", args=[linked.session.pk])
    assert APIClient().delete(url, **bearer(other.access_token)).status_code == 204


def admin_revoke(linked: Linked, admin_client: Client, **_: Any) -> None:
    url = reverse("admin:cocart_jwt_token_revoke", args=[quote(linked.session.pk)])
    assert admin_client.post(url).status_code == 302


def admin_revoke_all_of_users(linked: Linked, admin_client: Client, **_: Any) -> None:
    data = {"action": "revoke_all_of_users", "_selected_action": [linked.session.pk]}
    assert admin_client.post("/admin/cocart_jwt/token/", {**data, "post": "yes"}).status_code == 302


def cap_eviction(linked: Linked, settings: Any, **_: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": 1}
    Token.objects.issue(linked.user)


def refresh_token_reuse(linked: Linked, **_: Any) -> None:
    client = APIClient()
    assert refresh(client, linked.issued.refresh_token).status_code == 200
    assert refresh(client, linked.issued.refresh_token).status_code == 401  # reuse


def password_change(linked: Linked, django_user_model: Any, **_: Any) -> None:
    user = django_user_model.objects.get(pk=linked.user.pk)
    user.set_password("a whole new password")
    user.save()


def email_change(linked: Linked, django_user_model: Any, **_: Any) -> None:
    user = django_user_model.objects.get(pk=linked.user.pk)
    user.email = "alice@new.example"
    user.save()


def deactivation(linked: Linked, django_user_model: Any, **_: Any) -> None:
    user = django_user_model.objects.get(pk=linked.user.pk)
    user.is_active = False
    user.save()


def jwt_destroy(linked: Linked, **_: Any) -> None:
    call_command("jwt", "destroy", "alice", "--noinput", stdout=StringIO(), stderr=StringIO())


ROUTES: list[Callable[..., None]] = [
    api_logout,
    api_logout_all,
    api_delete_session,
    admin_revoke,
    admin_revoke_all_of_users,
    cap_eviction,
    refresh_token_reuse,
    password_change,
    email_change,
    deactivation,
    jwt_destroy,
]


@pytest.mark.parametrize("revoke", ROUTES, ids=[route.__name__ for route in ROUTES])
def test_revoking_the_registry_session_ends_the_browser_session(
    engine, staff, revoke, admin_client, settings, django_user_model
):
    linked = Linked(staff)
    assert linked.response.status_code == 302
    assert linked.admin_status() == 200

    revoke(
        linked, admin_client=admin_client, settings=settings, django_user_model=django_user_model
    )

    assert Token.objects.get(pk=linked.session.pk).revoked_at is not None
    assert signed_out_of_admin(linked.browser.get(ADMIN))


def test_a_link_used_in_a_browser_signed_in_as_someone_else_is_ended_too(engine, staff, other_user):
    """login() flushes the other user's session; the new one gets its key only when saved."""
    other_user.is_staff = True
    other_user.save()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(other_user)
    issued = Token.objects.issue(staff, refreshable=False)

    assert use_link(browser, login_links.issue(issued.session).token).status_code == 302
    assert browser.session["_auth_user_id"] == str(staff.pk)

    issued.session.revoke(RevokeReason.ADMIN)

    assert signed_out_of_admin(browser.get(ADMIN))


def test_a_registry_session_revoked_while_the_link_signs_in_leaves_no_browser_session(staff):
    """A revocation between the link's check and the recording of the browser session."""
    issued = Token.objects.issue(staff, refreshable=False)
    token = login_links.issue(issued.session).token

    def revoke_meanwhile(sender: Any, **kwargs: Any) -> None:
        Token.objects.filter(pk=issued.session.pk).revoke(RevokeReason.ADMIN)

    browser = Client(enforce_csrf_checks=True)
    user_logged_in.connect(revoke_meanwhile)
    try:
        response = use_link(browser, token)
    finally:
        user_logged_in.disconnect(revoke_meanwhile)

    assert response.status_code == 410
    assert "session of this login link has ended" in response.content.decode()
    assert "_auth_user_id" not in browser.session
    assert signed_out_of_admin(browser.get(ADMIN))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_revocation_committing_while_the_link_signs_in_leaves_no_browser_session(staff):
    """The revocation has locked and revoked the registry session, not yet committed, when
    the link is used: the sign-in waits for it and must not survive it."""
    issued = Token.objects.issue(staff, refreshable=False)
    token = login_links.issue(issued.session).token
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(f"{LINK}?{urlencode({'token': token})}").content.decode()
    csrf = CSRF_INPUT.search(page).group(1)  # type: ignore[union-attr]
    revoked = threading.Event()
    statuses: list[int] = []

    def use() -> None:
        revoked.wait(5)
        try:
            statuses.append(
                browser.post(LINK, {"token": token, "csrfmiddlewaretoken": csrf}).status_code
            )
        finally:
            connection.close()

    signing_in = threading.Thread(target=use)
    signing_in.start()
    with transaction.atomic():
        Token.objects.filter(pk=issued.session.pk).revoke(RevokeReason.ADMIN)
        revoked.set()
        time.sleep(0.5)  # the link's POST reaches the registry session's row lock and waits
    signing_in.join(10)

    assert statuses == [410]
    assert signed_out_of_admin(browser.get(ADMIN))


def test_signing_out_of_the_admin_ends_both_sessions(engine, staff):
    """Django's logout revokes the registry sessions (REVOKE_ON "logout"), which deletes the
    very Django session being flushed: no error."""
    linked = Linked(staff, refreshable=False)
    page = linked.browser.get(ADMIN).content.decode()
    csrf = CSRF_INPUT.search(page).group(1)  # type: ignore[union-attr]

    response = linked.browser.post(reverse("admin:logout"), {"csrfmiddlewaretoken": csrf})

    assert response.status_code == 200
    assert Token.objects.get(pk=linked.session.pk).revoked_at is not None
    assert signed_out_of_admin(linked.browser.get(ADMIN))


def test_a_session_cache_outage_does_not_stop_the_revocation(
    settings, staff, unreachable_cache, caplog
):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    linked = Linked(staff)
    assert use_link(Client(), login_links.issue(linked.session).token).status_code == 302
    settings.SESSION_CACHE_ALIAS = unreachable_cache

    with caplog.at_level(logging.ERROR, logger="cocart_jwt"):
        response = APIClient().post(
            reverse("cocart_jwt:logout"), **bearer(linked.issued.access_token)
        )

    assert response.status_code == 204
    assert Token.objects.get(pk=linked.session.pk).revoked_at is not None
    messages = [r.getMessage() for r in caplog.records if r.name == "cocart_jwt"]
    assert "Could not end 2 of 2 browser session(s) started by login links" in messages


def cocart_jwt_errors(caplog: Any) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "cocart_jwt" and r.levelno >= logging.ERROR
    ]


def test_a_link_never_used_beside_one_used_is_no_error_at_revocation(settings, staff, caplog):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    linked = Linked(staff)
    login_links.issue(linked.session)  # another link of the session, never used

    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        linked.session.revoke(RevokeReason.ADMIN)

    assert signed_out_of_admin(linked.browser.get(ADMIN))
    assert cocart_jwt_errors(caplog) == []


def test_browser_sessions_sealed_under_a_retired_secret_key_are_counted_the_others_ended(
    settings, staff, caplog
):
    """Two browsers signed in before SECRET_KEY was replaced (no fallback: the old key is
    gone), one after: the revocation ends the one it can find and says how many it could not."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    session = Token.objects.issue(staff, refreshable=False).session
    for _ in range(2):
        assert use_link(Client(), login_links.issue(session).token).status_code == 302
    settings.SECRET_KEY = "a-whole-new-secret-key-" + "x" * 40
    settings.SECRET_KEY_FALLBACKS = []
    browser = Client(enforce_csrf_checks=True)
    assert use_link(browser, login_links.issue(session).token).status_code == 302
    assert browser.get(ADMIN).status_code == 200

    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        session.revoke(RevokeReason.ADMIN)

    assert signed_out_of_admin(browser.get(ADMIN))
    assert cocart_jwt_errors(caplog) == [
        "Could not end 2 of 3 browser session(s) started by login links"
    ]


# -- a site with database routers ---------------------------------------------------------


class ByAppLabel:
    """A router shaped like those of Django's multiple-databases guide: it reads the model's
    app label. ``reads_to`` sends this app's reads elsewhere (a replica)."""

    reads_to: str | None = None

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return self.reads_to if model._meta.app_label == "cocart_jwt" else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "default" if model._meta.app_label == "cocart_jwt" else None


def test_links_sign_in_and_revoke_under_an_app_label_router(settings, staff):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    settings.DATABASE_ROUTERS = [f"{__name__}.ByAppLabel"]

    linked = Linked(staff)
    assert linked.response.status_code == 302
    assert linked.admin_status() == 200
    linked.session.revoke(RevokeReason.ADMIN)

    assert signed_out_of_admin(linked.browser.get(ADMIN))


def test_the_revocation_reads_the_browser_session_keys_where_it_writes(
    settings, staff, monkeypatch
):
    """It runs inside the revocation's transaction: a replica would not see a key recorded
    a moment ago. Here the test may not use the replica, so any read from it fails."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    settings.DATABASE_ROUTERS = [f"{__name__}.ByAppLabel"]
    linked = Linked(staff)

    monkeypatch.setattr(ByAppLabel, "reads_to", "replica")
    linked.session.revoke(RevokeReason.ADMIN)
    monkeypatch.setattr(ByAppLabel, "reads_to", None)

    assert signed_out_of_admin(linked.browser.get(ADMIN))


def test_revoking_a_session_no_link_signed_in_with_costs_no_extra_query(user):
    session = Token.objects.issue(user, refreshable=False).session
    login_links.issue(session)  # made, never used: no browser session to end

    with CaptureQueriesContext(connection) as queries:
        session.revoke(RevokeReason.ADMIN)

    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert [s for s in statements if s in ("SELECT", "UPDATE", "DELETE")] == ["SELECT", "UPDATE"]


# -- sessions revoked behind the app's back are repaired by the next revocation --------


@pytest.mark.parametrize(
    "revoke_again",
    [
        pytest.param(lambda session: session.revoke(RevokeReason.ADMIN), id="Token.revoke"),
        pytest.param(
            lambda session: Token.objects.revoke_all(session.user, RevokeReason.LOGOUT_ALL),
            id="revoke_all",
        ),
    ],
)
def test_a_raw_revocation_is_repaired_by_the_next_revoke(staff, revoke_again):
    linked = Linked(staff, refreshable=False)
    Token.objects.filter(pk=linked.session.pk).update(revoked_at=now())
    # Documented: a change that bypasses the app does not reach the browser session.
    assert linked.admin_status() == 200

    revoke_again(Token.objects.get(pk=linked.session.pk))

    assert signed_out_of_admin(linked.browser.get(ADMIN))


# -- expiry ------------------------------------------------------------------------------


def test_the_browser_session_expires_no_later_than_the_registry_session(engine, staff):
    linked = Linked(staff, refreshable=False, lifetime=timedelta(minutes=30))

    store = import_module(engine).SessionStore(session_key=linked.browser.session.session_key)
    expiry = store.get_expiry_date()
    assert expiry <= linked.session.expires_at
    assert store.get_expiry_age() <= 30 * 60


def test_the_browser_session_is_gone_once_the_registry_session_expired(settings, staff):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    linked = Linked(staff, refreshable=False, lifetime=timedelta(minutes=30))
    assert linked.admin_status() == 200

    with time_machine.travel(linked.session.expires_at + timedelta(seconds=1), tick=False):
        assert signed_out_of_admin(linked.browser.get(ADMIN))


def test_the_expiry_is_never_longer_than_session_cookie_age(settings, staff):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    settings.SESSION_COOKIE_AGE = 600
    linked = Linked(staff, refreshable=False, lifetime=timedelta(hours=2))

    assert linked.browser.session.get_expiry_age() <= 600
    with time_machine.travel(now() + timedelta(seconds=601), tick=False):
        # Requests in between do not slide it forward.
        assert signed_out_of_admin(linked.browser.get(ADMIN))


@pytest.mark.parametrize(
    ("own_expiry", "cookie_age", "expected"),
    [(120, 1209600, 120), (3600, 600, 600)],
    ids=["its own expiry is the earliest", "SESSION_COOKIE_AGE is the earliest"],
)
def test_the_browser_session_keeps_the_earliest_expiry(
    settings, staff, own_expiry, cookie_age, expected
):
    """The site set an expiry on the browser's session before the sign-in (login() keeps
    it): the earliest of it, SESSION_COOKIE_AGE and the registry session's end wins."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    settings.SESSION_COOKIE_AGE = cookie_age
    browser = Client(enforce_csrf_checks=True)
    before = browser.session
    before.set_expiry(own_expiry)
    before.save()
    session = Token.objects.issue(staff, refreshable=False, lifetime=timedelta(hours=2)).session

    assert use_link(browser, login_links.issue(session).token).status_code == 302

    assert expected - 5 <= browser.session.get_expiry_age() <= expected
    with time_machine.travel(now() + timedelta(seconds=expected + 1), tick=False):
        assert signed_out_of_admin(browser.get(ADMIN))


# -- a session engine of the site's own ----------------------------------------------------


class SessionStore(CacheSessionStore):
    """This module is the SESSION_ENGINE of the tests below: keys of ``key_length``."""

    key_length = 32

    def _get_new_session_key(self) -> str:
        return get_random_string(self.key_length, VALID_KEY_CHARS)


@pytest.fixture
def long_keys(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    settings.SESSION_ENGINE = __name__
    settings.SESSION_CACHE_ALIAS = "locmem"

    def key_length(length: int) -> None:
        monkeypatch.setattr(SessionStore, "key_length", length)

    return key_length


@pytest.mark.parametrize("length", [32, 64])
def test_a_session_key_of_up_to_64_characters_is_ended_by_the_revocation(
    long_keys, settings, staff, length
):
    long_keys(length)
    linked = Linked(staff)
    assert len(linked.browser.cookies[settings.SESSION_COOKIE_NAME].value) == length
    assert linked.admin_status() == 200

    linked.session.revoke(RevokeReason.ADMIN)

    assert signed_out_of_admin(linked.browser.get(ADMIN))


def test_a_longer_session_key_is_not_recorded_and_is_warned_of(long_keys, staff, caplog):
    long_keys(65)

    with caplog.at_level(logging.WARNING, logger="cocart_jwt"):
        linked = Linked(staff)

    assert linked.response.status_code == 302
    assert linked.admin_status() == 200
    assert LoginLink.objects.get().django_session_key == ""
    warnings = [r.getMessage() for r in caplog.records if r.name == "cocart_jwt"]
    assert warnings == ["A session key of SESSION_ENGINE is too long to record on the link"]


# -- the signed-cookie engine ------------------------------------------------------------


def test_signed_cookie_sessions_get_a_warning(settings):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

    warnings = [m for m in check_settings() if m.id == "cocart_jwt.W006"]

    assert len(warnings) == 1
    assert "cannot be ended" in warnings[0].msg
    assert "cached_db" in (warnings[0].hint or "")


def test_server_side_session_engines_get_no_warning(settings):
    for engine in ("db", "cache", "cached_db"):
        settings.SESSION_ENGINE = f"django.contrib.sessions.backends.{engine}"
        assert not [m for m in check_settings() if m.id == "cocart_jwt.W006"]


def test_a_link_still_signs_in_with_signed_cookie_sessions(settings, staff):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

    linked = Linked(staff, refreshable=False)

    assert linked.response.status_code == 302
    assert linked.admin_status() == 200
    assert LoginLink.objects.get().django_session_key == ""


# -- a link dies with any password change ------------------------------------------------


def new_link(user: Any) -> str:
    session = Token.objects.issue(user, refreshable=False).session
    return login_links.issue(session).token


def get(client: Client, token: str) -> Any:
    return client.get(f"{LINK}?{urlencode({'token': token})}")


def assert_refused_and_signed_out(client: Client, token: str) -> None:
    page = get(client, token)
    assert page.status_code == 410
    assert "can no longer be used" in page.content.decode()
    response = client.post(LINK, {"token": token})
    assert response.status_code == 410
    assert "_auth_user_id" not in client.session


def test_a_password_change_that_bypassed_save_kills_the_link(client, user, caplog):
    token = new_link(user)
    type(user).objects.filter(pk=user.pk).update(password=make_password("x"))

    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        assert_refused_and_signed_out(client, token)

    reasons = [r.getMessage() for r in caplog.records if r.name == "cocart_jwt"]
    assert "Login link refused: password changed since the link was made" in reasons
    assert not any(token[:-1] in reason for reason in reasons)


def test_a_password_change_through_save_kills_the_link_without_revoke_on(client, user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "REVOKE_ON": []}
    token = new_link(user)

    user.set_password("a whole new password")
    user.save()

    assert Token.objects.live().exists()  # the session lives: only the link is refused
    assert_refused_and_signed_out(client, token)


def test_a_link_made_after_the_password_change_works(client, user):
    type(user).objects.filter(pk=user.pk).update(password=make_password("x"))
    user.refresh_from_db()

    response = client.post(LINK, {"token": new_link(user)})

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_a_link_without_a_fingerprint_is_refused(client, user, caplog):
    """Links made before the fingerprint was kept: fail closed."""
    token = new_link(user)
    LoginLink.objects.update(password_fingerprint="")

    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        assert_refused_and_signed_out(client, token)

    assert any("no password fingerprint" in r.getMessage() for r in caplog.records)


# -- the Django session key at rest ---------------------------------------------------------


def test_the_browser_session_key_is_never_stored_in_clear(settings: Any, staff: Any) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    settings.CACHES = {**settings.CACHES, "default": settings.CACHES["locmem"]}
    linked = Linked(staff)
    key = linked.browser.cookies[settings.SESSION_COOKIE_NAME].value

    stored = LoginLink.objects.values_list("django_session_key", flat=True).get()

    assert linked.admin_status() == 200
    assert stored
    assert key not in stored
    assert browser_sessions.unseal(stored, LoginLink.objects.get().pk) == key


def test_a_sealed_key_opens_only_for_its_own_link(staff: Any) -> None:
    link = login_links.issue(Token.objects.issue(staff).session).link
    sealed = browser_sessions.seal("k" * 32, link.pk)

    assert browser_sessions.unseal(sealed, link.pk) == "k" * 32
    assert browser_sessions.unseal(sealed, link.pk + 1) is None
    assert browser_sessions.unseal("not base64 at all!", link.pk) is None


def test_a_secret_key_rotation_with_fallback_still_ends_the_browser_session(
    engine: str, settings: Any, staff: Any
) -> None:
    """The key was sealed under the old SECRET_KEY, now a fallback: it still opens."""
    linked = Linked(staff)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-whole-new-secret-key-" + "x" * 40

    linked.session.revoke(RevokeReason.ADMIN)

    assert signed_out_of_admin(linked.browser.get(ADMIN))


# Sealed with SECRET_KEY below for link 7: the sealing key's derivation is fixed, so a key
# recorded before an upgrade still opens after it (else its browser session could never be
# ended).
VECTOR_SECRET_KEY = "a fixed secret key for the sealed session key vector, 50+ chars long"
VECTOR_SEALED = "Ssj2mTG8oNwd-I3--5FfK5ZjHb-VDebw5uxUJqCe_ZohXRAP6wgeFRSgxGOAPuxRxulCH8klm7eaqcWr"


def test_a_session_key_sealed_by_an_earlier_release_still_opens(settings: Any) -> None:
    settings.SECRET_KEY = VECTOR_SECRET_KEY
    settings.SECRET_KEY_FALLBACKS = []

    assert browser_sessions.unseal(VECTOR_SEALED, 7) == "k" * 32
    assert browser_sessions.unseal(browser_sessions.seal("k" * 32, 7), 7) == "k" * 32
