"""The whole token life cycle through DRF's test client, as a mobile client sees it."""

from __future__ import annotations

import base64
from datetime import timedelta

import jwt
import pytest
import time_machine
from django.urls import reverse

from cocart_jwt.models import RevokeReason, Token
from cocart_jwt.signals import token_authenticated, token_issued, token_refreshed, token_revoked
from cocart_jwt.utils import now
from tests.factories import bearer, login, refresh

pytestmark = pytest.mark.django_db

ME = "/api/me/"


def test_login_returns_a_token_pair_that_is_never_cached(api_client, user, password):
    response = login(api_client, "alice", password)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "refresh_expires_in",
        "sid",
        "user",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert body["refresh_expires_in"] == 30 * 24 * 3600
    assert body["user"] == {"id": user.pk, "username": "alice"}
    assert response["Cache-Control"] == "no-store"
    assert Token.objects.get(pk=body["sid"]).user == user


def test_login_accepts_a_form_body(api_client, user, password):
    response = api_client.post(
        reverse("cocart_jwt:login"), {"username": "alice", "password": password}
    )
    assert response.status_code == 200


def test_login_accepts_http_basic(api_client, user, password):
    credentials = base64.b64encode(f"alice:{password}".encode()).decode()
    response = api_client.post(
        reverse("cocart_jwt:login"), HTTP_AUTHORIZATION=f"Basic {credentials}"
    )
    assert response.status_code == 200
    assert response.json()["user"]["username"] == "alice"


def test_wrong_password_is_401_with_a_bearer_challenge(api_client, user):
    response = login(api_client, "alice", "wrong")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid credentials.", "code": "invalid_credentials"}
    assert response["WWW-Authenticate"].startswith('Bearer realm="api"')
    assert not Token.objects.exists()


def test_access_token_authenticates_the_api(api_client, user, password):
    tokens = login(api_client, "alice", password).json()

    response = api_client.get(ME, **bearer(tokens["access_token"]))

    assert response.status_code == 200
    assert response.json() == {"id": str(user.pk), "username": "alice", "sid": tokens["sid"]}


def test_no_token_is_401_with_a_challenge_without_error(api_client, db):
    response = api_client.get(ME)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_validate_describes_the_token(api_client, user, password):
    tokens = login(api_client, "alice", password).json()

    response = api_client.post(reverse("cocart_jwt:validate"), **bearer(tokens["access_token"]))

    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is True
    assert body["user"] == {"id": user.pk, "username": "alice"}
    assert body["sid"] == tokens["sid"]
    assert body["expires_at"].endswith("Z")


