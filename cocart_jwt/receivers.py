"""``REVOKE_ON``: changes to a user that revoke all of that user's sessions.

Password, email and ``is_active`` changes are seen through ``save()`` on the user model;
a raw ``QuerySet.update()`` bypasses them (refresh still checks the password, see managers).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model, user_logged_out
from django.db.models.signals import post_delete, post_save, pre_save

from .models import RevokeReason, Token
from .primary import on_primary, primary_db
from .settings import jwt_settings
from .store import cached

PENDING_ATTR = "_cocart_jwt_revoke_reason"


def watched_fields(model: Any) -> dict[str, str]:
    """The REVOKE_ON events that are on, mapped to the user model's concrete field for each."""
    fields = {
        RevokeReason.PASSWORD_CHANGE: "password",
        RevokeReason.EMAIL_CHANGE: model.get_email_field_name(),
        RevokeReason.DEACTIVATION: "is_active",
    }
    concrete = {field.attname for field in model._meta.concrete_fields}
    events = set(jwt_settings.REVOKE_ON)
    return {event: name for event, name in fields.items() if event in events and name in concrete}


def revoking_change(event: str, old: Any, new: Any) -> bool:
    if event == RevokeReason.DEACTIVATION:
        return bool(old) and not new
    return (old or "") != (new or "")


def note_revoking_change(
    sender: Any, instance: Any, raw: bool = False, using: str | None = None, **kwargs: Any
) -> None:
    if raw or instance._state.adding or instance.pk is None:
        return
    watched = watched_fields(sender)
    update_fields = kwargs.get("update_fields")
    if update_fields is not None:
        watched = {event: name for event, name in watched.items() if name in update_fields}
    if not watched:
        return
    # The row as it is where this save writes it: a replica's copy may be older still, and
    # equal to the new value (a password changed back) or missing (a user made a moment ago).
    current = sender._default_manager.using(using or primary_db(sender)).filter(pk=instance.pk)
    old = current.values(*watched.values()).first()
    if old is None:
        return
    for event, name in watched.items():
        if revoking_change(event, old[name], getattr(instance, name)):
            setattr(instance, PENDING_ATTR, event)
            return


def revoke_after_change(sender: Any, instance: Any, **kwargs: Any) -> None:
    reason = instance.__dict__.pop(PENDING_ATTR, None)
    if reason is not None:
        Token.objects.revoke_all(instance, reason)
    elif cached.enabled() and set(kwargs.get("update_fields") or ()) != {"last_login"}:
        # Cached snapshots hold user fields (is_staff...): send their requests to the database.
        # From the primary: a replica may not list the sessions made a moment ago.
        live = on_primary(Token.objects.live().filter(user=instance)).values_list("pk", flat=True)
        cached.mark_stale(live)


def tombstone_deleted_session(sender: Any, instance: Token, **kwargs: Any) -> None:
    # A revoked session has its tombstone already; an expired one has no entry (entries
    # never outlive their session). Only a live session deleted outright needs one.
    # Deferred fields cannot be read any more (the row is gone): tombstone to be safe.
    loaded = not {"revoked_at", "expires_at"} & instance.get_deferred_fields()
    if not loaded or (instance.revoked_at is None and not instance.is_expired):
        cached.mark_revoked([instance.pk])


def revoke_on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None and RevokeReason.LOGOUT in jwt_settings.REVOKE_ON:
        Token.objects.revoke_all(user, RevokeReason.LOGOUT)


def connect() -> None:
    user_model = get_user_model()
    pre_save.connect(note_revoking_change, sender=user_model, dispatch_uid="cocart_jwt_pre_save")
    post_save.connect(revoke_after_change, sender=user_model, dispatch_uid="cocart_jwt_post_save")
    user_logged_out.connect(revoke_on_logout, dispatch_uid="cocart_jwt_logged_out")
    post_delete.connect(tombstone_deleted_session, sender=Token, dispatch_uid="cocart_jwt_deleted")
