"""``POST introspect/`` (RFC 7662): whether an access token is active, for a caller whose user
holds ``cocart_jwt.introspect_token``.

Active is what strict verification accepts at this moment, read on the primary (a cached
snapshot counts for nothing), without BIND_TO_* and without touching ``last_used_at``. Anything
else answers ``{"active": false}`` and nothing more: the body is compared whole.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import time_machine
from django.contrib.auth.models import Group, Permission
from django.core.cache import caches
from django.urls import reverse
from rest_framework.test import APIClient

from cocart_jwt.keys import keyring
from cocart_jwt.models import Kind, Token
from cocart_jwt.tokens import mint_access_token
from cocart_jwt.utils import now
from tests.factories import answering_client, bearer, hmac_secret, key_settings, refresh, signed_in

pytestmark = pytest.mark.django_db

INTROSPECT = reverse("cocart_jwt:introspect")
ME = "/api/me/"
INACTIVE = {"active": False}
DOCS = Path(__file__).resolve().parent.parent / "docs" / "resource-servers.md"
NEW_PASSWORD = "an entirely new password 42"


def grant(user: Any) -> Any:
    user.user_permissions.add(Permission.objects.get(codename="introspect_token"))
    return user


@pytest.fixture
def client() -> APIClient:
    return answering_client()


@pytest.fixture
def resource_server(db: None, django_user_model: Any, password: str) -> Any:
    """The user a resource server signs in as: holds the permission."""
    return grant(django_user_model.objects.create_user("api-gateway", password=password))


@pytest.fixture
def caller(resource_server: Any, password: str) -> dict[str, str]:
    """The resource server's Authorization header."""
    return bearer(signed_in(resource_server, password)["access_token"])


def introspect(client: APIClient, caller: dict[str, str], token: Any, **extra: Any) -> Any:
    """Form-encoded, as RFC 7662 section 2.1 sends it (the test client's default)."""
    return client.post(INTROSPECT, {"token": token, **extra}, **caller)