def test_refresh_rotates_both_tokens_and_keeps_the_session(api_client, user, password):
    first = login(api_client, "alice", password).json()

    response = refresh(api_client, first["refresh_token"])

    assert response.status_code == 200
    second = response.json()
    assert second["sid"] == first["sid"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert response["Cache-Control"] == "no-store"
    assert api_client.get(ME, **bearer(second["access_token"])).status_code == 200
    assert refresh(api_client, second["refresh_token"]).status_code == 200


def test_reused_refresh_token_revokes_the_whole_session(api_client, user, password):
    first = login(api_client, "alice", password).json()
    second = refresh(api_client, first["refresh_token"]).json()

    reuse = refresh(api_client, first["refresh_token"])

    assert reuse.status_code == 401
    assert reuse.json()["code"] == "invalid_grant"
    session = Token.objects.get(pk=first["sid"])
    assert session.revoke_reason == RevokeReason.REFRESH_TOKEN_REUSED
    assert api_client.get(ME, **bearer(second["access_token"])).status_code == 401
    assert refresh(api_client, second["refresh_token"]).status_code == 401


def test_unknown_refresh_token_revokes_nothing(api_client, user, password):
    tokens = login(api_client, "alice", password).json()

    response = refresh(api_client, "A" * 43)

    assert response.status_code == 401
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200


def test_refresh_slides_expiry_but_never_past_the_session_maximum(api_client, user, password):
    with time_machine.travel("2026-01-01 00:00:00+00:00", tick=False) as clock:
        tokens = login(api_client, "alice", password).json()
        for _day in range(3):
            clock.shift(timedelta(days=25))
            response = refresh(api_client, tokens["refresh_token"])
            assert response.status_code == 200
            tokens = response.json()
        # 75 days in: a full 30 days would pass the 90-day maximum.
        assert tokens["refresh_expires_in"] == 15 * 24 * 3600
        clock.shift(timedelta(days=15, seconds=1))
        assert refresh(api_client, tokens["refresh_token"]).status_code == 401


def test_expired_refresh_token_is_refused(api_client, user, password):
    with time_machine.travel("2026-01-01 00:00:00+00:00", tick=False) as clock:
        tokens = login(api_client, "alice", password).json()
        clock.shift(timedelta(days=30, seconds=1))
        assert refresh(api_client, tokens["refresh_token"]).status_code == 401


T0 = "2026-01-01 00:00:00+00:00"
TICK = timedelta(microseconds=1)


def test_a_refresh_token_is_refused_from_exactly_its_sessions_expiry(api_client, user, password):
    with time_machine.travel(T0, tick=False) as clock:
        ending = login(api_client, "alice", password).json()
        control = login(api_client, "alice", password).json()
        clock.shift(timedelta(days=30) - TICK)
        assert refresh(api_client, control["refresh_token"]).status_code == 200
        clock.shift(TICK)  # now == expires_at

        response = refresh(api_client, ending["refresh_token"])

        assert response.status_code == 401
        assert response.json()["code"] == "invalid_grant"


def test_an_access_token_never_outlives_its_session_at_the_session_maximum(
    api_client, user, password
):
    with time_machine.travel(T0, tick=False) as clock:
        tokens = login(api_client, "alice", password).json()
        for _day in range(3):
            clock.shift(timedelta(days=25))
            tokens = refresh(api_client, tokens["refresh_token"]).json()
        clock.shift(timedelta(days=15, minutes=-5))  # 5 minutes before the 90-day maximum

        body = refresh(api_client, tokens["refresh_token"]).json()

        assert (body["expires_in"], body["refresh_expires_in"]) == (300, 300)
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["exp"] == int(Token.objects.get(pk=body["sid"]).expires_at.timestamp())
        clock.shift(timedelta(minutes=5))
        assert api_client.get(ME, **bearer(body["access_token"])).status_code == 401


def test_an_access_token_is_refused_from_exactly_its_sessions_expiry(api_client, user, password):
    with time_machine.travel(T0, tick=False) as clock:
        tokens = login(api_client, "alice", password).json()
        # The session ends before its 15-minute access token does (shortened in the database).
        ends = now() + timedelta(minutes=5)
        Token.objects.filter(pk=tokens["sid"]).update(expires_at=ends)
        clock.shift(timedelta(minutes=5) - TICK)
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
        clock.shift(TICK)  # now == expires_at, the access token still has 10 minutes

        response = api_client.get(ME, **bearer(tokens["access_token"]))

        assert response.status_code == 401
        assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_access_token_expires_after_its_lifetime(api_client, user, password):
    with time_machine.travel("2026-01-01 00:00:00+00:00", tick=False) as clock:
        tokens = login(api_client, "alice", password).json()
        clock.shift(timedelta(minutes=15, seconds=1))
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401
        assert refresh(api_client, tokens["refresh_token"]).status_code == 200


def test_logout_revokes_the_session(api_client, user, password):
    tokens = login(api_client, "alice", password).json()

    response = api_client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"]))

    assert response.status_code == 204
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401
    assert refresh(api_client, tokens["refresh_token"]).status_code == 401
    assert Token.objects.get(pk=tokens["sid"]).revoke_reason == RevokeReason.LOGOUT


def test_logout_all_revokes_every_session_of_the_user_only(api_client, user, other_user, password):
    phone = login(api_client, "alice", password).json()
    laptop = login(api_client, "alice", password).json()
    bobs = login(api_client, "bob", password).json()

    response = api_client.post(reverse("cocart_jwt:logout-all"), **bearer(phone["access_token"]))

    assert response.status_code == 204
    assert api_client.get(ME, **bearer(phone["access_token"])).status_code == 401
    assert api_client.get(ME, **bearer(laptop["access_token"])).status_code == 401
    assert api_client.get(ME, **bearer(bobs["access_token"])).status_code == 200


def test_sessions_lists_live_sessions_and_marks_the_current_one(api_client, user, password):
    phone = login(api_client, "alice", password, HTTP_USER_AGENT="Phone/1.0").json()
    laptop = login(api_client, "alice", password, HTTP_USER_AGENT="Laptop/2.0").json()
    gone = login(api_client, "alice", password).json()
    api_client.post(reverse("cocart_jwt:logout"), **bearer(gone["access_token"]))

    response = api_client.get(reverse("cocart_jwt:sessions"), **bearer(phone["access_token"]))

    assert response.status_code == 200
    sessions = {item["id"]: item for item in response.json()}
    assert set(sessions) == {phone["sid"], laptop["sid"]}
    assert sessions[phone["sid"]]["current"] is True
    assert sessions[laptop["sid"]]["current"] is False
    assert sessions[laptop["sid"]]["user_agent"] == "Laptop/2.0"
    assert sessions[phone["sid"]]["ip"] == "127.0.0.1"
    assert set(sessions[phone["sid"]]) == {
        "id",
        "description",
        "created_at",
        "last_used_at",
        "expires_at",
        "ip",
        "user_agent",
        "current",
    }


def test_deleting_one_session_revokes_only_that_one(api_client, user, password):
    phone = login(api_client, "alice", password).json()
    laptop = login(api_client, "alice", password).json()

    url = reverse("cocart_jwt:session", args=[laptop["sid"]])
    response = api_client.delete(url, **bearer(phone["access_token"]))

    assert response.status_code == 204
    assert api_client.get(ME, **bearer(laptop["access_token"])).status_code == 401
    assert api_client.get(ME, **bearer(phone["access_token"])).status_code == 200


def test_deleting_another_users_session_is_404(api_client, user, other_user, password):
    alices = login(api_client, "alice", password).json()
    bobs = login(api_client, "bob", password).json()

    url = reverse("cocart_jwt:session", args=[bobs["sid"]])
    response = api_client.delete(url, **bearer(alices["access_token"]))

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}
    assert api_client.get(ME, **bearer(bobs["access_token"])).status_code == 200


