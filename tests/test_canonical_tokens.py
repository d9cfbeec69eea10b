"""One token, one spelling; identifiers the database can hold (issue 12, items 14 and 16).

Item 14: base64url is canonical in all three segments of the compact JWS (RFC 7515 section
2, as PyJWT 2.14 made it). A segment with ``=`` padding, whose last character differs from
the canonical one only in bits that encode nothing, or spelled with base64's ``+`` and ``/``,
decodes to the same bytes: accepting it would make many strings of one valid token. Each is
refused, for HMAC, RSA and EC keys.

Item 16: a correctly signed token whose ``sid``, ``sub`` or ``jti`` holds a NUL byte or
other characters no session id has is refused before any SQL query (PostgreSQL refuses NUL
in text: that was a 500), in strict and in cached mode.

And the verifier's other edges: the reason each refusal gives the log (ops read it to tell a
forged token from a stale one), how far ``exp`` may be from ``iat``, and ``iss`` and ``aud``
when ISSUER or AUDIENCE is unset or a list.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from datetime import timedelta
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


def test_a_signature_may_end_in_any_character_of_the_alphabet(
    client: APIClient, user: Any, password: str, settings: Any
) -> None:
    """An HS384 signature is 48 bytes, 64 characters with no unused bits: its canonical
    spelling may end in any of them, and each is accepted as the encoder wrote it."""
    settings.COCART_JWT = {**settings.COCART_JWT, **key_settings("HS384")}
    claims = logged_in_claims(client, user, password)
    header = header_segment()

    endings: dict[str, str] = {}
    for number in range(5000):
        token = signed(header, b64(json_bytes({**claims, "note": number})))
        endings.setdefault(token[-1], token)
        if len(endings) == len(ALPHABET):
            break
    assert sorted(endings) == sorted(ALPHABET)
    for token in endings.values():
        assert verify_access_token(token)["sid"] == claims["sid"]
    assert validate(client, endings["X"]) == 200


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


# --- the reason each refusal gives the log ---------------------------------------------------

MISSING = object()


def header(**changes: Any) -> dict[str, Any]:
    """The configured key's header, with ``changes`` (MISSING leaves a member out)."""
    key = keyring().signing_key
    assert key is not None
    members = {"alg": key.algorithm, "typ": "at+jwt", "kid": key.kid, **changes}
    return {name: value for name, value in members.items() if value is not MISSING}


def segment(value: Any) -> str:
    return b64(value if isinstance(value, bytes) else json.dumps(value).encode())


def token_of(head: Any, payload: Any) -> str:
    """``head`` and ``payload`` (JSON values, or raw bytes) signed with the configured key."""
    return signed(segment(head), segment(payload))


def with_claims(**changes: Any) -> Callable[[dict[str, Any]], str]:
    def build(claims: dict[str, Any]) -> str:
        changed = {**claims, **changes}
        return token_of(header(), {n: v for n, v in changed.items() if v is not MISSING})

    return build


def with_header(**changes: Any) -> Callable[[dict[str, Any]], str]:
    return lambda claims: token_of(header(**changes), claims)


def relative(name: str, base: str, seconds: int) -> Callable[[dict[str, Any]], str]:
    """The claim ``name`` set to the claim ``base`` plus ``seconds``."""
    return lambda claims: with_claims(**{name: claims[base] + seconds})(claims)


def non_ascii_payload(claims: dict[str, Any]) -> str:
    head, payload, signature = token_of(header(), claims).split(".")
    return f"{head}.{payload}\u00e9.{signature}"


def signature_of_other_claims(claims: dict[str, Any]) -> str:
    other = token_of(header(), {**claims, "jti": "another-token"}).rsplit(".", 1)[1]
    return f"{token_of(header(), claims).rsplit('.', 1)[0]}.{other}"


