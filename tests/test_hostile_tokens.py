"""Attacks on the access token: every forged, tampered, malformed or stale token is a 401.

Each refused token is sent to a protected view (``/api/me/``) and to ``cocart_jwt:validate``;
both must answer 401 with a ``Bearer realm="api", error="invalid_token"`` challenge (never
200, never 500), ``validate`` with DRF's ``{"detail", "code"}`` body, and the refusal must
be explained in the ``cocart_jwt`` log without the token itself ever being logged.

Tokens are forged by hand (``forge``) so that any header or claim value can be sent; the
baseline test checks that a hand-forged copy of a real token is accepted, so a refusal
below is the verifier's doing, not the forger's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from django.urls import reverse
from jwt.algorithms import RSAAlgorithm
from rest_framework.test import APIClient

from cocart_jwt.keys import derive_kid, keyring
from cocart_jwt.models import Token
from tests.factories import b64url_json, bearer, key_settings, login, private_pem

ME = "/api/me/"
HIGH_RATE_LIMITS = {
    "login": "100000/min",
    "refresh": "100000/min",
    "validate": "100000/min",
    "login_link": "100000/min",
}
HMAC_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
# A secret of the right length that is not the configured one.
WRONG_SECRET = b"an-attacker-guess-of-the-secret-0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def no_rate_limits(settings: Any) -> None:
    """Many requests from one IP: keep the rate limits out of the way of what is tested."""
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": HIGH_RATE_LIMITS}


@pytest.fixture(autouse=True)
def no_outbound_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``jku``/``x5u`` header must never make the server fetch anything."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the server tried to fetch {args[:1]!r}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def client() -> APIClient:
    client = APIClient()
    client.raise_request_exception = False  # a 500 shows as a 500, not as an exception
    return client


# --- forging -------------------------------------------------------------------------------


def b64url(raw: bytes) -> str:
    return b64url_json(raw)


def unb64(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(unb64(header)), json.loads(unb64(payload)), signature


def encode_part(part: Any) -> str:
    """JSON-encode a dict/list (NaN and Infinity allowed: an attacker's encoder may emit them)."""
    if isinstance(part, bytes):
        return b64url(part)
    return b64url(json.dumps(part).encode())


def forge(header: Any, payload: Any, key: Any, algorithm: str = "HS256") -> str:
    """Sign ``header.payload`` with ``key`` under ``algorithm``, whatever the header says."""
    signing_input = f"{encode_part(header)}.{encode_part(payload)}"
    if algorithm in HMAC_DIGESTS:
        secret = key if isinstance(key, bytes) else key.encode()
        signature = hmac.new(secret, signing_input.encode(), HMAC_DIGESTS[algorithm]).digest()
    elif algorithm == "RS256":
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    else:  # pragma: no cover - not used
        raise ValueError(algorithm)
    return f"{signing_input}.{b64url(signature)}"


def unsigned(header: Any, payload: Any, signature: str = "") -> str:
    return f"{encode_part(header)}.{encode_part(payload)}.{signature}"


def real_secret() -> bytes:
    key = keyring().signing_key
    assert key is not None
    return key.signer


def real_kid() -> str:
    key = keyring().signing_key
    assert key is not None
    return key.kid


def without(mapping: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if key != name}


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- a logged-in session to take tokens from -------------------------------------------------


class Session:
    """alice's login: her tokens, their header and claims, and bob (another user)."""

    def __init__(self, data: dict[str, Any], other_user: Any) -> None:
        self.access_token: str = data["access_token"]
        self.refresh_token: str = data["refresh_token"]
        self.sid: str = data["sid"]
        self.header, self.claims, self.signature = split(self.access_token)
        self.other_user = other_user

    def sign(self, header: Any = None, claims: Any = None) -> str:
        """Re-sign with the configured key, changing only what is given."""
        return forge(
            self.header if header is None else header,
            self.claims if claims is None else claims,
            real_secret(),
            "HS256",
        )


def log_in(client: APIClient, user: Any, password: str) -> dict[str, Any]:
    response = login(client, user.get_username(), password)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def session(client: APIClient, user: Any, other_user: Any, password: str) -> Session:
    return Session(log_in(client, user, password), other_user)


# --- what a refusal and an acceptance look like ----------------------------------------------


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    texts = []
    for record in caplog.records:
        texts.append(f"{record.msg!s} {record.args!r} {record.getMessage()}")
        if record.exc_info and record.exc_info[1] is not None:
            texts.append(repr(record.exc_info[1]))
    return texts


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture, secrets: list[str]) -> None:
    texts = log_texts(caplog)
    for secret in secrets:
        # Very short strings ("a", "x.y") could occur by chance in any message.
        if len(secret) < 16:
            continue
        for text in texts:
            assert secret not in text, "a token was written to the log"
        signature = secret.rsplit(".", 1)[-1]
        if len(signature) >= 16:
            for text in texts:
                assert signature not in text, "a token's signature was written to the log"


