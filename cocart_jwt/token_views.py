"""The caller's personal access tokens (``tokens/``): list them, make one, delete one.

Only a login session may: a personal token cannot make or list others (``LoginSession``), and
making one also takes a recent login (``RecentLogin``), as changing a password would. A token
is shown once, in the answer that makes it; lists and the registry never hold it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, cast

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from .event_views import EventPagination
from .http import no_store
from .issued import TooManyPersonalTokens
from .managers import TokenQuerySet
from .models import Kind, RevokeReason, Token
from .permissions import LoginSession, RecentLogin
from .primary import on_primary
from .schema import (
    INVALID_CURSOR,
    NOT_A_LIVE_PAT,
    NOT_A_LOGIN,
    PAT_REFUSED,
    RECENT_LOGIN_REQUIRED,
    error_headers,
    error_responses,
    extend_schema,
)
from .serializers import (
    NewPersonalTokenSerializer,
    PersonalTokenRequestSerializer,
    PersonalTokenSerializer,
)
from .settings import jwt_settings
from .views import BearerView

logger = logging.getLogger("cocart_jwt")

TOO_MANY = "too_many_personal_tokens"


class TooManyTokens(APIException):
    """400: the user already holds ``MAX_PATS_PER_USER`` live personal tokens."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = TOO_MANY

    def __init__(self, limit: int) -> None:
        message = ngettext(
            "You already have %(limit)d personal access token, the most allowed: delete it "
            "before making another.",
            "You already have %(limit)d personal access tokens, the most allowed: delete one "
            "before making another.",
            limit,
        )
        super().__init__(message % {"limit": limit}, code=TOO_MANY)


class TokenPagination(EventPagination):
    ordering = ("-created_at", "-id")
    page_size_help = _("Tokens per page: 50 unless given, at most 200 (a larger number is capped).")


def personal_tokens_of(user: Any) -> TokenQuerySet:
    return Token.objects.live().filter(user=user, kind=Kind.PERSONAL)


def binding() -> bool:
    """Whether sessions bind to a client (``BIND_TO_*``). A personal token's holder is what
    will use it (a script, a CI job), not the browser that makes it: then it binds to its first
    use, as a token made in the CLI does, and its ``issued`` event records no client. Without
    binding, the client that made it is recorded, on the token and its event."""
    return bool(jwt_settings.BIND_TO_IP or jwt_settings.BIND_TO_USER_AGENT)


class TokenListView(BearerView, ListAPIView):
    """``GET``: the caller's live personal access tokens, newest first. ``POST``: make one."""

    serializer_class = PersonalTokenSerializer
    pagination_class = TokenPagination

    def get_permissions(self) -> list[Any]:
        # The kind guard first: a personal token gets its 403, never a step-up challenge.
        if self.request.method == "POST":
            return [IsAuthenticated(), LoginSession(), RecentLogin()]
        return [IsAuthenticated(), LoginSession()]

    def get_queryset(self) -> QuerySet[Token]:
        # A list shown to a person: the replica may serve it (IsAuthenticated: never anonymous).
        return cast(QuerySet[Token], personal_tokens_of(self.request.user))

    @extend_schema(
        summary="List my personal access tokens",
        description="The caller's live personal access tokens, newest first, a cursor page at "
        "a time; never the tokens themselves. Only with a login session's token.",
        responses={
            200: PersonalTokenSerializer(many=True),
            **error_responses(
                400, 401, 403, 404, descriptions={403: NOT_A_LOGIN, 404: INVALID_CURSOR}
            ),
        },
        parameters=error_headers(401),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return no_store(super().get(request, *args, **kwargs))

    @extend_schema(
        summary="Make a personal access token",
        description="A named token with scopes from the site's `SCOPES`, not refreshable, "
        "living `expires_in` seconds (90 days unless given, at most `PAT_MAX_LIFETIME`); the "
        "access token is in the answer, this once. Only with a login session's token, of a "
        "recent login.",
        request=PersonalTokenRequestSerializer,
        responses={
            201: NewPersonalTokenSerializer,
            **error_responses(
                400,
                401,
                403,
                descriptions={400: PAT_REFUSED, 401: RECENT_LOGIN_REQUIRED, 403: NOT_A_LOGIN},
            ),
        },
        parameters=error_headers(401, step_up=True),
    )
    def post(self, request: Request) -> Response:
        serializer = PersonalTokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        expires_in = data.get("expires_in")
        try:
            issued = Token.objects.issue(
                cast(Any, request.user),
                kind=Kind.PERSONAL,
                scopes=data["scopes"],
                lifetime=None if expires_in is None else timedelta(seconds=expires_in),
                description=data["name"],
                request=request._request,
                holder_request=not binding(),
            )
        except TooManyPersonalTokens as exc:
            logger.info(
                "Personal token refused: user %s holds %d already", request.user.pk, exc.limit
            )
            raise TooManyTokens(exc.limit) from None
        logger.info("Personal token %s made by its user", issued.session.pk)
        body = {**PersonalTokenSerializer(issued.session).data, "token": issued.access_token}
        return no_store(Response(body, status=status.HTTP_201_CREATED))


class TokenDetailView(BearerView):
    """Delete one of the caller's live personal access tokens; 404 for anything else."""

    permission_classes = [IsAuthenticated, LoginSession]

    @extend_schema(
        summary="Delete one of my personal access tokens",
        responses={
            204: None,
            **error_responses(401, 403, 404, descriptions={403: NOT_A_LOGIN, 404: NOT_A_LIVE_PAT}),
        },
        parameters=error_headers(401),
    )
    def delete(self, request: Request, token_id: str) -> Response:
        # From the primary: a replica may not have the token made a moment ago.
        mine = on_primary(personal_tokens_of(request.user))
        token = get_object_or_404(mine, pk=token_id)
        token.revoke(RevokeReason.TOKEN_DELETED, request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(exclude=True)  # the same path as cocart_jwt:token, which the schema documents
class NoSuchTokenView(TokenDetailView):
    """``tokens/<what no token id can be>/``: the JSON 404 of a token that is not the
    caller's, after the same authentication and permissions; no query runs."""

    def delete(self, request: Request, token_id: str) -> Response:
        raise NotFound()
