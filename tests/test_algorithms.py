"""Every supported algorithm, end to end over HTTP: login, use, validate, refresh, JWKS, kid."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.urls import reverse

from tests.factories import (
    ALL_ALGORITHMS,
    bearer,
    hmac_secret,
    key_settings,
    login,
    private_pem,
    refresh,
)

ISSUER = "https://algorithms.example"
NO_RATE_LIMITS = {"login": None, "refresh": None, "validate": None}
HMAC_ALGORITHMS = [alg for alg in ALL_ALGORITHMS if alg.startswith("HS")]
ASYMMETRIC_ALGORITHMS = [alg for alg in ALL_ALGORITHMS if not alg.startswith("HS")]
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}
EC_COORDINATE_BYTES = {"P-256": 32, "P-384": 48, "P-521": 66}
EC_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

pytestmark = pytest.mark.django_db


def configure(settings: Any, algorithm: str, **extra: Any) -> None:
    settings.COCART_JWT = {
        **key_settings(algorithm),
        "ISSUER": ISSUER,
        "RATE_LIMITS": NO_RATE_LIMITS,
        **extra,
    }


def logged_in(api_client: Any, user: Any, password: str) -> dict[str, Any]:
    response = login(api_client, user.username, password)
    assert response.status_code == 200, response.content
    return response.json()


def jwks(api_client: Any) -> dict[str, Any]:
    response = api_client.get(reverse("cocart_jwt:jwks"))
    assert response.status_code == 200
    return response.json()


def b64url_uint(value: int, length: int | None = None) -> str:
    raw = value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def independent_thumbprint(algorithm: str) -> str:
    """RFC 7638 section 3, computed from the key numbers without the package's helpers."""
    # Same arguments as key_settings() uses: private_pem's cache keys on the call signature.
    key: Any = serialization.load_pem_private_key(private_pem(algorithm, 0).encode(), password=None)
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        members = {"e": b64url_uint(numbers.e), "kty": "RSA", "n": b64url_uint(numbers.n)}
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        numbers = public.public_numbers()
        crv = EC_CURVE_NAMES[public.curve.name]
        size = EC_COORDINATE_BYTES[crv]
        members = {
            "crv": crv,
            "kty": "EC",
            "x": b64url_uint(numbers.x, size),
            "y": b64url_uint(numbers.y, size),
        }
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def thumbprint_of_jwk(jwk: dict[str, Any]) -> str:
    required = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    members = {name: jwk[name] for name in required}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
def test_access_token_header_has_exactly_alg_typ_and_kid(
    algorithm: str, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, algorithm)
    pair = logged_in(api_client, user, password)
    header = jwt.get_unverified_header(pair["access_token"])
    assert set(header) == {"alg", "typ", "kid"}
    assert header["alg"] == algorithm
    assert header["typ"] == "at+jwt"
    assert isinstance(header["kid"], str) and header["kid"]


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
def test_access_token_authenticates_protected_view_and_validate(
    algorithm: str, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, algorithm)
    pair = logged_in(api_client, user, password)

    me = api_client.get("/api/me/", **bearer(pair["access_token"]))
    assert me.status_code == 200, me.content
    assert me.json() == {"id": str(user.pk), "username": "alice", "sid": pair["sid"]}

    validate = api_client.post(reverse("cocart_jwt:validate"), **bearer(pair["access_token"]))
    assert validate.status_code == 200, validate.content
    body = validate.json()
    assert body["valid"] is True
    assert body["sid"] == pair["sid"]
    assert body["user"]["username"] == "alice"


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
def test_refreshed_access_token_authenticates(
    algorithm: str, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, algorithm)
    pair = logged_in(api_client, user, password)

    refreshed = refresh(api_client, pair["refresh_token"])
    assert refreshed.status_code == 200, refreshed.content
    new = refreshed.json()
    assert new["refresh_token"] != pair["refresh_token"]
    assert new["sid"] == pair["sid"]
    assert jwt.get_unverified_header(new["access_token"])["alg"] == algorithm

    me = api_client.get("/api/me/", **bearer(new["access_token"]))
    assert me.status_code == 200, me.content
    assert me.json()["sid"] == pair["sid"]


