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
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import import_module
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.contrib.sessions.backends.signed_cookies import SessionStore as CookieSessionStore
from django.db import DatabaseError, router, transaction
from django.urls import reverse
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _

from .managers import password_fingerprint, password_unchanged, user_is_active
from .models import LoginLink, Token
from .settings import jwt_settings
from .utils import now, sha256_hex

if TYPE_CHECKING:
    from django.contrib.sessions.backends.base import SessionBase
    from django.http import HttpRequest
    from django.utils.functional import Promise

logger = logging.getLogger("cocart_jwt")

LINK_TOKEN_BYTES = 32  # 256 bits; token_urlsafe(32) is 43 characters
LINK_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")

# A session key fits LoginLink.django_session_key (128) once sealed: 12 + 64 + 16 bytes in
# base64url. Django's own keys are 32 characters.
KEY_MAX_LENGTH = 64
SEAL_SALT = "cocart_jwt.login_links.django_session_key"
NONCE_BYTES = 12

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
    """A new single-use link of ``session``: LOGIN_LINK_LIFETIME, never past the session."""
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
    link = (
        LoginLink.objects.select_related("session__user").filter(token_hash=sha256_hex(raw)).first()
    )
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
    if session.revoked_at is not None or session.expires_at <= at:
        raise session_ended("session revoked or expired")
    if not user_is_active(session.user):
        raise gone(_("This account cannot sign in."), "user inactive")
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


def consume(raw: Any) -> LoginLink:
    """Use the link of ``raw`` exactly once; return it (with session and user) or raise.

    The conditional UPDATE is the only arbiter: of N concurrent requests one updates the row
    and wins; the others update nothing and are told the link was used.
    """
    link = find(raw)
    at = now()
    won = LoginLink.objects.filter(
        token_hash=link.token_hash, used_at__isnull=True, expires_at__gt=at
    ).update(used_at=at)
    if not won:
        try:
            link.refresh_from_db(fields=["used_at", "expires_at"])
        except LoginLink.DoesNotExist:  # its session was deleted meanwhile
            raise malformed("unknown token") from None
        check_usable(link, at)
        raise gone(_("This login link has already been used. Ask for a new one."), "used")
    link.used_at = at
    check_usable(link, at, consumed=True)
    return link


# -- the Django session a link starts ---------------------------------------------------


def session_store() -> type[SessionBase]:
    return import_module(settings.SESSION_ENGINE).SessionStore


def revocable_browser_sessions() -> bool:
    """False when sessions live in the cookie itself (signed_cookies): no server can end one."""
    return not issubclass(session_store(), CookieSessionStore)


def bind_browser_session(link: LoginLink, browser: SessionBase) -> bool:
    """Tie the Django session ``link`` just signed in to the link's registry session.

    It expires no later than the registry session, and its key is recorded on the link for
    every revocation to delete. False (nothing recorded) when the registry session was
    revoked meanwhile: the caller must end the Django session.
    """
    browser.set_expiry(browser_expiry(link.session.expires_at, browser))
    key = browser_key(browser)
    with transaction.atomic(using=router.db_for_write(Token)):
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


def end_browser_sessions(sids: Collection[str]) -> None:
    """Delete, through the session engine, the Django sessions login links of ``sids`` started.

    Called by ``TokenQuerySet.revoke`` inside its transaction, before the commit.
    """
    links = LoginLink.objects.using(router.db_for_write(LoginLink))
    sealed = (
        links.filter(session_id__in=sids)
        .exclude(django_session_key="")
        .values_list("pk", "django_session_key")
    )
    keys = [unseal(value, pk) for pk, value in sealed]
    store = session_store()()
    failed = 0
    for key in keys:
        if key is None:  # sealed under a SECRET_KEY no longer in use: cannot be found
            failed += 1
            continue
        try:
            store.delete(key)
        except DatabaseError:
            raise  # the revocation's own transaction may be broken: it fails whole
        except Exception:  # a cache outage: the revocation itself must still hold
            failed += 1
    if failed:
        logger.error(
            "Could not end %d of %d browser session(s) started by login links", failed, len(keys)
        )


# -- the Django session key at rest ------------------------------------------------------
# It is a credential (whoever holds it is signed in), so the database never holds it in clear:
# AES-GCM under a key derived from SECRET_KEY, bound to its link row. Opened with
# SECRET_KEY_FALLBACKS too, so a rotation keeps revocations working.


def _sealing_keys() -> list[bytes]:
    in_use = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [
        salted_hmac(SEAL_SALT, b"", secret=secret, algorithm="sha256").digest() for secret in in_use
    ]


def seal(session_key: str, link_pk: Any) -> str:
    nonce = secrets.token_bytes(NONCE_BYTES)
    box = AESGCM(_sealing_keys()[0]).encrypt(nonce, session_key.encode(), str(link_pk).encode())
    return urlsafe_b64encode(nonce + box).decode("ascii")


def unseal(value: str, link_pk: Any) -> str | None:
    """The session key sealed in ``value``; None when no key in use opens it."""
    try:
        raw = urlsafe_b64decode(value.encode("ascii"))
    except ValueError:
        return None
    nonce, box = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    for key in _sealing_keys():
        try:
            return AESGCM(key).decrypt(nonce, box, str(link_pk).encode()).decode()
        except (InvalidTag, ValueError):
            continue
    return None
