"""Security events: the log of a session's life a user can read (``events/``) and staff audit.

One ``TokenEvent`` row per life-cycle moment (``choices.Event``): a session issued, refreshed,
retried within the reuse grace, its spent refresh token presented again, revoked (one row per
session, with the revoke reason), a login link used, the password confirmed again. Never one
per authenticated request: those stay one query (strict) or none (cached).

An event names its session by ``sid`` alone, with no foreign key: ``jwt cleanup`` deletes dead
sessions, while their events stay until ``EVENT_RETENTION``. They go with their user.

The model lives here, beside ``record``, so the managers can write events without importing
``models.py`` (which imports them); ``models.py`` exports it with the registry's models.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .choices import Event, RevokeReason
from .http import client_ip, user_agent
from .utils import now

if TYPE_CHECKING:
    from django.http import HttpRequest


class TokenEvent(models.Model):
    """A security event of a session: what happened, why (a revocation's reason), from where."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="jwt_events",
        verbose_name=_("user"),
        db_index=False,  # the (user, at, id) index leads with it
        # No foreign-key constraint: checking one locks the user's row (FOR KEY SHARE), and a
        # refresh or logout would wait for a login of the same user holding that row's lock.
        # Django still deletes a user's events with the user (CASCADE is Django's).
        db_constraint=False,
    )
    sid = models.CharField(_("session id"), max_length=64)
    event = models.CharField(_("event"), max_length=32, choices=Event.choices)
    reason = models.CharField(_("reason"), max_length=32, choices=RevokeReason.choices, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=255, blank=True)
    at = models.DateTimeField(_("at"), default=now)

    class Meta:
        verbose_name = _("security event")
        verbose_name_plural = _("security events")
        ordering = ["-at", "-id"]
        indexes = [
            # A user's events, newest first (events/): read backwards.
            models.Index(fields=["user", "at", "id"], name="cocart_jwt_event_user_idx"),
            # A session's events (the admin's token page, search by sid).
            models.Index(fields=["sid", "at"], name="cocart_jwt_event_sid_idx"),
            # Pruning by age (jwt cleanup), and the admin's list order read backwards.
            models.Index(fields=["at", "id"], name="cocart_jwt_event_at_idx"),
        ]

    def __str__(self) -> str:
        return str(
            _("%(event)s of session %(sid)s") % {"event": self.get_event_display(), "sid": self.sid}
        )

    def __repr__(self) -> str:
        return f"<TokenEvent {self.pk} {self.event} sid={self.sid}>"


def new_event(
    event: str,
    session: Any | None,
    *,
    request: HttpRequest | Any | None = None,
    reason: str = "",
    at: datetime | None = None,
) -> TokenEvent:
    """An unsaved event of ``session``, with the client of ``request`` when there is one.
    Without a session, the caller fills in its user and sid (the refresh statement does)."""
    row = TokenEvent(
        event=event,
        reason=reason,
        ip=client_ip(request) if request is not None else None,
        user_agent=user_agent(request) if request is not None else "",
        at=at or now(),
    )
    if session is not None:
        row.user_id, row.sid = session.user_id, session.pk
    return row


def record(
    event: str,
    session: Any,
    *,
    request: HttpRequest | Any | None = None,
    reason: str = "",
    at: datetime | None = None,
) -> TokenEvent:
    """Write one security event (an ``Event``) of ``session``: what every writer calls.

    ``request`` is the request that caused it, when there is one: its client IP and user
    agent are recorded. It joins the caller's transaction.
    """
    return record_each(event, [session], request=request, reason=reason, at=at)[0]


def record_each(
    event: str,
    sessions: Iterable[Any],
    *,
    request: HttpRequest | Any | None = None,
    reason: str = "",
    at: datetime | None = None,
) -> list[TokenEvent]:
    """The same event for each of ``sessions`` (a revocation of many), in one INSERT."""
    at = at or now()
    rows = [new_event(event, s, request=request, reason=reason, at=at) for s in sessions]
    return TokenEvent.objects.bulk_create(rows) if rows else []
