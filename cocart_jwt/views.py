"""The HTTP endpoints: login, refresh, validate, logout, sessions, JWKS."""

from __future__ import annotations

import binascii
import logging
from base64 import b64decode
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, cast

from django.contrib.auth import authenticate, user_logged_in
from django.db import connections, transaction
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters
from rest_framework import status
from rest_framework.exceptions import (
    APIException,
    AuthenticationFailed,
    NotFound,
    ParseError,
    PermissionDenied,
    ValidationError,
)
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from . import cookies, ratelimit
from .authentication import JWTAuthentication
from .keys import keyring
from .managers import IssuedTokens, RefreshError
from .models import RevokeReason, Token
from .parsers import JSONParser
from .schema import (
    CROSS_SITE,
    CSRF_REFUSED,
    LOGIN_REFUSED,
    NOT_A_LIVE_SESSION,
    REFRESH_REFUSED,
    error_headers,
    error_responses,
    extend_schema,
)
from .serializers import (
    JWKSSerializer,
    LoginSerializer,
    RefreshSerializer,
    SessionSerializer,
    TokenPairSerializer,
    ValidateSerializer,
)
from .utils import client_ip, sha256_hex

logger = logging.getLogger("cocart_jwt")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with a ``code`` beside every ``detail`` (usable as the site's handler)."""
    if isinstance(exc, Http404):
        exc = NotFound()  # Django's message names the model; clients get a generic one
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, APIException):
        return response
    if isinstance(exc, ValidationError):
        response.data = {
            "detail": _("Invalid request."),
            "code": "invalid_request",
            "errors": response.data,
        }
    elif isinstance(response.data, dict) and "detail" in response.data:
        codes = exc.get_codes()
        response.data["code"] = codes if isinstance(codes, str) else exc.default_code
    return response


class JWTView(APIView):
    """Base of the endpoints: errors with codes, a refused token a 401 (never 403) with a
    Bearer challenge, and the endpoint's per-IP rate limit counted before anything else runs.
    """

    rate_limit: str | None = None
    # JSON (too deep a document is a 400, not a 500), form and multipart, whatever the site's
    # DEFAULT_PARSER_CLASSES: the contract's login bodies, and no parser of unknown safety.
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        """The view, outside ``ATOMIC_REQUESTS`` for every database however it is mounted.

        Each write runs in a transaction of its own (see managers.py), and some must commit
        behind an error response: the revocation that answers a reused refresh token (401),
        a ``user_login_failed`` receiver's lockout record (401). Under ATOMIC_REQUESTS, DRF's
        exception handler marks the request's transaction for rollback on every error.
        """
        view = super().as_view(**initkwargs)
        for alias in connections:
            view = transaction.non_atomic_requests(using=alias)(view)
        return view

    def get_exception_handler(self) -> Any:
        return exception_handler

    def get_authenticate_header(self, request: Request) -> str:
        return JWTAuthentication().authenticate_header(request)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self.rate_limit_usages: list[ratelimit.Usage] = []
        if self.rate_limit:
            self.limit(self.rate_limit, client_ip(request) or "unknown")
        super().initial(request, *args, **kwargs)

    def limit(self, name: str, identity: str) -> None:
        """Count this request against limit ``name`` for ``identity``; 429 when over."""
        try:
            usage = ratelimit.hit(name, identity, request=self.request)
        except ratelimit.RateLimitExceeded as exc:
            self.rate_limit_usages.append(exc.usage)
            raise
        if usage is not None:
            self.rate_limit_usages.append(usage)

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        usages = getattr(self, "rate_limit_usages", None)
        if usages:
            tightest = min(usages, key=lambda usage: usage.remaining)
            for header, value in tightest.headers().items():
                response[header] = value
        return response


class PublicView(JWTView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]


class BearerView(JWTView):
    authentication_classes = [JWTAuthentication]
    permission_classes = [IsAuthenticated]

    def session(self, request: Request) -> Token:
        """The session of the Bearer token (``request.auth``, set by JWTAuthentication)."""
        return cast(Token, request.auth)


def token_response(issued: IssuedTokens) -> Response:
    body = TokenPairSerializer(issued).data
    if not cookies.enabled():
        return Response(body, headers=NO_STORE)
    response = Response(cookies.without_cookie_tokens(body), headers=NO_STORE)
    cookies.set_token_cookies(response, issued)
    return response


