"""DPoP end to end (RFC 9449): a login or refresh with a proof binds the session to the key;
its tokens go only as ``Authorization: DPoP`` with a fresh proof by that key; a refresh or
reauthentication with a missing or foreign proof is a 400 that spends nothing and is no reuse.

Proofs are made with PyJWT and cryptography (tests/dpop_clients.py), as a client makes them.
Every resource check runs in both verification modes.
"""

from __future__ import annotations

import hashlib
from base64 import urlsafe_b64encode
from typing import Any

import jwt
import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from cocart_jwt.dpop import jwk_thumbprint
from cocart_jwt.dpop_nonces import new_nonce
from cocart_jwt.models import RefreshToken, Token
from cocart_jwt.signals import refresh_token_reused
from tests.dpop_clients import private_key, proof, public_jwk
from tests.factories import answering_client, bearer

AUTH = "/api/auth/"
ME = "/api/me/"
KEY = private_key("ES256", 0)
OTHER_KEY = private_key("ES256", 1)
JKT = jwk_thumbprint(public_jwk(KEY))


@pytest.fixture(params=["strict", "cached"])
def mode(request: pytest.FixtureRequest, settings: Any) -> str:
    if request.param == "cached":
        settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}
        caches["default"].clear()
    return str(request.param)


@pytest.fixture
def client() -> APIClient:
    return answering_client()


def ath(token: str) -> str:
    return urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


def dpop(method: str, path: str, token: str | None = None, *, key: Any = KEY, **claims: Any) -> str:
    """A fresh proof for ``method`` ``path`` (with ``ath`` of ``token``)."""
    if token is not None:
        claims.setdefault("ath", ath(token))
    return proof(key=key, htm=method, htu=f"http://testserver{path}", claims=claims)


def bound(token: str, method: str = "GET", path: str = ME, **kwargs: Any) -> dict[str, str]:
    """The headers of a request with a DPoP-bound token."""
    return {
        "HTTP_AUTHORIZATION": f"DPoP {token}",
        "HTTP_DPOP": dpop(method, path, token, **kwargs),
    }


def login(client: APIClient, user: Any, password: str, **headers: Any) -> Any:
    return client.post(
        f"{AUTH}login/", {"username": user.username, "password": password}, format="json", **headers
    )


def bound_login(client: APIClient, user: Any, password: str) -> dict[str, Any]:
    response = login(client, user, password, HTTP_DPOP=dpop("POST", f"{AUTH}login/"))
    assert response.status_code == 200, response.content
    return response.json()


def refresh(client: APIClient, refresh_token: str, **headers: Any) -> Any:
    return client.post(
        f"{AUTH}refresh/", {"refresh_token": refresh_token}, format="json", **headers
    )


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def challenge(response: Any) -> str:
    return str(response.headers.get("WWW-Authenticate", ""))


# -- binding at login -------------------------------------------------------------------------


def test_a_login_with_a_proof_binds_the_session_to_its_key(
    client: APIClient, user: Any, password: str
) -> None:
    pair = bound_login(client, user, password)

    assert pair["token_type"] == "DPoP"
    assert claims_of(pair["access_token"])["cnf"] == {"jkt": JKT}
    assert Token.objects.get(pk=pair["sid"]).dpop_jkt == JKT


def test_a_login_without_a_proof_is_a_bearer_session_as_before(
    client: APIClient, user: Any, password: str, mode: str
) -> None:
    pair = login(client, user, password).json()

    assert pair["token_type"] == "Bearer"
    assert "cnf" not in claims_of(pair["access_token"])
    assert client.get(ME, **bearer(pair["access_token"])).status_code == 200
    # An unbound token under the DPoP scheme is a confused client: refused.
    as_dpop = client.get(ME, **bound(pair["access_token"]))
    assert as_dpop.status_code == 401
    assert challenge(as_dpop).startswith('DPoP error="invalid_token", algs="ES256 ')


