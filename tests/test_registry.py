"""The token registry's domain methods, and the user changes that revoke sessions (REVOKE_ON)."""

from __future__ import annotations

import base64
import logging
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cocart_jwt import login_links
from cocart_jwt.issued import IssuedTokens, RefreshError, RefreshTokenReused
from cocart_jwt.models import RefreshToken, RevokeReason, Status, Token, user_is_active
from cocart_jwt.passwords import password_fingerprint, password_unchanged
from cocart_jwt.signals import refresh_token_reused, token_issued, token_refreshed, token_revoked
from cocart_jwt.store.cached import session_key
from cocart_jwt.tokens import verify_access_token
from cocart_jwt.utils import now
from tests.factories import bearer, login, refresh

pytestmark = pytest.mark.django_db

ME = "/api/me/"


def test_issue_returns_a_result_object_with_working_tokens(user):
    issued = Token.objects.issue(user, description="CI deploy key", claims={"role": "deployer"})

    assert isinstance(issued, IssuedTokens)
    assert issued.session.description == "CI deploy key"
    claims = verify_access_token(issued.access_token)
    assert claims["sid"] == issued.session.pk
    assert claims["sub"] == str(user.pk)
    assert claims["role"] == "deployer"
    assert issued.refresh_token is not None


def test_issue_records_ip_and_user_agent_from_the_request(user):
    request = RequestFactory().post("/", REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT="Shop/3.1")
    session = Token.objects.issue(user, request=request).session
    assert (session.ip, session.user_agent) == ("192.0.2.10", "Shop/3.1")


def test_long_user_agents_are_truncated(user):
    request = RequestFactory().post("/", HTTP_USER_AGENT="x" * 5000)
    assert len(Token.objects.issue(user, request=request).session.user_agent) == 255


def test_a_session_issued_without_a_description_has_none(user):
    issued = Token.objects.issue(user)

    assert Token.objects.get(pk=issued.session.pk).description == ""


def test_non_refreshable_session_has_no_refresh_token(user):
    issued = Token.objects.issue(user, refreshable=False, lifetime=timedelta(hours=24))

    assert issued.refresh_token is None
    assert issued.refresh_expires_in is None
    assert not RefreshToken.objects.filter(session=issued.session).exists()


def test_access_token_never_outlives_a_short_session(user):
    issued = Token.objects.issue(user, refreshable=False, lifetime=timedelta(minutes=5))
    assert issued.expires_in == 5 * 60


def test_session_lifetime_is_capped_by_the_session_maximum(user):
    issued = Token.objects.issue(user, lifetime=timedelta(days=365))
    assert issued.session.expires_at - issued.session.created_at == timedelta(days=90)


def test_rotate_marks_the_old_token_used_and_stores_only_hashes(user):
    issued = Token.objects.issue(user)

    rotated = Token.objects.rotate(issued.refresh_token)

    family = list(RefreshToken.objects.filter(session=issued.session).order_by("pk"))
    assert len(family) == 2
    assert family[0].used_at is not None and family[1].used_at is None
    assert issued.refresh_token not in {row.token_hash for row in family}
    assert rotated.session.pk == issued.session.pk


def test_rotate_of_a_spent_token_raises_reuse_and_revokes(user):
    issued = Token.objects.issue(user)
    Token.objects.rotate(issued.refresh_token)

    with pytest.raises(RefreshTokenReused):
        Token.objects.rotate(issued.refresh_token)

    session = Token.objects.get(pk=issued.session.pk)
    assert session.status == Status.REVOKED
    assert session.revoke_reason == RevokeReason.REFRESH_TOKEN_REUSED


def test_rotate_refuses_a_non_refreshable_session(user):
    issued = Token.objects.issue(user)
    Token.objects.filter(pk=issued.session.pk).update(refreshable=False)
    with pytest.raises(RefreshError):
        Token.objects.rotate(issued.refresh_token)


def test_rotate_refuses_an_inactive_user(user):
    issued = Token.objects.issue(user)
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    with pytest.raises(RefreshError):
        Token.objects.rotate(issued.refresh_token)


