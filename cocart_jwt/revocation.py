"""Revoking sessions, whatever revokes them: ``revoke`` (``TokenQuerySet.revoke``) and what
follows it before its commit (``announce_revoked``, which a login's eviction calls too)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import router, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from . import events
from .browser_sessions import end_browser_sessions
from .choices import Event
from .signals import token_revoked
from .store import cached
from .utils import now

if TYPE_CHECKING:
    from datetime import datetime

    from django.http import HttpRequest

    from .models import Token


def announce_revoked(
    model: type[Token], sessions: list[Token], revoked: list[Token], reason: str
) -> None:
    """What follows a revocation, before its commit: tombstone the cache entries of
    ``sessions`` (revoked now, or repaired), end the browser sessions their login links started
    (``has_browser_session``), send ``token_revoked`` for those ``revoked`` now.

    Before the commit: a rollback leaves a tombstone on a live session (refused until the
    entry expires) or a browser signed out, never a revoked session that still works.
    """
    cached.mark_revoked(session.pk for session in sessions)
    started = [s.pk for s in sessions if getattr(s, "has_browser_session", False)]
    if started:
        links = model._meta.get_field("login_links").related_model
        sealed = (
            links._default_manager.using(router.db_for_write(links))
            .filter(session_id__in=started)
            .exclude(django_session_key="")
            .values_list("pk", "django_session_key")
        )
        end_browser_sessions(sealed)
    for session in revoked:
        token_revoked.send(model, token=session, user=session.user, reason=reason)


def revoke(
    sessions: QuerySet[Token], reason: str, *, request: HttpRequest | None = None
) -> list[Token]:
    """Revoke every unrevoked session of ``sessions``; the sessions this call revoked.

    Those here that were revoked already (by a raw UPDATE, say) but have not expired are
    repaired on the way, with no extra query: their cache entries are tombstoned and their
    login-link browser sessions ended, as for the sessions revoked now. Expired ones need
    neither: cache entries and login-link browser sessions never outlive their session.
    """
    at = now()
    with transaction.atomic(savepoint=False):
        locked = lock_for_revoke(sessions, at)
        revoked = [session for session in locked if session.revoked_at is None]
        if revoked:
            sessions.model._default_manager.filter(pk__in=[s.pk for s in revoked]).update(
                revoked_at=at, revoke_reason=reason
            )
        for session in revoked:
            session.revoked_at, session.revoke_reason = at, reason
        events.record_each(Event.REVOKED, revoked, request=request, reason=reason, at=at)
        announce_revoked(sessions.model, locked, revoked, reason)
    return revoked


def lock_for_revoke(sessions: QuerySet[Token], at: datetime) -> list[Token]:
    """The sessions to revoke (unrevoked) or repair (revoked, unexpired), locked.

    Each knows, from the same query, whether a login link started a browser session of
    it: the common case (none) costs no second query.
    """
    links = sessions.model._meta.get_field("login_links").related_model._default_manager
    started = links.filter(session_id=OuterRef("pk")).exclude(django_session_key="")
    return list(
        sessions.filter(Q(revoked_at__isnull=True) | Q(expires_at__gt=at))
        .annotate(has_browser_session=Exists(started))
        .select_related("user")
        .select_for_update(of=("self",))
        .order_by("created_at")
    )
