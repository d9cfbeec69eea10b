"""Access tokens: minting and verification (RFC 7519, RFC 8725, RFC 9068)."""

from __future__ import annotations

import binascii
import json
import logging
import re
import secrets
from base64 import b64decode, urlsafe_b64encode
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jwt
from django.utils.crypto import constant_time_compare

from .choices import Kind
from .keys import Key, keyring
from .settings import jwt_settings
from .utils import now

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

    from .models import Token

logger = logging.getLogger("cocart_jwt")

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 (a media type)
ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt"})
MAX_TOKEN_LENGTH = 8 * 1024
MAX_CLAIM_LENGTH = 255
# Additional claims (admin form, ``jwt create --claims``, USER_CLAIMS, a session's stored
# claims) are data: they can never take a name that a verifier reads as authority.
# Set by this app on every token: an additional claim would replace them.
APP_CLAIMS = frozenset({"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "sid"})
# What the token may do, for which client, on whose behalf, bound to which key (RFC 9068,
# RFC 8693, RFC 7800, OIDC; scp is the scope of Spring Security, Okta and Entra ID): a grant.
AUTHORITY_CLAIMS = frozenset({"scope", "scp", "client_id", "azp", "act", "may_act", "cnf"})
# When and how the user authenticated (OIDC Core, RFC 9068 section 2.2.1): only a login knows.
AUTHENTICATION_CLAIMS = frozenset({"auth_time", "acr", "amr", "nonce"})
# What kind of token this is (Keycloak's typ, Cognito's token_use); the typ header says it.
TOKEN_KIND_CLAIMS = frozenset({"typ", "token_use"})
# Not reserved: roles, groups, entitlements (RFC 9068 section 2.2.3.1) and anything else are
# data here; this app grants nothing on any additional claim.
RESERVED_CLAIMS = APP_CLAIMS | AUTHORITY_CLAIMS | AUTHENTICATION_CLAIMS | TOKEN_KIND_CLAIMS
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "sub", "jti", "sid"]
# Session ids are secrets.token_urlsafe; the column holds 64. Checked before any query, so a
# NUL byte or any other odd character never reaches the database (PostgreSQL refuses NUL).
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# An RFC 7638 SHA-256 thumbprint: 32 bytes in unpadded base64url.
THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")
# A name in a scope claim (RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )),
# of at most 64 characters: what SCOPES may name (E019) and a challenge may quote.
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,64}")


class InvalidToken(Exception):
    """The access token is refused. The message is for the log: it never holds the token."""


@dataclass(frozen=True)
class AccessToken:
    """A signed access token and the claims it carries (to show them, no need to decode it)."""

    token: str = field(repr=False)
    expires_at: datetime
    jti: str
    claims: dict[str, Any]


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
        payload.update(user_claims(user))
    payload.update(
        sub=str(user.pk),
        iat=int(at.timestamp()),
        nbf=int(at.timestamp()),
        exp=int(expires_at.timestamp()),
        jti=jti,
        sid=session.pk,
    )
    if session.authenticated_at is not None:
        payload["auth_time"] = int(session.authenticated_at.timestamp())
    if jwt_settings.ISSUER:
        payload["iss"] = jwt_settings.ISSUER
    if jwt_settings.AUDIENCE:
        payload["aud"] = jwt_settings.AUDIENCE
    payload["client_id"] = jwt_settings.CLIENT_ID
    if jwt_settings.PAYLOAD_HOOK:
        payload = jwt_settings.PAYLOAD_HOOK(payload, user)
    # After the hook: a personal token is never minted without its limits, nor a DPoP-bound
    # one without its key.
    if session.kind == Kind.PERSONAL:
        payload["scope"] = " ".join(session.scopes)
    if session.dpop_jkt:
        payload["cnf"] = {"jkt": session.dpop_jkt}
    headers = {"typ": ACCESS_TOKEN_TYPE, "kid": key.kid}
    token = jwt.encode(payload, key.signer, algorithm=key.algorithm, headers=headers)
    return AccessToken(token=token, expires_at=expires_at, jti=jti, claims=payload)


def additional_claims(claims: dict[str, Any] | None) -> dict[str, Any]:
    """Claims of a session or of USER_CLAIMS, without the reserved ones.

    Also filters sessions stored before a name was reserved: they never mint it.
    """
    return {name: value for name, value in (claims or {}).items() if name not in RESERVED_CLAIMS}


