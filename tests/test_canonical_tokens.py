"""One token, one spelling; identifiers the database can hold (issue 12, items 14 and 16).

Item 14: base64url is canonical in all three segments of the compact JWS (RFC 7515 section
2, as PyJWT 2.14 made it). A segment with ``=`` padding, whose last character differs from
the canonical one only in bits that encode nothing, or spelled with base64's ``+`` and ``/``,
decodes to the same bytes: accepting it would make many strings of one valid token. Each is
refused, for HMAC, RSA and EC keys.

Item 16: a correctly signed token whose ``sid``, ``sub`` or ``jti`` holds a NUL byte or
other characters no session id has is refused before any SQL query (PostgreSQL refuses NUL
in text: that was a 500), in strict and in cached mode.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import jwt
import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from cocart_jwt.keys import keyring
from cocart_jwt.models import Token
from cocart_jwt.tokens import InvalidToken, verify_access_token
from tests.factories import bearer, key_settings, login

pytestmark = pytest.mark.django_db

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture
def client() -> APIClient:
    client = APIClient()
    client.raise_request_exception = False  # a 500 shows as a 500, not as an exception
    return client


def validate(client: APIClient, token: str) -> int:
    return client.post(reverse("cocart_jwt:validate"), **bearer(token)).status_code


def logged_in_claims(client: APIClient, user: Any, password: str) -> dict[str, Any]:
    response = login(client, user.get_username(), password)
    assert response.status_code == 200, response.content
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


# --- item 14: canonical base64url ------------------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forgiving_decode(segment: str) -> bytes:
    """What a lenient decoder makes of a segment (padding optional, unused bits ignored)."""
    return base64.urlsafe_b64decode(segment.rstrip("=") + "=" * (-len(segment.rstrip("=")) % 4))


def json_bytes(value: dict[str, Any]) -> bytes:
    """JSON whose length is no multiple of 3, so its base64url has padding and unused bits."""
    raw = json.dumps(value).encode()
    while len(raw) % 3 == 0:
        raw = raw[:-1] + b" }"
    return raw


def padded(segment: str) -> str:
    result = segment + "=" * (-len(segment) % 4)
    assert result != segment
    return result


def unused_bits_set(segment: str) -> str:
    """The same bytes, spelled with a bit that encodes nothing set in the last character."""
    raw = forgiving_decode(segment)
    assert 6 * len(segment) - 8 * len(raw) > 0, "this segment has no unused bits"
    changed = segment[:-1] + ALPHABET[ALPHABET.index(segment[-1]) ^ 1]
    assert forgiving_decode(changed) == raw
    return changed


def signed(header_segment: str, payload_segment: str) -> str:
    """Sign the two segments exactly as spelled, with the configured key."""
    key = keyring().signing_key
    assert key is not None
    signing_input = f"{header_segment}.{payload_segment}"
    signature = key.implementation.sign(signing_input.encode("ascii"), key.signer)
    return f"{signing_input}.{b64(signature)}"


def header_segment() -> str:
    key = keyring().signing_key
    assert key is not None
    return b64(json_bytes({"alg": key.algorithm, "typ": "at+jwt", "kid": key.kid}))


def standard_alphabet(segment: str) -> str:
    """The same bytes in base64 with '+' and '/' (RFC 4648 section 4), not base64url."""
    changed = segment.replace("-", "+").replace("_", "/")
    assert changed != segment
    return changed


def spellings(claims: dict[str, Any]) -> dict[str, str]:
    """The canonical token, and each non-canonical spelling of it (each properly signed)."""
    header = header_segment()
    # Six "?" hold an aligned "???", which base64url spells "Pz8_": a "_" to respell.
    payload = b64(json_bytes({**claims, "note": "??????"}))
    token = signed(header, payload)
    signature = token.rsplit(".", 1)[1]
    return {
        "canonical": token,
        "signature-padded": f"{header}.{payload}.{padded(signature)}",
        "signature-unused-bits": f"{header}.{payload}.{unused_bits_set(signature)}",
        "header-padded": signed(padded(header), payload),
        "header-unused-bits": signed(unused_bits_set(header), payload),
        "payload-padded": signed(header, padded(payload)),
        "payload-unused-bits": signed(header, unused_bits_set(payload)),
        "payload-standard-alphabet": signed(header, standard_alphabet(payload)),
    }


NON_CANONICAL = [
    "signature-padded",
    "signature-unused-bits",
    "header-padded",
    "header-unused-bits",
    "payload-padded",
    "payload-unused-bits",
    "payload-standard-alphabet",
]


@pytest.fixture(params=["HS256", "RS256", "ES256"])
def algorithm(request: pytest.FixtureRequest, settings: Any) -> str:
    settings.COCART_JWT = {**settings.COCART_JWT, **key_settings(request.param)}
    return str(request.param)


@pytest.mark.parametrize("spelling", NON_CANONICAL)
def test_a_non_canonical_spelling_of_a_valid_token_is_refused(
    client: APIClient,
    user: Any,
    password: str,
    algorithm: str,
    spelling: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tokens = spellings(logged_in_claims(client, user, password))
    # The canonical spelling of the very same bytes works: only the spelling is refused.
    assert validate(client, tokens["canonical"]) == 200
    assert verify_access_token(tokens["canonical"])["sub"] == str(user.pk)
    token = tokens[spelling]
    # Same bytes in every segment (the re-signed ones have their own, canonical, signature).
    compared = 3 if spelling.startswith("signature") else 2
    decoded = [forgiving_decode(s) for s in token.split(".")[:compared]]
    assert decoded == [forgiving_decode(s) for s in tokens["canonical"].split(".")[:compared]]

    caplog.set_level(logging.INFO, logger="cocart_jwt")
    assert validate(client, token) == 401
    assert "not canonical base64url" in caplog.text
    with pytest.raises(InvalidToken, match="not canonical base64url"):
        verify_access_token(token)


def test_a_real_login_token_is_canonical_and_accepted(
    client: APIClient, user: Any, password: str, algorithm: str
) -> None:
    response = login(client, user.get_username(), password)
    token = response.json()["access_token"]

    assert all(b64(forgiving_decode(s)) == s for s in token.split("."))
    assert validate(client, token) == 200


def sprinkled(segment: str, character: str) -> str:
    """``segment`` with ``character`` at four places: its length modulo 4 is unchanged, so a
    decoder that skips the character pads the rest right and reads the same bytes."""
    cut = [0, 3, 7, 11, 15, len(segment)]
    pieces = [segment[start:end] for start, end in zip(cut, cut[1:], strict=False)]
    return character.join(pieces)


def outside_the_alphabet(claims: dict[str, Any], where: str, character: str) -> str:
    """The token with ``character`` sprinkled into one segment, signed as spelled: the header
    and the payload are signed with it in place (so the signature holds); the signature
    segment is sprinkled after signing."""
    header, payload = header_segment(), b64(json_bytes(claims))
    if where == "header":
        return signed(sprinkled(header, character), payload)
    if where == "payload":
        return signed(header, sprinkled(payload, character))
    header, payload, signature = signed(header, payload).split(".")
    return f"{header}.{payload}.{sprinkled(signature, character)}"


@pytest.mark.parametrize("character", ["!", "*", "~", "$", "="], ids=repr)
@pytest.mark.parametrize("where", ["header", "payload", "signature"])
def test_a_character_outside_the_base64url_alphabet_is_refused_not_skipped(
    client: APIClient,
    user: Any,
    password: str,
    where: str,
    character: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    claims = logged_in_claims(client, user, password)
    token = outside_the_alphabet(claims, where, character)
    # A lenient decoder skips the character: the same bytes as the token that is accepted.
    index = ["header", "payload", "signature"].index(where)
    without = outside_the_alphabet(claims, where, "")
    skipped = token.split(".")[index].replace(character, "")
    assert forgiving_decode(skipped) == forgiving_decode(without.split(".")[index])
    assert validate(client, without) == 200

    caplog.set_level(logging.INFO, logger="cocart_jwt")
    assert validate(client, token) == 401
    assert f"{where} is not base64url" in caplog.text
    with pytest.raises(InvalidToken, match=f"^{where} is not base64url"):
        verify_access_token(token)


# --- item 16: identifiers checked before any query -------------------------------------------


def hostile_claims(claims: dict[str, Any], case: str) -> dict[str, Any]:
    sid, sub = claims["sid"], claims["sub"]
    changes = {
        "sid-nul": {"sid": "\x00"},
        "sid-inner-nul": {"sid": "abc\x00def"},
        "sid-real-then-nul": {"sid": sid + "\x00"},
        "sid-65-chars": {"sid": "a" * 65},
        "sid-slash": {"sid": "abc/def"},
        "sid-dot": {"sid": "abc.def"},
        "sid-newline": {"sid": sid + "\n"},
        "sid-non-ascii": {"sid": "séssion"},
        "sub-nul": {"sub": sub + "\x00"},
        "sub-newline": {"sub": sub + "\n"},
        "jti-nul": {"jti": "\x00"},
    }[case]
    return {**claims, **changes}


HOSTILE_CASES = [
    "sid-nul",
    "sid-inner-nul",
    "sid-real-then-nul",
    "sid-65-chars",
    "sid-slash",
    "sid-dot",
    "sid-newline",
    "sid-non-ascii",
    "sub-nul",
    "sub-newline",
    "jti-nul",
]


def sign_claims(claims: dict[str, Any]) -> str:
    """A correctly signed token with these claims: the configured key, its kid, typ at+jwt."""
    key = keyring().signing_key
    assert key is not None
    headers = {"typ": "at+jwt", "kid": key.kid}
    return jwt.encode(claims, key.signer, algorithm=key.algorithm, headers=headers)


@pytest.fixture(params=["strict", pytest.param("cached", marks=pytest.mark.redis)])
def mode(request: pytest.FixtureRequest, settings: Any) -> Any:
    """Strict mode, and cached mode on Redis (the default cache when Redis answers)."""
    if request.param == "cached":
        settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}
        caches["default"].clear()
        yield request.param
        caches["default"].clear()
        return
    yield request.param


def test_the_hand_signed_token_is_accepted(
    client: APIClient, user: Any, password: str, mode: str
) -> None:
    """The signing helper below is right: its copy of a real token's claims is accepted."""
    token = sign_claims(logged_in_claims(client, user, password))
    assert validate(client, token) == 200


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_a_signed_token_with_an_impossible_identifier_is_a_401_before_any_query(
    client: APIClient,
    user: Any,
    password: str,
    mode: str,
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = sign_claims(hostile_claims(logged_in_claims(client, user, password), case))
    caplog.set_level(logging.INFO, logger="cocart_jwt")

    with CaptureQueriesContext(connection) as queries:
        response = client.post(reverse("cocart_jwt:validate"), **bearer(token))

    assert response.status_code == 401, response.content[:300]
    assert response.json()["code"]
    assert len(queries) == 0, [query["sql"] for query in queries.captured_queries]
    claim = case.split("-", 1)[0]
    assert f"{claim} claim" in caplog.text
    assert "\x00" not in caplog.text and token not in caplog.text
    with pytest.raises(InvalidToken, match=f"^{claim} claim"):
        verify_access_token(token)


@pytest.mark.postgres
def test_a_nul_byte_in_sid_is_a_401_not_a_postgresql_500(
    client: APIClient, user: Any, password: str
) -> None:
    """PostgreSQL refuses NUL in text (a DataError, that was the 500): the query never runs."""
    claims = logged_in_claims(client, user, password)

    for sid in ("\x00", "abc\x00def", claims["sid"] + "\x00"):
        token = sign_claims({**claims, "sid": sid})
        assert validate(client, token) == 401
    # The real session is untouched and its own token still works.
    assert validate(client, sign_claims(claims)) == 200
    assert Token.objects.get(pk=claims["sid"]).revoked_at is None


# --- identifier lengths: 1 to 255 characters (sid: 1 to 64, a session id's alphabet) -----------


@pytest.mark.parametrize("claim", ["sub", "jti"])
def test_a_sub_or_jti_of_255_characters_is_accepted_and_of_256_refused(
    client: APIClient, user: Any, password: str, claim: str, caplog: pytest.LogCaptureFixture
) -> None:
    claims = logged_in_claims(client, user, password)

    longest = {**claims, claim: "7" * 255}
    assert verify_access_token(sign_claims(longest))[claim] == "7" * 255
    too_long = sign_claims({**claims, claim: "7" * 256})
    with pytest.raises(InvalidToken, match=f"^{claim} claim is not a short non-empty string"):
        verify_access_token(too_long)
    caplog.set_level(logging.INFO, logger="cocart_jwt")
    assert validate(client, too_long) == 401
    if claim == "jti":  # a sub of 255 characters names no user of this site; a jti is any id
        assert validate(client, sign_claims(longest)) == 200


@pytest.mark.parametrize("claim", ["sub", "sid", "jti"])
def test_an_empty_sub_sid_or_jti_is_refused(
    client: APIClient, user: Any, password: str, claim: str
) -> None:
    token = sign_claims({**logged_in_claims(client, user, password), claim: ""})

    assert validate(client, token) == 401
    with pytest.raises(InvalidToken, match=f"^{claim} claim is not a short non-empty string"):
        verify_access_token(token)


def test_a_sid_of_64_characters_passes_the_verifier_and_of_65_is_refused(
    client: APIClient, user: Any, password: str
) -> None:
    """The session id column holds 64: a longer sid is refused before any query."""
    claims = logged_in_claims(client, user, password)

    assert verify_access_token(sign_claims({**claims, "sid": "s" * 64}))["sid"] == "s" * 64
    with pytest.raises(InvalidToken, match="^sid claim is not 1 to 64"):
        verify_access_token(sign_claims({**claims, "sid": "s" * 65}))