def assert_reason_logged(caplog: pytest.LogCaptureFixture) -> None:
    reasons = [
        record
        for record in caplog.records
        if record.name.split(".")[0] == "cocart_jwt" and record.getMessage().strip()
    ]
    assert reasons, "no reason for the refusal was logged by the cocart_jwt logger"


def assert_challenge(response: Any) -> None:
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.startswith('Bearer realm="api"'), challenge
    assert 'error="invalid_token"' in challenge, challenge


def assert_refused_with(
    client: APIClient,
    authorization: str,
    caplog: pytest.LogCaptureFixture,
    secrets: list[str],
) -> None:
    """Both endpoints answer 401 invalid_token, log a reason, and never log a token."""
    caplog.set_level(logging.DEBUG, logger="cocart_jwt")
    endpoints = (("get", ME), ("post", reverse("cocart_jwt:validate")))
    statuses = {
        url: getattr(client, method)(url, HTTP_AUTHORIZATION=authorization).status_code
        for method, url in endpoints
    }
    assert set(statuses.values()) == {401}, statuses
    for method, url in endpoints:
        caplog.clear()
        response = getattr(client, method)(url, HTTP_AUTHORIZATION=authorization)
        assert response.status_code == 401, (url, response.status_code, response.content[:300])
        assert_challenge(response)
        if url != ME:
            body = response.json()
            assert set(body) >= {"detail", "code"}, body
            assert isinstance(body["detail"], str) and body["detail"]
            assert isinstance(body["code"], str) and body["code"]
        assert_reason_logged(caplog)
        assert_no_secret_logged(caplog, [authorization.partition(" ")[2], *secrets])


def assert_refused(
    client: APIClient, token: str, caplog: pytest.LogCaptureFixture, session: Session | None
) -> None:
    secrets = [token]
    if session is not None:
        secrets += [session.access_token, session.refresh_token]
    assert_refused_with(client, f"Bearer {token}", caplog, secrets)


