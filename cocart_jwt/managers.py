"""Issuing and revoking sessions: the domain methods of ``Token.objects`` (renewal and
rotation in ``refresh``)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import models, router, transaction
from django.db.models import Q

from . import events, postgres, refresh
from .choices import Event, Kind, RevokeReason, Status
from .http import client_ip, user_agent
from .issued import IssuedTokens, TooManyPersonalTokens, new_refresh_token
from .passwords import has_last_login, password_fingerprint
from .primary import on_primary
from .refresh import related_model
from .revocation import announce_revoked, revoke
from .settings import jwt_settings
from .signals import token_issued
from .tokens import mint_access_token
from .utils import now, sha256_hex

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.http import HttpRequest

    from .models import Token

logger = logging.getLogger("cocart_jwt")

# A personal token's life when its creator names none (never past PAT_MAX_LIFETIME).
PAT_DEFAULT_LIFETIME = timedelta(days=90)

# issue, renew and revoke run in a transaction of their own, or join the caller's without a
# savepoint (two round trips saved): they do not raise for expected outcomes. rotate keeps
# its savepoint, since callers catch its RefreshError.


class TokenQuerySet(models.QuerySet["Token"]):
    """Sessions; ``live()`` are neither revoked nor expired."""

    def live(self, at: datetime | None = None) -> TokenQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=at or now())

    def dead_before(self, at: datetime) -> TokenQuerySet:
        """Sessions that expired, or were revoked, before ``at``: never live again."""
        return self.filter(Q(expires_at__lt=at) | Q(revoked_at__lt=at))

    def with_status(self, status: str, at: datetime | None = None) -> TokenQuerySet:
        """The sessions of a ``Status`` (valid, expired, revoked) at ``at``; all for another
        value. The admin's status filter and ``jwt list --status`` read it."""
        at = at or now()
        if status == Status.VALID:
            return self.live(at)
        if status == Status.EXPIRED:
            return self.filter(revoked_at__isnull=True, expires_at__lte=at)
        if status == Status.REVOKED:
            return self.filter(revoked_at__isnull=False)
        return self

    def revoke(self, reason: str, *, request: HttpRequest | None = None) -> list[Token]:
        """Revoke every unrevoked session here; the one place that sends ``token_revoked``
        and writes ``revoked`` events (with the client of ``request``, when one caused it).
        Returns the sessions this call revoked (``revocation.revoke`` says what else it does).
        """
        return revoke(self, reason, request=request)


