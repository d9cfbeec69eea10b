"""The token registry's domain methods, and the user changes that revoke sessions (REVOKE_ON)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import RequestFactory
from django.urls import reverse

from cocart_jwt.managers import IssuedTokens, RefreshError, RefreshTokenReused
from cocart_jwt.models import RefreshToken, RevokeReason, Status, Token
from cocart_jwt.tokens import verify_access_token
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
        assert not (RESERVED_STORED - {"iss", "aud"}) & set(claims)
        assert api_client.get(ME, **bearer(access)).status_code == 200