def assert_accepted(client: APIClient, authorization: str, sid: str, user: Any) -> None:
    response = client.get(ME, HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 200, response.content[:300]
    assert response.json() == {"id": str(user.pk), "username": user.get_username(), "sid": sid}
    response = client.post(reverse("cocart_jwt:validate"), HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert body["valid"] is True
    assert body["sid"] == sid
    assert body["user"]["username"] == user.get_username()


# --- the baseline: the forger itself is right ------------------------------------------------


def test_a_real_token_and_a_hand_forged_copy_of_it_are_accepted(
    client: APIClient, session: Session, user: Any
) -> None:
    assert session.header == {"alg": "HS256", "typ": "at+jwt", "kid": real_kid()}
    assert_accepted(client, f"Bearer {session.access_token}", session.sid, user)
    assert_accepted(client, f"Bearer {session.sign()}", session.sid, user)


# --- alg: none, another alg, another key, tampering ----------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("with_signature", [False, True], ids=["empty-sig", "real-sig"])
def test_alg_none_is_refused(
    client: APIClient,
    session: Session,
    caplog: pytest.LogCaptureFixture,
    alg: str,
    with_signature: bool,
) -> None:
    header = {**session.header, "alg": alg}
    token = unsigned(header, session.claims, session.signature if with_signature else "")
    assert_refused(client, token, caplog, session)


def test_alg_none_without_kid_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    token = unsigned({"alg": "none", "typ": "at+jwt"}, session.claims)
    assert_refused(client, token, caplog, session)


def test_hs512_signature_with_the_hs256_key_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    header = {**session.header, "alg": "HS512"}
    token = forge(header, session.claims, real_secret(), "HS512")
    assert_refused(client, token, caplog, session)


def test_token_signed_with_a_wrong_key_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    token = forge(session.header, session.claims, WRONG_SECRET, "HS256")
    assert_refused(client, token, caplog, session)


def test_payload_tampered_to_another_user_keeping_the_signature_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    claims = {**session.claims, "sub": str(session.other_user.pk)}
    token = unsigned(session.header, claims, session.signature)
    assert_refused(client, token, caplog, session)
    # And the untouched token still works: the refusal was about the tampering.
    assert client.get(ME, **bearer(session.access_token)).status_code == 200


def test_signature_of_another_token_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    token = f"{session.access_token.rsplit('.', 1)[0]}.{'A' * len(session.signature)}"
    assert_refused(client, token, caplog, session)


# --- claims missing or of the wrong type (correctly signed with the real key) --------------


@pytest.mark.parametrize("claim", ["exp", "sid", "sub", "jti", "iat", "nbf", "iss"])
def test_token_missing_a_required_claim_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture, claim: str
) -> None:
    token = session.sign(claims=without(session.claims, claim))
    assert_refused(client, token, caplog, session)


EXP_VALUES = {
    "string": "tomorrow",
    "numeric-string": "9999999999",
    "exponent-string": "1e10",
    "nan": float("nan"),
    "infinity": float("inf"),
    "minus-infinity": float("-inf"),
    "float-1e308": 1e308,
    "list": [9999999999],
    "object": {"exp": 9999999999},
    "null": None,
    "bool": True,
    "huge-int": 10**30,
    "negative": -1,
    "zero": 0,
}


@pytest.mark.parametrize("value", list(EXP_VALUES.values()), ids=list(EXP_VALUES))
def test_token_with_an_ill_typed_or_absurd_exp_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture, value: Any
) -> None:
    token = session.sign(claims={**session.claims, "exp": value})
    assert_refused(client, token, caplog, session)


# JSON numbers that Python reads as int subclasses (true, false) or floats: a NumericDate here
# is an integer, so none of them passes, even when its value would (a float of a real exp).
NUMERIC_DATES = {
    "exp-true": ("exp", lambda claims: True),
    "exp-float-of-the-real-exp": ("exp", lambda claims: float(claims["exp"])),
    "exp-fraction": ("exp", lambda claims: claims["exp"] + 0.5),
    "exp-1.5e9": ("exp", lambda claims: 1.5e9),
    "nbf-true": ("nbf", lambda claims: True),
    "nbf-false": ("nbf", lambda claims: False),
    "nbf-float-of-the-real-nbf": ("nbf", lambda claims: float(claims["nbf"])),
    "iat-false": ("iat", lambda claims: False),
    "iat-float-of-the-real-iat": ("iat", lambda claims: float(claims["iat"])),
}


@pytest.mark.parametrize("case", list(NUMERIC_DATES))
def test_a_boolean_or_float_numeric_date_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    claim, make_value = NUMERIC_DATES[case]
    token = session.sign(claims={**session.claims, claim: make_value(session.claims)})

    assert_refused(client, token, caplog, session)
    assert f"{claim} claim is not an integer NumericDate" in caplog.text


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sub", None),  # sub as int: set below to the user's pk
        ("sub", ""),
        ("sub", ["1"]),
        ("sid", 12345),
        ("sid", ["x"]),
        ("sid", ""),
        ("sid", "s" * 300),
        ("sid", None),
        ("sid", {"id": "x"}),
        ("jti", 42),
        ("iat", "yesterday"),
        ("nbf", [0]),
    ],
    ids=[
        "sub-int",
        "sub-empty",
        "sub-list",
        "sid-int",
        "sid-list",
        "sid-empty",
        "sid-300-chars",
        "sid-null",
        "sid-object",
        "jti-int",
        "iat-string",
        "nbf-list",
    ],
)
def test_token_with_an_ill_typed_claim_is_refused(
    client: APIClient,
    session: Session,
    user: Any,
    caplog: pytest.LogCaptureFixture,
    claim: str,
    value: Any,
) -> None:
    if claim == "sub" and value is None:
        value = user.pk  # the right user, as a JSON number
    token = session.sign(claims={**session.claims, claim: value})
    assert_refused(client, token, caplog, session)