def answer(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, (response.status_code, response.content[:300])
    assert response["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def me(access_token: str) -> int:
    return int(APIClient().get(ME, **bearer(access_token)).status_code)


# -- who may ask ----------------------------------------------------------------------------


def test_without_a_token_it_is_a_401_with_the_bearer_challenge(client, user, password):
    pair = signed_in(user, password)

    response = client.post(INTROSPECT, {"token": pair["access_token"]})

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith('Bearer realm="api"')
    assert response["Cache-Control"] == "no-store"
    assert set(response.json()) == {"detail", "code"}


def test_with_a_bad_token_it_is_a_401(client, user, password):
    pair = signed_in(user, password)

    response = introspect(client, bearer("not-a-token"), pair["access_token"])

    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_without_the_permission_it_is_a_403_that_says_nothing_of_the_token(
    client, user, other_user, password, caplog
):
    pair = signed_in(user, password)

    response = introspect(
        client, bearer(signed_in(other_user, password)["access_token"]), pair["access_token"]
    )

    assert response.status_code == 403
    assert response["Cache-Control"] == "no-store"
    assert response.json()["code"] == "permission_denied"
    assert "active" not in response.json()
    assert f"Introspection refused: user {other_user.pk} lacks the permission" in caplog.messages


def test_with_the_permission_it_answers(client, user, other_user, password):
    pair = signed_in(user, password)
    grant(other_user)

    response = introspect(
        client, bearer(signed_in(other_user, password)["access_token"]), pair["access_token"]
    )

    assert answer(response)["active"] is True


def test_the_permission_through_a_group_is_enough(client, user, other_user, password):
    pair = signed_in(user, password)
    group = Group.objects.create(name="resource servers")
    group.permissions.add(Permission.objects.get(codename="introspect_token"))
    other_user.groups.add(group)

    response = introspect(
        client, bearer(signed_in(other_user, password)["access_token"]), pair["access_token"]
    )

    assert answer(response)["active"] is True


def test_a_superuser_may_introspect(client, user, django_user_model, password):
    pair = signed_in(user, password)
    admin = django_user_model.objects.create_superuser("root", "root@example.com", password)

    response = introspect(
        client, bearer(signed_in(admin, password)["access_token"]), pair["access_token"]
    )

    assert answer(response)["active"] is True


def test_a_personal_token_of_a_permitted_user_may_introspect(client, user, resource_server):
    """Any kind of token authenticates the caller: a resource server holds a personal one."""
    own = Token.objects.issue(resource_server, kind=Kind.PERSONAL, scopes=[], description="RS")
    issued = Token.objects.issue(user, kind=Kind.PERSONAL, scopes=["orders:read"])

    response = introspect(client, bearer(own.access_token), issued.access_token)

    assert answer(response)["active"] is True


# -- active: what is said -----------------------------------------------------------------------


def test_a_login_tokens_answer_is_exactly_its_claims_and_user(client, caller, user, password):
    pair = signed_in(user, password)
    claims = claims_of(pair["access_token"])

    body = answer(introspect(client, caller, pair["access_token"]))

    assert body == {
        "active": True,
        "sub": str(user.pk),
        "username": "alice",
        "client_id": "cocart_jwt",
        "token_type": "Bearer",
        "exp": claims["exp"],
        "iat": claims["iat"],
        "nbf": claims["nbf"],
        "sid": pair["sid"],
        "jti": claims["jti"],
        "iss": "https://shop.example",
    }


def test_a_personal_tokens_answer_carries_its_scope(client, caller, user):
    issued = Token.objects.issue(user, kind=Kind.PERSONAL, scopes=["orders:read", "cart:write"])
    claims = issued.access_claims

    body = answer(introspect(client, caller, issued.access_token))

    assert body == {
        "active": True,
        "sub": str(user.pk),
        "username": "alice",
        "client_id": "cocart_jwt",
        "scope": "orders:read cart:write",
        "token_type": "Bearer",
        "exp": claims["exp"],
        "iat": claims["iat"],
        "nbf": claims["nbf"],
        "sid": issued.session.pk,
        "jti": claims["jti"],
        "iss": "https://shop.example",
    }


def test_a_personal_token_without_scopes_says_an_empty_scope(client, caller, user):
    issued = Token.objects.issue(user, kind=Kind.PERSONAL, scopes=[])

    assert answer(introspect(client, caller, issued.access_token))["scope"] == ""


def test_an_admin_token_is_active_without_a_scope(client, caller, user):
    issued = Token.objects.issue(user, kind=Kind.ADMIN, refreshable=False)

    body = answer(introspect(client, caller, issued.access_token))

    assert body["active"] is True
    assert "scope" not in body


def test_the_audience_and_client_id_are_the_tokens(client, user, password, settings):
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "AUDIENCE": ["https://api.shop.example", "https://pay.shop.example"],
        "CLIENT_ID": "shop-web",
    }
    grant(user)
    pair = signed_in(user, password)

    body = answer(introspect(client, bearer(pair["access_token"]), pair["access_token"]))

    assert body["aud"] == ["https://api.shop.example", "https://pay.shop.example"]
    assert body["client_id"] == "shop-web"
    # The token's own client_id, not today's setting.
    settings.COCART_JWT = {**settings.COCART_JWT, "CLIENT_ID": "shop-web-2"}
    again = answer(introspect(client, bearer(pair["access_token"]), pair["access_token"]))
    assert again["client_id"] == "shop-web"


def test_without_an_issuer_there_is_no_iss(client, user, password, settings):
    settings.COCART_JWT = {k: v for k, v in settings.COCART_JWT.items() if k != "ISSUER"}
    grant(user)
    pair = signed_in(user, password)

    body = answer(introspect(client, bearer(pair["access_token"]), pair["access_token"]))

    assert body["active"] is True
    assert "iss" not in body and "aud" not in body


JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"


def without_client_id_with_a_dpop_key(payload: dict[str, Any], user: Any) -> dict[str, Any]:
    """A PAYLOAD_HOOK: tokens minted before client_id existed."""
    del payload["client_id"]
    return payload


def test_a_token_without_client_id_says_the_sites_and_a_dpop_bound_one_says_so(
    client, caller, user, settings
):
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "PAYLOAD_HOOK": "tests.test_introspection.without_client_id_with_a_dpop_key",
        "CLIENT_ID": "shop-web",
    }
    issued = Token.objects.issue(user, kind=Kind.ADMIN, refreshable=False, dpop_jkt=JKT)
    assert "client_id" not in issued.access_claims
    assert issued.access_claims["cnf"] == {"jkt": JKT}

    body = answer(introspect(client, caller, issued.access_token))

    assert (body["client_id"], body["token_type"]) == ("shop-web", "DPoP")
    assert "cnf" not in body


