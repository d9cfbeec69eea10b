"""Access tokens: minting and verification (RFC 7519, RFC 8725, RFC 9068)."""

from __future__ import annotations

import binascii
import json
import secrets
from base64 import b64decode
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import jwt

from .keys import Key, keyring
from .settings import jwt_settings
from .utils import now

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

    from .models import Token

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 (a media type)
ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt"})
MAX_TOKEN_LENGTH = 8 * 1024
MAX_CLAIM_LENGTH = 255
# Claims this app sets; additional claims cannot replace them.
RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "sid"})
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "sub", "jti", "sid"]


class InvalidToken(Exception):
    """The access token is refused. The message is for the log: it never holds the token."""


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_at: datetime
    jti: str


def mint_access_token(session: Token, user: AbstractBaseUser, at: datetime) -> AccessToken:
    """Sign an access token of ``session``; it never outlives the session.

    The access token of a refreshable session lives ACCESS_TOKEN_LIFETIME; that of a session
    without a refresh token (an admin or CLI token) lives as long as the session.
    """
    key = keyring().signing_key
    if key is None:
        raise InvalidToken("no signing key: this site is configured to verify tokens only")
    # A session that cannot be refreshed (an admin or CLI token) is its access token.
    expires_at = session.expires_at
    if session.refreshable:
        expires_at = min(at + jwt_settings.ACCESS_TOKEN_LIFETIME, expires_at)
    jti = secrets.token_urlsafe(16)
    payload = additional_claims(session.claims)
    if jwt_settings.USER_CLAIMS:
        payload.update(additional_claims(jwt_settings.USER_CLAIMS(user)))
    payload.update(
        sub=str(user.pk),
        iat=int(at.timestamp()),
        nbf=int(at.timestamp()),
        exp=int(expires_at.timestamp()),
        jti=jti,
        sid=session.pk,
    )
    if jwt_settings.ISSUER:
        payload["iss"] = jwt_settings.ISSUER
    if jwt_settings.AUDIENCE:
        payload["aud"] = jwt_settings.AUDIENCE
    if jwt_settings.PAYLOAD_HOOK:
        payload = jwt_settings.PAYLOAD_HOOK(payload, user)
    headers = {"typ": ACCESS_TOKEN_TYPE, "kid": key.kid}
    token = jwt.encode(payload, key.signer, algorithm=key.algorithm, headers=headers)
    return AccessToken(token=token, expires_at=expires_at, jti=jti)


def additional_claims(claims: dict[str, Any] | None) -> dict[str, Any]:
    """Claims of a session or of USER_CLAIMS, without the registered ones this app sets."""
    return {name: value for name, value in (claims or {}).items() if name not in RESERVED_CLAIMS}


def b64url_decode(segment: str) -> bytes:
    """Strict base64url: a character outside the alphabet is an error, not skipped."""
    padded = segment.encode("ascii") + b"=" * (-len(segment) % 4)
    return b64decode(padded, altchars=b"-_", validate=True)


def decode_json_object(segment: str, part: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(segment))
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise InvalidToken(f"{part} is not base64url JSON ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise InvalidToken(f"{part} is not a JSON object")
    return value


def read_header(token: str) -> dict[str, Any]:
    """Parse the JOSE header ourselves, to pick the key before any crypto runs."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("token longer than 8 KiB")
    segment, _, rest = token.partition(".")
    if rest.count(".") != 1:
        raise InvalidToken("not a compact JWS (three segments)")
    return decode_json_object(segment, "header")


def verify_access_token(token: str) -> dict[str, Any]:
    """Return the claims of a valid access token; raise ``InvalidToken`` otherwise.

    RFC 8725: the header is read first (size, typ, crit, kid); the key named by kid fixes the
    algorithm; the signature is checked with PyJWT's algorithm for that key alone; then the
    claims are type-checked and validated. No ``none``, no key from the token itself.
    """
    key = key_for(read_header(token))
    signing_input, _, signature = token.rpartition(".")
    try:
        valid = key.implementation.verify(
            signing_input.encode("ascii"), key.verifier, b64url_decode(signature)
        )
    except (ValueError, binascii.Error) as exc:
        raise InvalidToken(f"signature is not base64url ({type(exc).__name__})") from None
    if not valid:
        raise InvalidToken("bad signature")
    claims = decode_json_object(signing_input.partition(".")[2], "payload")
    check_claims(claims)
    return claims


def key_for(header: dict[str, Any]) -> Key:
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES:
        raise InvalidToken("typ is not at+jwt")
    if "crit" in header:
        raise InvalidToken("crit header present")
    kid = header.get("kid")
    key = keyring().by_kid.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidToken("kid missing or naming no configured key")
    if header.get("alg") != key.algorithm:
        raise InvalidToken("alg does not match the key named by kid")
    return key


def check_claims(claims: dict[str, Any]) -> None:
    """Required claims, their types, the time window (with LEEWAY), issuer and audience."""
    for name in REQUIRED_CLAIMS:
        if claims.get(name) is None:
            raise InvalidToken(f"{name} claim missing")
    for name in ("sub", "sid", "jti"):
        value = claims[name]
        if not isinstance(value, str) or not 0 < len(value) <= MAX_CLAIM_LENGTH:
            raise InvalidToken(f"{name} claim is not a short non-empty string")
    for name in ("exp", "iat", "nbf"):
        if type(claims[name]) is not int:
            raise InvalidToken(f"{name} claim is not an integer NumericDate")
    leeway = jwt_settings.LEEWAY.total_seconds()
    current = now().timestamp()
    if claims["exp"] <= current - leeway:
        raise InvalidToken("token expired")
    if claims["nbf"] > current + leeway or claims["iat"] > current + leeway:
        raise InvalidToken("token not yet valid (nbf or iat in the future)")
    if claims["exp"] - claims["iat"] > (jwt_settings.SESSION_MAX_LIFETIME.total_seconds() + leeway):
        raise InvalidToken("exp is further from iat than any session lives")
    check_issuer_and_audience(claims)


def check_issuer_and_audience(claims: dict[str, Any]) -> None:
    issuer = jwt_settings.ISSUER
    if issuer and claims.get("iss") != issuer:
        raise InvalidToken("iss missing or not the configured ISSUER")
    expected = jwt_settings.AUDIENCE
    audience = claims.get("aud")
    if not expected:
        if audience is not None:
            raise InvalidToken("aud present but no AUDIENCE is configured")
        return
    presented = [audience] if isinstance(audience, str) else audience
    if not isinstance(presented, list) or not all(isinstance(a, str) for a in presented):
        raise InvalidToken("aud missing or not a string or list of strings")
    accepted = {expected} if isinstance(expected, str) else set(expected)
    if accepted.isdisjoint(presented):
        raise InvalidToken("aud does not name the configured AUDIENCE")