def test_rotate_refuses_after_a_password_change_that_bypassed_save(user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "REVOKE_ON": []}
    issued = Token.objects.issue(user)
    user.set_password("a brand new password")
    get_user_model().objects.filter(pk=user.pk).update(password=user.password)

    with pytest.raises(RefreshError):
        Token.objects.rotate(issued.refresh_token)


def test_refresh_survives_a_secret_key_rotation_with_fallback(user, settings):
    issued = Token.objects.issue(user)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-django-secret-key-" + "z" * 40
    assert Token.objects.rotate(issued.refresh_token).session.pk == issued.session.pk


def test_revoke_is_idempotent(user):
    session = Token.objects.issue(user).session
    assert session.revoke(RevokeReason.ADMIN) is True
    assert session.revoke(RevokeReason.ADMIN) is False
    assert Token.objects.get(pk=session.pk).revoke_reason == RevokeReason.ADMIN


def test_revoke_all_revokes_only_that_users_live_sessions(user, other_user):
    for _ in range(3):
        Token.objects.issue(user)
    bobs = Token.objects.issue(other_user).session

    assert Token.objects.revoke_all(user, RevokeReason.ADMIN) == 3
    assert not Token.objects.live().filter(user=user).exists()
    assert Token.objects.live().filter(pk=bobs.pk).exists()


def test_status_is_valid_expired_or_revoked(user):
    with time_machine.travel("2026-01-01 00:00:00+00:00", tick=False) as clock:
        live = Token.objects.issue(user, lifetime=timedelta(hours=1)).session
        revoked = Token.objects.issue(user).session
        revoked.revoke(RevokeReason.ADMIN)
        assert (live.status, revoked.status) == (Status.VALID, Status.REVOKED)
        clock.shift(timedelta(hours=1))
        assert live.status == Status.EXPIRED