def mismatched_key(payload: dict[str, Any], user: Any) -> dict[str, Any]:
    """A PAYLOAD_HOOK that claims a key the session is not bound to."""
    return {**payload, "cnf": {"jkt": JKT}}


def test_a_token_whose_key_is_not_its_sessions_is_inactive(client, caller, user, settings, caplog):
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "PAYLOAD_HOOK": "tests.test_introspection.mismatched_key",
    }
    issued = Token.objects.issue(user, kind=Kind.ADMIN, refreshable=False)
    assert issued.access_claims["cnf"] == {"jkt": JKT}  # the session has none

    assert answer(introspect(client, caller, issued.access_token)) == {"active": False}
    assert any(
        m.endswith(f"inactive: session {issued.session.pk} is bound to another DPoP key")
        for m in caplog.messages
    )


def test_a_json_body_is_read_too(client, caller, user, password):
    pair = signed_in(user, password)

    response = client.post(
        INTROSPECT,
        {"token": pair["access_token"], "token_type_hint": "access_token"},
        format="json",
        **caller,
    )

    assert answer(response)["sid"] == pair["sid"]


def test_a_raw_form_body_is_read(client, caller, user, password):
    pair = signed_in(user, password)
    body = f"token={pair['access_token']}&token_type_hint=refresh_token".encode()

    response = client.generic(
        "POST", INTROSPECT, body, content_type="application/x-www-form-urlencoded", **caller
    )

    assert answer(response)["active"] is True


# -- inactive: nothing but {"active": false} --------------------------------------------------


def test_a_revoked_token_is_inactive(client, caller, user, password):
    pair = signed_in(user, password)
    assert (
        client.post(reverse("cocart_jwt:logout"), **bearer(pair["access_token"])).status_code == 204
    )

    assert answer(introspect(client, caller, pair["access_token"])) == INACTIVE


def test_a_token_revoked_through_revoke_is_inactive(client, caller, user):
    issued = Token.objects.issue(user, kind=Kind.PERSONAL, scopes=["orders:read"])
    assert (
        client.post(reverse("cocart_jwt:revoke"), {"token": issued.access_token}).status_code == 200
    )

    assert answer(introspect(client, caller, issued.access_token)) == INACTIVE


def test_an_expired_token_is_inactive(client, user, resource_server, password):
    pair = signed_in(user, password)

    with time_machine.travel(now() + timedelta(minutes=16)):
        caller = bearer(signed_in(resource_server, password)["access_token"])
        assert answer(introspect(client, caller, pair["access_token"])) == INACTIVE
    # Its session lives on: the refresh token still works.
    assert refresh(client, pair["refresh_token"]).status_code == 200


def test_an_expired_session_is_inactive(client, caller, user):
    issued = Token.objects.issue(user, kind=Kind.PERSONAL, scopes=[], lifetime=timedelta(hours=1))
    Token.objects.filter(pk=issued.session.pk).update(expires_at=now() - timedelta(seconds=1))

    assert answer(introspect(client, caller, issued.access_token)) == INACTIVE


def test_a_reused_refresh_tokens_session_is_inactive(client, caller, user, password):
    first = signed_in(user, password)
    second = refresh(client, first["refresh_token"]).json()
    assert answer(introspect(client, caller, second["access_token"]))["active"] is True

    assert refresh(client, first["refresh_token"]).status_code == 401  # reuse

    assert answer(introspect(client, caller, second["access_token"])) == INACTIVE


def test_an_inactive_users_token_is_inactive(client, caller, user, password):
    pair = signed_in(user, password)
    user.is_active = False
    user.save()

    assert answer(introspect(client, caller, pair["access_token"])) == INACTIVE


def test_an_inactive_user_whose_sessions_were_not_revoked_is_inactive(
    client, caller, user, password
):
    """Deactivated by a raw update (no REVOKE_ON receiver ran): the session is live, its user
    is not; strict verification refuses, and so does introspection."""
    pair = signed_in(user, password)
    type(user).objects.filter(pk=user.pk).update(is_active=False)

    assert answer(introspect(client, caller, pair["access_token"])) == INACTIVE


