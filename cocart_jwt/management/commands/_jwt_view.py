"""``manage.py jwt view``: what can be said of an access token, verified or not."""

from __future__ import annotations

import json
from base64 import urlsafe_b64decode
from datetime import UTC, datetime
from typing import Any

import jwt as pyjwt

from cocart_jwt.keys import keyring
from cocart_jwt.models import Token
from cocart_jwt.settings import jwt_settings
from cocart_jwt.utils import now

from ._jwt_support import local_time

# PyJWT options that leave every claim unchecked: only the signature is verified.
CLAIM_CHECKS_OFF = (
    "verify_exp",
    "verify_nbf",
    "verify_iat",
    "verify_aud",
    "verify_iss",
    "verify_sub",
    "verify_jti",
)


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload, read without any check (so also when the signature segment is mangled)."""
    try:
        segment = token.split(".")[1]
        raw = urlsafe_b64decode(segment.encode("ascii") + b"=" * (-len(segment) % 4))
        claims = json.loads(raw)
    except Exception:  # noqa: BLE001 - anything undecodable is shown as such
        return None
    return claims if isinstance(claims, dict) else None


def signature_status(token: str, header: dict[str, Any]) -> tuple[bool, str]:
    """Whether a configured key signed ``token``, whatever its claims say."""
    kid = header.get("kid")
    key = keyring().by_kid.get(kid) if isinstance(kid, str) else None
    if key is None:
        return False, f"UNCHECKED: no configured key has the key id {kid!r}"
    if header.get("alg") != key.algorithm:
        return False, f"INVALID: alg {header.get('alg')!r}, but key {kid} is {key.algorithm}"
    options: Any = {name: False for name in CLAIM_CHECKS_OFF}
    options["require"] = []
    try:
        pyjwt.decode(token, key.verifier, algorithms=[key.algorithm], options=options)
    except pyjwt.InvalidSignatureError:
        return False, f"INVALID: not signed by key {kid} ({key.algorithm})"
    except Exception as exc:  # noqa: BLE001 - any other failure: not checkable
        return False, f"UNCHECKED: {type(exc).__name__}"
    return True, f"valid (key id {kid}, {key.algorithm})"


def expiry_status(claims: dict[str, Any] | None) -> tuple[bool, str]:
    expires = timestamp((claims or {}).get("exp"))
    if expires is None:
        return False, "UNKNOWN: no usable exp claim"
    seconds = int((expires - now()).total_seconds())
    if seconds <= -int(jwt_settings.LEEWAY.total_seconds()):
        return False, f"EXPIRED at {local_time(expires)} ({-seconds} s ago)"
    return True, f"valid until {local_time(expires)} (in {seconds} s)"


def timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def session_refusal(session: Token, claims: dict[str, Any]) -> str | None:
    if session.revoked_at is not None:
        return f"its session is revoked ({session.revoke_reason or 'no reason'})"
    if session.is_expired:
        return "its session has expired"
    if str(claims.get("sub")) != str(session.user_id):
        return "its sub claim does not name the session's user"
    if not getattr(session.user, "is_active", True):
        return "its user is inactive"
    return None
