"""What RFC 7009 revocation and RFC 7662 introspection do with a presented token.

``revoke_presented`` revokes the session of a refresh token (spent or not) or of an access
token that verifies and names its session's user; ``introspect`` answers whether an access
token is accepted at this moment, as strict verification would accept it. Both read and write
on the primary database, and say what they found in a sentence for the ``cocart_jwt`` log,
which never holds the token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils.crypto import constant_time_compare

from .choices import RevokeReason
from .models import RefreshToken, Token
from .primary import on_primary
from .settings import jwt_settings
from .store.live import load_from_database
from .tokens import InvalidToken, check_token_of, confirmation_key, verify_access_token
from .utils import now, sha256_hex

if TYPE_CHECKING:
    from django.http import HttpRequest

ACCESS_TOKEN_HINT = "access_token"  # noqa: S105 (RFC 7009 section 2.1's hint values)
REFRESH_TOKEN_HINT = "refresh_token"  # noqa: S105
# Claims an active token's introspection repeats as the token states them (RFC 7662 2.2).
ALWAYS_SHOWN = ("exp", "iat", "nbf", "sid", "jti")
SHOWN_WHEN_PRESENT = ("iss", "aud")


@dataclass(frozen=True)
class Outcome:
    """What a lookup found: ``found`` when the token was one of its kind, ``logged`` says
    what happened (for the log)."""

    found: bool
    logged: str


def revoke_presented(token: str, hint: str | None, request: HttpRequest) -> str:
    """Revoke the session of ``token`` (RFC 7009), trying the kind ``hint`` names first and
    then the other; what happened, for the log."""
    lookups = [revoke_by_access_token, revoke_by_refresh_token]
    if hint == REFRESH_TOKEN_HINT:
        lookups.reverse()
    reasons = []
    for lookup in lookups:
        outcome = lookup(token, request)
        if outcome.found:
            return outcome.logged
        reasons.append(outcome.logged)
    return "unknown token (" + "; ".join(reasons) + "), nothing revoked"


def revoke_by_refresh_token(token: str, request: HttpRequest) -> Outcome:
    """A refresh token, spent or not, revokes its session; nothing is rotated, so presenting
    a spent one here is no reuse."""
    digest = sha256_hex(token)
    found = (
        on_primary(RefreshToken.objects.filter(token_hash=digest))
        .values_list("session_id", "token_hash")
        .first()
    )
    # As the refresh does: the hash read back is compared in constant time.
    if found is None or not constant_time_compare(found[1], digest):
        return Outcome(False, "not a refresh token")
    return Outcome(True, revoke_session(found[0], "refresh token", request))


def revoke_by_access_token(token: str, request: HttpRequest) -> Outcome:
    """An access token that verifies (signature, exp, iss, aud...) revokes its session, if
    the session is its ``sub``'s."""
    try:
        claims = verify_access_token(token)
    except InvalidToken as exc:
        return Outcome(False, f"not an access token: {exc}")
    sid = claims["sid"]
    owner = on_primary(Token.objects.filter(pk=sid)).values_list("user_id", flat=True).first()
    if owner is None:
        return Outcome(True, f"access token of no session ({sid}), nothing revoked")
    if str(owner) != claims["sub"]:
        return Outcome(True, f"access token whose sub is not the user of session {sid}, kept")
    return Outcome(True, revoke_session(sid, "access token", request))


def revoke_session(sid: str, kind: str, request: HttpRequest) -> str:
    revoked = Token.objects.filter(pk=sid).revoke(RevokeReason.REVOCATION_REQUEST, request=request)
    if revoked:
        return f"{kind} of session {sid}: session revoked"
    return f"{kind} of session {sid}: session already revoked"


def introspect(token: str) -> tuple[dict[str, Any], str]:
    """RFC 7662's answer for ``token`` and what it was, for the log.

    Active: an access token (of any kind) that verifies, whose session is live now on the
    primary (not revoked, expired or idle, its user active) and is its ``sub``'s; what strict
    verification accepts, without ``BIND_TO_*`` (the caller is a resource server, not the
    token's holder) and without touching ``last_used_at``. Anything else: ``{"active":
    False}`` and nothing more.
    """
    try:
        claims = verify_access_token(token)
        session = load_from_database(claims["sid"], now())
        check_token_of(session, claims)
    except InvalidToken as exc:
        return {"active": False}, f"inactive: {exc}"
    return active(claims, session), f"active, session {session.pk}"


def active(claims: dict[str, Any], session: Token) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "active": True,
        "sub": claims["sub"],
        "username": str(session.user.get_username()),
        "client_id": claims.get("client_id", jwt_settings.CLIENT_ID),
    }
    if "scope" in claims:  # a personal token's (the verifier checked it is a string)
        answer["scope"] = claims["scope"]
    answer["token_type"] = "DPoP" if confirmation_key(claims) else "Bearer"
    answer.update((name, claims[name]) for name in ALWAYS_SHOWN)
    answer.update((name, claims[name]) for name in SHOWN_WHEN_PRESENT if name in claims)
    return answer
