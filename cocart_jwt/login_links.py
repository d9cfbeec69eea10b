"""Single-use passwordless login links: issue, inspect, consume (docs/security.md, "Login links").

A link token is ``secrets.token_urlsafe(32)``; only its SHA-256 is stored, in a ``LoginLink``
row of its session. It is consumed by one conditional UPDATE (unused and unexpired), so of any
number of concurrent uses exactly one wins. It is refused when its session is revoked or
expired, its user inactive, or the user's password changed since it was made (by any means:
the link keeps a fingerprint of the password hash). It is not a JWT and has no refresh-token
row: neither the authentication class nor the refresh endpoint accepts it. It is never logged.

The Django session a link starts is tied to its registry session (docs/security.md,
"Login links"): it expires no later, and its key, recorded on the link, is deleted
through the session engine by every revocation (``TokenQuerySet.revoke``).
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from . import events
from .browser_sessions import KEY_MAX_LENGTH, revocable_browser_sessions, seal
from .choices import Event, Kind, Refusal
from .models import LoginLink, Token
from .passwords import password_fingerprint, password_unchanged
from .primary import on_primary, primary_db
from .settings import jwt_settings
from .utils import now, sha256_hex

if TYPE_CHECKING:
    from django.contrib.sessions.backends.base import SessionBase
    from django.http import HttpRequest
    from django.utils.functional import Promise

logger = logging.getLogger("cocart_jwt")

LINK_TOKEN_BYTES = 32  # 256 bits; token_urlsafe(32) is 43 characters
LINK_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")


BAD_REQUEST = 400
GONE = 410


class LinkRefused(Exception):
    """A login link cannot be used. ``status`` is 400 (malformed or unknown) or 410 (expired,
    used, revoked); ``message`` is for the person; ``reason`` for the log (never the token).
    """

    def __init__(self, status: int, message: str | Promise, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class IssuedLink:
    """A new login link: the raw token exists only here, for one response."""

    link: LoginLink
    token: str = field(repr=False)  # never in a repr: it could reach a log

    @property
    def expires_at(self) -> datetime:
        return self.link.expires_at

    def url(self, request: HttpRequest) -> str:
        return link_url(request, self.token)


def link_url(request: HttpRequest, token: str) -> str:
    """The absolute URL of the login link for ``token``."""
    base = request.build_absolute_uri(reverse("cocart_jwt:login-link"))
    return f"{base}?{urlencode({'token': token})}"


def issue(session: Token, created_by: Any = None, at: datetime | None = None) -> IssuedLink:
    """A new single-use link of ``session``: LOGIN_LINK_LIFETIME, never past the session.

    Never for a personal access token: a link signs its user in to a Django session with all
    their rights, and the token is limited to its scopes."""
    if session.kind == Kind.PERSONAL:
        raise ValueError("a personal access token has no login link")
    at = at or now()
    raw = secrets.token_urlsafe(LINK_TOKEN_BYTES)
    link = LoginLink.objects.create(
        session=session,
        token_hash=sha256_hex(raw),
        created_at=at,
        expires_at=min(at + jwt_settings.LOGIN_LINK_LIFETIME, session.expires_at),
        created_by=created_by if getattr(created_by, "pk", None) is not None else None,
        password_fingerprint=password_fingerprint(session.user),
    )
    return IssuedLink(link=link, token=raw)


def malformed(reason: str) -> LinkRefused:
    return LinkRefused(
        BAD_REQUEST,
        _("This login link is not valid. Check that it was copied whole, or ask for a new one."),
        reason,
    )


def gone(message: str | Promise, reason: str) -> LinkRefused:
    return LinkRefused(GONE, message, reason)


def session_ended(reason: str) -> LinkRefused:
    return gone(_("The session of this login link has ended. Ask for a new one."), reason)


def outdated(reason: str) -> LinkRefused:
    return gone(_("This login link can no longer be used. Ask for a new one."), reason)


def find(raw: Any) -> LoginLink:
    """The link of token ``raw`` with its session and user, or ``LinkRefused`` (400)."""
    if not isinstance(raw, str) or not LINK_TOKEN_PATTERN.match(raw):
        raise malformed("malformed token")
    links = LoginLink.objects.select_related("session__user")
    # From the primary: a replica may still show a used link, a revoked session, an old password.
    link = on_primary(links.filter(token_hash=sha256_hex(raw))).first()
    if link is None:
        raise malformed("unknown token")
    return link


def check_usable(link: LoginLink, at: datetime, *, consumed: bool = False) -> None:
    """Raise ``LinkRefused`` (410) when ``link`` cannot sign anyone in at ``at``.

    ``consumed`` says this request itself just marked the link used.
    """
    if link.used_at is not None and not consumed:
        raise gone(_("This login link has already been used. Ask for a new one."), "used")
    if link.expires_at <= at:
        raise gone(_("This login link has expired. Ask for a new one."), "expired")
    session = link.session
    refusal = session.refusal_reason(at)
    if refusal is Refusal.USER_INACTIVE:
        raise gone(_("This account cannot sign in."), "user inactive")
    if refusal is not None:
        raise session_ended(f"session {refusal.value}")
    if not link.password_fingerprint:
        # Made before links kept a fingerprint: a password change cannot be ruled out.
        raise outdated("no password fingerprint (made before they were kept)")
    if not password_unchanged(session.user, link.password_fingerprint):
        raise outdated("password changed since the link was made")


def inspect(raw: Any) -> LoginLink:
    """For the confirm page (GET): the usable link of ``raw``; it stays unused."""
    link = find(raw)
    check_usable(link, now())
    return link


def consume(raw: Any, request: HttpRequest | None = None) -> LoginLink:
    """Use the link of ``raw`` exactly once; return it (with session and user) or raise.

    The conditional UPDATE is the only arbiter: of N concurrent requests one updates the row
    and wins; the others update nothing and are told the link was used. The winner writes
    the session's ``login_link_used`` event, from the client of ``request``.
    """
    link = find(raw)
    at = now()
    won = LoginLink.objects.filter(
        token_hash=link.token_hash, used_at__isnull=True, expires_at__gt=at
    ).update(used_at=at)
    if not won:
        try:
            link.refresh_from_db(using=primary_db(LoginLink), fields=["used_at", "expires_at"])
        except LoginLink.DoesNotExist:  # its session was deleted meanwhile
            raise malformed("unknown token") from None
        check_usable(link, at)
        raise gone(_("This login link has already been used. Ask for a new one."), "used")
    link.used_at = at
    check_usable(link, at, consumed=True)
    events.record(Event.LOGIN_LINK_USED, link.session, request=request, at=at)
    return link


# -- the Django session a link starts ---------------------------------------------------


def bind_browser_session(link: LoginLink, browser: SessionBase) -> bool:
    """Tie the Django session ``link`` just signed in to the link's registry session.

    It expires no later than the registry session, and its key is recorded on the link for
    every revocation to delete. False (nothing recorded) when the registry session was
    revoked meanwhile: the caller must end the Django session.
    """
    browser.set_expiry(browser_expiry(link.session.expires_at, browser))
    key = browser_key(browser)
    with transaction.atomic(using=primary_db(Token)):
        # A revocation holds this row lock until it commits: either it runs after us and
        # finds the key recorded below, or we wait for it and find the session revoked.
        live = Token.objects.select_for_update().live(now()).filter(pk=link.session_id).exists()
        if live and key:
            LoginLink.objects.filter(pk=link.pk).update(django_session_key=seal(key, link.pk))
    return live


def browser_expiry(registry_expires_at: datetime, browser: SessionBase) -> datetime:
    """A fixed date (it never slides forward): the earliest of the registry session's end,
    the session's own expiry and what SESSION_COOKIE_AGE gives from now."""
    cookie_age = now() + timedelta(seconds=settings.SESSION_COOKIE_AGE)
    return min(registry_expires_at, browser.get_expiry_date(), cookie_age)


def browser_key(browser: SessionBase) -> str:
    """The key a revocation can delete the session by; "" when there is none to record."""
    if not revocable_browser_sessions():
        return ""  # the key would be the signed session itself; W006 warns of this engine
    if browser.session_key is None:  # login() flushed another user's session: none yet
        browser.save()
    key = browser.session_key or ""
    if len(key) > KEY_MAX_LENGTH:  # a custom engine's: it would not fit, so cannot be ended
        logger.warning("A session key of SESSION_ENGINE is too long to record on the link")
        return ""
    return key
