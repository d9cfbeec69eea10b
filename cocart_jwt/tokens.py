"""Access tokens: minting and verification (RFC 7519, RFC 8725, RFC 9068)."""

from __future__ import annotations

import binascii
import json
import secrets
from base64 import urlsafe_b64decode
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import jwt

from .keys import keyring
from .settings import jwt_settings

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


def mint_access_token(session: Token, user: AbstractBaseUser, now: datetime) -> AccessToken:
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
        expires_at = min(now + jwt_settings.ACCESS_TOKEN_LIFETIME, expires_at)
    jti = secrets.token_urlsafe(16)
    payload = additional_claims(session.claims)
    if jwt_settings.USER_CLAIMS:
        payload.update(additional_claims(jwt_settings.USER_CLAIMS(user)))
    payload.update(
        sub=str(user.pk),
        iat=int(now.timestamp()),
        nbf=int(now.timestamp()),
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


def read_header(token: str) -> dict[str, Any]:
    """Parse the JOSE header ourselves, to pick the key before any crypto runs."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("token longer than 8 KiB")
    segment, _, rest = token.partition(".")
    if rest.count(".") != 1:
        raise InvalidToken("not a compact JWS (three segments)")
    try:
        raw = urlsafe_b64decode(segment.encode("ascii") + b"=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise InvalidToken(f"header is not base64url JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise InvalidToken("header is not a JSON object")
    return header


def verify_access_token(token: str) -> dict[str, Any]:
    """Return the claims of a valid access token; raise ``InvalidToken`` otherwise."""
    header = read_header(token)
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
    try:
        claims = jwt.decode(
            token,
            key.verifier,
            algorithms=[key.algorithm],
            options={"require": REQUIRED_CLAIMS, "verify_sub": True, "verify_jti": True},
            audience=jwt_settings.AUDIENCE,
            issuer=jwt_settings.ISSUER,
            leeway=jwt_settings.LEEWAY,
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"{type(exc).__name__}: {exc}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise InvalidToken(f"undecodable token ({type(exc).__name__})") from None
    check_claim_types(claims)
    return claims


def check_claim_types(claims: dict[str, Any]) -> None:
    """What PyJWT lets through: numeric strings and floats as dates, any lifetime."""
    for name in ("sub", "sid"):
        value = claims[name]
        if not isinstance(value, str) or not 0 < len(value) <= MAX_CLAIM_LENGTH:
            raise InvalidToken(f"{name} claim is not a short non-empty string")
    for name in ("exp", "iat", "nbf"):
        if type(claims[name]) is not int:
            raise InvalidToken(f"{name} claim is not an integer NumericDate")
    longest = jwt_settings.SESSION_MAX_LIFETIME + jwt_settings.LEEWAY
    if claims["exp"] - claims["iat"] > longest.total_seconds():
        raise InvalidToken("exp is further from iat than any session lives")