@pytest.mark.parametrize(
    "bad",
    ["garbage", "no-jwk"],
)
def test_a_login_with_a_bad_proof_is_a_400_and_starts_nothing(
    client: APIClient, user: Any, password: str, bad: str
) -> None:
    value = "not.a.proof" if bad == "garbage" else dpop("POST", f"{AUTH}login/", header=None)
    if bad == "no-jwk":
        value = proof(
            key=KEY, htm="POST", htu="http://testserver/api/auth/login/", header={"jwk": None}
        )

    response = login(client, user, password, HTTP_DPOP=value)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_dpop_proof",
        "detail": "The DPoP proof is invalid, or not by the key this session is bound to.",
        "code": "invalid_dpop_proof",
    }
    assert not Token.objects.filter(user=user).exists()


# -- a bound token on a resource --------------------------------------------------------------


def test_a_bound_token_is_accepted_with_a_fresh_proof_by_its_key(
    client: APIClient, user: Any, password: str, mode: str
) -> None:
    pair = bound_login(client, user, password)

    for _ in range(2):  # a fresh proof each time
        response = client.get(ME, **bound(pair["access_token"]))
        assert response.status_code == 200, response.content
    assert response.json()["sid"] == pair["sid"]


def test_the_scheme_is_matched_in_any_case(client: APIClient, user: Any, password: str) -> None:
    pair = bound_login(client, user, password)
    headers = bound(pair["access_token"])
    headers["HTTP_AUTHORIZATION"] = f"dpop {pair['access_token']}"
    assert client.get(ME, **headers).status_code == 200


