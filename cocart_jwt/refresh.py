"""Renewing and rotating sessions: the refresh side of ``Token.objects`` (a mixin of
``managers.TokenManager``)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import models, router, transaction
from django.db.models import F
from django.utils.crypto import constant_time_compare

from . import events, grace, postgres
from .choices import Event, RevokeReason
from .issued import (
    DPoPKeyMismatch,
    IssuedTokens,
    RefreshError,
    RefreshTokenReused,
    new_refresh_token,
)
from .passwords import password_fingerprint, password_unchanged
from .settings import jwt_settings
from .signals import refresh_token_reused, token_refreshed
from .store import cached
from .tokens import mint_access_token
from .utils import now, sha256_hex

if TYPE_CHECKING:
    from django.http import HttpRequest

    from .managers import TokenManager
    from .models import Token

logger = logging.getLogger("cocart_jwt")


def related_model(model: type[models.Model], name: str) -> Any:
    """The model at the other end of ``model``'s relation ``name``: how the managers reach
    ``RefreshToken`` and ``LoginLink`` without importing models.py, which imports them."""
    return model._meta.get_field(name).related_model


def refresh_tokens(session: Token) -> models.QuerySet[Any]:
    """The session's family, without building a related manager (hot path of refresh)."""
    family = related_model(type(session), "refresh_tokens")
    return family._default_manager.filter(session_id=session.pk)


def check_dpop_key(session: Token, dpop_jkt: str) -> None:
    """A session bound to a DPoP key is renewed only with a proof by that key."""
    if session.dpop_jkt and not constant_time_compare(session.dpop_jkt, dpop_jkt):
        proof = "a proof by another key" if dpop_jkt else "no DPoP proof"
        raise DPoPKeyMismatch(f"session {session.pk} is bound to a DPoP key; got {proof}")


def bind(session: Token, dpop_jkt: str) -> None:
    """Bind ``session`` to the key ``dpop_jkt`` (once ``check_dpop_key`` passed): from now on
    only tokens with that ``cnf.jkt`` are accepted, so cached snapshots, which still say
    "unbound", are marked stale."""
    if dpop_jkt and dpop_jkt != session.dpop_jkt:
        session.dpop_jkt = dpop_jkt
        cached.mark_stale([session.pk])
        logger.info("Session %s bound to a DPoP key", session.pk)


def renew(
    manager: TokenManager,
    session: Token,
    *,
    request: HttpRequest | None,
    event: str,
    dpop_jkt: str,
) -> IssuedTokens | None:
    """``TokenManager.renew``: its docstring says what it does."""
    at = now()
    with transaction.atomic(savepoint=False):
        locked = (
            manager.select_for_update(of=("self",))
            .select_related("user")
            .live(at)
            .filter(pk=session.pk, refreshable=True)
            .first()
        )
        if locked is None:
            return None
        check_dpop_key(locked, dpop_jkt)
        refresh_tokens(locked).filter(used_at__isnull=True).update(used_at=at)
        locked.authenticated_at = at
        return extend(manager, locked, at, request, event=event, dpop_jkt=dpop_jkt)


def rotate(
    manager: TokenManager,
    refresh_token: str,
    *,
    request: HttpRequest | None,
    dpop_jkt: str,
) -> IssuedTokens:
    """Exchange a refresh token for new tokens, or raise ``RefreshError``.

    ``dpop_jkt``: the thumbprint of the DPoP key the request proved (or ""). A session
    bound to a key is refreshed only with a proof by it (else ``DPoPKeyMismatch``, checked
    before anything is claimed: nothing spent, no reuse); an unbound one is bound by it.

    The presented token is claimed with a conditional UPDATE, so of N concurrent uses
    exactly one wins and the others are reuse, or retries within REFRESH_REUSE_GRACE. On
    PostgreSQL, the claim, the session's new expiry and the next token (whose parent is the
    presented one) are one statement (``cocart_jwt.postgres``).
    """
    digest = sha256_hex(refresh_token)
    using = router.db_for_write(manager.model)
    if postgres.supported(using):
        return rotate_in_one_statement(manager, refresh_token, digest, using, request, dpop_jkt)
    at = now()
    with transaction.atomic():  # a savepoint: callers may catch RefreshError
        session = (
            manager.select_for_update(of=("self",))
            .select_related("user")
            .filter(refresh_tokens__token_hash=digest)
            # After filter(), so the annotations read the row the filter joined.
            .annotate(
                presented_hash=F("refresh_tokens__token_hash"),
                presented_id=F("refresh_tokens__id"),
            )
            .first()
        )
        if session is None or not constant_time_compare(session.presented_hash, digest):
            raise RefreshError("unknown refresh token")
        check_dpop_key(session, dpop_jkt)
        check_refreshable(manager, session, at)
        if not jwt_settings.ROTATE_REFRESH_TOKENS:
            return extend(
                manager, session, at, request, refresh_token=refresh_token, dpop_jkt=dpop_jkt
            )
        claimed = refresh_tokens(session).filter(token_hash=digest, used_at__isnull=True)
        if claimed.update(used_at=at):
            return extend(
                manager, session, at, request, parent_id=session.presented_id, dpop_jkt=dpop_jkt
            )
    return retry_or_reuse(manager, session, session.presented_id, at, request, dpop_jkt)