@pytest.mark.parametrize("algorithm", ASYMMETRIC_ALGORITHMS)
def test_jwks_publishes_public_key_without_private_members(
    algorithm: str, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, algorithm)
    kid = jwt.get_unverified_header(logged_in(api_client, user, password)["access_token"])["kid"]

    keys = jwks(api_client)["keys"]
    assert len(keys) == 1
    jwk = keys[0]
    assert jwk["kid"] == kid
    assert jwk["alg"] == algorithm
    assert jwk["use"] == "sig"
    assert jwk["kty"] == ("RSA" if algorithm[:2] in ("RS", "PS") else "EC")
    assert not PRIVATE_JWK_MEMBERS & set(jwk)


@pytest.mark.parametrize("algorithm", ASYMMETRIC_ALGORITHMS)
def test_plain_pyjwt_verifies_access_token_with_published_jwk(
    algorithm: str, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, algorithm, AUDIENCE="https://api.algorithms.example")
    token = logged_in(api_client, user, password)["access_token"]
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(jwk for jwk in jwks(api_client)["keys"] if jwk["kid"] == kid)

    claims = jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=[algorithm],
        audience="https://api.algorithms.example",
        issuer=ISSUER,
    )
    assert claims["sub"] == str(user.pk)
    assert claims["iss"] == ISSUER
    assert claims["aud"] == "https://api.algorithms.example"


@pytest.mark.parametrize("algorithm", HMAC_ALGORITHMS)
def test_jwks_is_empty_for_hmac(algorithm: str, settings: Any, api_client: Any) -> None:
    configure(settings, algorithm)
    assert jwks(api_client) == {"keys": []}


@pytest.mark.parametrize("algorithm", ASYMMETRIC_ALGORITHMS)
def test_default_kid_of_public_key_is_rfc7638_thumbprint(
    algorithm: str, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, algorithm)
    token = logged_in(api_client, user, password)["access_token"]
    expected = independent_thumbprint(algorithm)

    assert jwt.get_unverified_header(token)["kid"] == expected
    (jwk,) = jwks(api_client)["keys"]
    assert jwk["kid"] == expected
    assert thumbprint_of_jwk(jwk) == expected


# RFC 7638 section 3.1: this RSA key's thumbprint is NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJE"
    "CPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Qv"
    "zqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZ"
    "u0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_kid_of_rfc7638_example_key_is_the_rfc_thumbprint(settings: Any, api_client: Any) -> None:
    public = jwt.PyJWK({"kty": "RSA", "n": RFC7638_N, "e": "AQAB"}).key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    settings.COCART_JWT = {"ALGORITHM": "RS256", "VERIFYING_KEY": pem, "ISSUER": ISSUER}

    (jwk,) = jwks(api_client)["keys"]
    assert jwk["kid"] == RFC7638_THUMBPRINT
    assert jwk["n"] == RFC7638_N
    assert jwk["e"] == "AQAB"


