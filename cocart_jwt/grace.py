"""``REFRESH_REUSE_GRACE``: a spent refresh token presented again soon after its rotation.

Mobile clients lose the response of a refresh on a flaky network, and two tabs race to refresh
one session: the rotated token comes back while its child has never been used. Within the grace
the retry gets a new pair, and the unused child is spent, so one pair at most is live. Anything
else stays reuse (the session is revoked): a token older than the newest's parent (the grace of
django-oauth-toolkit let those through, its issue #1617), a parent whose child was used, a
parent past the grace, and a token spent otherwise than by a rotation of ``refresh/`` (a
renewal or a reauthentication makes tokens without a parent; a retry spends the child without
making it a parent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models

from .settings import jwt_settings


def spend_child(family: models.QuerySet[Any], presented_id: int, at: datetime) -> bool:
    """Spend, at ``at``, the unused child of the spent refresh token ``presented_id`` presented
    again: True when the retry is within REFRESH_REUSE_GRACE, False when it is reuse. ``family``
    is the session's refresh tokens; call it with the session's row locked, which every writer
    of them takes first."""
    newest = family.order_by("-pk").values("pk", "parent_id", "parent__used_at").first()
    if newest is None or newest["parent_id"] != presented_id:
        return False
    rotated_at = newest["parent__used_at"]  # when refresh/ spent the presented token
    if rotated_at is None or at - rotated_at > jwt_settings.REFRESH_REUSE_GRACE:
        return False
    # Only while the child is unused: a child used is the client's, and the parent is reuse.
    return bool(family.filter(pk=newest["pk"], used_at__isnull=True).update(used_at=at))