def test_deleting_an_unknown_session_is_404(api_client, user, password):
    tokens = login(api_client, "alice", password).json()
    url = reverse("cocart_jwt:session", args=["no-such-session"])
    assert api_client.delete(url, **bearer(tokens["access_token"])).status_code == 404


def test_jwks_is_empty_for_hmac(api_client, db):
    response = api_client.get(reverse("cocart_jwt:jwks"))
    assert response.status_code == 200
    assert response.json() == {"keys": []}


def test_eleventh_login_evicts_the_oldest_session(api_client, user, password):
    logins = [login(api_client, "alice", password).json() for _ in range(11)]

    assert Token.objects.live().filter(user=user).count() == 10
    oldest = Token.objects.get(pk=logins[0]["sid"])
    assert oldest.revoke_reason == RevokeReason.MAX_TOKENS
    assert api_client.get(ME, **bearer(logins[0]["access_token"])).status_code == 401
    assert api_client.get(ME, **bearer(logins[1]["access_token"])).status_code == 200


def test_cap_follows_the_setting(api_client, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": 2}
    logins = [login(api_client, "alice", password).json() for _ in range(3)]

    live = set(Token.objects.live().filter(user=user).values_list("pk", flat=True))
    assert live == {logins[1]["sid"], logins[2]["sid"]}


def test_login_with_a_bearer_of_the_same_user_keeps_the_session(api_client, user, password):
    first = login(api_client, "alice", password).json()

    second = login(api_client, "alice", password, **bearer(first["access_token"])).json()

    assert second["sid"] == first["sid"]
    assert second["refresh_token"] != first["refresh_token"]
    assert Token.objects.filter(user=user).count() == 1
    # The old refresh token is spent: presenting it is reuse.
    assert refresh(api_client, first["refresh_token"]).status_code == 401
    assert api_client.get(ME, **bearer(second["access_token"])).status_code == 401


def test_login_with_a_bearer_of_another_user_starts_its_own_session(
    api_client, user, other_user, password
):
    bobs = login(api_client, "bob", password).json()

    alices = login(api_client, "alice", password, **bearer(bobs["access_token"])).json()

    assert alices["sid"] != bobs["sid"]
    assert alices["user"]["username"] == "alice"
    assert api_client.get(ME, **bearer(bobs["access_token"])).status_code == 200


def test_login_with_an_invalid_bearer_still_logs_in(api_client, user, password):
    response = login(api_client, "alice", password, **bearer("not-a-token"))
    assert response.status_code == 200


def test_bearer_scheme_is_case_insensitive(api_client, user, password):
    tokens = login(api_client, "alice", password).json()
    for scheme in ("bearer", "BEARER", "BeArEr"):
        auth = f"{scheme} {tokens['access_token']}"
        assert api_client.get(ME, HTTP_AUTHORIZATION=auth).status_code == 200


def test_last_used_is_written_at_most_once_per_touch_interval(
    api_client, user, password, django_assert_num_queries
):
    with time_machine.travel("2026-01-01 00:00:00+00:00", tick=False) as clock:
        tokens = login(api_client, "alice", password).json()
        api_client.get(ME, **bearer(tokens["access_token"]))
        first_use = Token.objects.get(pk=tokens["sid"]).last_used_at
        clock.shift(timedelta(seconds=30))
        with django_assert_num_queries(1):
            api_client.get(ME, **bearer(tokens["access_token"]))
        assert Token.objects.get(pk=tokens["sid"]).last_used_at == first_use
        clock.shift(timedelta(seconds=31))
        api_client.get(ME, **bearer(tokens["access_token"]))
        assert Token.objects.get(pk=tokens["sid"]).last_used_at > first_use


def test_last_used_is_written_again_at_exactly_the_touch_interval(api_client, user, password):
    with time_machine.travel(T0, tick=False) as clock:
        tokens = login(api_client, "alice", password).json()
        api_client.get(ME, **bearer(tokens["access_token"]))
        first_use = Token.objects.get(pk=tokens["sid"]).last_used_at
        clock.shift(timedelta(seconds=60) - TICK)
        api_client.get(ME, **bearer(tokens["access_token"]))
        assert Token.objects.get(pk=tokens["sid"]).last_used_at == first_use
        clock.shift(TICK)  # exactly TOUCH_INTERVAL (60 s) after the last write

        api_client.get(ME, **bearer(tokens["access_token"]))

        assert Token.objects.get(pk=tokens["sid"]).last_used_at == first_use + timedelta(seconds=60)


def test_strict_mode_makes_one_query_per_request(
    api_client, user, password, django_assert_num_queries
):
    tokens = login(api_client, "alice", password).json()
    api_client.get(ME, **bearer(tokens["access_token"]))  # the first use is recorded
    with django_assert_num_queries(1):
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200


def test_bind_to_ip_refuses_another_address(api_client, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "BIND_TO_IP": True}
    tokens = login(api_client, "alice", password, REMOTE_ADDR="10.0.0.1").json()

    same = api_client.get(ME, REMOTE_ADDR="10.0.0.1", **bearer(tokens["access_token"]))
    other = api_client.get(ME, REMOTE_ADDR="10.0.0.2", **bearer(tokens["access_token"]))

    assert same.status_code == 200
    assert other.status_code == 401


def test_bind_to_user_agent_refuses_another_agent(api_client, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "BIND_TO_USER_AGENT": True}
    tokens = login(api_client, "alice", password, HTTP_USER_AGENT="App/1").json()

    same = api_client.get(ME, HTTP_USER_AGENT="App/1", **bearer(tokens["access_token"]))
    other = api_client.get(ME, HTTP_USER_AGENT="Curl/8", **bearer(tokens["access_token"]))

    assert same.status_code == 200
    assert other.status_code == 401


def test_trusted_proxy_forwarded_address_is_recorded(api_client, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "TRUSTED_PROXIES": ["10.0.0.0/8"]}
    tokens = login(
        api_client,
        "alice",
        password,
        REMOTE_ADDR="10.1.2.3",
        HTTP_X_FORWARDED_FOR="203.0.113.9, 10.9.9.9",
    ).json()
    assert Token.objects.get(pk=tokens["sid"]).ip == "203.0.113.9"


def test_forwarded_header_from_an_untrusted_peer_is_ignored(api_client, user, password):
    tokens = login(
        api_client,
        "alice",
        password,
        REMOTE_ADDR="198.51.100.7",
        HTTP_X_FORWARDED_FOR="203.0.113.9",
    ).json()
    assert Token.objects.get(pk=tokens["sid"]).ip == "198.51.100.7"


def test_without_rotation_the_refresh_token_stays_valid(api_client, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "ROTATE_REFRESH_TOKENS": False}
    tokens = login(api_client, "alice", password).json()

    first = refresh(api_client, tokens["refresh_token"])
    second = refresh(api_client, tokens["refresh_token"])

    assert first.status_code == second.status_code == 200
    assert second.json()["refresh_token"] == tokens["refresh_token"]


def test_token_prefix_marks_refresh_tokens(api_client, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "TOKEN_PREFIX": "shop_rt_"}
    tokens = login(api_client, "alice", password).json()

    assert tokens["refresh_token"].startswith("shop_rt_")
    assert refresh(api_client, tokens["refresh_token"]).status_code == 200


class TestSignals:
    @pytest.fixture
    def received(self):
        connected = []

        def listen(signal):
            calls = []

            def receiver(sender, **kwargs):
                calls.append(kwargs)

            signal.connect(receiver, weak=False)
            connected.append((signal, receiver))
            return calls

        yield listen
        for signal, receiver in connected:
            signal.disconnect(receiver)

    def test_login_sends_token_issued(self, api_client, user, password, received):
        issued = received(token_issued)
        tokens = login(api_client, "alice", password).json()
        assert [(call["token"].pk, call["user"]) for call in issued] == [(tokens["sid"], user)]
        assert issued[0]["request"] is not None

    def test_request_sends_token_authenticated(self, api_client, user, password, received):
        authenticated = received(token_authenticated)
        tokens = login(api_client, "alice", password).json()
        api_client.get(ME, **bearer(tokens["access_token"]))
        assert len(authenticated) == 1
        assert authenticated[0]["user"] == user
        assert authenticated[0]["claims"]["sid"] == tokens["sid"]

    def test_refresh_sends_token_refreshed(self, api_client, user, password, received):
        refreshed = received(token_refreshed)
        tokens = login(api_client, "alice", password).json()
        refresh(api_client, tokens["refresh_token"])
        assert [call["token"].pk for call in refreshed] == [tokens["sid"]]

    def test_logout_sends_token_revoked_with_the_reason(self, api_client, user, password, received):
        revoked = received(token_revoked)
        tokens = login(api_client, "alice", password).json()
        api_client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"]))
        assert [(c["token"].pk, c["reason"]) for c in revoked] == [(tokens["sid"], "logout")]

    def test_login_sends_djangos_user_logged_in(self, api_client, user, password, received):
        from django.contrib.auth.signals import user_logged_in

        logged_in = received(user_logged_in)
        login(api_client, "alice", password)
        assert [call["user"] for call in logged_in] == [user]

    def test_failed_login_sends_djangos_user_login_failed(self, api_client, user, received):
        from django.contrib.auth.signals import user_login_failed

        failed = received(user_login_failed)
        login(api_client, "alice", "wrong")
        assert len(failed) == 1
        assert "wrong" not in str(failed[0]["credentials"])


def test_a_login_error_report_hides_the_password(rf, user, password):
    from django.views.debug import SafeExceptionReporterFilter

    from cocart_jwt.views import LoginView

    request = rf.post(reverse("cocart_jwt:login"), {"username": "alice", "password": password})
    LoginView.as_view()(request)

    cleansed = SafeExceptionReporterFilter().get_post_parameters(request)
    assert cleansed["password"] != password
    assert cleansed["username"] == "alice"


@pytest.mark.parametrize("session_id", ["a%00b", "a" * 100, "not.an.id"])
def test_deleting_a_session_with_an_impossible_id_is_404(api_client, user, password, session_id):
    tokens = login(api_client, "alice", password).json()
    url = f"/api/auth/sessions/{session_id}/"
    assert api_client.delete(url, **bearer(tokens["access_token"])).status_code == 404