def test_sid_of_another_users_session_is_refused(
    client: APIClient,
    session: Session,
    other_user: Any,
    password: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import jwt

    bob_sid = log_in(APIClient(), other_user, password)["sid"]
    claims = {**session.claims, "sid": bob_sid}  # sub is still alice
    token = jwt.encode(claims, real_secret(), algorithm="HS256", headers=session.header)
    assert_refused(client, token, caplog, session)
    assert f"Access token refused: sub does not match the user of session {bob_sid}" in [
        record.getMessage() for record in caplog.records
    ]
    # Bob's session is untouched by the attempt.
    assert Token.objects.get(pk=bob_sid).revoked_at is None


def test_sid_naming_no_session_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    token = session.sign(claims={**session.claims, "sid": "no-such-session-id-0000000"})
    assert_refused(client, token, caplog, session)


# --- time, issuer, audience ------------------------------------------------------------------


def test_expired_access_token_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    issued = datetime.fromtimestamp(session.claims["iat"], tz=UTC)
    expires = datetime.fromtimestamp(session.claims["exp"], tz=UTC)
    assert expires - issued == timedelta(minutes=15)  # ACCESS_TOKEN_LIFETIME's default
    with time_machine.travel(expires - timedelta(seconds=30), tick=False):
        assert client.get(ME, **bearer(session.access_token)).status_code == 200
    with time_machine.travel(expires + timedelta(seconds=1), tick=False):
        # The session itself is still live (30 days): only the access token expired.
        assert Token.objects.live().filter(pk=session.sid).exists()
        assert_refused(client, session.access_token, caplog, session)


def at_second(timestamp: int) -> Any:
    """The clock stopped at exactly this Unix second."""
    return time_machine.travel(datetime.fromtimestamp(timestamp, tz=UTC), tick=False)


def leeway(settings: Any, seconds: int) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "LEEWAY": seconds}


