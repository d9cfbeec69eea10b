"""Who may issue tokens and login links for whom (docs/security.md, "Who may issue for whom").

A token or a login link issued for another user signs its holder in as that user: issuing
for someone else is impersonation. ``refusal`` is the one rule; the admin's create form, its
mint view and its user autocomplete all ask it. ``issuable_users`` narrows a user list in SQL
for the form's choices and the autocomplete; ``refusal`` keeps the last word on each target,
since permissions may come from backends SQL cannot see.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from django.contrib.auth import get_permission_codename, get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Q, QuerySet

from .models import Token, user_is_active

if TYPE_CHECKING:
    from django.contrib.auth.models import Permission

logger = logging.getLogger("cocart_jwt")

Action = Literal["add", "change"]
CREATE: Action = "add"  # the create form: needs add_token
MINT: Action = "change"  # the mint button: needs change_token
ISSUE_FOR_OTHERS = f"{Token._meta.app_label}.issue_for_others"


def permission(action: Action) -> str:
    """``cocart_jwt.add_token`` for CREATE, ``cocart_jwt.change_token`` for MINT."""
    return f"{Token._meta.app_label}.{get_permission_codename(action, Token._meta)}"


def may_issue_for_anyone(actor: Any, action: Action) -> bool:
    """An active superuser with the action's permission: no target is refused."""
    return bool(getattr(actor, "is_superuser", False)) and actor.has_perm(permission(action))


def may_issue_for_others(actor: Any, action: Action) -> bool:
    """Whether any user but the actor may be a target (a superuser, or issue_for_others)."""
    if not actor.has_perm(permission(action)):
        return False
    return bool(getattr(actor, "is_superuser", False)) or actor.has_perm(ISSUE_FOR_OTHERS)


def refusal(actor: Any, target: Any, action: Action) -> str | None:
    """Why ``actor`` may not issue for ``target``, for the log; None when it may."""
    if not actor.has_perm(permission(action)):
        return f"lacks {permission(action)}"
    if target.pk == actor.pk:
        return None
    if getattr(actor, "is_superuser", False):  # has_perm above: an active superuser
        return None
    if not actor.has_perm(ISSUE_FOR_OTHERS):
        return f"lacks {ISSUE_FOR_OTHERS}"
    if getattr(target, "is_staff", False) or getattr(target, "is_superuser", False):
        return "the target is staff or a superuser"
    if not user_is_active(target):
        # Backends grant an inactive user nothing, so its permissions cannot be compared.
        return "the target is inactive"
    lacking = permissions_lacking(actor, target)
    if lacking is None:
        return "the target's permissions cannot be listed"
    if lacking:
        return "the target holds permissions the actor lacks: " + ", ".join(sorted(lacking))
    return None


def may_issue_for(actor: Any, target: Any, action: Action) -> bool:
    """Whether ``actor`` may issue a token or login link for ``target``."""
    return refusal(actor, target, action) is None


def refused_attempt(actor: Any, target: Any, action: Action) -> bool:
    """``not may_issue_for``, for an attempt (a POST): a refusal is logged with its reason."""
    reason = refusal(actor, target, action)
    if reason is not None:
        logger.warning(
            "User %s may not issue for user %s (%s): %s", actor.pk, target.pk, action, reason
        )
    return reason is not None


def permissions_lacking(actor: Any, target: Any) -> set[str] | None:
    """The target's permissions the actor does not hold; None if a user cannot list them."""
    if not hasattr(target, "get_all_permissions") or not hasattr(actor, "get_all_permissions"):
        return None
    return set(target.get_all_permissions()) - set(actor.get_all_permissions())


def issuable_users(actor: Any, action: Action) -> QuerySet[Any]:
    """The users ``actor`` may issue for, as far as SQL can tell; ``refusal`` decides each."""
    users = get_user_model()._default_manager.all()
    if not actor.has_perm(permission(action)):
        return users.none()
    if may_issue_for_anyone(actor, action):
        return users
    own = Q(pk=actor.pk)
    if not may_issue_for_others(actor, action):
        return users.filter(own)
    return users.filter(own | plain_users_within(actor))


def plain_users_within(actor: Any) -> Q:
    """Active users, neither staff nor superuser, without a permission the actor lacks.

    Each part applies only where the user model has the field (``AbstractUser`` has them
    all); the per-target ``refusal`` covers the rest.
    """
    condition = Q()
    for flag, value in (("is_active", True), ("is_staff", False), ("is_superuser", False)):
        if has_field(flag):
            condition &= Q(**{flag: value})
    lacking = permission_rows_lacking(actor.get_all_permissions())
    for relation in ("user_permissions__in", "groups__permissions__in"):
        if has_field(relation.split("__", 1)[0]):
            condition &= ~Q(**{relation: lacking})
    return condition


def has_field(name: str) -> bool:
    try:
        get_user_model()._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def permission_rows_lacking(granted: Iterable[str]) -> QuerySet[Permission]:
    """``auth.Permission`` rows outside ``granted`` (``app_label.codename`` strings)."""
    from django.contrib.auth.models import Permission

    codenames: dict[str, list[str]] = defaultdict(list)
    for name in granted:
        app_label, _dot, codename = name.partition(".")
        codenames[app_label].append(codename)
    if not codenames:
        return Permission.objects.all()
    held = Q()
    for app_label, names in codenames.items():
        held |= Q(content_type__app_label=app_label, codename__in=names)
    return Permission.objects.exclude(held)
