"""Step-up (RFC 9470): ``reauthenticate/`` gives a session a fresh ``auth_time``.

A view guarded by ``cocart_jwt.permissions.RecentLogin`` answers a stale login with a 401
``insufficient_user_authentication`` challenge; the client posts the password here, gets a
new pair of the same session, and retries.
"""

from __future__ import annotations

import logging

from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from . import ratelimit
from .authentication import JWTAuthentication
from .choices import Event
from .dpop_endpoints import InvalidDPoPProofError, proven_key
from .issued import DPoPKeyMismatch
from .models import Token
from .permissions import CredentialedSession
from .schema import (
    CROSS_SITE_OR_NOT_A_LOGIN,
    REAUTHENTICATE_REFUSED,
    error_headers,
    error_responses,
    extend_schema,
)
from .serializers import ReauthenticateSerializer, TokenPairSerializer
from .views import BearerView, CookieSetting, check_credentials, invalid_credentials, token_response

logger = logging.getLogger("cocart_jwt")


@method_decorator(sensitive_post_parameters("password"), name="dispatch")
class ReauthenticateView(CookieSetting, BearerView):
    """Check the password of the Bearer token's user again: a new token pair of the same
    session, with a fresh ``auth_time`` and every earlier refresh token spent."""

    rate_limit = "reauthenticate"
    dpop_endpoint = True
    # Only a session a login started has an auth_time to renew: a personal token, an
    # admin-made one (the admin's, the CLI's, a login link's) and a session-kind token without
    # auth_time are a 403 before any password is checked. The token says so, no query needed.
    permission_classes = [IsAuthenticated, CredentialedSession]

    @extend_schema(
        summary="Reauthenticate (step-up)",
        request=ReauthenticateSerializer,
        responses={
            200: TokenPairSerializer,
            **error_responses(
                400,
                401,
                403,
                429,
                descriptions={401: REAUTHENTICATE_REFUSED, 403: CROSS_SITE_OR_NOT_A_LOGIN},
            ),
        },
        parameters=error_headers(401, 429),
    )
    def post(self, request: Request) -> Response:
        session = self.session(request)
        dpop_jkt = proven_key(request)  # a bound session's proof: checked by the authentication
        # Per user too: a stolen access token used from many addresses guesses no faster.
        self.limit("reauthenticate", ratelimit.user_identity(request.user))
        serializer = ReauthenticateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        password = serializer.validated_data["password"]
        user = check_credentials(request, request.user.get_username(), password)
        if user is None or user.pk != request.user.pk:
            logger.info("Reauthentication refused: wrong password for session %s", session.pk)
            raise invalid_credentials()
        try:
            issued = Token.objects.renew(
                session, request=request._request, event=Event.REAUTHENTICATED, dpop_jkt=dpop_jkt
            )
        except DPoPKeyMismatch as exc:  # a bound session's proof by another key: nothing spent
            logger.info("Reauthentication refused: %s", exc)
            raise InvalidDPoPProofError() from None
        if issued is None:  # revoked or expired since the request was authenticated
            logger.info("Reauthentication refused: session %s is no longer live", session.pk)
            JWTAuthentication().fail(request)
        logger.info("Session %s reauthenticated", session.pk)
        return token_response(issued)