class TokenManager(models.Manager.from_queryset(TokenQuerySet)):  # type: ignore[misc]
    def issue(
        self,
        user: AbstractBaseUser,
        *,
        refreshable: bool = True,
        lifetime: timedelta | None = None,
        description: str = "",
        claims: dict[str, Any] | None = None,
        request: HttpRequest | None = None,
        holder_request: bool = True,
        login: bool = False,
        kind: str = Kind.SESSION,
        scopes: list[str] | None = None,
        dpop_jkt: str = "",
    ) -> IssuedTokens:
        """Start a session for ``user`` and mint its first tokens.

        A login ``session`` (``kind``): the user's row is locked first so that parallel logins
        cannot all see room under ``MAX_TOKENS_PER_USER``; the oldest live login sessions
        beyond the cap are revoked. A ``login`` also sets the user's ``last_login``, with the
        statement that locks. On PostgreSQL the lock, the eviction and the inserts are one
        round trip (``cocart_jwt.postgres``).

        A ``personal`` token (``scopes``, not refreshable, at most ``PAT_MAX_LIFETIME``) is
        refused with ``TooManyPersonalTokens`` when its user already holds
        ``MAX_PATS_PER_USER`` live ones, counted under the same lock: never an eviction. An
        ``admin`` one counts in no limit. ``dpop_jkt`` binds the session to a DPoP key.

        The session records the IP and user agent of ``request`` when it is the holder's
        (``holder_request``). Without one (the CLI) or for another user's request (an admin
        issuing for someone) it records none and binds, under ``BIND_TO_*``, to its first use.
        """
        personal = kind == Kind.PERSONAL
        if personal:
            refreshable = False
            lifetime = PAT_DEFAULT_LIFETIME if lifetime is None else lifetime
        elif lifetime is None:
            lifetime = jwt_settings.REFRESH_TOKEN_LIFETIME
        longest = jwt_settings.PAT_MAX_LIFETIME if personal else jwt_settings.SESSION_MAX_LIFETIME
        holder = request if holder_request else None
        using = router.db_for_write(self.model)
        # A personal token's limit is counted by the ORM path: its creation is rare.
        pipelined = postgres.supported(using) and not personal
        cap = jwt_settings.MAX_TOKENS_PER_USER if kind == Kind.SESSION else None
        writes_last_login = login and has_last_login(user)
        # A refused personal token leaves a caller's transaction usable: a savepoint.
        with transaction.atomic(using=using, savepoint=personal):
            if personal:
                self._lock_user(user)
                self._check_personal_limit(user)
            elif cap and not pipelined:
                self._lock_user(user)
            # Read the clock after the lock when it is a statement of its own: created_at
            # then orders sessions as the cap does.
            at = now()
            session = self.model(
                user=user,
                created_at=at,
                expires_at=at + min(lifetime, longest),
                ip=client_ip(holder) if holder is not None else None,
                user_agent=user_agent(holder) if holder is not None else "",
                bind_on_first_use=holder is None,
                description=description,
                refreshable=refreshable,
                claims=claims or {},
                password_fingerprint=password_fingerprint(user),
                authenticated_at=at if login else None,
                kind=kind,
                scopes=list(scopes or ()) if personal else [],
                dpop_jkt=dpop_jkt,
            )
            refresh_token = new_refresh_token() if refreshable else None
            family = related_model(self.model, "refresh_tokens")
            first = None
            if refresh_token is not None:
                first = family(session_id=session.pk, token_hash=sha256_hex(refresh_token))
                first.created_at = at
            issued = events.new_event(Event.ISSUED, session, request=holder, at=at)
            if pipelined:
                self._insert_pipelined(
                    session, first, issued, cap, at if writes_last_login else None
                )
            else:
                if writes_last_login:
                    get_user_model()._default_manager.filter(pk=user.pk).update(last_login=at)
                if cap:
                    self._evict_beyond_cap(user, cap, at, holder)
                session.save(force_insert=True, using=using)
                if first is not None:
                    first.save(force_insert=True, using=using)
                issued.save(force_insert=True, using=using)
            if writes_last_login:
                user.last_login = at
            access = mint_access_token(session, user, at)
            token_issued.send(self.model, token=session, user=user, request=request)
        return IssuedTokens(
            session, user, access.token, access.expires_at, refresh_token, at, access.claims
        )

    # pragma: no mutate start (PostgreSQL only, the mutation run has SQLite); pinned by
    # tests/test_round_trips.py, tests/test_concurrency.py and the suite on PostgreSQL.
    def _insert_pipelined(
        self,
        session: Token,
        first: Any,
        issued: Any,
        cap: int | None,
        last_login: datetime | None,
    ) -> None:
        """``issue`` on PostgreSQL: lock, evict, insert in one round trip; then what follows
        the revocation of the sessions evicted, before the commit."""
        using = router.db_for_write(self.model)
        evicted = postgres.issue(
            session,
            first,
            keep=cap - 1 if cap else None,
            reason=RevokeReason.MAX_TOKENS,
            last_login=last_login,
            event=issued,
            using=using,
        )
        session._state.adding, session._state.db = False, using
        revoked = [row.session for row in evicted]
        for row in evicted:
            row.session.has_browser_session = row.has_browser_session  # type: ignore[attr-defined]
        announce_revoked(self.model, revoked, revoked, RevokeReason.MAX_TOKENS)

    # pragma: no mutate end

    def renew(
        self,
        session: Token,
        *,
        request: HttpRequest | None = None,
        event: str = Event.REFRESHED,
        dpop_jkt: str = "",
    ) -> IssuedTokens | None:
        """New tokens for a live session whose user presented credentials again (a login
        carrying its Bearer, ``reauthenticate/``, which records ``event`` as
        ``reauthenticated``): its ``auth_time`` is now. None if it is not live.

        Every refresh token the session had is spent: presenting one again is reuse. A session
        bound to a DPoP key needs a proof by that key (``dpop_jkt``, else ``DPoPKeyMismatch``
        and nothing changes); an unbound one is bound by a proof.
        """
        return refresh.renew(self, session, request=request, event=event, dpop_jkt=dpop_jkt)

    def rotate(
        self, refresh_token: str, *, request: HttpRequest | None = None, dpop_jkt: str = ""
    ) -> IssuedTokens:
        """Exchange a refresh token for new tokens, or raise ``RefreshError``
        (``refresh.rotate`` says how)."""
        return refresh.rotate(self, refresh_token, request=request, dpop_jkt=dpop_jkt)

    def revoke_all(
        self, user: AbstractBaseUser, reason: str, *, request: HttpRequest | None = None
    ) -> int:
        """Revoke every live session of ``user``; returns how many."""
        return len(self.filter(user=user).revoke(reason, request=request))

    def _lock_user(self, user: AbstractBaseUser) -> None:
        list(get_user_model()._default_manager.select_for_update().filter(pk=user.pk).values("pk"))

    def _check_personal_limit(self, user: AbstractBaseUser) -> None:
        """Raise ``TooManyPersonalTokens`` when ``user`` holds MAX_PATS_PER_USER live personal
        tokens (read on the primary, under the user's lock)."""
        limit = jwt_settings.MAX_PATS_PER_USER
        held = on_primary(self.filter(user=user, kind=Kind.PERSONAL).live()).count()
        if limit is not None and held >= limit:
            raise TooManyPersonalTokens(limit)

    def _evict_beyond_cap(
        self, user: AbstractBaseUser, cap: int, at: datetime, request: HttpRequest | None
    ) -> None:
        # From the primary, where the user's row is locked: a replica's list can lag behind
        # the logins just made, and the cap would let them all live. Login sessions only:
        # personal and admin-made tokens are in other limits, or none.
        live = list(
            on_primary(self.filter(user=user, kind=Kind.SESSION).live(at))
            .order_by("created_at", "pk")
            .values_list("pk", flat=True)
        )
        excess = len(live) - (cap - 1)
        if excess > 0:
            self.filter(pk__in=live[:excess]).revoke(RevokeReason.MAX_TOKENS, request=request)
