"""The caller's sessions: log out of this one, of the others or of all, list them, revoke one.

Each finds the caller's session from the Bearer token; logging out also from the refresh
cookie alone (cookie transport), so a page can log out after losing its access token.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, cast

from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from . import cookies
from .http import no_store
from .managers import TokenQuerySet
from .models import Kind, RevokeReason, Token
from .permissions import NotPersonal
from .primary import on_primary
from .schema import (
    CSRF_OR_PERSONAL,
    CSRF_REFUSED,
    NOT_A_LIVE_SESSION,
    error_headers,
    error_responses,
    extend_schema,
)
from .serializers import SessionSerializer
from .utils import sha256_hex
from .views import BearerView


def no_content(clear_cookies: bool) -> Response:
    response = Response(status=status.HTTP_204_NO_CONTENT)
    if clear_cookies:
        cookies.delete_token_cookies(response)
    return response


class CookieLogoutMixin(BearerView):
    """With cookie transport, the refresh cookie alone also identifies the session."""

    def check_permissions(self, request: Request) -> None:
        if request.auth is None and self.cookie_session is not None:
            return
        super().check_permissions(request)

    @cached_property
    def cookie_session(self) -> Token | None:
        raw = cookies.refresh_token_from(self.request._request)
        if raw is None:
            return None
        sessions = Token.objects.live().select_related("user")
        return on_primary(sessions.filter(refresh_tokens__token_hash=sha256_hex(raw))).first()

    def current_session(self, request: Request) -> Token:
        return cast(Token, request.auth if request.auth is not None else self.cookie_session)


class LogoutView(CookieLogoutMixin):
    """Revoke the session of the Bearer token (or of the refresh cookie)."""

    @extend_schema(
        summary="Log out",
        request=None,
        responses={204: None, **error_responses(401, 403, descriptions={403: CSRF_REFUSED})},
        parameters=error_headers(401),
    )
    def post(self, request: Request) -> Response:
        self.current_session(request).revoke(RevokeReason.LOGOUT, request=request._request)
        return no_content(clear_cookies=cookies.enabled())


class LogoutAllView(CookieLogoutMixin):
    """Revoke every session of the Bearer token's (or the refresh cookie's) user, personal
    access tokens included: the panic button. A personal token may not press it (403)."""

    permission_classes = [IsAuthenticated, NotPersonal]

    @extend_schema(
        summary="Log out everywhere",
        request=None,
        responses={204: None, **error_responses(401, 403, descriptions={403: CSRF_OR_PERSONAL})},
        parameters=error_headers(401),
    )
    def post(self, request: Request) -> Response:
        user = self.current_session(request).user
        Token.objects.revoke_all(user, RevokeReason.LOGOUT_ALL, request=request._request)
        return no_content(clear_cookies=cookies.enabled())


class LogoutOthersView(CookieLogoutMixin):
    """Revoke every other session of the Bearer token's (or the refresh cookie's) user,
    personal access tokens included; this one stays signed in. A personal token may not (403).
    """

    permission_classes = [IsAuthenticated, NotPersonal]

    @extend_schema(
        summary="Log out of my other sessions",
        request=None,
        responses={204: None, **error_responses(401, 403, descriptions={403: CSRF_OR_PERSONAL})},
        parameters=error_headers(401),
    )
    def post(self, request: Request) -> Response:
        current = self.current_session(request)
        others = Token.objects.filter(user_id=current.user_id).exclude(pk=current.pk)
        others.revoke(RevokeReason.LOGOUT_OTHERS, request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


def sessions_of(user: Any) -> TokenQuerySet:
    """The live login and admin-made sessions of ``user``: personal access tokens are listed
    and deleted through ``tokens/``."""
    return Token.objects.live().filter(user=user).exclude(kind=Kind.PERSONAL)


class SessionListView(BearerView):
    """The live login (and admin-made) sessions of the Bearer token's user; ``current`` marks
    this one. Not for a personal token (403): where and on what the user is signed in is not
    what a key for an integration needs to see."""

    permission_classes = [IsAuthenticated, NotPersonal]

    @extend_schema(
        summary="List my sessions",
        responses={
            200: SessionSerializer(many=True),
            **error_responses(401, 403, descriptions={403: CSRF_OR_PERSONAL}),
        },
        parameters=error_headers(401),
    )
    def get(self, request: Request) -> Response:
        sessions = sessions_of(request.user).order_by("-created_at")
        serializer = SessionSerializer(sessions, many=True, context={"request": request})
        return no_store(Response(serializer.data))


class SessionDetailView(BearerView):
    """Revoke one of the caller's live login (or admin-made) sessions; 404 for any other,
    a personal access token included (``tokens/<id>/`` deletes those). A personal token may
    not (403): that would log out other sessions."""

    permission_classes = [IsAuthenticated, NotPersonal]

    @extend_schema(
        summary="Revoke one of my sessions",
        responses={
            204: None,
            **error_responses(
                401, 403, 404, descriptions={403: CSRF_OR_PERSONAL, 404: NOT_A_LIVE_SESSION}
            ),
        },
        parameters=error_headers(401),
    )
    def delete(self, request: Request, session_id: str) -> Response:
        # From the primary: a replica may not have a session made a moment ago.
        mine = on_primary(sessions_of(request.user))
        session = get_object_or_404(mine, pk=session_id)
        session.revoke(RevokeReason.SESSION_DELETED, request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(exclude=True)  # the same path as cocart_jwt:session, which the schema documents
class NoSuchSessionView(SessionDetailView):
    """``sessions/<what no session id can be>/``: the JSON 404 of a session that is not the
    caller's, after the same authentication, instead of the site's HTML 404 page. A client
    cannot tell it from an id that could exist, and no query runs."""

    def delete(self, request: Request, session_id: str) -> Response:
        raise NotFound()
