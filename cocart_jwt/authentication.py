"""The DRF authentication class: ``Authorization: Bearer <access token>``."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, NoReturn

from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from .managers import user_is_active
from .models import Token
from .settings import jwt_settings
from .signals import token_authenticated
from .tokens import InvalidToken, verify_access_token
from .utils import client_ip, now, user_agent

logger = logging.getLogger("cocart_jwt")

ERROR_ATTR = "_cocart_jwt_error"


class JWTAuthentication(BaseAuthentication):
    """Verify the access token, then load its live session and user in one query.

    Returns ``(user, session)``: ``request.auth`` is the ``cocart_jwt.Token`` row, with the
    verified claims in ``request.auth.access_claims``.
    """

    keyword = "bearer"
    www_authenticate_realm = "api"

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        raw = self.get_raw_token(request)
        if raw is None:
            return None
        at = now()
        try:
            claims = verify_access_token(raw)
            session = self.get_session(claims, at)
            self.check_binding(session, request)
        except InvalidToken as exc:
            logger.info("Access token refused: %s", exc)
            self.fail(request)
        session.access_claims = claims
        self.touch(session, at)
        token_authenticated.send(
            type(self), token=session, user=session.user, claims=claims, request=request
        )
        return session.user, session

    def authenticate_header(self, request: Request) -> str:
        error = getattr(request, ERROR_ATTR, None)
        if error:
            return f'Bearer realm="{self.www_authenticate_realm}", error="{error}"'
        return f'Bearer realm="{self.www_authenticate_realm}"'

    def get_raw_token(self, request: Request) -> str | None:
        """The token after a ``Bearer`` scheme (any case); None when another scheme is used."""
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _sep, credentials = header.strip().partition(" ")
        if scheme.lower() != self.keyword:
            return None
        credentials = credentials.strip()
        if not credentials or " " in credentials:
            logger.info("Access token refused: malformed Authorization header")
            self.fail(request)
        return credentials

    def get_session(self, claims: dict[str, Any], at: datetime) -> Token:
        session = Token.objects.select_related("user").filter(pk=claims["sid"]).first()
        if session is None:
            raise InvalidToken("no such session")
        if session.revoked_at is not None:
            raise InvalidToken(f"session {session.pk} is revoked")
        if session.expires_at <= at:
            raise InvalidToken(f"session {session.pk} is expired")
        if str(session.user_id) != claims["sub"]:
            raise InvalidToken(f"sub does not match the user of session {session.pk}")
        if not user_is_active(session.user):
            raise InvalidToken(f"user of session {session.pk} is inactive")
        return session

    def check_binding(self, session: Token, request: Request) -> None:
        if jwt_settings.BIND_TO_IP and session.ip != client_ip(request):
            raise InvalidToken(f"session {session.pk} is bound to another IP address")
        if jwt_settings.BIND_TO_USER_AGENT and session.user_agent != user_agent(request):
            raise InvalidToken(f"session {session.pk} is bound to another user agent")

    def touch(self, session: Token, at: datetime) -> None:
        """Record use at most once per TOUCH_INTERVAL, whatever the number of processes."""
        threshold = at - jwt_settings.TOUCH_INTERVAL
        if session.last_used_at is not None and session.last_used_at > threshold:
            return
        Token.objects.filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=threshold), pk=session.pk
        ).update(last_used_at=at)
        session.last_used_at = at

    def fail(self, request: Request) -> NoReturn:
        setattr(request, ERROR_ATTR, "invalid_token")
        raise AuthenticationFailed(_("Invalid or expired token."), code="invalid_token")