NINETY_DAYS = 90 * 24 * 3600  # SESSION_MAX_LIFETIME's default
THREE_SEGMENTS = "not a compact JWS (three segments)"
NOT_A_KEY = "kid missing or naming no configured key"
NOT_YET_VALID = "token not yet valid (nbf or iat in the future)"
WRONG_ISSUER = "iss missing or not the configured ISSUER"
REFUSALS: dict[str, tuple[Callable[[dict[str, Any]], str], str]] = {
    "8193-characters": (lambda claims: "a" * 8193, "token longer than 8 KiB"),
    "8192-characters": (lambda claims: "a" * 8192, THREE_SEGMENTS),  # not refused for length
    "two-segments": (lambda claims: token_of(header(), claims).rsplit(".", 1)[0], THREE_SEGMENTS),
    "four-segments": (lambda claims: token_of(header(), claims) + ".e30", THREE_SEGMENTS),
    "header-outside-the-alphabet": (
        lambda claims: "!" + token_of(header(), claims),
        "header is not base64url (Error)",
    ),
    "header-non-ascii": (
        lambda claims: "\u00e9" + token_of(header(), claims),
        "header is not base64url (UnicodeEncodeError)",
    ),
    "header-padded": (
        lambda claims: signed(padded(header_segment()), segment(claims)),
        "header is not canonical base64url (padding, + or /, unused bits)",
    ),
    "header-not-json": (
        lambda claims: token_of(b"{", claims),
        "header is not JSON (JSONDecodeError)",
    ),
    "header-a-list": (lambda claims: token_of([header()], claims), "header is not a JSON object"),
    "typ-jwt": (with_header(typ="JWT"), "typ is not at+jwt"),
    "typ-missing": (with_header(typ=MISSING), "typ is not at+jwt"),
    "typ-a-number": (with_header(typ=1), "typ is not at+jwt"),
    "crit": (with_header(crit=["exp"]), "crit header present"),
    "kid-missing": (with_header(kid=MISSING), NOT_A_KEY),
    "kid-unknown": (with_header(kid="no-such-key"), NOT_A_KEY),
    "kid-a-list": (with_header(kid=["no-such-key"]), NOT_A_KEY),
    "alg-none": (with_header(alg="none"), "alg does not match the key named by kid"),
    "signature-outside-the-alphabet": (
        lambda claims: token_of(header(), claims) + "!",
        "signature is not base64url (Error)",
    ),
    "payload-non-ascii": (non_ascii_payload, "signature not checkable (UnicodeEncodeError)"),
    "signature-of-other-claims": (signature_of_other_claims, "bad signature"),
    "payload-not-json": (
        lambda claims: token_of(header(), b"{"),
        "payload is not JSON (JSONDecodeError)",
    ),
    "payload-a-list": (lambda claims: token_of(header(), [claims]), "payload is not a JSON object"),
    **{
        f"{name}-missing": (with_claims(**{name: MISSING}), f"{name} claim missing")
        for name in ("exp", "iat", "nbf", "sub", "jti", "sid")
    },
    "exp-null": (with_claims(exp=None), "exp claim missing"),
    **{
        f"{name}-true": (with_claims(**{name: True}), f"{name} claim is not an integer NumericDate")
        for name in ("exp", "iat", "nbf")
    },
    "sub-a-number": (with_claims(sub=1), "sub claim is not a short non-empty string"),
    "sid-a-slash": (
        with_claims(sid="abc/def"),
        "sid claim is not 1 to 64 url-safe base64 characters",
    ),
    "sub-newline": (
        with_claims(sub="1\n"),
        "sub claim holds a control or unprintable character",
    ),
    "jti-nul": (with_claims(jti="\x00"), "jti claim holds a control or unprintable character"),
    "expired": (relative("exp", "iat", -1), "token expired"),
    "nbf-ahead": (relative("nbf", "iat", 3600), NOT_YET_VALID),
    "iat-ahead": (relative("iat", "iat", 3600), NOT_YET_VALID),
    "exp-beyond-any-session": (
        relative("exp", "iat", NINETY_DAYS + 1),
        "exp is further from iat than any session lives",
    ),
    "iss-other": (with_claims(iss="https://evil.example"), WRONG_ISSUER),
    "iss-missing": (with_claims(iss=MISSING), WRONG_ISSUER),
    "aud-without-an-audience": (
        with_claims(aud="https://shop.example"),
        "aud present but no AUDIENCE is configured",
    ),
}
AUDIENCE = "https://api.shop.example"
NOT_AN_AUDIENCE = "aud missing or not a string or list of strings"
AUDIENCE_REFUSALS: dict[str, tuple[Callable[[dict[str, Any]], str], str]] = {
    "aud-missing": (with_claims(aud=MISSING), NOT_AN_AUDIENCE),
    "aud-a-number": (with_claims(aud=1), NOT_AN_AUDIENCE),
    "aud-an-object": (with_claims(aud={"aud": AUDIENCE}), NOT_AN_AUDIENCE),
    "aud-with-a-number": (with_claims(aud=[AUDIENCE, 1]), NOT_AN_AUDIENCE),
    "aud-other": (
        with_claims(aud="https://other.example"),
        "aud does not name the configured AUDIENCE",
    ),
    "aud-list-without-it": (
        with_claims(aud=["https://other.example"]),
        "aud does not name the configured AUDIENCE",
    ),
}


