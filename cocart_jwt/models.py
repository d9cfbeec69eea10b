"""The token registry: one ``Token`` row per session, one ``RefreshToken`` row per refresh token;
``TokenEvent`` (defined in events.py, exported here) for the security events of sessions."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .choices import Event, Kind, Refusal, RevokeReason, Status
from .events import TokenEvent
from .managers import TokenManager
from .settings import jwt_settings
from .utils import now

if TYPE_CHECKING:
    from django.http import HttpRequest


__all__ = [
    "Event",
    "Kind",
    "LoginLink",
    "RefreshToken",
    "Refusal",
    "RevokeReason",
    "Status",
    "Token",
    "TokenEvent",
    "new_session_id",
    "user_is_active",
]


def new_session_id() -> str:
    """128 random bits, url-safe; never starting with "-" (a command line would read an option)."""
    while (sid := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return sid


def user_is_active(user: Any) -> bool:
    """Whether ``user`` may hold tokens: ``is_active``, or active when the user model has no
    such field (as Django's ``ModelBackend.user_can_authenticate`` reads it)."""
    return bool(getattr(user, "is_active", True))


class Token(models.Model):
    """A session of the registry: what CoCart calls a PAT and AAM a registry entry."""

    id = models.CharField(
        _("session id"), primary_key=True, max_length=64, default=new_session_id, editable=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="jwt_tokens",
        verbose_name=_("user"),
    )
    created_at = models.DateTimeField(_("created at"), default=now, editable=False)
    expires_at = models.DateTimeField(_("expires at"))
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoke_reason = models.CharField(
        _("revoke reason"), max_length=32, choices=RevokeReason.choices, blank=True
    )
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=255, blank=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    refreshable = models.BooleanField(_("refreshable"), default=True)
    claims = models.JSONField(_("additional claims"), default=dict, blank=True)
    # An HMAC of the user's password hash at issue: a refresh after a password change fails
    # even when the change bypassed save() (and REVOKE_ON).
    password_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    # Issued without its holder's request (CLI, admin for another user): under BIND_TO_IP /
    # BIND_TO_USER_AGENT the first use records the holder's IP and user agent.
    bind_on_first_use = models.BooleanField(default=False, editable=False)
    # When the user last presented credentials for this session (a login, a reauthentication):
    # every access token carries it as auth_time. None for sessions made in the admin, the CLI
    # or for a login link, whose holder never did: RecentLogin refuses their tokens.
    authenticated_at = models.DateTimeField(
        _("authenticated at"), null=True, blank=True, editable=False
    )
    # Who started it: a login, its user through tokens/ (a personal access token, named by its
    # description), or an administrator. Decides the limit that counts it and what its tokens
    # may do (docs/personal-tokens.md).
    # New columns have database defaults too: operators' SQL inserts rows without naming them.
    kind = models.CharField(
        _("kind"),
        max_length=16,
        choices=Kind.choices,
        default=Kind.SESSION,
        db_default=Kind.SESSION,
    )
    # A personal token's scopes, names from the SCOPES setting: its access token's scope claim.
    scopes = models.JSONField(_("scopes"), default=list, db_default=[], blank=True)
    # DPoP (RFC 9449): the RFC 7638 thumbprint of the key a login or refresh proved possession
    # of; its access tokens carry it as cnf.jkt and are accepted only with a proof by that key.
    # Empty: a bearer session.
    dpop_jkt = models.CharField(
        _("DPoP key thumbprint"), max_length=64, blank=True, editable=False, db_default=""
    )

    objects = TokenManager()

    # Set by the authentication class on the session it returns as ``request.auth``.
    access_claims: dict[str, Any]

    class Meta:
        verbose_name = _("token")
        verbose_name_plural = _("tokens")
        ordering = ["-created_at"]
        permissions = [
            ("issue_for_others", _("Can issue tokens and login links for other users")),
            ("introspect_token", _("Can introspect any token (RFC 7662)")),
        ]
        indexes = [
            models.Index(
                fields=["user", "created_at"],
                condition=Q(revoked_at__isnull=True),
                name="cocart_jwt_token_live_idx",
            ),
            models.Index(fields=["expires_at"], name="cocart_jwt_token_expires_idx"),
            models.Index(fields=["revoked_at"], name="cocart_jwt_token_revoked_idx"),
            # The admin's order (-created_at, then the -pk Django appends), read backwards.
            models.Index(fields=["created_at", "id"], name="cocart_jwt_token_created_idx"),
        ]

    def __str__(self) -> str:
        return str(_("Token %(id)s of %(user)s") % {"id": self.pk, "user": self.user_id})

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= now()

    def refusal_reason(self, at: datetime | None = None) -> Refusal | None:
        """Why no token of this session is accepted at ``at`` (default: now), or None when
        its tokens are: the one answer to "is this session usable?", for the verifier, the
        refresh, login links, the admin and the CLI. Needs ``self.user`` (one query unless
        it was selected with the session)."""
        at = at or now()
        if self.revoked_at is not None:
            return Refusal.REVOKED
        if self.expires_at <= at:
            return Refusal.EXPIRED
        if self.idle_at(at):
            return Refusal.IDLE
        if not user_is_active(self.user):
            return Refusal.USER_INACTIVE
        return None

    def idle_at(self, at: datetime) -> bool:
        """Whether, at ``at``, the session has gone unused for SESSION_IDLE_TIMEOUT: since its
        ``last_used_at``, written at most once per TOUCH_INTERVAL, or its creation."""
        timeout = jwt_settings.SESSION_IDLE_TIMEOUT
        return timeout is not None and (self.last_used_at or self.created_at) + timeout <= at

    @property
    def status(self) -> str:
        if self.is_revoked:
            return Status.REVOKED
        return Status.EXPIRED if self.is_expired else Status.VALID

    def revoke(self, reason: str, *, request: HttpRequest | None = None) -> bool:
        """Revoke this session; False when it already was.

        Revoked already (perhaps by a raw update) and not expired, it is repaired all the
        same by ``TokenQuerySet.revoke``: its cache entry is tombstoned and the browser
        sessions its login links started are ended.
        """
        revoked = Token.objects.filter(pk=self.pk).revoke(reason, request=request)
        if revoked:
            self.revoked_at, self.revoke_reason = revoked[0].revoked_at, reason
        return bool(revoked)


class RefreshToken(models.Model):
    """One refresh token ever issued for a session (its family); only the SHA-256 is kept."""

    session = models.ForeignKey(
        Token, on_delete=models.CASCADE, related_name="refresh_tokens", verbose_name=_("session")
    )
    token_hash = models.CharField(_("token hash"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created at"), default=now, editable=False)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)
    # The token whose rotation by refresh/ (or retry within REFRESH_REUSE_GRACE) made this one;
    # None for the tokens of a login or renewal. The grace reads it on the session's newest
    # row only. No constraint, no index, no cascade: a session's family is still deleted in
    # one statement, without loading it (Django cannot fast-delete rows that others cascade to).
    parent = models.ForeignKey(
        "self",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        verbose_name=_("parent"),
    )

    class Meta:
        verbose_name = _("refresh token")
        verbose_name_plural = _("refresh tokens")

    def __str__(self) -> str:
        return str(
            _("Refresh token %(id)s of session %(session)s")
            % {
                "id": self.pk,
                "session": self.session_id,
            }
        )

    def __repr__(self) -> str:
        return f"<RefreshToken {self.pk} session={self.session_id} used={self.used_at is not None}>"


class LoginLink(models.Model):
    """A single-use passwordless login link of a session; only the SHA-256 of its token is kept.

    Consumed by one conditional UPDATE (``cocart_jwt.login_links.consume``): one winner,
    whatever the concurrency. It never outlives its session.
    """

    session = models.ForeignKey(
        Token, on_delete=models.CASCADE, related_name="login_links", verbose_name=_("session")
    )
    token_hash = models.CharField(_("token hash"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created at"), default=now, editable=False)
    expires_at = models.DateTimeField(_("expires at"))
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    # An HMAC of the user's password hash when the link was made: any password change since,
    # even one that bypassed save(), kills the link.
    password_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    # The Django session the link started, sealed (login_links.seal): every revocation of
    # the registry session deletes it.
    django_session_key = models.CharField(max_length=128, blank=True, editable=False)

    class Meta:
        verbose_name = _("login link")
        verbose_name_plural = _("login links")

    def __str__(self) -> str:
        return str(
            _("Login link %(id)s of session %(session)s")
            % {"id": self.pk, "session": self.session_id}
        )

    def __repr__(self) -> str:
        return f"<LoginLink {self.pk} session={self.session_id} used={self.used_at is not None}>"
