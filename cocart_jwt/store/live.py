"""``load_live_session``: the session of a verified access token, if its tokens are accepted.

Strict mode: one query (``strict``). Cached mode: one cache round trip (``cached``); the query
only on a miss, which then fills the entry with a snapshot (session and user, never the
password hash) or remembers the refusal; and for a snapshot that looks idle
(``SESSION_IDLE_TIMEOUT``), which only the database can confirm. A snapshot becomes instances
of the models as the query's rows do, without running ``Model.__init__`` where nothing could
tell (``instances``).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from django.contrib.auth import get_user_model

from ..choices import Refusal
from ..models import Token
from ..primary import primary_db
from ..settings import jwt_settings
from ..tokens import InvalidToken
from . import cached
from .instances import build
from .strict import fetch_session

PRIVATE_FIELDS = frozenset({"password", "password_fingerprint"})


def load_live_session(sid: str, at: datetime) -> tuple[Token, bool]:
    """The session ``sid`` with its user, and whether its ``last_used_at`` is due a write.

    Raises ``InvalidToken`` (its message is for the log) when no token of it is accepted.
    """
    if not cached.enabled():
        session = load_from_database(sid, at)
        return session, touch_due(session, at)
    found = cached.lookup(sid)
    if found.revoked:
        raise InvalidToken(f"session {sid} is revoked (session cache)")
    snapshot = restore(found.entry)
    if snapshot is not None:
        refusal = snapshot.refusal_reason(at)
        if refusal is Refusal.IDLE:
            return reload_idle_snapshot(sid, at, found)
        if refusal is not None:
            raise InvalidToken(refusal.logged(snapshot.pk))
        return snapshot, touch_claimed(found, snapshot, at)
    try:
        session = load_from_database(sid, at)
    except InvalidToken:
        if found.fillable:
            cached.remember_refused(sid)
        raise
    if found.fillable:
        fill(session, at)
    return session, touch_claimed(found, session, at)


def reload_idle_snapshot(sid: str, at: datetime, found: cached.Lookup) -> tuple[Token, bool]:
    """A snapshot's ``last_used_at`` is as old as the entry, while touches kept writing the
    database's: a snapshot that looks idle is asked again of the database. Idle there too, the
    refusal is remembered; else the session is served and the entry marked stale (the
    database answers until it expires, then a fresh snapshot is cached)."""
    try:
        session = load_from_database(sid, at)
    except InvalidToken:
        cached.mark_revoked([sid])  # the entry holds a snapshot: add() could not replace it
        raise
    cached.mark_stale([sid])
    return session, touch_claimed(found, session, at)


def load_from_database(sid: str, at: datetime) -> Token:
    """The one query of strict mode: the session and its user, by primary key."""
    session = fetch_session(sid)
    if session is None:
        raise InvalidToken("no such session")
    refuse_unless_live(session, at)
    return session


def refuse_unless_live(session: Token, at: datetime) -> None:
    refusal = session.refusal_reason(at)
    if refusal is not None:
        raise InvalidToken(refusal.logged(session.pk))


def touch_claimed(found: cached.Lookup, session: Token, at: datetime) -> bool:
    """Cached mode's answer (the touch key the lookup claimed), or strict mode's when the cache
    could not say (it refuses writes, or failed): ``last_used_at`` is still written, by the
    conditional UPDATE, however long that lasts."""
    return touch_due(session, at) if found.touch_claimed is None else found.touch_claimed


def touch_due(session: Token, at: datetime) -> bool:
    """Whether ``last_used_at`` is older than TOUCH_INTERVAL (strict mode's answer)."""
    last_used_at = session.last_used_at
    return last_used_at is None or last_used_at <= at - jwt_settings.TOUCH_INTERVAL


# -- snapshots -----------------------------------------------------------------------------


@cache
def _fields(model: type) -> tuple[str, ...]:
    return tuple(
        field.attname
        for field in model._meta.concrete_fields  # type: ignore[attr-defined]
        if field.attname not in PRIVATE_FIELDS
    )


def _layout() -> tuple[tuple[str, ...], tuple[str, ...]]:
    return _fields(Token), _fields(get_user_model())


def restore(entry: Any) -> Token | None:
    """The session (with its user) from a snapshot; None if the entry is not one.

    Bound to the primary, like the strict query's rows: a later read through them (a related
    row, ``refresh_from_db``) must not fall back to a replica.
    """
    user_model = get_user_model()
    token_fields, user_fields = _fields(Token), _fields(user_model)
    if not isinstance(entry, tuple) or len(entry) != 3 or entry[0] != (token_fields, user_fields):
        return None
    session = build(Token, primary_db(Token), token_fields, entry[1])
    user = build(user_model, primary_db(user_model), user_fields, entry[2])
    _cache_user(session, user)
    return session


def _cache_user(session: Token, user: Any) -> None:
    # What ``session.user = user`` leaves, without its checks: both rows come from one
    # snapshot of the primary, and ``user_id`` already holds the user's pk.
    Token._meta.get_field("user").set_cached_value(session, user)


def fill(session: Token, at: datetime) -> None:
    """Cache a live session read from the database, unless any entry is already there."""
    token_fields, user_fields = _layout()
    snapshot = (
        (token_fields, user_fields),
        tuple(getattr(session, name) for name in token_fields),
        tuple(getattr(session.user, name) for name in user_fields),
    )
    remaining = int((session.expires_at - at).total_seconds())
    if remaining > 0:
        cached.add(session.pk, snapshot, remaining)