def test_an_access_token_is_refused_at_exactly_its_exp(
    client: APIClient, session: Session, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    exp = session.claims["exp"]
    with at_second(exp - 1):  # exp == now + 1
        assert_accepted(client, f"Bearer {session.access_token}", session.sid, user)
    with at_second(exp):  # exp == now: RFC 7519 says "on or after" exp it must be refused
        assert_refused(client, session.access_token, caplog, session)
    assert "token expired" in caplog.text


def test_leeway_accepts_a_token_expired_less_than_leeway_ago_and_no_more(
    client: APIClient,
    session: Session,
    user: Any,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    leeway(settings, 30)
    exp = session.claims["exp"]
    with at_second(exp + 29):
        assert_accepted(client, f"Bearer {session.access_token}", session.sid, user)
    with at_second(exp + 30):  # LEEWAY once, not twice
        assert_refused(client, session.access_token, caplog, session)
    assert "token expired" in caplog.text


@pytest.mark.parametrize("seconds", [0, 30], ids=["no-leeway", "leeway-30s"])
@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_nbf_and_iat_may_be_ahead_of_the_clock_by_leeway_and_no_more(
    client: APIClient,
    session: Session,
    user: Any,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    claim: str,
    seconds: int,
) -> None:
    leeway(settings, seconds)
    current = session.claims["iat"]
    with at_second(current):
        ahead = session.sign(claims={**session.claims, claim: current + seconds})
        assert_accepted(client, f"Bearer {ahead}", session.sid, user)
        too_far = session.sign(claims={**session.claims, claim: current + seconds + 1})
        assert_refused(client, too_far, caplog, session)
    assert "token not yet valid" in caplog.text


def test_token_not_yet_valid_nbf_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    claims = {**session.claims, "nbf": session.claims["nbf"] + 3600}
    assert_refused(client, session.sign(claims=claims), caplog, session)


def test_token_issued_in_the_future_iat_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    claims = {**session.claims, "iat": session.claims["iat"] + 3600}
    assert_refused(client, session.sign(claims=claims), caplog, session)


def test_token_of_another_issuer_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    assert session.claims["iss"] == "https://shop.example"
    claims = {**session.claims, "iss": "https://evil.example"}
    assert_refused(client, session.sign(claims=claims), caplog, session)


def test_token_with_aud_when_no_audience_is_configured_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    assert "aud" not in session.claims
    claims = {**session.claims, "aud": "https://shop.example"}
    assert_refused(client, session.sign(claims=claims), caplog, session)


def test_token_without_aud_when_an_audience_is_configured_is_refused(
    client: APIClient,
    user: Any,
    password: str,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "AUDIENCE": "https://api.shop.example"}
    data = log_in(client, user, password)
    header, claims, _sig = split(data["access_token"])
    assert claims["aud"] == "https://api.shop.example"
    assert_accepted(client, f"Bearer {data['access_token']}", data["sid"], user)
    token = forge(header, without(claims, "aud"), real_secret())
    assert_refused(client, token, caplog, None)
    token = forge(header, {**claims, "aud": "https://other.example"}, real_secret())
    assert_refused(client, token, caplog, None)


@pytest.mark.parametrize(
    "member",
    [1, None, True, ["https://api.shop.example"], {"aud": "https://api.shop.example"}],
    ids=["number", "null", "bool", "list", "object"],
)
def test_an_aud_list_with_a_non_string_member_is_refused(
    client: APIClient,
    user: Any,
    password: str,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    member: Any,
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "AUDIENCE": "https://api.shop.example"}
    data = log_in(client, user, password)
    header, claims, _sig = split(data["access_token"])
    # Control: a list of strings that names the audience is accepted.
    listed = forge(
        header, {**claims, "aud": ["https://other.example", claims["aud"]]}, real_secret()
    )
    assert_accepted(client, f"Bearer {listed}", data["sid"], user)

    token = forge(header, {**claims, "aud": [claims["aud"], member]}, real_secret())

    assert_refused(client, token, caplog, None)
    assert "aud missing or not a string or list of strings" in caplog.text


# --- header attacks --------------------------------------------------------------------------

KID_VALUES = {
    "unknown": "unknown-key",
    "path-traversal": "../../etc/passwd",
    "sql": "' OR 1=1 --",
    "nul": "\x00",
    "real-kid-then-nul": None,  # set in the test: the real kid + "\x00"
    "10kb": "k" * 10 * 1024,
    "int": 1,
    "list": ["k"],
    "null": None,
    "empty": "",
}


@pytest.mark.parametrize("kid_case", list(KID_VALUES))
def test_bad_kid_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture, kid_case: str
) -> None:
    kid = real_kid() + "\x00" if kid_case == "real-kid-then-nul" else KID_VALUES[kid_case]
    token = session.sign(header={**session.header, "kid": kid})
    assert_refused(client, token, caplog, session)


def test_missing_kid_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    token = session.sign(header=without(session.header, "kid"))
    assert_refused(client, token, caplog, session)


def test_crit_header_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    token = session.sign(header={**session.header, "crit": ["exp"]})
    assert_refused(client, token, caplog, session)


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://evil.example/jwks.json"},
        {"x5u": "https://evil.example/cert.pem"},
        {"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]},
    ],
    ids=["jku", "x5u", "x5c"],
)
def test_key_url_headers_are_ignored_on_a_validly_signed_token(
    client: APIClient, session: Session, user: Any, extra: dict[str, Any]
) -> None:
    token = session.sign(header={**session.header, **extra})
    assert_accepted(client, f"Bearer {token}", session.sid, user)


def attacker_key() -> Any:
    return serialization.load_pem_private_key(private_pem("RS256", 99).encode(), password=None)