def test_a_password_change_makes_the_token_inactive(client, caller, user, password):
    pair = signed_in(user, password)
    user.set_password(NEW_PASSWORD)
    user.save()

    assert answer(introspect(client, caller, pair["access_token"])) == INACTIVE


def test_an_idle_session_is_inactive(client, caller, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_IDLE_TIMEOUT": timedelta(minutes=10)}
    pair = signed_in(user, password)
    long_ago = now() - timedelta(minutes=11)
    Token.objects.filter(pk=pair["sid"]).update(created_at=long_ago, last_used_at=long_ago)

    assert answer(introspect(client, caller, pair["access_token"])) == INACTIVE


def test_a_refresh_token_is_inactive(client, caller, user, password):
    pair = signed_in(user, password)

    for hint in ({}, {"token_type_hint": "refresh_token"}):
        assert answer(introspect(client, caller, pair["refresh_token"], **hint)) == INACTIVE
    assert refresh(client, pair["refresh_token"]).status_code == 200  # not spent


def test_another_sites_token_is_inactive(client, caller, user, password, settings):
    pair = signed_in(user, password)
    ours = settings.COCART_JWT
    settings.COCART_JWT = {**ours, "SIGNING_KEY": hmac_secret("HS256", variant=7)}
    foreign = mint_access_token(Token.objects.get(pk=pair["sid"]), user, now()).token
    settings.COCART_JWT = ours

    assert answer(introspect(client, caller, foreign)) == INACTIVE


def test_a_token_whose_sub_is_not_its_sessions_user_is_inactive(
    client, caller, user, other_user, password, caplog
):
    bobs = signed_in(other_user, password)
    forged = mint_access_token(Token.objects.get(pk=bobs["sid"]), user, now()).token

    assert answer(introspect(client, caller, forged)) == INACTIVE
    assert any(
        m.endswith(f"inactive: sub does not match the user of session {bobs['sid']}")
        for m in caplog.messages
    )


def test_a_token_of_a_deleted_session_is_inactive(client, caller, user, password):
    pair = signed_in(user, password)
    Token.objects.filter(pk=pair["sid"]).delete()

    assert answer(introspect(client, caller, pair["access_token"])) == INACTIVE


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"token": ""},
        {"token": "   "},
        {"token": "garbage"},
        {"token": "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"},
        {"token": "x" * 100_000},
        {"token": "abc\x00def"},
        {"token_type_hint": "access_token"},
    ],
    ids=["empty", "blank", "spaces", "garbage", "jwt-like", "huge", "nul", "no-token"],
)
def test_a_missing_or_garbage_token_is_inactive(client, caller, body):
    assert answer(client.post(INTROSPECT, body, format="json", **caller)) == INACTIVE


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'["token"]', "application/json"),
        (b'{"token": ["x"]}', "application/json"),
        (b'{"token": "\\ud800"}', "application/json"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b"token=x", "text/plain"),
        (b"token=\xff\xfe", "application/x-www-form-urlencoded"),
        (b"garbage", "multipart/form-data; boundary=B"),
    ],
    ids=[
        "not-json",
        "array",
        "list-token",
        "surrogate",
        "deep",
        "text-plain",
        "non-utf8",
        "multipart",
    ],
)
def test_a_hostile_body_is_inactive_never_a_500(client, caller, body, content_type):
    response = client.generic("POST", INTROSPECT, body, content_type=content_type, **caller)

    assert answer(response) == INACTIVE


# -- exact, and a resource server is not the holder ---------------------------------------------


def test_a_session_revoked_behind_the_cache_is_inactive_at_once(
    client, caller, user, password, settings
):
    """Cached mode serves a snapshot until its TTL after a raw update; introspection asks the
    primary database."""
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}
    caches["default"].clear()
    pair = signed_in(user, password)
    assert me(pair["access_token"]) == 200  # the snapshot is cached
    Token.objects.filter(pk=pair["sid"]).update(revoked_at=now())
    assert me(pair["access_token"]) == 200  # still served from the cache

    assert answer(introspect(client, caller, pair["access_token"])) == INACTIVE
    caches["default"].clear()


