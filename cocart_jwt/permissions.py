"""DRF permissions on what a cocart_jwt access token says: ``RecentLogin`` (RFC 9470 step-up)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .authentication import JWTAuthentication
from .models import Token
from .settings import as_timedelta, jwt_settings
from .utils import now

logger = logging.getLogger("cocart_jwt")

REAUTHENTICATION_REQUIRED = "reauthentication_required"


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
        session = request.auth
        if not isinstance(session, Token) or not isinstance(
            request.successful_authenticator, JWTAuthentication
        ):
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
