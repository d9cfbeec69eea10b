"""``manage.py jwt view``: a session by id, or what can be said of an access token.

A token is shown whether or not it verifies: its header and claims (labelled UNVERIFIED when
it does not), whether a configured key signed it, whether it expired, and its session. The
command fails when the API would refuse the token, saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import CommandError

from cocart_jwt.choices import Refusal, Status
from cocart_jwt.keys import keyring
from cocart_jwt.models import RefreshToken, Token
from cocart_jwt.settings import jwt_settings
from cocart_jwt.tokens import (
    SESSION_ID,
    InvalidToken,
    b64url_decode,
    decode_json_object,
    read_header,
    verify_access_token,
)
from cocart_jwt.utils import now, sha256_hex

from .output import Console, local_time, printable, scope_text, to_json

# What the command says when ``Token.refusal_reason`` refuses the token's session.
SESSION_REFUSALS = {
    Refusal.EXPIRED: "its session has expired",
    Refusal.IDLE: "its session was unused for longer than SESSION_IDLE_TIMEOUT",
    Refusal.USER_INACTIVE: "its user is inactive",
}


def run_view(console: Console, options: dict[str, Any]) -> None:
    value = str(options["token_or_id"]).strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    if value.count(".") == 2:
        view_token(console, value)
        return
    session = Token.objects.select_related("user").filter(pk=value).first()
    if session is None:
        if RefreshToken.objects.filter(token_hash=sha256_hex(value)).exists():
            raise CommandError(
                "That is a refresh token, which this command never shows; give the "
                "session id or an access token."
            )
        raise CommandError("No session with this id (nor is it an access token).")
    show_session(console, session)


def view_token(console: Console, token: str) -> None:
    try:
        header = read_header(token)
    except InvalidToken as exc:
        raise CommandError(f"Not a JWT: {exc}.") from None
    problem: str | None = None
    try:
        claims: dict[str, Any] | None = verify_access_token(token)
    except InvalidToken as exc:
        problem = str(exc)
        claims = None
    undecodable = ""
    if claims is None:
        claims, undecodable = unverified_claims(token)
    show_token(console, token, header, claims, problem, undecodable)
    sid = (claims or {}).get("sid")
    session = (
        Token.objects.select_related("user").filter(pk=sid).first()
        if isinstance(sid, str) and SESSION_ID.fullmatch(sid)
        else None
    )
    refusal: str | None
    if session is None:
        refusal = problem or "its session does not exist"
        console.write("Session: none found." if sid else "Session: no sid claim.")
    else:
        console.write("")
        show_session(console, session)
        refusal = problem or session_refusal(session, claims or {})
    if refusal is not None:
        raise CommandError(f"This access token would be refused: {printable(refusal)}.")
    console.say("This access token is accepted.", style=console.style.SUCCESS)


def show_token(
    console: Console,
    token: str,
    header: dict[str, Any],
    claims: dict[str, Any] | None,
    problem: str | None,
    undecodable: str,
) -> None:
    good, bad = console.style.SUCCESS, console.style.ERROR
    if problem is None:
        console.write("Access token: VERIFIED", style=good)
        label = ""
    else:
        console.write(f"Access token: UNVERIFIED ({printable(problem)})", style=bad)
        label = " (UNVERIFIED)"
    signature_ok, signature = signature_status(token, header)
    console.write(f"Signature: {signature}", style=good if signature_ok else bad)
    expiry_ok, expiry = expiry_status(claims)
    console.write(f"Expiry:    {expiry}", style=good if expiry_ok else bad)
    console.write(f"Header{label}:")
    console.write(to_json(header))
    console.write(f"Claims{label}:")
    console.write(to_json(claims) if claims is not None else f"(undecodable: {undecodable})")
    for name in ("iat", "nbf", "exp"):
        moment = timestamp((claims or {}).get(name))
        if moment is not None:
            console.say(f"  {name}: {local_time(moment)}")


def unverified_claims(token: str) -> tuple[dict[str, Any] | None, str]:
    """The payload read without any check (so also when the signature segment is mangled),
    by the verifier's own strict decoder; else None and why."""
    try:
        return decode_json_object(token.split(".")[1], "payload"), ""
    except InvalidToken as exc:
        return None, str(exc)


def signature_status(token: str, header: dict[str, Any]) -> tuple[bool, str]:
    """Whether a configured key signed ``token``, whatever its claims say."""
    kid = header.get("kid")
    key = keyring().by_kid.get(kid) if isinstance(kid, str) else None
    if key is None:
        return False, f"UNCHECKED: no configured key has the key id {kid!r}"
    if header.get("alg") != key.algorithm:
        return False, f"INVALID: alg {header.get('alg')!r}, but key {kid} is {key.algorithm}"
    signing_input, _, signature = token.rpartition(".")
    try:
        raw_signature = b64url_decode(signature, "signature")
        valid = key.implementation.verify(
            signing_input.encode("ascii"), key.verifier, raw_signature
        )
    except InvalidToken as exc:
        return False, f"UNCHECKED: {exc}"
    except ValueError as exc:  # not ASCII, a signature of the wrong size for the key
        return False, f"UNCHECKED: {type(exc).__name__}"
    if not valid:
        return False, f"INVALID: not signed by key {kid} ({key.algorithm})"
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
    """Why the API would refuse a token of ``session`` carrying ``claims``: the session's own
    answer (``Token.refusal_reason``), then whether the token names the session's user."""
    reason = session.refusal_reason()
    if reason == Refusal.REVOKED:
        return f"its session is revoked ({session.revoke_reason or 'no reason'})"
    if reason is not None:
        return SESSION_REFUSALS[reason]
    if str(claims.get("sub")) != str(session.user_id):
        return "its sub claim does not name the session's user"
    return None


def show_session(console: Console, session: Token) -> None:
    family = RefreshToken.objects.filter(session=session)
    issued = family.count()
    spent = family.filter(used_at__isnull=False).count()
    revoked = "-"
    if session.revoked_at is not None:
        reason = session.get_revoke_reason_display() if session.revoke_reason else "-"
        revoked = f"{local_time(session.revoked_at)} ({reason})"
    user = session.user
    fields = [
        ("Session", session.pk),
        ("User", f"{user.get_username()} (id {user.pk})"),
        ("Status", str(session.status)),
        ("Kind", session.kind),
        ("Scopes", scope_text(session)),
        ("Description", session.description or "-"),
        ("Created", local_time(session.created_at)),
        ("Expires", local_time(session.expires_at)),
        ("Last used", local_time(session.last_used_at) if session.last_used_at else "never"),
        ("Revoked", revoked),
        ("IP", session.ip or "-"),
        ("User agent", session.user_agent or "-"),
        ("Refreshable", "yes" if session.refreshable else "no"),
        ("Refresh tokens", f"{issued} issued, {spent} spent (never shown)"),
        ("Claims", to_json(session.claims, indent=None)),
    ]
    status_style: dict[str, Callable[[str], str]] = {
        Status.VALID: console.style.SUCCESS,
        Status.EXPIRED: console.style.WARNING,
        Status.REVOKED: console.style.ERROR,
    }
    for name, value in fields:
        style = status_style.get(value) if name == "Status" else None
        console.write(f"{name + ':':<16}{printable(value)}", style=style)
