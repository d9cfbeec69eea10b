"""The registry's kinds: which limit counts a session, what its access tokens carry.

A login ``session`` is in MAX_TOKENS_PER_USER (the oldest evicted), a ``personal`` token in
MAX_PATS_PER_USER (creation beyond refused, never an eviction), an ``admin`` one in neither.
Every access token carries ``client_id``; a personal one its ``scope`` and no ``auth_time``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest
import time_machine
from django.db import connections, transaction

from cocart_jwt.choices import Kind, RevokeReason
from cocart_jwt.issued import TooManyPersonalTokens
from cocart_jwt.models import Token
from cocart_jwt.tokens import InvalidToken, verify_access_token
from cocart_jwt.utils import now
from tests.factories import bearer, login
from tests.test_concurrency import run_together

ME = "/api/me/"


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def personal(user: Any, scopes: list[str], **kwargs: Any) -> Any:
    return Token.objects.issue(user, kind=Kind.PERSONAL, scopes=scopes, **kwargs)


@pytest.fixture
def cap_3(settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": 3, "MAX_PATS_PER_USER": 2}


def test_a_login_at_the_cap_evicts_login_sessions_only(
    cap_3: None, api_client: Any, user: Any, password: str
) -> None:
    tokens = personal(user, ["orders:read"])
    made_by_admin = Token.objects.issue(user, kind=Kind.ADMIN, refreshable=False)
    sids = [login(api_client, user.username, password).json()["sid"] for _ in range(4)]

    live = set(Token.objects.live().filter(user=user).values_list("pk", flat=True))
    assert live == {tokens.session.pk, made_by_admin.session.pk, *sids[1:]}
    evicted = Token.objects.get(pk=sids[0])
    assert evicted.revoke_reason == RevokeReason.MAX_TOKENS
    assert api_client.get(ME, **bearer(tokens.access_token)).status_code == 200
    assert api_client.get(ME, **bearer(made_by_admin.access_token)).status_code == 200


def test_personal_tokens_beyond_their_limit_are_refused_never_evicted(
    cap_3: None, user: Any
) -> None:
    first, second = personal(user, ["a"]), personal(user, ["b"])

    with pytest.raises(TooManyPersonalTokens) as refused:
        personal(user, ["c"])

    assert refused.value.limit == 2
    assert "at most 2 live personal access tokens" in str(refused.value)
    assert set(Token.objects.live().filter(user=user).values_list("pk", flat=True)) == {
        first.session.pk,
        second.session.pk,
    }
    assert Token.objects.filter(user=user).count() == 2  # nothing revoked, nothing inserted


def test_revoked_or_expired_personal_tokens_leave_room(cap_3: None, user: Any) -> None:
    first = personal(user, ["a"])
    personal(user, ["b"], lifetime=timedelta(hours=1))
    first.session.revoke(RevokeReason.TOKEN_DELETED)
    personal(user, ["c"])  # the revoked one no longer counts
    with time_machine.travel(now() + timedelta(hours=2)):
        personal(user, ["d"])  # nor does the expired one
        with pytest.raises(TooManyPersonalTokens):
            personal(user, ["e"])


def test_a_refused_personal_token_leaves_the_callers_transaction_usable(
    cap_3: None, user: Any
) -> None:
    personal(user, ["a"]), personal(user, ["b"])
    with transaction.atomic():
        with pytest.raises(TooManyPersonalTokens):
            personal(user, ["c"])
        assert Token.objects.filter(user=user).count() == 2  # no TransactionManagementError


def test_login_sessions_do_not_count_against_personal_tokens(
    cap_3: None, api_client: Any, user: Any, password: str
) -> None:
    for _ in range(3):
        login(api_client, user.username, password)
    personal(user, ["a"]), personal(user, ["b"])
    assert Token.objects.live().filter(user=user).count() == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_personal_tokens_stop_exactly_at_the_limit(settings: Any, user: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_PATS_PER_USER": 5}

    def create(index: int, _client: Any) -> str:
        try:
            personal(user, [f"s{index}"])
        except TooManyPersonalTokens:
            return "refused"
        finally:
            connections.close_all()
        return "created"

    outcomes = run_together(12, create)

    assert outcomes.count("created") == 5
    assert outcomes.count("refused") == 7
    assert Token.objects.live().filter(user=user, kind=Kind.PERSONAL).count() == 5


def test_a_personal_token_lives_90_days_unless_told_and_never_past_the_maximum(
    settings: Any, user: Any
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "PAT_MAX_LIFETIME": timedelta(days=120)}
    default = personal(user, ["a"])
    longest = personal(user, ["a"], lifetime=timedelta(days=1000))

    assert default.session.expires_at - default.session.created_at == timedelta(days=90)
    assert longest.session.expires_at - longest.session.created_at == timedelta(days=120)
    assert not default.session.refreshable
    assert default.refresh_token is None


def test_a_personal_token_outlives_the_session_maximum_and_still_verifies(
    settings: Any, api_client: Any, user: Any
) -> None:
    # SESSION_MAX_LIFETIME bounds login sessions only.
    issued = personal(user, ["a"], lifetime=timedelta(days=300))

    claims = verify_access_token(issued.access_token)

    assert claims["exp"] - claims["iat"] == int(timedelta(days=300).total_seconds())
    assert api_client.get(ME, **bearer(issued.access_token)).status_code == 200


def test_the_verifier_bounds_a_personal_token_by_the_personal_maximum(
    settings: Any, user: Any
) -> None:
    issued = personal(user, ["a"], lifetime=timedelta(days=300))
    settings.COCART_JWT = {**settings.COCART_JWT, "PAT_MAX_LIFETIME": timedelta(days=200)}

    with pytest.raises(InvalidToken, match="exp is further from iat"):
        verify_access_token(issued.access_token)


def test_every_access_token_names_the_client(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    pair = login(api_client, user.username, password).json()
    assert claims_of(pair["access_token"])["client_id"] == "cocart_jwt"

    settings.COCART_JWT = {**settings.COCART_JWT, "CLIENT_ID": "shop-web"}
    for issued in (
        Token.objects.issue(user, kind=Kind.ADMIN, refreshable=False),
        personal(user, ["orders:read"]),
    ):
        assert claims_of(issued.access_token)["client_id"] == "shop-web"
        assert verify_access_token(issued.access_token)["client_id"] == "shop-web"


def test_a_personal_access_token_carries_its_scope_and_no_auth_time(user: Any) -> None:
    issued = personal(user, ["orders:read", "cart:write"], description="CI deploy")

    claims = claims_of(issued.access_token)

    assert claims["scope"] == "orders:read cart:write"
    assert "auth_time" not in claims
    assert claims["exp"] == int(issued.session.expires_at.timestamp())
    assert issued.session.kind == Kind.PERSONAL
    assert issued.session.description == "CI deploy"
    assert "scope" not in claims_of(Token.objects.issue(user, kind=Kind.ADMIN).access_token)


def strip_scope(payload: dict[str, Any], user: Any) -> dict[str, Any]:
    return {name: value for name, value in payload.items() if name != "scope"}


def test_a_payload_hook_cannot_take_a_personal_tokens_scope_away(settings: Any, user: Any) -> None:
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "PAYLOAD_HOOK": "tests.test_token_kinds.strip_scope",
    }
    assert claims_of(personal(user, ["orders:read"]).access_token)["scope"] == "orders:read"


def test_a_scope_that_is_not_a_string_is_refused(user: Any) -> None:
    from cocart_jwt.keys import keyring

    key = keyring().signing_key
    at = int(now().timestamp())
    claims = {
        "sub": str(user.pk),
        "sid": "x",
        "jti": "y",
        "iat": at,
        "nbf": at,
        "exp": at + 60,
        "iss": "https://shop.example",
        "scope": ["orders:read"],
    }
    token = jwt.encode(
        claims, key.signer, algorithm=key.algorithm, headers={"typ": "at+jwt", "kid": key.kid}
    )
    with pytest.raises(InvalidToken, match="^scope claim is not a string$"):
        verify_access_token(token)


def test_kind_defaults_to_a_login_session(user: Any) -> None:
    issued = Token.objects.issue(user)
    assert issued.session.kind == Kind.SESSION
    assert issued.session.scopes == []