WINDOW = 4  # bytes of a secret that a kid must not give away, in any encoding
BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]+")
HEX_RUN = re.compile(r"[0-9A-Fa-f]+")
URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def readings(text: str) -> list[bytes]:
    """Every byte string ``text`` may spell: itself, and each run of base64, base64url (padded
    or not) or hex characters decoded from each possible alignment."""
    found = [text.encode("utf-8")]
    for run in BASE64_RUN.findall(text):
        for shift in range(4):
            chunk = run[shift:]
            chunk = chunk[: len(chunk) - 1] if len(chunk) % 4 == 1 else chunk
            chunk += "=" * (-len(chunk) % 4)
            # base64url's "-" and "_" read as base64's "+" and "/": one decoding for both.
            found.append(base64.b64decode(chunk.translate(URLSAFE_TO_STANDARD)))
    for run in HEX_RUN.findall(text):
        for shift in range(2):
            chunk = run[shift:]
            found.append(bytes.fromhex(chunk[: len(chunk) // 2 * 2]))
    return found


def leaked_windows(secret: bytes, text: str) -> list[bytes]:
    """The WINDOW-byte pieces of ``secret`` that ``text`` gives away."""
    windows = {secret[i : i + WINDOW] for i in range(len(secret) - WINDOW + 1)}
    return sorted(w for w in windows if any(w in reading for reading in readings(text)))


# Secrets of every shape a site may configure: text, base64url (as `jwt keygen` prints), hex,
# raw bytes.
KID_SECRETS: dict[str, tuple[str, str | bytes]] = {
    "text-hs256": ("HS256", hmac_secret("HS256")),
    "text-hs512": ("HS512", hmac_secret("HS512", 3)),
    "base64url-text": ("HS256", "Xy4q-Rt8vWm2Kp9LzN3sBd6Fh1Jc5Gn0Qe7Tu_Ai2o"),
    "hex-text": ("HS384", "0123456789abcdef" * 4),
    "raw-bytes": ("HS256", bytes(range(160, 208))),
}


def spellings_of(piece: bytes) -> list[str]:
    """How a careless kid could carry ``piece``: hex, base64 and base64url, padded or not."""
    std, urlsafe = base64.b64encode(piece).decode(), base64.urlsafe_b64encode(piece).decode()
    spelled = [piece.hex(), piece.hex().upper(), std, std.rstrip("="), urlsafe.rstrip("=")]
    spelled.append("kid-" + urlsafe.rstrip("="))  # after a prefix: any alignment
    if piece.isascii():
        spelled.append(piece.decode())
    return spelled


@pytest.mark.parametrize("case", list(KID_SECRETS))
def test_default_kid_of_secret_reveals_nothing_of_it(
    case: str, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    algorithm, secret = KID_SECRETS[case]
    configure(settings, algorithm, SIGNING_KEY=secret)
    kid = jwt.get_unverified_header(logged_in(api_client, user, password)["access_token"])["kid"]
    raw = secret if isinstance(secret, bytes) else secret.encode()

    assert kid
    assert leaked_windows(raw, kid) == []
    # The check is not blind: the first 16 bytes of the secret (what a kid cut from the
    # secret would carry), 16 bytes from within, or just 4 of them, in any of these
    # spellings, are seen.
    for piece in (raw[:16], raw[5:21], raw[-4:]):
        for spelled in spellings_of(piece):
            assert leaked_windows(raw, spelled), spelled


# Known answers: a derived kid is part of every token in flight and of every verifier's
# configuration, so the same secret must give the same kid in every release (a new one would
# refuse every token signed before the upgrade). HMAC-SHA256 of "cocart_jwt key id" under the
# secret, its first 16 bytes in base64url.
HMAC_KIDS = {
    "HS256": "1aqo4GYykaTewI2hidJM9A",
    "HS384": "KreSvGc_wfDIu2obVEPksg",
    "HS512": "xKk9R4QATh5G8HK05z1-nw",
}


@pytest.mark.parametrize("algorithm", HMAC_ALGORITHMS)
def test_default_kid_of_a_secret_is_the_same_in_every_release(
    algorithm: str, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    secret = hmac_secret(algorithm)
    configure(settings, algorithm, SIGNING_KEY=secret)
    token = logged_in(api_client, user, password)["access_token"]

    assert jwt.get_unverified_header(token)["kid"] == HMAC_KIDS[algorithm]
    expected = hmac.new(secret.encode(), b"cocart_jwt key id", hashlib.sha256).digest()[:16]
    assert base64.urlsafe_b64decode(HMAC_KIDS[algorithm] + "==") == expected


@pytest.mark.parametrize("algorithm", HMAC_ALGORITHMS)
def test_default_kid_of_secret_is_stable_and_differs_between_secrets(
    algorithm: str, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, algorithm)
    first = jwt.get_unverified_header(logged_in(api_client, user, password)["access_token"])["kid"]
    again = jwt.get_unverified_header(logged_in(api_client, user, password)["access_token"])["kid"]
    settings.COCART_JWT = {**settings.COCART_JWT, "SIGNING_KEY": hmac_secret(algorithm, 1)}
    other = jwt.get_unverified_header(logged_in(api_client, user, password)["access_token"])["kid"]

    assert first == again
    assert other != first


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
def test_key_id_setting_is_the_kid(
    algorithm: str, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, algorithm, KEY_ID="shop-key-2025")
    pair = logged_in(api_client, user, password)

    assert jwt.get_unverified_header(pair["access_token"])["kid"] == "shop-key-2025"
    assert api_client.get("/api/me/", **bearer(pair["access_token"])).status_code == 200
    if algorithm.startswith("HS"):
        assert jwks(api_client) == {"keys": []}
    else:
        assert [jwk["kid"] for jwk in jwks(api_client)["keys"]] == ["shop-key-2025"]