def refused_requests(token: str) -> dict[str, dict[str, str]]:
    fresh = bound(token)
    return {
        "as-bearer": bearer(token),
        "as-bearer-with-a-proof": {**bearer(token), "HTTP_DPOP": fresh["HTTP_DPOP"]},
        "no-proof": {"HTTP_AUTHORIZATION": f"DPoP {token}"},
        "another-key": bound(token, key=OTHER_KEY),
        "no-ath": {"HTTP_AUTHORIZATION": f"DPoP {token}", "HTTP_DPOP": dpop("GET", ME)},
        "ath-of-another-token": bound(token, ath=ath(token + "x")),
        "another-method": bound(token, method="POST"),
        "another-url": bound(token, path="/api/recent/"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "as-bearer",
        "as-bearer-with-a-proof",
        "no-proof",
        "another-key",
        "no-ath",
        "ath-of-another-token",
        "another-method",
        "another-url",
    ],
)
def test_a_bound_token_without_a_valid_proof_by_its_key_is_refused(
    client: APIClient,
    user: Any,
    password: str,
    mode: str,
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pair = bound_login(client, user, password)
    token = pair["access_token"]

    response = client.get(ME, **refused_requests(token)[case])

    assert response.status_code == 401
    if case.startswith("as-bearer"):  # the scheme the client used, and why in the log
        assert challenge(response) == 'Bearer realm="api", error="invalid_token"'
        assert "a DPoP-bound token without the DPoP scheme" in caplog.text
    else:
        assert challenge(response).startswith('DPoP error="invalid_dpop_proof", algs="')
        assert response.json()["detail"] == "Invalid DPoP proof."
    assert token not in caplog.text
    # The session itself is untouched: the right proof still works.
    assert client.get(ME, **bound(token)).status_code == 200


def test_a_replayed_proof_is_refused(
    client: APIClient, user: Any, password: str, mode: str
) -> None:
    pair = bound_login(client, user, password)
    headers = bound(pair["access_token"])

    assert client.get(ME, **headers).status_code == 200
    replayed = client.get(ME, **headers)

    assert replayed.status_code == 401
    assert 'error="invalid_dpop_proof"' in challenge(replayed)


# -- refresh ----------------------------------------------------------------------------------


def test_a_bound_session_refreshes_with_a_proof_by_its_key_and_stays_bound(
    client: APIClient, user: Any, password: str, mode: str
) -> None:
    pair = bound_login(client, user, password)

    renewed = refresh(client, pair["refresh_token"], HTTP_DPOP=dpop("POST", f"{AUTH}refresh/"))

    assert renewed.status_code == 200, renewed.content
    body = renewed.json()
    assert (body["token_type"], body["sid"]) == ("DPoP", pair["sid"])
    assert claims_of(body["access_token"])["cnf"] == {"jkt": JKT}
    assert client.get(ME, **bound(body["access_token"])).status_code == 200


@pytest.mark.parametrize("case", ["no-proof", "another-key"])
def test_a_bound_refresh_without_its_key_is_a_400_that_spends_nothing_and_is_no_reuse(
    client: APIClient, user: Any, password: str, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    pair = bound_login(client, user, password)
    reused: list[Any] = []
    refresh_token_reused.connect(reused.append, dispatch_uid="dpop-test", weak=False)
    try:
        headers = (
            {}
            if case == "no-proof"
            else {"HTTP_DPOP": dpop("POST", f"{AUTH}refresh/", key=OTHER_KEY)}
        )
        refused = refresh(client, pair["refresh_token"], **headers)

        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_dpop_proof"
        got = "no DPoP proof" if case == "no-proof" else "a proof by another key"
        assert (
            f"Refresh refused: session {pair['sid']} is bound to a DPoP key; got {got}"
            in caplog.messages
        )
        assert not reused
        assert RefreshToken.objects.get(session_id=pair["sid"]).used_at is None  # not spent
        assert Token.objects.get(pk=pair["sid"]).revoked_at is None
        # The client retries with its key: the same refresh token works.
        retried = refresh(client, pair["refresh_token"], HTTP_DPOP=dpop("POST", f"{AUTH}refresh/"))
        assert retried.status_code == 200
        assert not reused
    finally:
        refresh_token_reused.disconnect(dispatch_uid="dpop-test")


def test_a_refresh_with_a_proof_binds_a_bearer_session_and_its_bearer_tokens_die(
    client: APIClient, user: Any, password: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    pair = login(client, user, password).json()
    old_access = pair["access_token"]
    assert client.get(ME, **bearer(old_access)).status_code == 200  # cached, in cached mode

    renewed = refresh(client, pair["refresh_token"], HTTP_DPOP=dpop("POST", f"{AUTH}refresh/"))

    assert renewed.status_code == 200
    assert renewed.json()["token_type"] == "DPoP"
    assert Token.objects.get(pk=pair["sid"]).dpop_jkt == JKT
    bound_now = f"Session {pair['sid']} bound to a DPoP key"
    assert caplog.messages.count(bound_now) == 1
    again = refresh(
        client, renewed.json()["refresh_token"], HTTP_DPOP=dpop("POST", f"{AUTH}refresh/")
    )
    assert again.status_code == 200
    assert caplog.messages.count(bound_now) == 1  # bound already: nothing to say
    # Bound now: the bearer token of the same session is refused on the next request.
    assert client.get(ME, **bearer(old_access)).status_code == 401
    assert client.get(ME, **bound(renewed.json()["access_token"])).status_code == 200


# -- reauthenticate and a login carrying its token ----------------------------------------------


def test_a_bound_session_reauthenticates_with_its_key_and_stays_bound(
    client: APIClient, user: Any, password: str, mode: str
) -> None:
    pair = bound_login(client, user, password)
    path = f"{AUTH}reauthenticate/"

    response = client.post(
        path, {"password": password}, format="json", **bound(pair["access_token"], "POST", path)
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["token_type"], body["sid"]) == ("DPoP", pair["sid"])
    assert claims_of(body["access_token"])["cnf"] == {"jkt": JKT}
    as_bearer = client.post(
        path, {"password": password}, format="json", **bearer(body["access_token"])
    )
    assert as_bearer.status_code == 401


def test_a_login_carrying_its_bound_token_keeps_the_session_and_the_key(
    client: APIClient, user: Any, password: str
) -> None:
    pair = bound_login(client, user, password)
    path = f"{AUTH}login/"

    again = login(client, user, password, **bound(pair["access_token"], "POST", path))

    assert again.status_code == 200, again.content
    assert (again.json()["sid"], again.json()["token_type"]) == (pair["sid"], "DPoP")
    assert Token.objects.filter(user=user).count() == 1


# -- server nonces (RFC 9449 section 8) --------------------------------------------------------


@pytest.fixture
def nonces(settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "DPOP_REQUIRE_NONCE": True}


def test_with_nonces_a_proof_without_one_gets_use_dpop_nonce_and_a_nonce(
    nonces: None, client: APIClient, user: Any, password: str
) -> None:
    path = f"{AUTH}login/"

    first = login(client, user, password, HTTP_DPOP=dpop("POST", path))

    assert first.status_code == 400
    assert first.json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    assert not Token.objects.filter(user=user).exists()
    second = login(client, user, password, HTTP_DPOP=dpop("POST", path, nonce=nonce))
    assert second.status_code == 200, second.content
    assert second.json()["token_type"] == "DPoP"
    assert second.headers["DPoP-Nonce"]  # a fresh one for the next proof
    # A client without DPoP is unaffected.
    assert login(client, user, password).status_code == 200


def test_with_nonces_refresh_and_reauthenticate_need_one_too(
    nonces: None, client: APIClient, user: Any, password: str
) -> None:
    nonce = new_nonce()
    pair = login(
        client, user, password, HTTP_DPOP=dpop("POST", f"{AUTH}login/", nonce=nonce)
    ).json()
    path = f"{AUTH}reauthenticate/"

    stale = client.post(
        path, {"password": password}, format="json", **bound(pair["access_token"], "POST", path)
    )
    assert stale.status_code == 400
    assert stale.json()["error"] == "use_dpop_nonce"
    assert "DPoP-Nonce" in stale.headers
    without = refresh(client, pair["refresh_token"], HTTP_DPOP=dpop("POST", f"{AUTH}refresh/"))
    assert without.status_code == 400
    assert without.json()["error"] == "use_dpop_nonce"
    assert RefreshToken.objects.get(session_id=pair["sid"]).used_at is None
    renewed = refresh(
        client, pair["refresh_token"], HTTP_DPOP=dpop("POST", f"{AUTH}refresh/", nonce=nonce)
    )
    assert renewed.status_code == 200


# -- cookies, introspection --------------------------------------------------------------------


def test_an_access_cookie_cannot_be_bound(
    settings: Any, client: APIClient, user: Any, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "COOKIE_TRANSPORT": True,
        "ACCESS_COOKIE_NAME": "cocart_access",
        "COOKIE_SECURE": False,
    }

    response = login(client, user, password, HTTP_DPOP=dpop("POST", f"{AUTH}login/"))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"
    assert "cocart_access" not in response.cookies
    assert (
        "DPoP proof refused: an access token in a cookie (ACCESS_COOKIE_NAME) cannot be bound"
        in caplog.messages
    )


def test_introspection_says_dpop_for_a_bound_token(
    client: APIClient, user: Any, password: str
) -> None:
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(codename="introspect_token"))
    pair = bound_login(client, user, password)
    path = f"{AUTH}introspect/"

    answer = client.post(
        path, {"token": pair["access_token"]}, **bound(pair["access_token"], "POST", path)
    )

    assert answer.status_code == 200, answer.content
    assert answer.json()["active"] is True
    assert answer.json()["token_type"] == "DPoP"


def test_the_refresh_cookie_and_dpop_compose(
    settings: Any, client: APIClient, user: Any, password: str
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "COOKIE_TRANSPORT": True}
    pair = bound_login(client, user, password)  # the refresh token goes into the cookie
    assert "refresh_token" not in pair
    path = f"{AUTH}refresh/"

    without = client.post(path, content_type="application/json")
    assert without.status_code == 400  # bound: the cookie alone is not enough, nothing spent
    renewed = client.post(path, content_type="application/json", HTTP_DPOP=dpop("POST", path))

    assert renewed.status_code == 200, renewed.content
    assert renewed.json()["token_type"] == "DPoP"
    assert client.get(ME, **bound(renewed.json()["access_token"])).status_code == 200


def test_a_bound_token_in_an_access_cookie_is_refused(
    settings: Any, client: APIClient, user: Any, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    pair = bound_login(client, user, password)
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "COOKIE_TRANSPORT": True,
        "ACCESS_COOKIE_NAME": "cocart_access",
        "COOKIE_SECURE": False,
    }
    client.cookies["cocart_access"] = pair["access_token"]

    assert client.get(ME).status_code == 401  # a cookie rides along with no proof
    assert "a DPoP-bound token without the DPoP scheme" in caplog.text


def test_a_login_carrying_its_bearer_token_and_a_proof_binds_that_session(
    client: APIClient, user: Any, password: str
) -> None:
    pair = login(client, user, password).json()  # a Bearer session

    again = login(
        client,
        user,
        password,
        HTTP_DPOP=dpop("POST", f"{AUTH}login/"),
        **bearer(pair["access_token"]),
    )

    assert again.status_code == 200, again.content
    assert (again.json()["sid"], again.json()["token_type"]) == (pair["sid"], "DPoP")
    assert Token.objects.get(pk=pair["sid"]).dpop_jkt == JKT


def test_a_login_carrying_a_bound_token_needs_the_proof_to_hash_it(
    client: APIClient, user: Any, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    pair = bound_login(client, user, password)
    headers = {
        "HTTP_AUTHORIZATION": f"DPoP {pair['access_token']}",
        "HTTP_DPOP": dpop("POST", f"{AUTH}login/"),  # no ath
    }

    response = login(client, user, password, **headers)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"
    assert "DPoP proof refused: ath claim missing or not a string, with an access token" in (
        caplog.messages
    )
    assert Token.objects.filter(user=user).count() == 1


def test_with_nonces_a_reauthentication_with_a_fresh_nonce_is_fine(
    nonces: None, client: APIClient, user: Any, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    nonce = new_nonce()
    pair = login(
        client, user, password, HTTP_DPOP=dpop("POST", f"{AUTH}login/", nonce=nonce)
    ).json()
    path = f"{AUTH}reauthenticate/"
    token = pair["access_token"]

    stale = client.post(path, {"password": password}, format="json", **bound(token, "POST", path))
    assert stale.status_code == 400
    assert "DPoP proof refused: nonce required but the proof has none" in caplog.messages
    fresh = client.post(
        path, {"password": password}, format="json", **bound(token, "POST", path, nonce=nonce)
    )

    assert fresh.status_code == 200, fresh.content
    assert fresh.json()["token_type"] == "DPoP"


def test_without_rotation_a_refresh_with_a_proof_still_binds(
    settings: Any, client: APIClient, user: Any, password: str
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "ROTATE_REFRESH_TOKENS": False}
    pair = login(client, user, password).json()

    renewed = refresh(client, pair["refresh_token"], HTTP_DPOP=dpop("POST", f"{AUTH}refresh/"))

    assert renewed.status_code == 200
    assert renewed.json()["refresh_token"] == pair["refresh_token"]  # not rotated
    assert renewed.json()["token_type"] == "DPoP"
    assert Token.objects.get(pk=pair["sid"]).dpop_jkt == JKT


def test_a_retry_within_the_grace_keeps_the_binding(
    settings: Any, client: APIClient, user: Any, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "REFRESH_REUSE_GRACE": 30}
    pair = bound_login(client, user, password)
    path = f"{AUTH}refresh/"
    assert refresh(client, pair["refresh_token"], HTTP_DPOP=dpop("POST", path)).status_code == 200

    without = refresh(client, pair["refresh_token"])  # the retry, without the key: refused
    retried = refresh(client, pair["refresh_token"], HTTP_DPOP=dpop("POST", path))

    assert without.status_code == 400
    assert retried.status_code == 200, retried.content
    assert retried.json()["token_type"] == "DPoP"
    assert f"Refresh of session {pair['sid']} within REFRESH_REUSE_GRACE" in caplog.messages