def attacker_jwk() -> dict[str, Any]:
    return RSAAlgorithm.to_jwk(attacker_key().public_key(), as_dict=True)


@pytest.mark.parametrize("kid", ["real", "attacker"])
@pytest.mark.parametrize("extra", ["jwk", "jku", "x5u"])
def test_token_signed_by_an_attacker_key_it_names_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture, kid: str, extra: str
) -> None:
    """RS256 with the attacker's own key, announced in the header, against an HS256 site."""
    header = {
        "alg": "RS256",
        "typ": "at+jwt",
        "kid": real_kid() if kid == "real" else derive_kid("RS256", attacker_key().public_key()),
        extra: attacker_jwk() if extra == "jwk" else "https://evil.example/keys",
    }
    token = forge(header, session.claims, attacker_key(), "RS256")
    assert_refused(client, token, caplog, session)


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt; x", "application/jwt", "", 1, None])
def test_token_with_a_wrong_typ_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture, typ: Any
) -> None:
    token = session.sign(header={**session.header, "typ": typ})
    assert_refused(client, token, caplog, session)


def test_token_without_typ_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    token = session.sign(header=without(session.header, "typ"))
    assert_refused(client, token, caplog, session)


@pytest.mark.parametrize("typ", ["at+JWT", "AT+JWT", "application/AT+JWT", "application/at+jwt"])
def test_typ_is_matched_case_insensitively(
    client: APIClient, session: Session, user: Any, typ: str
) -> None:
    token = session.sign(header={**session.header, "typ": typ})
    assert_accepted(client, f"Bearer {token}", session.sid, user)


RAW_HEADERS = {
    "not-json": b"this is not json",
    "json-array": b'["alg", "HS256"]',
    "json-string": b'"at+jwt"',
    "json-number": b"42",
    "json-null": b"null",
    "bomb-100000": nested_arrays(100_000),
    "bomb-under-8kib": nested_arrays(2_500),
    "bomb-in-object": b'{"alg":"HS256","typ":"at+jwt","x":' + nested_arrays(2_500) + b"}",
    "invalid-utf8": b'{"alg":"HS256","typ":"at+jwt","kid":"\xff\xfe"}',
    "latin1-bytes": '{"alg":"HS256","typ":"at+jwt","kid":"caf\xe9"}'.encode("latin-1"),
    "duplicate-alg": None,  # set in the test
    "empty": b"",
}


@pytest.mark.parametrize("case", list(RAW_HEADERS))
def test_malformed_header_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    raw = RAW_HEADERS[case]
    if case == "duplicate-alg":
        # JSON parsers keep the last member: whatever picks the key must read "none" too.
        raw = json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": real_kid()}).encode()
        raw = raw[:-1] + b', "alg": "none"}'
    token = forge(raw, session.claims, real_secret())
    assert_refused(client, token, caplog, session)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'"sub"',
        nested_arrays(2_500),
        b'{"exp":' + nested_arrays(2_500) + b"}",
    ],
    ids=["not-json", "array", "string", "bomb", "bomb-in-claim"],
)
def test_malformed_payload_is_refused_even_when_correctly_signed(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture, payload: bytes
) -> None:
    token = forge(session.header, payload, real_secret())
    assert len(token) <= 8 * 1024
    assert_refused(client, token, caplog, session)


def test_header_segment_with_non_ascii_characters_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    header, payload, signature = session.access_token.split(".")
    token = f"{header[:-2]}é€.{payload}.{signature}"
    assert_refused(client, token, caplog, session)


@pytest.mark.parametrize(
    "authorization",
    ["Bearer tökén.ä.ö", "Bearer ☃", "Bearer \u200b", "Bearer abc\x00def.ghi.jkl"],
    ids=["latin", "snowman", "zero-width-space", "nul"],
)
def test_non_ascii_authorization_value_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture, authorization: str
) -> None:
    assert_refused_with(
        client, authorization, caplog, [session.access_token, session.refresh_token]
    )