# pragma: no mutate start (PostgreSQL only, the mutation run has SQLite); pinned by
# tests/test_round_trips.py, tests/test_concurrency.py and the suite on PostgreSQL.
def rotate_in_one_statement(
    manager: TokenManager,
    refresh_token: str,
    digest: str,
    using: str,
    request: HttpRequest | None,
    dpop_jkt: str,
) -> IssuedTokens:
    """``rotate`` on PostgreSQL: BEGIN, one statement, COMMIT. The statement returns the
    session and user as they were; a check they fail rolls it back."""
    at = now()
    child = new_refresh_token() if jwt_settings.ROTATE_REFRESH_TOKENS else None
    with transaction.atomic(using=using):  # a savepoint: callers may catch RefreshError
        done = postgres.rotate(
            manager.model,
            digest,
            None if child is None else sha256_hex(child),
            at=at,
            slide_to=at + jwt_settings.REFRESH_TOKEN_LIFETIME,
            max_lifetime=jwt_settings.SESSION_MAX_LIFETIME,
            event=events.new_event(Event.REFRESHED, None, request=request, at=at),
            using=using,
            dpop_jkt=dpop_jkt,
        )
        if done is None:
            raise RefreshError("unknown refresh token")
        session = done.session
        check_dpop_key(session, dpop_jkt)  # the statement claimed nothing then
        check_refreshable(manager, session, at)
        if done.claimed:
            if done.expires_at is None:  # revoked between the statement's read and write
                raise RefreshError(f"session {session.pk} was revoked meanwhile")
            session.expires_at, session.last_used_at = done.expires_at, at
            bind(session, dpop_jkt)  # the statement wrote it
            fingerprint = password_fingerprint(session.user)
            if fingerprint != session.password_fingerprint:  # made with a fallback key
                manager.filter(pk=session.pk).update(password_fingerprint=fingerprint)
                session.password_fingerprint = fingerprint
            return mint_pair(manager, session, at, request, child or refresh_token)
    return retry_or_reuse(manager, session, done.presented_id, at, request, dpop_jkt)


# pragma: no mutate end


def check_refreshable(manager: TokenManager, session: Token, at: datetime) -> None:
    refusal = session.refusal_reason(at)
    if refusal is not None:
        raise RefreshError(refusal.logged(session.pk))
    if not session.refreshable:
        raise RefreshError(f"session {session.pk} is not refreshable")
    if not password_unchanged(session.user, session.password_fingerprint):
        raise RefreshError(f"password of the user of session {session.pk} changed")


def retry_or_reuse(
    manager: TokenManager,
    session: Token,
    presented_id: int,
    at: datetime,
    request: HttpRequest | None,
    dpop_jkt: str,
) -> IssuedTokens:
    """After a refresh token's failed claim: new tokens for a retry within
    REFRESH_REUSE_GRACE (``grace``), read again under the session's lock (parallel retries
    take turns, each spending the child the previous one made); else reuse, raised."""
    if jwt_settings.REFRESH_REUSE_GRACE:
        with transaction.atomic(using=router.db_for_write(manager.model)):
            query = manager.select_for_update(of=("self",)).select_related("user")
            locked = query.get(pk=session.pk)
            check_refreshable(manager, locked, at)
            if grace.spend_child(refresh_tokens(locked), presented_id, at):
                logger.info("Refresh of session %s within REFRESH_REUSE_GRACE", session.pk)
                return extend(
                    manager,
                    locked,
                    at,
                    request,
                    event=Event.REUSE_GRACE,
                    parent_id=presented_id,
                    dpop_jkt=dpop_jkt,
                )
    logger.warning("Refresh token reused; revoking session %s", session.pk)
    with transaction.atomic(savepoint=False):
        events.record(Event.REUSED, session, request=request)
        session.revoke(RevokeReason.REFRESH_TOKEN_REUSED, request=request)
    refresh_token_reused.send(manager.model, token=session, user=session.user, request=request)
    raise RefreshTokenReused(f"refresh token reused; session {session.pk} revoked")


def extend(
    manager: TokenManager,
    session: Token,
    at: datetime,
    request: HttpRequest | None,
    *,
    dpop_jkt: str,
    refresh_token: str | None = None,
    event: str = Event.REFRESHED,
    parent_id: int | None = None,
) -> IssuedTokens:
    """Slide the session's expiry (never past SESSION_MAX_LIFETIME), bind it to the DPoP
    key ``dpop_jkt`` when given (``check_dpop_key`` has passed), record ``event``, mint new
    tokens."""
    session.expires_at = min(
        at + jwt_settings.REFRESH_TOKEN_LIFETIME,
        session.created_at + jwt_settings.SESSION_MAX_LIFETIME,
    )
    session.last_used_at = at
    session.password_fingerprint = password_fingerprint(session.user)
    bind(session, dpop_jkt)
    manager.filter(pk=session.pk).update(
        expires_at=session.expires_at,
        last_used_at=at,
        password_fingerprint=session.password_fingerprint,
        authenticated_at=session.authenticated_at,
        dpop_jkt=session.dpop_jkt,
    )
    if refresh_token is None:
        refresh_token = add_refresh_token(manager, session, at, parent_id)
    events.record(event, session, request=request, at=at)
    return mint_pair(manager, session, at, request, refresh_token)


def mint_pair(
    manager: TokenManager,
    session: Token,
    at: datetime,
    request: HttpRequest | None,
    refresh_token: str,
) -> IssuedTokens:
    """Mint the access token of a renewed or refreshed session; send token_refreshed."""
    access = mint_access_token(session, session.user, at)
    token_refreshed.send(manager.model, token=session, user=session.user, request=request)
    return IssuedTokens(
        session, session.user, access.token, access.expires_at, refresh_token, at, access.claims
    )


def add_refresh_token(
    manager: TokenManager, session: Token, at: datetime, parent_id: int | None
) -> str:
    raw = new_refresh_token()
    family = related_model(manager.model, "refresh_tokens")
    family._default_manager.create(
        session_id=session.pk, token_hash=sha256_hex(raw), created_at=at, parent_id=parent_id
    )
    return raw
