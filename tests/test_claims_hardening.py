"""Additional claims are data, never authority (issue 12, item 4).

The admin create form, ``jwt create --claims`` and ``USER_CLAIMS`` cannot put a claim that
resource servers read as a grant (``scope``, ``client_id``, ``cnf``...), as login facts
(``auth_time``, ``acr``...), as the token's kind (``typ``) or that cocart_jwt sets itself
into an access token; a session stored with such claims before the rule never mints them.

What a minted access token carries besides: the claims this app sets (an ``exp`` that never
passes its session's end, a fresh 128-bit ``jti``), shown as they were signed.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from cocart_jwt import tokens
from cocart_jwt.models import Token
from cocart_jwt.tokens import InvalidToken, mint_access_token, verify_access_token
from cocart_jwt.utils import now
from tests.factories import bearer, login, private_pem, public_pem, refresh

pytestmark = pytest.mark.django_db

ADD = "/admin/cocart_jwt/token/add/"
ACCESS_TOKEN = re.compile(r'<textarea id="cocart-jwt-access-token"[^>]*>([^<]*)</textarea>')

# Written out, not imported: the test states the rule, the code must follow it.
SET_BY_COCART_JWT = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "sid"]
AUTHORITY = ["scope", "scp", "client_id", "azp", "act", "may_act", "cnf"]
LOGIN_FACTS = ["auth_time", "acr", "amr", "nonce"]
TOKEN_KIND = ["typ", "token_use"]
REFUSED = SET_BY_COCART_JWT + AUTHORITY + LOGIN_FACTS + TOKEN_KIND
# Data: roles, groups and entitlements grant nothing in this app, so they pass.
HARMLESS = {"tenant": "acme", "roles": ["picker"], "groups": ["night-shift"], "is_staff": True}
# What a USER_CLAIMS hook might hand back; the values must never reach the log.
HOOK_VALUES = {"scope": "admin-scope-value", "cnf": {"jkt": "hook-thumbprint-value"}}


def authority_in_user_claims(user: Any) -> dict[str, Any]:
    return {**HOOK_VALUES, "tenant": "acme"}


def create(client: Any, user: Any, claims: Any) -> Any:
    data = {"user": user.pk, "lifetime": "24h", "claims": json.dumps(claims), "description": ""}
    return client.post(ADD, data)


def claims_errors(response: Any) -> list[str]:
    assert response.status_code == 200
    return list(response.context["adminform"].form.errors.get("claims", []))


def access_token_on(page: bytes) -> str:
    match = ACCESS_TOKEN.search(page.decode())
    assert match, "no access token on the page"
    return html.unescape(match.group(1))


def run_create(*args: str) -> str:
    out = io.StringIO()
    call_command("jwt", "create", *args, "-v", "0", stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


# -- the admin form -------------------------------------------------------------------------


def test_admin_form_refuses_is_staff_with_scope_admin(admin_client: Any, user: Any) -> None:
    """The audit's case: a superuser's form POST with a scope is refused, nothing is issued."""
    response = create(admin_client, user, {"is_staff": True, "scope": "admin"})

    errors = claims_errors(response)
    assert len(errors) == 1
    assert errors[0].startswith('"scope" cannot be given here')
    assert "grant nothing" in errors[0]
    assert "&quot;scope&quot; cannot be given here" in response.content.decode()
    assert not Token.objects.exists()


@pytest.mark.parametrize("name", REFUSED)
def test_admin_form_refuses_each_reserved_name(admin_client: Any, user: Any, name: str) -> None:
    response = create(admin_client, user, {name: "x", "tenant": "acme"})

    (error,) = claims_errors(response)
    assert error.startswith(f'"{name}" ')
    if name in SET_BY_COCART_JWT:
        assert "is set by cocart_jwt on every token" in error
    else:
        assert "resource servers read it as" in error
    assert not Token.objects.exists()


def test_admin_form_names_every_refused_claim_and_why(admin_client: Any, user: Any) -> None:
    response = create(admin_client, user, {"sid": "x", "exp": 1, "cnf": {}, "auth_time": 1})

    assert claims_errors(response) == [
        '"exp", "sid" are set by cocart_jwt on every token and cannot be given here.',
        '"auth_time", "cnf" cannot be given here: resource servers read them as what the token '
        "may do, which client holds it, how the user signed in or what kind of token it is. "
        "Additional claims are data and grant nothing.",
    ]
    assert not Token.objects.exists()


def test_admin_add_page_lists_the_refused_names_and_a_harmless_example(admin_client: Any) -> None:
    page = html.unescape(admin_client.get(ADD).content.decode())

    assert '{"scope"' not in page  # no example that looks like a grant
    assert 'placeholder="{"tenant": "acme"}"' in page
    assert "grants nothing" in page
    for name in REFUSED:
        assert re.search(rf"[( ]{name}[,)]", page), name


def test_admin_form_lets_data_claims_through_to_the_token(admin_client: Any, user: Any) -> None:
    response = create(admin_client, user, HARMLESS)

    assert response.status_code == 200
    claims = verify_access_token(access_token_on(response.content))
    assert {name: claims[name] for name in HARMLESS} == HARMLESS
    assert Token.objects.get().claims == HARMLESS


# -- jwt create --claims --------------------------------------------------------------------


@pytest.mark.parametrize("name", REFUSED)
def test_cli_refuses_each_reserved_name(user: Any, name: str) -> None:
    with pytest.raises(CommandError) as refused:
        run_create("alice", "--claims", json.dumps({name: "x", "tenant": "acme"}))

    # The admin form's words (cocart_jwt/parsing.py), after the option's name.
    message = str(refused.value)
    if name in SET_BY_COCART_JWT:
        assert message == (
            f'--claims: "{name}" is set by cocart_jwt on every token and cannot be given here.'
        )
    else:
        assert message.startswith(f'--claims: "{name}" cannot be given here: resource servers')
        assert "read it as" in message
        assert message.endswith("Additional claims are data and grant nothing.")
    assert not Token.objects.exists()


def test_cli_names_every_refused_claim(user: Any) -> None:
    claims = {"is_staff": True, "scope": "admin", "client_id": "x", "sub": "1"}
    with pytest.raises(CommandError) as refused:
        run_create("alice", "--claims", json.dumps(claims))

    message = str(refused.value)
    assert '"sub" is set by cocart_jwt on every token' in message
    assert '"client_id", "scope" cannot be given here: resource servers read them as' in message
    assert "is_staff" not in message
    assert not Token.objects.exists()


def test_cli_lets_data_claims_through_to_the_token(user: Any) -> None:
    claims = verify_access_token(run_create("alice", "--claims", json.dumps(HARMLESS)))

    assert {name: claims[name] for name in HARMLESS} == HARMLESS


# -- USER_CLAIMS ----------------------------------------------------------------------------


@pytest.fixture
def hook_returns_authority(settings: Any) -> None:
    # The warning is said once per process: start from none said.
    tokens.warn_dropped_user_claims.cache_clear()
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "USER_CLAIMS": f"{__name__}.authority_in_user_claims",
    }


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "cocart_jwt" and record.levelno == logging.WARNING
    ]


@pytest.mark.usefixtures("hook_returns_authority")
def test_user_claims_cannot_put_scope_or_cnf_in_the_token(
    api_client: Any, user: Any, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cocart_jwt")

    first = login(api_client, "alice", password).json()
    second = login(api_client, "alice", password).json()

    for data in (first, second):
        claims = verify_access_token(data["access_token"])
        assert "scope" not in claims and "cnf" not in claims
        assert claims["tenant"] == "acme"  # the harmless claim of the hook still passes
    # Said once, naming the claims; two mints, one warning; never the values.
    (warning,) = warnings_of(caplog)
    assert "USER_CLAIMS returned reserved claims" in warning
    assert "cnf, scope" in warning
    logged = " ".join(f"{record.msg} {record.args!r}" for record in caplog.records)
    assert "admin-scope-value" not in logged and "hook-thumbprint-value" not in logged


# -- sessions stored with reserved claims before the rule ------------------------------------


STORED = {"scope": "admin", "cnf": {"jkt": "x"}, "auth_time": 1, "typ": "Bearer", "tenant": "acme"}


def test_a_stored_session_with_reserved_claims_never_mints_them_on_refresh(
    api_client: Any, user: Any, password: str
) -> None:
    data = login(api_client, "alice", password).json()
    Token.objects.filter(pk=data["sid"]).update(claims=STORED)  # written behind the form's back

    response = refresh(api_client, data["refresh_token"])

    assert response.status_code == 200
    claims = verify_access_token(response.json()["access_token"])
    assert claims["tenant"] == "acme"
    assert not {"scope", "cnf", "typ"} & set(claims)
    # auth_time is the login's, never the stored one.
    login_time = Token.objects.get(pk=data["sid"]).authenticated_at
    assert claims["auth_time"] == int(login_time.timestamp()) != STORED["auth_time"]


def test_a_stored_session_with_reserved_claims_never_mints_them_in_the_admin(
    admin_client: Any, user: Any
) -> None:
    session = Token.objects.issue(user, refreshable=False).session
    Token.objects.filter(pk=session.pk).update(claims=STORED)
    mint = reverse("admin:cocart_jwt_token_mint", args=[quote(session.pk)])

    response = admin_client.post(mint)

    assert response.status_code == 200
    claims = verify_access_token(access_token_on(response.content))
    assert claims["sid"] == session.pk
    assert claims["tenant"] == "acme"
    assert not {"scope", "cnf", "auth_time", "typ"} & set(claims)


@pytest.mark.parametrize("configured", [False, True], ids=["no-iss-aud", "iss-and-aud"])
def test_a_stored_iss_or_aud_never_reaches_a_token(
    api_client: Any, user: Any, settings: Any, configured: bool
) -> None:
    """Without ISSUER or AUDIENCE a stored iss or aud would be the only one in the token."""
    issuer = "https://shop.example" if configured else None
    audience = "https://api.shop.example" if configured else None
    settings.COCART_JWT = {**settings.COCART_JWT, "ISSUER": issuer, "AUDIENCE": audience}
    stored = {"iss": "https://evil.example", "aud": "https://evil.example", "tenant": "acme"}
    issued = Token.objects.issue(user, claims=stored)
    refreshed = Token.objects.rotate(issued.refresh_token)

    for access in (issued.access_token, refreshed.access_token):
        claims = verify_access_token(access)
        assert (claims.get("iss"), claims.get("aud")) == (issuer, audience)
        assert claims["tenant"] == "acme"
        assert api_client.get("/api/me/", **bearer(access)).status_code == 200


# -- what a minted access token carries -----------------------------------------------------


def test_an_access_token_of_a_refreshable_session_about_to_end_expires_with_it(
    user: Any,
) -> None:
    """ACCESS_TOKEN_LIFETIME (15 minutes) is capped at the session's end, 5 minutes away."""
    issued = Token.objects.issue(user, lifetime=timedelta(minutes=5))
    session = issued.session

    claims = verify_access_token(issued.access_token)
    assert issued.access_expires_at == session.expires_at
    assert claims["exp"] == int(session.expires_at.timestamp())
    assert claims["exp"] - claims["iat"] in (299, 300)  # the session's microseconds dropped
    assert issued.expires_in == issued.refresh_expires_in == 300