def test_token_over_8_kib_is_refused_even_when_correctly_signed(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    token = session.sign(claims={**session.claims, "pad": "p" * 9 * 1024})
    assert 8 * 1024 < len(token) < 16 * 1024
    assert_refused(client, token, caplog, session)


def token_of_length(session: Session, length: int) -> str:
    """A correctly signed copy of the session's token, exactly ``length`` characters long.

    A base64url segment is never 1 more than a multiple of 4 long, so the header takes a
    filler member too: between the two, every total length is reachable.
    """
    for filler in range(4):
        header = {**session.header, "x": "h" * filler}
        base = len(session.sign(header=header, claims={**session.claims, "pad": ""}))
        guess = (length - base) * 3 // 4
        for chars in range(max(0, guess - 4), guess + 5):
            token = session.sign(header=header, claims={**session.claims, "pad": "p" * chars})
            if len(token) == length:
                return token
    raise AssertionError(f"no token of {length} characters")


def test_a_token_of_exactly_8_kib_is_accepted_and_one_character_more_is_refused(
    client: APIClient, session: Session, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The limit is the contract's 8 KiB, not something smaller that breaks big claims."""
    at_the_limit = token_of_length(session, 8 * 1024)
    over_it = token_of_length(session, 8 * 1024 + 1)

    assert_accepted(client, f"Bearer {at_the_limit}", session.sid, user)
    assert_refused(client, over_it, caplog, session)
    assert "token longer than 8 KiB" in caplog.text


@pytest.mark.parametrize("shape", ["two", "four", "five", "one", "empty-segments"])
def test_token_with_the_wrong_number_of_segments_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture, shape: str
) -> None:
    header, payload, signature = session.access_token.split(".")
    token = {
        "two": f"{header}.{payload}",
        "four": f"{session.access_token}.{signature}",
        "five": f"{session.access_token}.{header}.{payload}",
        "one": f"{header}{payload}{signature}",
        "empty-segments": "..",
    }[shape]
    assert_refused(client, token, caplog, session)


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Bearer    ", "Bearer a b", "Bearer a.b.c d.e.f", " Bearer  a b "],
    ids=["bare", "one-space", "spaces", "two-words", "two-tokens", "padded-two-words"],
)
def test_malformed_bearer_credentials_are_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture, authorization: str
) -> None:
    assert_refused_with(
        client, authorization, caplog, [session.access_token, session.refresh_token]
    )


@pytest.mark.parametrize(
    "authorization",
    ["bearer\tTOKEN", "Basic TOKEN", "Token TOKEN", "TOKEN", "Bearer-TOKEN", "JWT TOKEN"],
    ids=["tab-separator", "basic", "token-scheme", "no-scheme", "dash", "jwt-scheme"],
)
def test_a_token_under_another_scheme_does_not_authenticate(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture, authorization: str
) -> None:
    """Not the Bearer scheme (RFC 7235 separates it by a space): no auth, still a 401."""
    caplog.set_level(logging.DEBUG, logger="cocart_jwt")
    authorization = authorization.replace("TOKEN", session.access_token)
    for method, url in (("get", ME), ("post", reverse("cocart_jwt:validate"))):
        response = getattr(client, method)(url, HTTP_AUTHORIZATION=authorization)
        assert response.status_code == 401, (url, response.content[:300])
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="api"')
    assert_no_secret_logged(caplog, [session.access_token, session.refresh_token])


def test_two_valid_tokens_in_one_header_are_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    authorization = f"Bearer {session.access_token} {session.access_token}"
    assert_refused_with(client, authorization, caplog, [session.access_token])
    # Refused as a malformed header, before any token is parsed or any signature checked.
    assert "malformed Authorization header" in caplog.text


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_bearer_scheme_is_matched_case_insensitively(
    client: APIClient, session: Session, user: Any, scheme: str
) -> None:
    assert_accepted(client, f"{scheme} {session.access_token}", session.sid, user)


# --- tokens that were real, used where or when they must not be ------------------------------


def test_refresh_token_used_as_a_bearer_token_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    assert_refused(client, session.refresh_token, caplog, session)