def test_introspection_does_not_touch_last_used_at(client, caller, user, password):
    pair = signed_in(user, password)
    long_ago = now() - timedelta(hours=1)
    Token.objects.filter(pk=pair["sid"]).update(last_used_at=long_ago)

    assert answer(introspect(client, caller, pair["access_token"]))["active"] is True

    assert Token.objects.get(pk=pair["sid"]).last_used_at == long_ago


def test_binding_does_not_apply_to_the_resource_server(client, caller, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "BIND_TO_IP": True, "BIND_TO_USER_AGENT": True}
    holder = APIClient()
    pair = holder.post(
        reverse("cocart_jwt:login"),
        {"username": "alice", "password": password},
        format="json",
        REMOTE_ADDR="192.0.2.7",
        HTTP_USER_AGENT="Phone/1.0",
    ).json()

    response = introspect(
        client, caller, pair["access_token"], REMOTE_ADDR="203.0.113.5", HTTP_USER_AGENT="RS/2"
    )

    assert answer(response)["active"] is True
    assert Token.objects.get(pk=pair["sid"]).ip == "192.0.2.7"


# -- the log and the rate limit ---------------------------------------------------------------


def test_the_log_says_why_and_never_holds_the_token(client, caller, user, password, caplog):
    pair = signed_in(user, password)
    caplog.set_level(logging.INFO, logger="cocart_jwt")

    introspect(client, caller, pair["access_token"])
    client.post(reverse("cocart_jwt:logout"), **bearer(pair["access_token"]))
    introspect(client, caller, pair["access_token"])

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Introspection")]
    assert lines[0].endswith(f"active, session {pair['sid']}")
    assert lines[1].endswith(f"inactive: session {pair['sid']} is revoked")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert pair["access_token"] not in logged


@pytest.mark.rate_limits
def test_the_introspect_limit_is_off_by_default_and_can_be_named(
    client, caller, user, password, settings
):
    pair = signed_in(user, password)
    for _ in range(3):
        response = introspect(client, caller, pair["access_token"])
        assert answer(response)["active"] is True
        assert "X-RateLimit-Limit" not in response

    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": {"introspect": "1/min"}}
    assert answer(introspect(client, caller, pair["access_token"]))["active"] is True
    refused = introspect(client, caller, pair["access_token"])

    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert refused["X-RateLimit-Limit"] == "1"
    assert refused["Cache-Control"] == "no-store"
    assert "active" not in refused.json()


# -- docs/resource-servers.md: what JWKS verification alone cannot see ---------------------------


def documented_verifier(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The Python snippet of docs/resource-servers.md, as written, its JWKS fetched from this
    site's keyring instead of over HTTP."""
    snippet = re.search(r"^```python\n(.*?)^```", DOCS.read_text(), re.S | re.M)
    assert snippet is not None
    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", lambda client: keyring().jwks)
    namespace: dict[str, Any] = {}
    exec(snippet.group(1), namespace)  # noqa: S102 - our own documentation
    return namespace["verify_access_token"]


def test_jwks_alone_accepts_a_revoked_personal_token_introspection_does_not(
    client, user, resource_server, password, settings, monkeypatch
):
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        **key_settings("ES256"),
        "AUDIENCE": "https://api.shop.example",
    }
    verify = documented_verifier(monkeypatch)
    caller = bearer(signed_in(resource_server, password)["access_token"])
    issued = Token.objects.issue(user, kind=Kind.PERSONAL, scopes=["orders:read"])
    assert verify(issued.access_token)["scope"] == "orders:read"

    assert (
        client.post(reverse("cocart_jwt:revoke"), {"token": issued.access_token}).status_code == 200
    )

    assert verify(issued.access_token)["sid"] == issued.session.pk  # still a valid signature
    assert answer(introspect(client, caller, issued.access_token)) == INACTIVE
    assert me(issued.access_token) == 401


def test_the_documented_verifier_refuses_a_jwt_that_is_no_access_token(user, settings, monkeypatch):
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        **key_settings("ES256"),
        "AUDIENCE": "https://api.shop.example",
    }
    verify = documented_verifier(monkeypatch)
    claims = Token.objects.issue(user, kind=Kind.PERSONAL, scopes=[]).access_claims
    key = keyring().signing_key
    assert key is not None
    id_token = jwt.encode(claims, key.signer, algorithm=key.algorithm, headers={"kid": key.kid})

    with pytest.raises(jwt.InvalidTokenError, match="not an access token"):
        verify(id_token)