@pytest.mark.parametrize("refreshable", [True, False], ids=["refreshable", "not-refreshable"])
def test_an_access_token_lives_its_lifetime_or_as_long_as_a_session_without_refresh(
    user: Any, refreshable: bool
) -> None:
    issued = Token.objects.issue(user, refreshable=refreshable, lifetime=timedelta(hours=24))

    claims = verify_access_token(issued.access_token)
    lifetime = timedelta(minutes=15) if refreshable else timedelta(hours=24)
    assert issued.access_expires_at == issued.issued_at + lifetime
    assert claims["exp"] == int((issued.issued_at + lifetime).timestamp())


def test_a_minted_access_token_shows_the_claims_it_carries(user: Any) -> None:
    session = Token.objects.issue(user, claims={"tenant": "acme", "scope": "admin"}).session
    at = now()

    access = mint_access_token(session, user, at)

    claims = verify_access_token(access.token)
    assert access.claims == claims
    assert access.jti == claims["jti"]
    assert claims["tenant"] == "acme" and "scope" not in claims
    assert (claims["sid"], claims["sub"]) == (session.pk, str(user.pk))
    assert claims["iat"] == claims["nbf"] == int(at.timestamp())
    assert access.expires_at == at + timedelta(minutes=15)
    assert claims["exp"] == int(access.expires_at.timestamp())


def test_each_access_token_has_its_own_128_bit_jti(user: Any) -> None:
    """16 random bytes (RFC 7519: a collision must be negligible), 22 url-safe characters."""
    session = Token.objects.issue(user).session
    at = now()

    jtis = {mint_access_token(session, user, at).jti for _ in range(20)}

    assert len(jtis) == 20
    for jti in jtis:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", jti), jti


def test_a_verify_only_site_mints_no_token_and_says_why(user: Any, settings: Any) -> None:
    session = Token.objects.issue(user).session
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "ALGORITHM": "RS256",
        "SIGNING_KEY": None,
        "VERIFYING_KEY": public_pem(private_pem("RS256")),
    }

    with pytest.raises(InvalidToken) as refused:
        mint_access_token(session, user, now())

    assert str(refused.value) == ("no signing key: this site is configured to verify tokens only")
