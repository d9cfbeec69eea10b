"""DRF permissions on what a cocart_jwt access token says: ``RecentLogin`` (RFC 9470 step-up),
``HasScope`` (a personal token's scopes, RFC 6750's ``insufficient_scope``) and the kind
guards ``LoginSession`` / ``NotPersonal`` (what only a login session may do).

Each reads the verified token on ``request.auth``: no query.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException, PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .authentication import JWTAuthentication
from .choices import Kind
from .models import Token
from .settings import as_timedelta, jwt_settings
from .tokens import SCOPE_TOKEN
from .utils import now

logger = logging.getLogger("cocart_jwt")

REAUTHENTICATION_REQUIRED = "reauthentication_required"
INSUFFICIENT_SCOPE = "insufficient_scope"
NOT_A_LOGIN_SESSION = "not_a_login_session"


def jwt_session(request: Request) -> Token | None:
    """The session of the request's access token; None when JWTAuthentication did not
    authenticate the request (no token, or another authentication class)."""
    session = request.auth
    if isinstance(session, Token) and isinstance(
        request.successful_authenticator, JWTAuthentication
    ):
        return session
    return None


class ReauthenticationRequired(APIException):
    """401 with the RFC 9470 challenge: the user must present credentials again.

    The detail is a dict and the challenge rides in ``auth_header``, as DRF's own
    ``exception_handler`` copies it; not an ``AuthenticationFailed``, whose challenge a view
    replaces with its authenticator's. So any exception handler answers with this body and
    header.
    """

    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = _("Sign in again to continue.")
    default_code = REAUTHENTICATION_REQUIRED

    def __init__(self, max_age: int) -> None:
        super().__init__({"detail": self.default_detail, "code": REAUTHENTICATION_REQUIRED})
        realm = JWTAuthentication.www_authenticate_realm
        self.auth_header = (
            f'Bearer realm="{realm}", error="insufficient_user_authentication", max_age={max_age}'
        )


class RecentLogin(BasePermission):
    """The user presented credentials (login or ``reauthenticate/``) at most ``max_age`` ago.

    Reads the ``auth_time`` of the verified access token: no query. A token without one (a
    session made in the admin, the CLI or for a login link) never passes. Refused: a 401
    ``reauthentication_required`` whose ``WWW-Authenticate`` names ``max_age``; the client
    posts the password to ``reauthenticate/`` and retries. A request that JWTAuthentication
    did not authenticate is DRF's usual refusal (401 or 403).

    ``max_age``: seconds or a timedelta; None (the default) reads ``REAUTH_MAX_AGE``.
    Subclass to change it: ``class VeryRecentLogin(RecentLogin): max_age = 60``.
    """

    max_age: int | float | timedelta | None = None

    def has_permission(self, request: Request, view: Any) -> bool:
        session = jwt_session(request)
        if session is None:
            return False
        max_age = self.get_max_age()
        auth_time = session.access_claims.get("auth_time")
        if auth_time is None:
            logger.info("Recent login required: session %s has no auth_time", session.pk)
        elif now().timestamp() - auth_time > max_age.total_seconds():
            logger.info("Recent login required: session %s authenticated too long ago", session.pk)
        else:
            return True
        raise ReauthenticationRequired(int(max_age.total_seconds()))

    def get_max_age(self) -> timedelta:
        if self.max_age is None:
            return jwt_settings.REAUTH_MAX_AGE
        return as_timedelta(self.max_age)


class InsufficientScope(PermissionDenied):
    """403 with the RFC 6750 (section 3.1) challenge: the token lacks a scope the view needs.

    As ``ReauthenticationRequired``: a dict detail and the challenge in ``auth_header``, which
    DRF's own ``exception_handler`` copies into ``WWW-Authenticate`` whatever the status, so
    any exception handler answers with this body and header.
    """

    default_detail = _("This token does not grant what this request needs.")
    default_code = INSUFFICIENT_SCOPE

    def __init__(self, required: list[str]) -> None:
        super().__init__({"detail": self.default_detail, "code": INSUFFICIENT_SCOPE})
        realm = JWTAuthentication.www_authenticate_realm
        challenge = f'Bearer realm="{realm}", error="{INSUFFICIENT_SCOPE}"'
        # Only what RFC 6749 allows in a scope name: nothing of a view's list can break the
        # quoted string (SCOPES names are checked by E019; a view's list is not).
        named = [scope for scope in required if SCOPE_TOKEN.fullmatch(scope)]
        if named:
            challenge += f', scope="{" ".join(named)}"'
        self.auth_header = challenge


def required_scopes(view: Any) -> list[str]:
    """The view's ``required_scopes``; a string counts as space-separated names (as a
    ``scope`` claim is), not as a list of its characters."""
    named = getattr(view, "required_scopes", None) or ()
    return named.split() if isinstance(named, str) else [str(scope) for scope in named]


class HasScope(BasePermission):
    """A personal access token may do what the view's ``required_scopes`` name, all of them.

    The view declares ``required_scopes = ["orders:read", ...]`` (names from the ``SCOPES``
    setting; a string is read as space-separated names); to vary them by method, make it a
    property that reads ``self.request.method``.
    A token without a ``scope`` claim (a login session's, an admin-made one) passes: it acts
    for its user in full, as any other authentication does. A personal token passes only
    when its ``scope`` claim holds every required scope; otherwise a 403
    ``insufficient_scope`` with ``WWW-Authenticate: Bearer realm="api",
    error="insufficient_scope", scope="..."`` (RFC 6750 section 3.1).

    Fail closed: a view without ``required_scopes`` (missing or empty) refuses every
    personal token. So ``DEFAULT_PERMISSION_CLASSES = [IsAuthenticated, HasScope]`` keeps
    personal tokens out of every view that has not named what they need, including views
    written later or by a third-party app. A request that JWTAuthentication did not
    authenticate is refused the DRF way (401 or 403), as ``RecentLogin`` refuses it.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        session = jwt_session(request)
        if session is None:
            return False
        granted = session.access_claims.get("scope")
        if granted is None and session.kind != Kind.PERSONAL:
            return True
        required = required_scopes(view)
        if not required:
            logger.info(
                "Scoped token of session %s refused: %s names no required_scopes",
                session.pk,
                type(view).__name__,
            )
            raise InsufficientScope([])
        missing = set(required).difference(str(granted or "").split())
        if missing:
            logger.info(
                "Scoped token of session %s refused by %s: it lacks %s",
                session.pk,
                type(view).__name__,
                " ".join(sorted(missing)),
            )
            raise InsufficientScope(required)
        return True


class NotALoginSession(PermissionDenied):
    default_detail = _("This session was not started by a login: sign in instead.")
    default_code = NOT_A_LOGIN_SESSION


class LoginSession(BasePermission):
    """The token's session was started by a login (kind ``session``): a personal access token
    or an admin-made one is a 403 ``not_a_login_session``.

    For what only the person signed in may do: manage personal tokens, reauthenticate. List
    it before ``RecentLogin``, so such a token gets the 403 and not a 401 step-up challenge it
    could never answer. A request that JWTAuthentication did not authenticate is refused the
    DRF way (401 or 403).
    """

    kinds: frozenset[str] = frozenset({Kind.SESSION})

    def has_permission(self, request: Request, view: Any) -> bool:
        session = jwt_session(request)
        if session is None:
            return False
        refusal = self.refusal(session)
        if refusal is not None:
            logger.info("%s refused: %s", type(view).__name__, refusal)
            raise NotALoginSession()
        return True

    def refusal(self, session: Token) -> str | None:
        """Why ``session`` may not, for the log; None when it may."""
        if session.kind not in self.kinds:
            return f"session {session.pk} is of kind {session.kind}"
        return None


class NotPersonal(LoginSession):
    """Anything but a personal access token: a login session or an admin-made token. For
    what a personal token must not do with its user's other sessions (log them out)."""

    kinds = frozenset({Kind.SESSION, Kind.ADMIN})


class CredentialedSession(LoginSession):
    """A login session whose user presented credentials: its access token carries
    ``auth_time``. ``reauthenticate/`` renews that; a session-kind token without one (issued
    by Python code, or a login from before ``auth_time`` existed) has nothing to renew."""

    def refusal(self, session: Token) -> str | None:
        refusal = super().refusal(session)
        if refusal is None and "auth_time" not in session.access_claims:
            return f"session {session.pk} has no auth_time"
        return refusal