def test_access_token_of_a_logged_out_session_is_refused(
    client: APIClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    response = client.post(reverse("cocart_jwt:logout"), **bearer(session.access_token))
    assert response.status_code == 204
    assert_refused(client, session.access_token, caplog, session)


def test_access_token_of_a_user_deactivated_behind_the_apps_back_is_refused(
    client: APIClient,
    session: Session,
    user: Any,
    django_user_model: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert client.get(ME, **bearer(session.access_token)).status_code == 200
    django_user_model.objects.filter(pk=user.pk).update(is_active=False)
    # No signal ran: the session row is still live; strict mode must still see it.
    assert Token.objects.live().filter(pk=session.sid).exists()
    assert_refused(client, session.access_token, caplog, session)


# --- RS256: the attacker holds only public material ------------------------------------------


@pytest.fixture
def rs256_session(
    client: APIClient, user: Any, other_user: Any, password: str, settings: Any
) -> Session:
    settings.COCART_JWT = {**settings.COCART_JWT, **key_settings("RS256")}
    session = Session(log_in(client, user, password), other_user)
    assert session.header["alg"] == "RS256"
    return session


def published_public_key(client: APIClient, kid: str) -> Any:
    response = client.get(reverse("cocart_jwt:jwks"))
    assert response.status_code == 200
    (jwk,) = [key for key in response.json()["keys"] if key["kid"] == kid]
    return RSAAlgorithm.from_jwk(json.dumps(jwk))


def public_key_encodings(public_key: Any) -> dict[str, bytes]:
    spki = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pkcs1 = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ssh = public_key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return {
        "spki-pem": spki,
        "spki-pem-no-newline": spki.rstrip(b"\n"),
        "pkcs1-pem": pkcs1,
        "der": der,
        "openssh": ssh,
    }


@pytest.mark.parametrize("with_kid", [True, False], ids=["real-kid", "no-kid"])
@pytest.mark.parametrize(
    "encoding", ["spki-pem", "spki-pem-no-newline", "pkcs1-pem", "der", "openssh"]
)
def test_hs256_token_forged_with_the_rs256_public_key_as_hmac_secret_is_refused(
    client: APIClient,
    rs256_session: Session,
    user: Any,
    caplog: pytest.LogCaptureFixture,
    with_kid: bool,
    encoding: str,
) -> None:
    session = rs256_session
    kid = session.header["kid"]
    assert_accepted(client, f"Bearer {session.access_token}", session.sid, user)
    public_key = published_public_key(client, kid)
    assert public_key.public_numbers() == keyring().by_kid[kid].verifier.public_numbers()
    header = {"alg": "HS256", "typ": "at+jwt", **({"kid": kid} if with_kid else {})}
    secret = public_key_encodings(public_key)[encoding]
    token = forge(header, session.claims, secret, "HS256")
    assert_refused(client, token, caplog, session)


def test_rs256_token_signed_by_an_attacker_with_embedded_jwk_is_refused(
    client: APIClient, rs256_session: Session, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    session = rs256_session
    header = {**session.header, "jwk": attacker_jwk()}
    token = forge(header, session.claims, attacker_key(), "RS256")
    assert_refused(client, token, caplog, session)
    # The same header signed with the site's own key is fine: jwk is ignored, not trusted.
    site_pem = private_pem("RS256", 0)  # the key key_settings("RS256") configured
    site_key = serialization.load_pem_private_key(site_pem.encode(), password=None)
    token = forge(header, session.claims, site_key, "RS256")
    assert_accepted(client, f"Bearer {token}", session.sid, user)


def test_rs256_token_signed_by_an_attacker_with_jku_is_refused(
    client: APIClient, rs256_session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    session = rs256_session
    header = {**session.header, "jku": "https://evil.example/jwks.json"}
    token = forge(header, session.claims, attacker_key(), "RS256")
    assert_refused(client, token, caplog, session)


def test_rs256_alg_none_is_refused(
    client: APIClient, rs256_session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    session = rs256_session
    token = unsigned({**session.header, "alg": "none"}, session.claims)
    assert_refused(client, token, caplog, session)