def refusals_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "cocart_jwt" and record.getMessage().startswith("Access token refused")
    ]


def assert_refused_because(
    client: APIClient, token: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(InvalidToken) as refused:
        verify_access_token(token)
    assert str(refused.value) == reason
    caplog.set_level(logging.INFO, logger="cocart_jwt")
    caplog.clear()
    assert validate(client, token) == 401
    assert refusals_logged(caplog) == [f"Access token refused: {reason}"]


@pytest.mark.parametrize("case", REFUSALS)
def test_each_refusal_gives_the_log_its_reason(
    client: APIClient, user: Any, password: str, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    claims = logged_in_claims(client, user, password)
    assert validate(client, token_of(header(), claims)) == 200  # the unchanged copy passes
    build, reason = REFUSALS[case]

    assert_refused_because(client, build(claims), reason, caplog)


@pytest.mark.parametrize("case", AUDIENCE_REFUSALS)
def test_each_audience_refusal_gives_the_log_its_reason(
    client: APIClient,
    user: Any,
    password: str,
    settings: Any,
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "AUDIENCE": AUDIENCE}
    claims = logged_in_claims(client, user, password)
    assert claims["aud"] == AUDIENCE
    assert validate(client, token_of(header(), claims)) == 200
    build, reason = AUDIENCE_REFUSALS[case]

    assert_refused_because(client, build(claims), reason, caplog)


# --- exp at most a session's lifetime (plus LEEWAY) after iat ----------------------------------


@pytest.mark.parametrize("leeway", [0, 30], ids=["no-leeway", "leeway-30s"])
def test_exp_may_be_a_session_lifetime_and_leeway_after_iat_and_no_more(
    client: APIClient,
    user: Any,
    password: str,
    settings: Any,
    leeway: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A token outliving any session is forged or minted by a broken signer."""
    settings.COCART_JWT = {**settings.COCART_JWT, "LEEWAY": leeway}
    claims = logged_in_claims(client, user, password)
    furthest = claims["iat"] + NINETY_DAYS + leeway

    longest = token_of(header(), {**claims, "exp": furthest})
    assert verify_access_token(longest)["exp"] == furthest
    assert validate(client, longest) == 200
    too_long = token_of(header(), {**claims, "exp": furthest + 1})
    assert_refused_because(
        client, too_long, "exp is further from iat than any session lives", caplog
    )


def test_the_exp_bound_follows_session_max_lifetime(
    client: APIClient, user: Any, password: str, settings: Any
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_MAX_LIFETIME": timedelta(days=1)}
    claims = logged_in_claims(client, user, password)

    day = 24 * 3600
    assert verify_access_token(token_of(header(), {**claims, "exp": claims["iat"] + day}))
    with pytest.raises(InvalidToken, match="^exp is further from iat than any session lives$"):
        verify_access_token(token_of(header(), {**claims, "exp": claims["iat"] + day + 1}))


# --- iss and aud: ISSUER unset, AUDIENCE a list --------------------------------------------------


def test_without_an_issuer_iss_is_not_checked(
    client: APIClient, user: Any, password: str, settings: Any
) -> None:
    """RFC 7519 leaves iss to the application: unsetting ISSUER does not refuse the tokens
    minted under it (aud differs: a token naming an audience is refused where none is
    configured, RFC 7519 section 4.1.3)."""
    minted_with_an_issuer = logged_in_claims(client, user, password)
    assert minted_with_an_issuer["iss"] == "https://shop.example"
    settings.COCART_JWT = {**settings.COCART_JWT, "ISSUER": None}

    fresh = logged_in_claims(client, user, password)
    assert "iss" not in fresh
    for claims in (minted_with_an_issuer, fresh, {**fresh, "iss": "https://elsewhere.example"}):
        token = token_of(header(), claims)
        assert verify_access_token(token) == claims
        assert validate(client, token) == 200


def test_an_audience_list_accepts_a_token_naming_any_of_them(
    client: APIClient, user: Any, password: str, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    audiences = ["https://api.shop.example", "https://admin.shop.example"]
    settings.COCART_JWT = {**settings.COCART_JWT, "AUDIENCE": audiences}
    claims = logged_in_claims(client, user, password)
    assert claims["aud"] == audiences

    for aud in (audiences[1], [audiences[0]], ["https://other.example", audiences[1]]):
        token = token_of(header(), {**claims, "aud": aud})
        assert verify_access_token(token)["aud"] == aud
        assert validate(client, token) == 200
    assert_refused_because(
        client,
        token_of(header(), {**claims, "aud": "https://other.example"}),
        "aud does not name the configured AUDIENCE",
        caplog,
    )