def no_content(clear_cookies: bool) -> Response:
    response = Response(status=status.HTTP_204_NO_CONTENT)
    if clear_cookies:
        cookies.delete_token_cookies(response)
    return response


def invalid_credentials() -> AuthenticationFailed:
    return AuthenticationFailed(_("Invalid credentials."), code="invalid_credentials")


class CookieSettingView(PublicView):
    """Login and refresh: with cookie transport, a cross-site browser request is a 403 that
    sets no cookie, or another site's form could sign a visitor in as someone else."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not cookies.enabled():
            return
        reason = cookies.cross_site_reason(request._request)
        if reason is not None:
            logger.info("Cross-site request to %s refused: %s", request.path, reason)
            raise PermissionDenied(_("Cross-site request refused."), code="cross_site_request")

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        """Every answer of login and refresh is ``no-store`` (RFC 6749 5.1 and 5.2), errors
        too: a cache between client and site must keep neither a token pair nor a refusal,
        which would be served for the next request with the same URL."""
        response = super().finalize_response(request, response, *args, **kwargs)
        for header, value in NO_STORE.items():
            response[header] = value
        return response


@method_decorator(sensitive_post_parameters("password"), name="dispatch")
class LoginView(CookieSettingView):
    """Exchange a username and password (JSON, form or HTTP Basic) for a token pair."""

    rate_limit = "login"

    @extend_schema(
        summary="Log in",
        request=LoginSerializer,
        responses={
            200: TokenPairSerializer,
            **error_responses(
                400, 401, 403, 429, descriptions={401: LOGIN_REFUSED, 403: CROSS_SITE}
            ),
        },
        parameters=error_headers(401, 429),
        auth=[],
    )
    def post(self, request: Request) -> Response:
        username, password = self.get_credentials(request)
        self.limit("login_username", username.casefold())
        user = authenticate(request._request, username=username, password=password)
        if user is None:
            logger.info("Login refused: wrong credentials, or an inactive user")
            raise invalid_credentials()
        # One transaction (one commit) for last_login and the new session.
        with transaction.atomic():
            user_logged_in.send(sender=type(user), request=request._request, user=user)
            issued = self.renew_bearer_session(request, user)
            if issued is None:
                issued = Token.objects.issue(user, request=request._request)
        return token_response(issued)

    def get_credentials(self, request: Request) -> tuple[str, str]:
        data = request.data
        if not data and request.META.get("HTTP_AUTHORIZATION", "")[:6].lower() == "basic ":
            data = self.basic_credentials(request.META["HTTP_AUTHORIZATION"][6:])
        serializer = LoginSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data["username"], serializer.validated_data["password"]

    def basic_credentials(self, encoded: str) -> dict[str, str]:
        try:
            decoded = b64decode(encoded.strip().encode("ascii"), validate=True).decode("utf-8")
        except (ValueError, binascii.Error) as exc:
            raise ParseError(_("Malformed HTTP Basic credentials.")) from exc
        username, sep, password = decoded.partition(":")
        if not sep:
            raise ParseError(_("Malformed HTTP Basic credentials."))
        return {"username": username, "password": password}

    def renew_bearer_session(self, request: Request, user: Any) -> IssuedTokens | None:
        """A valid Bearer of the same user keeps its session; any other changes nothing."""
        # No CSRF token needed for an access cookie here: the password proves intent, and
        # cross-site logins never get this far (CookieSettingView).
        try:
            result = JWTAuthentication().authenticate_without_csrf(request)
        except AuthenticationFailed:
            return None
        if result is None or result[0].pk != user.pk:
            return None
        return Token.objects.renew(result[1], request=request._request)


class RefreshView(CookieSettingView):
    """Rotate a refresh token: a new token pair; a spent token revokes its session."""

    rate_limit = "refresh"

    @extend_schema(
        summary="Rotate a refresh token",
        request=RefreshSerializer,
        responses={
            200: TokenPairSerializer,
            **error_responses(
                400, 401, 403, 429, descriptions={401: REFRESH_REFUSED, 403: CROSS_SITE}
            ),
        },
        parameters=error_headers(401, 429),
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = RefreshSerializer(data=self.refresh_data(request))
        serializer.is_valid(raise_exception=True)
        refresh_token = serializer.validated_data["refresh_token"]
        self.limit("refresh_token", refresh_token)
        try:
            issued = Token.objects.rotate(refresh_token, request=request._request)
        except RefreshError as exc:
            logger.info("Refresh refused: %s", exc)
            raise AuthenticationFailed(
                _("Invalid or expired refresh token."), code="invalid_grant"
            ) from None
        return token_response(issued)

    def refresh_data(self, request: Request) -> Any:
        """The body; with cookie transport, the refresh cookie when the body names none."""
        cookie = cookies.refresh_token_from(request._request)
        if cookie and not request.data:
            return {"refresh_token": cookie}
        return request.data

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code == 401 and cookies.refresh_token_from(request._request):
            cookies.delete_token_cookies(response)  # a refused cookie is of no further use
        return response


class ValidateView(BearerView):
    """Say whether the Bearer token is valid, and whose it is."""

    rate_limit = "validate"

    @extend_schema(
        summary="Validate the Bearer token",
        request=None,
        responses={
            200: ValidateSerializer,
            **error_responses(401, 403, 429, descriptions={403: CSRF_REFUSED}),
        },
        parameters=error_headers(401, 429),
    )
    def post(self, request: Request) -> Response:
        session = self.session(request)
        self.limit("validate_token", session.pk)
        # Verified claims: exp is an integer within SESSION_MAX_LIFETIME of a past iat.
        expires_at = datetime.fromtimestamp(session.access_claims["exp"], tz=UTC)
        data = {
            "valid": True,
            "user": request.user,
            "sid": session.pk,
            "expires_at": expires_at,
        }
        return Response(ValidateSerializer(data).data, headers=NO_STORE)


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
        return sessions.filter(refresh_tokens__token_hash=sha256_hex(raw)).first()

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
        self.current_session(request).revoke(RevokeReason.LOGOUT)
        return no_content(clear_cookies=cookies.enabled())


class LogoutAllView(CookieLogoutMixin):
    """Revoke every session of the Bearer token's (or the refresh cookie's) user."""

    @extend_schema(
        summary="Log out everywhere",
        request=None,
        responses={204: None, **error_responses(401, 403, descriptions={403: CSRF_REFUSED})},
        parameters=error_headers(401),
    )
    def post(self, request: Request) -> Response:
        Token.objects.revoke_all(self.current_session(request).user, RevokeReason.LOGOUT_ALL)
        return no_content(clear_cookies=cookies.enabled())


class SessionListView(BearerView):
    """The live sessions of the Bearer token's user; ``current`` marks this one."""

    @extend_schema(
        summary="List my sessions",
        responses={200: SessionSerializer(many=True), **error_responses(401)},
        parameters=error_headers(401),
    )
    def get(self, request: Request) -> Response:
        sessions = Token.objects.live().filter(user=request.user).order_by("-created_at")
        serializer = SessionSerializer(sessions, many=True, context={"request": request})
        return Response(serializer.data, headers=NO_STORE)