def refused_claims(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """The reserved names among ``names``: (set by this app, read as authority), sorted."""
    reserved = RESERVED_CLAIMS.intersection(names)
    return sorted(reserved & APP_CLAIMS), sorted(reserved - APP_CLAIMS)


def user_claims(user: AbstractBaseUser) -> dict[str, Any]:
    """USER_CLAIMS of ``user``, reserved names dropped (and said once in the log)."""
    claims = jwt_settings.USER_CLAIMS(user)
    dropped = RESERVED_CLAIMS.intersection(claims or {})
    if dropped:
        warn_dropped_user_claims(frozenset(dropped))
    return additional_claims(claims)


@lru_cache(maxsize=128)
def warn_dropped_user_claims(names: frozenset[str]) -> None:
    """Once per process per set of names (the cache): USER_CLAIMS runs on every mint."""
    logger.warning(
        "USER_CLAIMS returned reserved claims, left out of the token: %s. Additional claims "
        "are data and cannot set them (see the USER_CLAIMS setting).",
        ", ".join(sorted(names)),
    )


def b64url_decode(segment: str, part: str) -> bytes:
    """Canonical base64url (RFC 7515 section 2): no padding, no character outside the
    alphabet, no unused bits set, so that one token has exactly one spelling.
    """
    try:
        encoded = segment.encode("ascii")
        raw = b64decode(encoded + b"=" * (-len(segment) % 4), altchars=b"-_", validate=True)
    except (ValueError, binascii.Error) as exc:
        raise InvalidToken(f"{part} is not base64url ({type(exc).__name__})") from None
    # The decoder forgives padding, '+' and '/' and unused bits; encoding back does not.
    if urlsafe_b64encode(raw).rstrip(b"=") != encoded:
        raise InvalidToken(f"{part} is not canonical base64url (padding, + or /, unused bits)")
    return raw


def decode_json_object(segment: str, part: str) -> dict[str, Any]:
    raw = b64url_decode(segment, part)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidToken(f"{part} is not JSON ({type(exc).__name__})") from None
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
    raw_signature = b64url_decode(signature, "signature")
    try:
        valid = key.implementation.verify(
            signing_input.encode("ascii"), key.verifier, raw_signature
        )
    except ValueError as exc:
        raise InvalidToken(f"signature not checkable ({type(exc).__name__})") from None
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
    check_identifiers(claims)
    for name in ("exp", "iat", "nbf"):
        if type(claims[name]) is not int:
            raise InvalidToken(f"{name} claim is not an integer NumericDate")
    leeway = jwt_settings.LEEWAY.total_seconds()
    current = now().timestamp()
    if claims["exp"] <= current - leeway:
        raise InvalidToken("token expired")
    if claims["nbf"] > current + leeway or claims["iat"] > current + leeway:
        raise InvalidToken("token not yet valid (nbf or iat in the future)")
    # A personal token (the one kind with a scope) lives up to PAT_MAX_LIFETIME, a login
    # session up to SESSION_MAX_LIFETIME.
    scope = claims.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise InvalidToken("scope claim is not a string")
    longest = (
        jwt_settings.PAT_MAX_LIFETIME if scope is not None else jwt_settings.SESSION_MAX_LIFETIME
    )
    if claims["exp"] - claims["iat"] > longest.total_seconds() + leeway:
        raise InvalidToken("exp is further from iat than any session lives")
    check_auth_time(claims, current + leeway)
    check_confirmation(claims)
    check_issuer_and_audience(claims)


def check_confirmation(claims: dict[str, Any]) -> None:
    """``cnf`` (RFC 7800), when present, binds the token to a DPoP key: ``{"jkt": <RFC 7638
    thumbprint>}`` and nothing this verifier could not enforce."""
    if "cnf" not in claims:
        return
    cnf = claims["cnf"]
    if not isinstance(cnf, dict) or set(cnf) != {"jkt"}:
        raise InvalidToken("cnf claim is not {jkt: thumbprint}")
    if not isinstance(cnf["jkt"], str) or not THUMBPRINT.fullmatch(cnf["jkt"]):
        raise InvalidToken("cnf.jkt is not a SHA-256 thumbprint in base64url")


def confirmation_key(claims: dict[str, Any]) -> str:
    """The DPoP key thumbprint a verified token is bound to; "" for a bearer token."""
    cnf = claims.get("cnf")
    return cnf["jkt"] if isinstance(cnf, dict) else ""


def check_token_of(session: Token, claims: dict[str, Any]) -> None:
    """The verified ``claims`` are of ``session``: its ``sub`` is the session's user, and its
    DPoP key (``cnf.jkt``, or none) is the one the session is bound to (or none)."""
    if str(session.user_id) != claims["sub"]:
        raise InvalidToken(f"sub does not match the user of session {session.pk}")
    if not constant_time_compare(session.dpop_jkt, confirmation_key(claims)):
        raise InvalidToken(f"session {session.pk} is bound to another DPoP key")


def check_auth_time(claims: dict[str, Any], latest: float) -> None:
    """``auth_time`` is optional (sessions made in the admin or the CLI have none); present,
    it is an integer NumericDate not after ``latest``: RecentLogin trusts it."""
    if "auth_time" not in claims:
        return
    auth_time = claims["auth_time"]
    if type(auth_time) is not int:
        raise InvalidToken("auth_time claim is not an integer NumericDate")
    if auth_time > latest:
        raise InvalidToken("auth_time claim is in the future")


def check_identifiers(claims: dict[str, Any]) -> None:
    """sub, sid and jti: strings whose characters every database, cache and log can hold.

    The refusal reasons go to the log: they name the claim, never quote its value.
    """
    for name in ("sub", "sid", "jti"):
        value = claims[name]
        if not isinstance(value, str) or not 0 < len(value) <= MAX_CLAIM_LENGTH:
            raise InvalidToken(f"{name} claim is not a short non-empty string")
    if not SESSION_ID.fullmatch(claims["sid"]):
        raise InvalidToken("sid claim is not 1 to 64 url-safe base64 characters")
    for name in ("sub", "jti"):
        # A user pk may be any printable text; a control character (NUL, a newline) never.
        if not claims[name].isprintable():
            raise InvalidToken(f"{name} claim holds a control or unprintable character")


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