def test_expired_sessions_do_not_count_toward_the_cap(user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": 2}
    with time_machine.travel("2026-01-01 00:00:00+00:00", tick=False) as clock:
        short = Token.objects.issue(user, lifetime=timedelta(minutes=1)).session
        kept = Token.objects.issue(user).session
        clock.shift(timedelta(minutes=2))
        Token.objects.issue(user)
        assert Token.objects.get(pk=kept.pk).revoked_at is None
        assert Token.objects.get(pk=short.pk).revoked_at is None


def test_with_status_picks_the_sessions_of_that_status_at_a_time(user):
    with time_machine.travel(T0, tick=False) as clock:
        valid = Token.objects.issue(user, lifetime=timedelta(hours=2)).session
        expired = Token.objects.issue(user, lifetime=timedelta(hours=1)).session
        revoked = Token.objects.issue(user, lifetime=timedelta(hours=1)).session
        revoked.revoke(RevokeReason.ADMIN)
        clock.shift(timedelta(hours=1))  # now == expires_at of expired and revoked

        def picked(status, at=None):
            return set(Token.objects.with_status(status, at).values_list("pk", flat=True))

        assert picked(Status.VALID) == {valid.pk}
        assert picked(Status.EXPIRED) == {expired.pk}
        assert picked(Status.REVOKED) == {revoked.pk}
        assert picked("") == {valid.pk, expired.pk, revoked.pk}
        half_an_hour_ago = now() - timedelta(minutes=30)
        assert picked(Status.VALID, half_an_hour_ago) == {valid.pk, expired.pk}
        assert picked(Status.EXPIRED, half_an_hour_ago) == set()
        assert picked(Status.REVOKED, half_an_hour_ago) == {revoked.pk}


def test_a_user_model_without_is_active_counts_as_active():
    """As Django's ModelBackend reads it: only ``is_active = False`` makes a user inactive."""
    assert user_is_active(SimpleNamespace()) is True
    assert user_is_active(SimpleNamespace(is_active=False)) is False


def test_the_cap_evicts_sessions_created_at_the_same_instant_in_id_order(user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": 2}
    with time_machine.travel(T0, tick=False):
        for sid in ("session-b", "session-a"):
            Token.objects.create(id=sid, user=user, expires_at=now() + timedelta(hours=1))

        Token.objects.issue(user)

    revoked = Token.objects.filter(user=user, revoked_at__isnull=False)
    assert [(s.pk, s.revoke_reason) for s in revoked] == [("session-a", RevokeReason.MAX_TOKENS)]


def test_a_user_model_without_a_password_fingerprints_as_an_empty_password():
    """A user model need not have a password (a passwordless backend signs its users in).
    Its sessions stay refreshable, and still do once a ``password`` field (empty) is added."""
    fingerprint = password_fingerprint(SimpleNamespace())

    assert password_unchanged(SimpleNamespace(), fingerprint)
    assert password_unchanged(SimpleNamespace(password=""), fingerprint)
    assert not password_unchanged(SimpleNamespace(password="!unusable"), fingerprint)


def test_deleting_the_user_deletes_its_sessions(user):
    Token.objects.issue(user)
    user.delete()
    assert not Token.objects.exists()
    assert not RefreshToken.objects.exists()


class TestRevokeOn:
    @pytest.fixture
    def tokens(self, api_client, user, password):
        return login(api_client, "alice", password).json()

    def assert_revoked(self, api_client, tokens, reason):
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401
        assert refresh(api_client, tokens["refresh_token"]).status_code == 401
        assert Token.objects.get(pk=tokens["sid"]).revoke_reason == reason

    def test_password_change_revokes_every_session(self, api_client, user, tokens):
        user.set_password("another password entirely")
        user.save()
        self.assert_revoked(api_client, tokens, RevokeReason.PASSWORD_CHANGE)

    def test_email_change_revokes_every_session(self, api_client, user, tokens):
        user.email = "alice@elsewhere.example"
        user.save()
        self.assert_revoked(api_client, tokens, RevokeReason.EMAIL_CHANGE)

    def test_deactivation_revokes_every_session(self, api_client, user, tokens):
        user.is_active = False
        user.save()
        self.assert_revoked(api_client, tokens, RevokeReason.DEACTIVATION)

    def test_django_logout_revokes_every_session(self, api_client, user, tokens, password):
        from django.test import Client

        browser = Client()
        browser.force_login(user)
        browser.logout()  # sends user_logged_out
        self.assert_revoked(api_client, tokens, RevokeReason.LOGOUT)

    def test_other_changes_revoke_nothing(self, api_client, user, tokens):
        user.first_name = "Alice"
        user.save()
        user.save(update_fields=["last_login"])
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200

    def test_an_event_left_out_of_revoke_on_revokes_nothing(
        self, api_client, user, tokens, settings
    ):
        settings.COCART_JWT = {**settings.COCART_JWT, "REVOKE_ON": ["password_change"]}
        user.email = "alice@elsewhere.example"
        user.save()
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200

    def test_reactivation_revokes_nothing(self, api_client, user, password):
        user.is_active = False
        user.save()
        user.is_active = True
        user.save()
        assert login(api_client, "alice", password).status_code == 200


def test_access_token_of_a_non_refreshable_session_lives_as_long_as_the_session(user):
    issued = Token.objects.issue(user, refreshable=False, lifetime=timedelta(hours=24))
    assert issued.expires_in == 24 * 3600


def test_access_token_of_a_refreshable_session_lives_the_access_lifetime(user):
    issued = Token.objects.issue(user, lifetime=timedelta(hours=24))
    assert issued.expires_in == 15 * 60


def test_without_a_cap_every_session_stays_live(user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": None}
    for _ in range(12):
        Token.objects.issue(user)
    assert Token.objects.live().filter(user=user).count() == 12


# --- boundaries: a session ends at exactly its expires_at ----------------------------------

T0 = "2026-01-01 00:00:00+00:00"
TICK = timedelta(microseconds=1)


def test_live_excludes_a_session_from_exactly_its_expiry(user, api_client, password):
    with time_machine.travel(T0, tick=False) as clock:
        ending = Token.objects.issue(user, lifetime=timedelta(hours=1)).session
        clock.shift(timedelta(hours=1) - TICK)
        assert Token.objects.live().filter(pk=ending.pk).exists()
        clock.shift(TICK)  # now == expires_at

        assert not Token.objects.live().filter(pk=ending.pk).exists()
        assert not Token.objects.live(at=ending.expires_at).filter(pk=ending.pk).exists()
        # What alice sees: the session is gone from her list.
        access = login(api_client, "alice", password).json()["access_token"]
        response = api_client.get(reverse("cocart_jwt:sessions"), **bearer(access))
        assert response.status_code == 200
        assert ending.pk not in [row["id"] for row in response.json()]


def test_refresh_of_a_session_expiring_exactly_now_is_refused(user):
    with time_machine.travel(T0, tick=False) as clock:
        ending = Token.objects.issue(user, lifetime=timedelta(hours=1))
        control = Token.objects.issue(user, lifetime=timedelta(hours=1))
        clock.shift(timedelta(hours=1) - TICK)
        assert Token.objects.rotate(control.refresh_token).session.pk == control.session.pk
        clock.shift(TICK)  # now == expires_at

        with pytest.raises(RefreshError, match="expired"):
            Token.objects.rotate(ending.refresh_token)
        assert Token.objects.get(pk=ending.session.pk).expires_at == ending.session.expires_at


def test_a_refresh_that_waits_for_its_sessions_lock_is_judged_when_it_arrived(user):
    """A refresh can wait for the session's row lock (another request of the session holds
    it until it commits). A session live when the refresh arrived is extended, not refused
    because it expired during the wait."""
    wait = timedelta(seconds=2)

    def lock_granted_late(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        # The statement that reads the session: the locked SELECT, or on PostgreSQL the one
        # statement of a refresh (its WITH waits for the refresh token's row lock).
        if sql.lstrip().upper().startswith(("SELECT", "WITH")):
            clock.shift(wait)
        return result

    with time_machine.travel(T0, tick=False) as clock:
        issued = Token.objects.issue(user, lifetime=timedelta(seconds=1))
        with connection.execute_wrapper(lock_granted_late):
            renewed = Token.objects.rotate(issued.refresh_token)

        assert renewed.issued_at == issued.issued_at
        assert now() > issued.session.expires_at  # the wait outlasted the old expiry
        assert Token.objects.get(pk=issued.session.pk).refusal_reason() is None


@pytest.mark.django_db(transaction=True)
def test_a_renewal_that_waits_to_begin_its_transaction_is_judged_when_it_arrived(user):
    """A login carrying its Bearer renews the session; SQLite's BEGIN (IMMEDIATE) can wait
    for another writer first. A session live when the login arrived is renewed."""
    wait = timedelta(seconds=2)
    waited = []

    def begun_late(execute, sql, params, many, context):
        if not waited:
            waited.append(sql)
            clock.shift(wait)
        return execute(sql, params, many, context)

    with time_machine.travel(T0, tick=False) as clock:
        issued = Token.objects.issue(user, lifetime=timedelta(seconds=1))
        with connection.execute_wrapper(begun_late):
            renewed = Token.objects.renew(issued.session)

        assert waited
        assert renewed is not None and renewed.issued_at == issued.issued_at
        assert Token.objects.get(pk=issued.session.pk).refusal_reason() is None


def test_access_token_of_a_refreshable_session_never_outlives_it(user):
    with time_machine.travel(T0, tick=False):
        issued = Token.objects.issue(user, lifetime=timedelta(minutes=5))

        assert issued.expires_in == 5 * 60  # not ACCESS_TOKEN_LIFETIME's 15 minutes
        claims = verify_access_token(issued.access_token)
        assert claims["exp"] == int(issued.session.expires_at.timestamp())


# --- additional claims: data, never a reserved claim -----------------------------------------

# Stored on a session before these names were reserved, or written around the form and CLI
# (which refuse them): a session's claims are filtered again each time a token is minted.
STORED_CLAIMS = {
    "iss": "https://evil.example",
    "aud": "https://evil.example",
    "scope": "admin",
    "client_id": "evil",
    "auth_time": 1,
    "typ": "id_token",
    "role": "deployer",
}
RESERVED_STORED = set(STORED_CLAIMS) - {"role"}


@pytest.mark.parametrize("configured", [False, True], ids=["no-iss-aud", "iss-and-aud"])
def test_reserved_names_in_a_sessions_stored_claims_never_reach_its_tokens(
    user, settings, api_client, configured
):
    issuer = "https://shop.example" if configured else None
    audience = "https://api.shop.example" if configured else None
    settings.COCART_JWT = {**settings.COCART_JWT, "ISSUER": issuer, "AUDIENCE": audience}
    issued = Token.objects.issue(user, claims=STORED_CLAIMS)
    refreshed = Token.objects.rotate(issued.refresh_token)

    for access in (issued.access_token, refreshed.access_token):
        claims = verify_access_token(access)
        assert claims["role"] == "deployer"  # data passes
        assert (claims.get("iss"), claims.get("aud")) == (issuer, audience)
        assert claims["client_id"] == "cocart_jwt"  # the setting's, never the stored one
        assert not (RESERVED_STORED - {"iss", "aud", "client_id"}) & set(claims)
        assert api_client.get(ME, **bearer(access)).status_code == 200


# --- signals: sent with the session, its user and the request ---------------------------------


@pytest.fixture
def sent():
    """``sent(signal)``: the list of (sender, kwargs) it will receive during the test."""
    connected = []

    def listen(signal):
        calls = []

        def receiver(sender, **kwargs):
            calls.append((sender, kwargs))

        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
        return calls

    yield listen
    for signal, receiver in connected:
        signal.disconnect(receiver)


def a_request():
    return RequestFactory().post("/api/auth/refresh/", REMOTE_ADDR="192.0.2.10")


RENEWALS = {
    "rotate": lambda issued, request: Token.objects.rotate(issued.refresh_token, request=request),
    "renew": lambda issued, request: Token.objects.renew(issued.session, request=request),
}


def test_a_new_session_sends_token_issued_with_the_token_model_as_sender(user, sent):
    """docs/signals.md: a receiver connected with ``sender=Token`` hears every new session."""
    issued_signals = sent(token_issued)
    request = a_request()

    issued = Token.objects.issue(user, request=request)

    assert [(s, kw["token"].pk, kw["user"], kw["request"]) for s, kw in issued_signals] == [
        (Token, issued.session.pk, user, request)
    ]


@pytest.mark.parametrize("rotate_refresh_tokens", [True, False], ids=["rotating", "reusable"])
@pytest.mark.parametrize("how", list(RENEWALS))
def test_new_tokens_send_token_refreshed_with_the_session_its_user_and_the_request(
    user, settings, sent, how, rotate_refresh_tokens
):
    settings.COCART_JWT = {**settings.COCART_JWT, "ROTATE_REFRESH_TOKENS": rotate_refresh_tokens}
    refreshed = sent(token_refreshed)
    issued = Token.objects.issue(user)
    request = a_request()

    renewed = RENEWALS[how](issued, request)

    assert renewed.user == user
    assert [(s, kw["token"].pk, kw["user"], kw["request"]) for s, kw in refreshed] == [
        (Token, issued.session.pk, user, request)
    ]


def test_a_reused_refresh_token_is_signalled_logged_and_named_in_the_error(user, sent, caplog):
    reused = sent(refresh_token_reused)
    revoked = sent(token_revoked)
    issued = Token.objects.issue(user)
    Token.objects.rotate(issued.refresh_token)
    request = a_request()
    sid = issued.session.pk

    with caplog.at_level(logging.WARNING, logger="cocart_jwt"):
        with pytest.raises(RefreshTokenReused) as refused:
            Token.objects.rotate(issued.refresh_token, request=request)

    assert str(refused.value) == f"refresh token reused; session {sid} revoked"
    assert [(s, kw["token"].pk, kw["user"], kw["request"]) for s, kw in reused] == [
        (Token, sid, user, request)
    ]
    assert [(s, kw["token"].pk, kw["user"], kw["reason"]) for s, kw in revoked] == [
        (Token, sid, user, RevokeReason.REFRESH_TOKEN_REUSED)
    ]
    messages = [r.getMessage() for r in caplog.records if r.name == "cocart_jwt"]
    assert f"Refresh token reused; revoking session {sid}" in messages
    assert issued.refresh_token not in caplog.text


def test_revoke_sends_token_revoked_once_per_session_oldest_first(user, sent):
    revoked = sent(token_revoked)
    with time_machine.travel(T0, tick=False) as clock:
        sessions = []
        for _ in range(3):
            sessions.append(Token.objects.issue(user).session)
            clock.shift(timedelta(seconds=1))
        sessions[1].revoke(RevokeReason.ADMIN)

        Token.objects.revoke_all(user, RevokeReason.LOGOUT_ALL)

    assert [(s, kw["token"].pk, kw["user"], kw["reason"]) for s, kw in revoked] == [
        (Token, sessions[1].pk, user, RevokeReason.ADMIN),
        (Token, sessions[0].pk, user, RevokeReason.LOGOUT_ALL),
        (Token, sessions[2].pk, user, RevokeReason.LOGOUT_ALL),
    ]
    assert all(kw["token"].revoked_at is not None for _, kw in revoked)


# --- what a refused refresh tells the log ------------------------------------------------------

REFUSALS = {
    "session {sid} is revoked": lambda session: session.revoke(RevokeReason.ADMIN),
    "session {sid} is not refreshable": lambda session: Token.objects.filter(pk=session.pk).update(
        refreshable=False
    ),
    "user of session {sid} is inactive": lambda session: (
        get_user_model().objects.filter(pk=session.user_id).update(is_active=False)
    ),
    "password of the user of session {sid} changed": lambda session: (
        get_user_model().objects.filter(pk=session.user_id).update(password="!")
    ),
}


@pytest.mark.parametrize("reason", list(REFUSALS))
def test_a_refused_refresh_logs_why_and_which_session(user, settings, api_client, caplog, reason):
    settings.COCART_JWT = {**settings.COCART_JWT, "REVOKE_ON": []}
    issued = Token.objects.issue(user)
    REFUSALS[reason](issued.session)

    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        assert refresh(api_client, issued.refresh_token).status_code == 401

    expected = "Refresh refused: " + reason.format(sid=issued.session.pk)
    assert expected in [r.getMessage() for r in caplog.records if r.name == "cocart_jwt"]
    assert issued.refresh_token not in caplog.text


def test_an_unknown_refresh_token_is_logged_as_unknown(db, api_client, caplog):
    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        assert refresh(api_client, "x" * 43).status_code == 401

    assert "Refresh refused: unknown refresh token" in [r.getMessage() for r in caplog.records]


# --- what a refresh writes ---------------------------------------------------------------------


@pytest.mark.parametrize("how", list(RENEWALS))
def test_new_tokens_record_their_time_as_the_sessions_last_use(user, how):
    with time_machine.travel(T0, tick=False) as clock:
        issued = Token.objects.issue(user)
        clock.shift(timedelta(hours=1))

        renewed = RENEWALS[how](issued, None)

        assert renewed.session.last_used_at == now()
        assert Token.objects.get(pk=issued.session.pk).last_used_at == now()


def test_a_refresh_token_is_stamped_with_the_time_its_session_records(user):
    """On a running clock: the first refresh token was made when the session was created, the
    next one when the session was last used (its refresh)."""
    issued = Token.objects.issue(user)
    refreshed = Token.objects.rotate(issued.refresh_token)

    family = RefreshToken.objects.filter(session=issued.session).order_by("created_at")
    assert [row.created_at for row in family] == [
        issued.session.created_at,
        refreshed.session.last_used_at,
    ]


# The password hash "correct horse battery staple" gets from the MD5 hasher with a fixed salt,
# and its fingerprint under the suite's SECRET_KEY: HMAC-SHA256 keyed with the salt
# "cocart_jwt.password_fingerprint", as every release stores it.
FIXED_PASSWORD_HASH = "md5$cocartjwtsalt$9ff5aeb564ebe689223126f22c5f7de4"
STORED_FINGERPRINT = "9d542f7e79a62c621d78c8088f3824e12d155f7ecdfd810b01eea0bc3a4da444"


def test_a_session_stores_the_password_fingerprint_that_earlier_releases_stored(user):
    """Sessions stored before an upgrade keep refreshing only while the fingerprint is
    computed as it was: a change of salt or hash would refuse them all as a password change."""
    get_user_model().objects.filter(pk=user.pk).update(password=FIXED_PASSWORD_HASH)
    user.refresh_from_db()

    issued = Token.objects.issue(user)

    assert Token.objects.get(pk=issued.session.pk).password_fingerprint == STORED_FINGERPRINT
    Token.objects.filter(pk=issued.session.pk).update(password_fingerprint=STORED_FINGERPRINT)
    assert Token.objects.rotate(issued.refresh_token).session.pk == issued.session.pk


def test_a_refresh_under_a_new_secret_key_keeps_working_once_the_old_key_is_dropped(user, settings):
    """A refresh records the password's fingerprint under the current SECRET_KEY, so a
    session refreshed during a SECRET_KEY rotation outlives the fallback's removal."""
    issued = Token.objects.issue(user)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-django-secret-key-" + "z" * 40
    during = Token.objects.rotate(issued.refresh_token)

    settings.SECRET_KEY_FALLBACKS = []

    assert Token.objects.rotate(during.refresh_token).session.pk == issued.session.pk


# --- renew: the session given, if refreshable ----------------------------------------------------


def test_renew_extends_the_session_it_is_given_and_no_other(user, other_user):
    Token.objects.issue(other_user)
    sessions = [Token.objects.issue(user).session for _ in range(3)]

    renewed = Token.objects.renew(sessions[1])

    assert renewed.session.pk == sessions[1].pk
    assert verify_access_token(renewed.access_token)["sid"] == sessions[1].pk


def test_a_login_with_the_bearer_of_a_non_refreshable_session_starts_a_new_one(
    user, api_client, password
):
    kept = Token.objects.issue(user, refreshable=False, lifetime=timedelta(hours=1))

    response = login(api_client, "alice", password, **bearer(kept.access_token))

    assert response.status_code == 200
    assert response.json()["sid"] != kept.session.pk
    assert Token.objects.get(pk=kept.session.pk).expires_at == kept.session.expires_at


# --- revoke: what it repairs, and what it ends ------------------------------------------------


def test_revoking_an_expired_session_records_the_revocation(user):
    with time_machine.travel(T0, tick=False) as clock:
        session = Token.objects.issue(user, lifetime=timedelta(hours=1)).session
        clock.shift(timedelta(hours=2))

        assert session.revoke(RevokeReason.ADMIN) is True

    assert Token.objects.get(pk=session.pk).revoke_reason == RevokeReason.ADMIN


def test_revoking_again_repairs_a_session_revoked_behind_the_apps_back(
    user, api_client, settings, sent
):
    """Cached mode: a raw UPDATE leaves the cache entry live; the next revocation of the
    session (a no-op in the registry, no signal) tombstones it."""
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}
    revoked = sent(token_revoked)
    issued = Token.objects.issue(user)
    try:
        assert api_client.get(ME, **bearer(issued.access_token)).status_code == 200
        Token.objects.filter(pk=issued.session.pk).update(revoked_at=now())
        assert api_client.get(ME, **bearer(issued.access_token)).status_code == 200

        assert Token.objects.get(pk=issued.session.pk).revoke(RevokeReason.ADMIN) is False

        assert api_client.get(ME, **bearer(issued.access_token)).status_code == 401
        assert revoked == []
    finally:
        caches["default"].delete(session_key(issued.session.pk))


def signed_in_with_a_login_link(session: Token) -> Client:
    browser = Client()
    browser.post(reverse("cocart_jwt:login-link"), {"token": login_links.issue(session).token})
    assert browser.session.get("_auth_user_id") == str(session.user_id)
    return browser


def test_revoking_a_session_signs_out_the_browser_its_login_link_signed_in(user):
    session = Token.objects.issue(user, refreshable=False).session
    browser = signed_in_with_a_login_link(session)
    bystander = signed_in_with_a_login_link(Token.objects.issue(user, refreshable=False).session)

    session.revoke(RevokeReason.ADMIN)

    assert browser.session.get("_auth_user_id") is None
    assert bystander.session.get("_auth_user_id") == str(user.pk)


def test_revoking_a_session_with_a_link_never_used_ends_its_browser_session_without_an_error(
    user, caplog
):
    """Only the links that signed a browser in hold a key to end; one never used is no
    failure to report."""
    session = Token.objects.issue(user, refreshable=False).session
    browser = signed_in_with_a_login_link(session)
    login_links.issue(session)  # never used

    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        session.revoke(RevokeReason.ADMIN)

    assert browser.session.get("_auth_user_id") is None
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# --- round trips: what each registry operation costs the database ----------------------------


def statements(operation: Any) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        operation()
    return [query["sql"].split()[0] for query in queries.captured_queries]


def test_a_refresh_reads_once_and_writes_three_times_in_its_savepoint(user):
    issued = Token.objects.issue(user)

    if connection.vendor == "postgresql":  # cocart_jwt.postgres: all in one statement
        expected = [
            "SAVEPOINT",  # callers catch RefreshError
            "WITH",  # the presented token spent, the session slid, the next token and event in
            "RELEASE",
        ]
    else:
        expected = [
            "SAVEPOINT",
            "SELECT",  # the session, its user and the presented token, locked
            "UPDATE",  # the presented token, spent
            "UPDATE",  # the session's expiry
            "INSERT",  # the next refresh token
            "INSERT",  # the refreshed event
            "RELEASE",
        ]
    assert statements(lambda: Token.objects.rotate(issued.refresh_token)) == expected


def test_issue_renew_and_revoke_join_the_callers_transaction_without_a_savepoint(user):
    """Inside a transaction (a login's), each costs its own queries and no SAVEPOINT; the
    session's user comes with the session, and a login link never used costs nothing."""
    issued = Token.objects.issue(user)
    login_links.issue(issued.session)  # no browser session to end

    if connection.vendor == "postgresql":  # two statements, one round trip
        expected = [
            "SELECT",  # the user's row, locked (MAX_TOKENS_PER_USER)
            "WITH",  # the oldest beyond the cap revoked; the session, its token, events in
        ]
    else:
        expected = [
            "SELECT",  # the user's row, locked (MAX_TOKENS_PER_USER)
            "SELECT",  # the user's live sessions
            "INSERT",
            "INSERT",  # the first refresh token
            "INSERT",  # the issued event
        ]
    assert statements(lambda: Token.objects.issue(user)) == expected
    assert statements(lambda: Token.objects.renew(issued.session)) == [
        "SELECT",
        "UPDATE",  # every refresh token of the session, spent
        "UPDATE",
        "INSERT",
        "INSERT",  # the refreshed event
    ]
    assert statements(lambda: issued.session.revoke(RevokeReason.ADMIN)) == [
        "SELECT",
        "UPDATE",
        "INSERT",  # the revoked event
    ]


def test_rows_name_their_session_in_the_shell_and_the_admin(user):
    """The admin's history and delete pages show str(); a shell or a log line shows repr()."""
    issued = Token.objects.issue(user, refreshable=True)
    session = issued.session
    stored = RefreshToken.objects.get(session=session)
    link = login_links.issue(session).link

    assert str(session) == f"Token {session.pk} of {user.pk}"
    assert str(stored) == f"Refresh token {stored.pk} of session {session.pk}"
    assert str(link) == f"Login link {link.pk} of session {session.pk}"
    assert repr(stored) == f"<RefreshToken {stored.pk} session={session.pk} used=False>"
    assert repr(link) == f"<LoginLink {link.pk} session={session.pk} used=False>"

    stored.used_at = link.used_at = now()
    assert repr(stored) == f"<RefreshToken {stored.pk} session={session.pk} used=True>"
    assert repr(link) == f"<LoginLink {link.pk} session={session.pk} used=True>"


def test_a_session_id_is_128_random_bits_and_never_reads_as_a_command_line_option(monkeypatch):
    """22 url-safe characters; one that starts with "-" is drawn again, since
    `manage.py jwt revoke -x...` would read it as an option."""
    from cocart_jwt import models

    sid = models.new_session_id()
    assert len(sid) == 22 and len(base64.urlsafe_b64decode(sid + "==")) == 16

    draws = iter(["-startsWithADash12345A", "fineAsItIs0123456789AB"])
    monkeypatch.setattr(models.secrets, "token_urlsafe", lambda nbytes: next(draws))
    assert models.new_session_id() == "fineAsItIs0123456789AB"
