"""The registry's vocabularies: what kind of session a row is, why it was revoked, its status,
why it cannot be used, what a security event records.

Imports nothing of the package, so every layer may use it.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Kind(models.TextChoices):
    """Who started a session, which decides what its tokens may do and which limit counts it."""

    # A login (password, or a login carrying its Bearer): MAX_TOKENS_PER_USER, refreshable.
    SESSION = "session", _("Login session")
    # Made by its user through tokens/ (or for them in the admin or the CLI, with scopes): named,
    # scoped, not refreshable, MAX_PATS_PER_USER, at most PAT_MAX_LIFETIME.
    PERSONAL = "personal", _("Personal access token")
    # Made in the admin or the CLI without scopes: no auth_time, in no limit.
    ADMIN = "admin", _("Made by an administrator")


class RevokeReason(models.TextChoices):
    LOGOUT = "logout", _("Logged out")
    LOGOUT_ALL = "logout_all", _("Logged out everywhere")
    LOGOUT_OTHERS = "logout_others", _("Logged out from another session")
    SESSION_DELETED = "session_deleted", _("Session deleted by its user")
    TOKEN_DELETED = "token_deleted", _("Personal token deleted by its user")
    REVOCATION_REQUEST = "revocation_request", _("Revoked through the revocation endpoint")
    REFRESH_TOKEN_REUSED = "refresh_token_reused", _("Refresh token reused")
    MAX_TOKENS = "max_tokens", _("Too many sessions; oldest evicted")
    PASSWORD_CHANGE = "password_change", _("Password changed")
    EMAIL_CHANGE = "email_change", _("Email changed")
    DEACTIVATION = "deactivation", _("User deactivated")
    ADMIN = "admin", _("Revoked by an administrator")
    COMMAND = "command", _("Revoked from the command line")


class Status(models.TextChoices):
    VALID = "valid", _("Valid")
    EXPIRED = "expired", _("Expired")
    REVOKED = "revoked", _("Revoked")


class Refusal(models.TextChoices):
    """Why no token of a session is accepted (``Token.refusal_reason``), checked in this order."""

    REVOKED = "revoked", _("The session is revoked.")
    EXPIRED = "expired", _("The session has expired.")
    IDLE = "idle", _("The session was unused for too long.")
    USER_INACTIVE = "user_inactive", _("The user of the session is inactive.")

    def logged(self, sid: str) -> str:
        """The sentence for the ``cocart_jwt`` log (never for the client): which session, why."""
        if self is Refusal.USER_INACTIVE:
            return f"user of session {sid} is inactive"
        if self is Refusal.IDLE:
            return f"session {sid} was unused for longer than SESSION_IDLE_TIMEOUT"
        return f"session {sid} is {self.value}"


class Event(models.TextChoices):
    """What a security event (``TokenEvent``) records: a moment of a session's life."""

    ISSUED = "issued", _("Session started")
    REFRESHED = "refreshed", _("Tokens refreshed")
    REUSE_GRACE = "reuse_grace", _("Refresh retried within the grace period")
    REUSED = "reused", _("Spent refresh token presented again")
    REVOKED = "revoked", _("Session revoked")
    LOGIN_LINK_USED = "login_link_used", _("Login link used")
    REAUTHENTICATED = "reauthenticated", _("Password confirmed again")
