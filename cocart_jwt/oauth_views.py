"""``revoke/`` (RFC 7009) and ``introspect/`` (RFC 7662): for clients and resource servers that
do not share the database (docs/resource-servers.md).

Both take the token as a form field (RFC 7009 and RFC 7662 section 2.1) or in JSON. Neither
tells a client anything about a token it could not already know: revocation answers 200 with
an empty body whatever was sent (429 aside), introspection ``{"active": false}`` for anything
that is not an active access token. What happened goes to the ``cocart_jwt`` log at INFO.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ParseError, UnsupportedMediaType, ValidationError
from rest_framework.fields import SkipField, empty
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from .http import no_store
from .oauth import introspect, revoke_presented
from .primary import primary_reads
from .schema import error_headers, error_responses, extend_schema
from .serializers import (
    IntrospectionRequestSerializer,
    IntrospectionSerializer,
    RevocationRequestSerializer,
    TokenRequestSerializer,
)
from .views import BearerView, JWTView, PublicView

logger = logging.getLogger("cocart_jwt")

INTROSPECT_PERMISSION = "cocart_jwt.introspect_token"
INTROSPECT_REFUSED = (
    "The Bearer token's user lacks the permission `cocart_jwt.introspect_token`, or an "
    "access cookie (cookie transport) came without its CSRF token."
)
REVOKE_ANSWER = (
    "Always, with an empty body: for a token revoked now, one unknown, malformed, expired or "
    "already revoked, and for a request without a token (RFC 7009 section 2.2)."
)


def presented_token(request: Request) -> tuple[str | None, str | None, str]:
    """The body's ``token`` and ``token_type_hint`` (None when missing or unusable), and why
    there is no token, for the log. A body that does not parse is one without a token."""
    try:
        data = request.data
    except (ParseError, UnsupportedMediaType, SuspiciousOperation) as exc:
        return None, None, f"body not read ({type(exc).__name__})"
    if not isinstance(data, Mapping):
        return None, None, "body is not an object"
    token = field_value("token", data)
    hint = field_value("token_type_hint", data)
    if token is None:
        return None, hint, "no usable token in the body (missing, blank or malformed)"
    return token, hint, ""


def field_value(name: str, data: Mapping[str, Any]) -> Any:
    """The validated value of field ``name`` on its own (DRF's checks: type, NUL and surrogate
    characters, length); None when absent or invalid, so a bad hint never costs the token."""
    field = TokenRequestSerializer().fields[name]
    try:
        value = field.run_validation(data.get(name, empty))
    except (ValidationError, SkipField):
        return None
    return value or None


class NoStoreAnswers(JWTView):
    """Every answer, errors too, is ``no-store``: an answer about a token describes it at one
    moment, and a cache in between would serve it after a revocation."""

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        return no_store(super().finalize_response(request, response, *args, **kwargs))


class RevokeView(NoStoreAnswers, PublicView):
    """RFC 7009: revoke the session of an access or refresh token. The token is the
    credential: no authentication (an Authorization header or a cookie is never read)."""

    rate_limit = "revoke"

    @extend_schema(
        summary="Revoke a token (RFC 7009)",
        request=RevocationRequestSerializer,
        responses={200: None, **error_responses(429)},
        parameters=error_headers(429),
        auth=[],
        description=REVOKE_ANSWER,
    )
    def post(self, request: Request) -> Response:
        token, hint, missing = presented_token(request)
        if token is None:
            logger.info("Revocation request: %s", missing)
        else:
            outcome = revoke_presented(token, hint, request._request)
            logger.info("Revocation request: %s", outcome)
        return Response(status=200)


class MayIntrospect(BasePermission):
    """The caller's user holds ``cocart_jwt.introspect_token`` (superusers do), read on the
    primary: a permission withdrawn a moment ago, which a replica may still show, is gone."""

    message = _("You do not have permission to introspect tokens.")

    def has_permission(self, request: Request, view: Any) -> bool:
        with primary_reads():
            allowed = bool(request.user.has_perm(INTROSPECT_PERMISSION))
        if not allowed:
            logger.info("Introspection refused: user %s lacks the permission", request.user.pk)
        return allowed


class IntrospectView(NoStoreAnswers, BearerView):
    """RFC 7662: whether an access token is active, and what it says when it is."""

    rate_limit = "introspect"
    permission_classes = [IsAuthenticated, MayIntrospect]

    @extend_schema(
        summary="Introspect a token (RFC 7662)",
        request=IntrospectionRequestSerializer,
        responses={
            200: IntrospectionSerializer,
            **error_responses(401, 403, 429, descriptions={403: INTROSPECT_REFUSED}),
        },
        parameters=error_headers(401, 429),
        description='`{"active": false}` and nothing else for a token that is not an active '
        "access token: unknown, malformed, expired, revoked, of an inactive user, a refresh "
        "token, or none at all.",
    )
    def post(self, request: Request) -> Response:
        token, _hint, missing = presented_token(request)
        if token is None:
            answer, logged = {"active": False}, f"inactive: {missing}"
        else:
            answer, logged = introspect(token)
        logger.info("Introspection by user %s: %s", request.user.pk, logged)
        return Response(answer)