class SessionDetailView(BearerView):
    """Revoke one of the caller's live sessions; 404 for any other."""

    @extend_schema(
        summary="Revoke one of my sessions",
        responses={
            204: None,
            **error_responses(
                401, 403, 404, descriptions={403: CSRF_REFUSED, 404: NOT_A_LIVE_SESSION}
            ),
        },
        parameters=error_headers(401),
    )
    def delete(self, request: Request, session_id: str) -> Response:
        session = get_object_or_404(Token.objects.live().filter(user=request.user), pk=session_id)
        session.revoke(RevokeReason.SESSION_DELETED)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(exclude=True)  # the same path as cocart_jwt:session, which the schema documents
class NoSuchSessionView(SessionDetailView):
    """``sessions/<what no session id can be>/``: the JSON 404 of a session that is not the
    caller's, after the same authentication, instead of the site's HTML 404 page. A client
    cannot tell it from an id that could exist, and no query runs."""

    def delete(self, request: Request, session_id: str) -> Response:
        raise NotFound()


class JWKSView(PublicView):
    """The public verification keys (RFC 7517); empty for HMAC algorithms."""

    @extend_schema(
        summary="Public verification keys (JWKS)",
        responses={200: JWKSSerializer},
        auth=[],
    )
    def get(self, request: Request) -> Response:
        return Response(keyring().jwks, headers={"Cache-Control": "public, max-age=300"})
