"""Deleting dead sessions in small batches, each its own transaction (``jwt cleanup``).

A session may go once it expired, or was revoked, before the cutoff: it can never be live
again (an expired session cannot be refreshed, a revoked one not un-revoked), and the delete
statement repeats that condition, so a live session is never deleted.

Batches walk the ``expires_at`` index, then the ``revoked_at`` index, in order, each query
starting where the last batch ended: a batch reads at most ``batch_size`` rows, holds its
locks only for its own short transaction, and never rescans what earlier batches deleted.

Security events older than ``EVENT_RETENTION`` go the same way, along the ``at`` index; they
outlive their sessions (no foreign key), so a session's deletion leaves them until then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q

from .models import LoginLink, RefreshToken, Token, TokenEvent
from .settings import jwt_settings
from .utils import now

DEFAULT_BATCH_SIZE = 1000


@dataclass(frozen=True)
class Batch:
    number: int
    sessions: int
    refresh_tokens: int
    total_sessions: int
    seconds: float


@dataclass(frozen=True)
class CleanupResult:
    sessions: int
    refresh_tokens: int
    batches: int
    login_links: int = 0
    events: int = 0


def count(cutoff: datetime) -> tuple[int, int]:
    """(sessions, refresh tokens) a cleanup with ``cutoff`` would delete now."""
    sessions = Token.objects.dead_before(cutoff)
    refresh = RefreshToken.objects.filter(session__in=sessions.values("pk"))
    return sessions.count(), refresh.count()


def cleanup(
    cutoff: datetime,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[Batch], Any] | None = None,
) -> CleanupResult:
    """Delete the sessions dead before ``cutoff`` and their refresh tokens, batch by batch."""
    total_sessions = total_refresh = number = 0
    for field in ("expires_at", "revoked_at"):
        after: datetime | None = None
        while True:
            started = time.monotonic()
            candidates = Token.objects.filter(**{f"{field}__lt": cutoff})
            if after is not None:
                candidates = candidates.filter(**{f"{field}__gte": after})
            rows = list(candidates.order_by(field).values_list("pk", field)[:batch_size])
            if not rows:
                break
            pks = [pk for pk, _ in rows]
            after = rows[-1][1]
            sessions, refresh = _delete_batch(pks, cutoff)
            number += 1
            total_sessions += sessions
            total_refresh += refresh
            if on_batch is not None:
                on_batch(
                    Batch(number, sessions, refresh, total_sessions, time.monotonic() - started)
                )
    links = delete_dead_login_links(cutoff, batch_size)
    events = prune_events(events_cutoff(), batch_size)
    return CleanupResult(total_sessions, total_refresh, number, links, events)


def events_cutoff() -> datetime | None:
    """Security events dated before this go (``EVENT_RETENTION`` ago); None: they all stay."""
    retention = jwt_settings.EVENT_RETENTION
    return None if retention is None else now() - retention


def count_events(cutoff: datetime | None) -> int:
    """The security events ``prune_events`` would delete now."""
    return 0 if cutoff is None else TokenEvent.objects.filter(at__lt=cutoff).count()


def prune_events(cutoff: datetime | None, batch_size: int) -> int:
    """Delete the security events dated before ``cutoff``, oldest first, each batch in a
    short transaction of its own; each batch's query starts where the last one ended."""
    if cutoff is None:
        return 0
    deleted = 0
    after: datetime | None = None
    while True:
        old = TokenEvent.objects.filter(at__lt=cutoff)
        if after is not None:
            old = old.filter(at__gte=after)
        rows = list(old.order_by("at", "id").values_list("pk", "at")[:batch_size])
        if not rows:
            return deleted
        after = rows[-1][1]
        with transaction.atomic():
            deleted += TokenEvent.objects.filter(pk__in=[pk for pk, _ in rows]).delete()[0]


def delete_dead_login_links(cutoff: datetime, batch_size: int) -> int:
    """Links that expired or were used before ``cutoff`` (a live session may keep many)."""
    dead = LoginLink.objects.filter(Q(expires_at__lt=cutoff) | Q(used_at__lt=cutoff))
    deleted = 0
    while pks := list(dead.values_list("pk", flat=True)[:batch_size]):
        with transaction.atomic():
            deleted += LoginLink.objects.filter(pk__in=pks).delete()[0]
    return deleted


def _delete_batch(pks: list[str], cutoff: datetime) -> tuple[int, int]:
    """One short transaction: the batch's sessions, and their refresh tokens by CASCADE.

    Django's collector loads the batch's sessions (the fields the ``post_delete`` receiver
    reads: a dead session needs no cache tombstone) and deletes their refresh tokens with one
    statement without loading them.
    """
    with transaction.atomic():
        dead = Token.objects.dead_before(cutoff).filter(pk__in=pks)
        dead = dead.only("pk", "revoked_at", "expires_at")
        _, deleted = dead.delete()
    return deleted.get(Token._meta.label, 0), deleted.get(RefreshToken._meta.label, 0)
