"""The token endpoints (login, refresh, validate, JWKS) and the base of every API view.

The caller's sessions (logout, the session list) are in session_views.py, the login link
page in link_views.py.
"""

from __future__ import annotations

import binascii
import logging
from base64 import b64decode
from datetime import UTC, datetime
from typing import Any, cast

from django.contrib.auth import authenticate, user_logged_in
from django.db import connections, transaction
from django.http import Http404
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters
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
from .dpop_endpoints import InvalidDPoPProofError, add_nonce, proven_key
from .http import client_ip, no_store
from .issued import DPoPKeyMismatch, IssuedTokens, RefreshError
from .keys import keyring
from .models import Token
from .parsers import JSONParser
from .primary import primary_reads
from .schema import (
    CROSS_SITE,
    CSRF_REFUSED,
    LOGIN_REFUSED,
    REFRESH_REFUSED,
    error_headers,
    error_responses,
    extend_schema,
)
from .serializers import (
    JWKSSerializer,
    LoginSerializer,
    RefreshSerializer,
    TokenPairSerializer,
    ValidateSerializer,
)

logger = logging.getLogger("cocart_jwt")


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
    A ``dpop_endpoint`` (login, refresh, reauthenticate) answers with a fresh ``DPoP-Nonce``
    while ``DPOP_REQUIRE_NONCE`` is on.
    """

    rate_limit: str | None = None
    dpop_endpoint = False
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
        return add_nonce(response) if self.dpop_endpoint else response


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
        return no_store(Response(body))
    response = no_store(Response(cookies.without_cookie_tokens(body)))
    cookies.set_token_cookies(response, issued)
    return response


def check_credentials(request: Request, username: str, password: str) -> Any:
    """The user these credentials name, or None: Django's ``authenticate()``, with every read of
    every authentication backend sent to the primary (a replica may still hold the password
    changed a moment ago, or the user deactivated)."""
    with primary_reads():
        return authenticate(request._request, username=username, password=password)


def invalid_credentials() -> AuthenticationFailed:
    return AuthenticationFailed(_("Invalid credentials."), code="invalid_credentials")


class CookieSetting(JWTView):
    """Login, refresh and reauthenticate: with cookie transport, a cross-site browser request
    is a 403 that sets no cookie, or another site's form could sign a visitor in as someone
    else."""

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
        """Every answer of an endpoint that mints is ``no-store`` (RFC 6749 5.1 and 5.2), errors
        too: a cache between client and site must keep neither a token pair nor a refusal,
        which would be served for the next request with the same URL."""
        response = super().finalize_response(request, response, *args, **kwargs)
        return no_store(response)


class CookieSettingView(CookieSetting, PublicView):
    """Login and refresh: public, under the cookie rules of ``CookieSetting``; a DPoP proof
    binds the session they start or refresh (docs/dpop.md)."""

    dpop_endpoint = True


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
        # The proof before the password: a client told to fetch a nonce has not spent a guess.
        dpop_jkt = proven_key(request)
        self.limit("login_username", username.casefold())
        user = check_credentials(request, username, password)
        if user is None:
            logger.info("Login refused: wrong credentials, or an inactive user")
            raise invalid_credentials()
        # One transaction (one commit) for last_login and the new session.
        with transaction.atomic():
            user_logged_in.send(sender=type(user), request=request._request, user=user)
            issued = self.renew_bearer_session(request, user, dpop_jkt)
            if issued is None:
                issued = Token.objects.issue(
                    user, request=request._request, login=True, dpop_jkt=dpop_jkt
                )
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

    def renew_bearer_session(
        self, request: Request, user: Any, dpop_jkt: str
    ) -> IssuedTokens | None:
        """A valid Bearer (or DPoP-bound token) of the same user keeps its session; any other
        changes nothing. A bound session's proof was checked by the authentication."""
        # No CSRF token needed for an access cookie here: the password proves intent, and
        # cross-site logins never get this far (CookieSettingView).
        try:
            result = JWTAuthentication().authenticate_without_csrf(request)
        except AuthenticationFailed:
            return None
        if result is None or result[0].pk != user.pk:
            return None
        try:
            return Token.objects.renew(result[1], request=request._request, dpop_jkt=dpop_jkt)
        except DPoPKeyMismatch:  # a proof-less login with a bound session's token
            return None


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
        dpop_jkt = proven_key(request)
        try:
            issued = Token.objects.rotate(
                refresh_token, request=request._request, dpop_jkt=dpop_jkt
            )
        except DPoPKeyMismatch as exc:  # nothing was spent: the client retries with its key
            logger.info("Refresh refused: %s", exc)
            raise InvalidDPoPProofError() from None
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
        return no_store(Response(ValidateSerializer(data).data))


class JWKSView(PublicView):
    """The public verification keys (RFC 7517); empty for HMAC algorithms."""

    @extend_schema(
        summary="Public verification keys (JWKS)",
        responses={200: JWKSSerializer},
        auth=[],
    )
    def get(self, request: Request) -> Response:
        return Response(keyring().jwks, headers={"Cache-Control": "public, max-age=300"})
