"""What follows the revocation of sessions, whatever revoked them, before its commit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import router

from .browser_sessions import end_browser_sessions
from .signals import token_revoked
from .store import cached

if TYPE_CHECKING:
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
