"""The DRF authentication class: ``Authorization: Bearer <access token>``, and
``Authorization: DPoP <access token>`` with a ``DPoP`` proof for a session bound to a key
(RFC 9449)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, NoReturn

from django.db import router
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import BaseAuthentication, CSRFCheck
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.request import Request

from . import cookies, dpop
from .dpop_endpoints import checked_proof, remember_proof
from .http import client_ip, user_agent
from .models import Token
from .settings import jwt_settings
from .signals import token_authenticated
from .store import cached
from .store.live import load_live_session
from .tokens import InvalidToken, check_token_of, confirmation_key, verify_access_token
from .utils import now

logger = logging.getLogger("cocart_jwt")

ERROR_ATTR = "_cocart_jwt_error"
SCHEME_ATTR = "_cocart_jwt_scheme"
INVALID_TOKEN = "invalid_token"  # noqa: S105 (an RFC 6750 error code)
INVALID_DPOP_PROOF = "invalid_dpop_proof"
# Other HTTP authentication schemes (the IANA registry's, RFC 9110 11.6): a site serves them on
# purpose (the login view reads Basic credentials), so a request with one is no client mistake.
# Anything else, "JWT" (simplejwt, djangorestframework-jwt), "Token" (DRF, knox), a typo or a
# token with no scheme at all, is most likely a client that meant Bearer: the log says so.
OTHER_SCHEMES = frozenset(
    {
        "basic",
        "concealed",
        "digest",
        "hoba",
        "mutual",
        "negotiate",
        "ntlm",
        "privatetoken",
        "scram-sha-1",
        "scram-sha-256",
        "vapid",
    }
)
# A scheme is named in the log only when it is a short word: a longer or odder first word may
# be a credential (a token sent with a space in it), and no header value is ever logged.
SCHEME_SHOWN_MAX = 20


def enforce_csrf(request: Request) -> None:
    """A cookie rides along on cross-site requests: check CSRF as SessionAuthentication does."""

    def no_response(request: HttpRequest) -> HttpResponse:
        raise AssertionError("only process_view runs")

    check = CSRFCheck(no_response)
    check.process_request(request._request)
    reason = check.process_view(request._request, no_response, (), {})
    if reason:
        raise PermissionDenied(f"CSRF Failed: {reason}")


class JWTAuthentication(BaseAuthentication):
    """Verify the access token, then load its live session and user in one query.

    Returns ``(user, session)``: ``request.auth`` is the ``cocart_jwt.Token`` row, with the
    verified claims in ``request.auth.access_claims``.

    A token bound to a DPoP key (``cnf.jkt``) is accepted only as ``Authorization: DPoP`` with
    a fresh proof by that key, for this request and this token (``ath``); as a Bearer, or in a
    cookie, it is refused. The session must be bound to the same key.
    """

    keyword = "bearer"
    dpop_keyword = "dpop"
    www_authenticate_realm = "api"

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        return self.verify(request, csrf=True)

    def authenticate_without_csrf(self, request: Request) -> tuple[Any, Token] | None:
        """``authenticate()`` with an access cookie accepted without a CSRF token: for a caller
        that has its own proof the user meant the request (a login's password, sent from this
        site, see ``cookies.cross_site_reason``)."""
        return self.verify(request, csrf=False)

    def verify(self, request: Request, *, csrf: bool) -> tuple[Any, Token] | None:
        """The user and session of the request's access token; a cookie-borne token must pass
        Django's CSRF check when ``csrf``."""
        raw = self.get_raw_token(request)
        from_cookie = False
        if raw is None:
            raw = cookies.access_token_from(request._request)
            from_cookie = raw is not None
        if raw is None:
            return None
        at = now()
        try:
            claims = verify_access_token(raw)
            self.check_proof(request, raw, claims)
            session, touch_due = load_live_session(claims["sid"], at)
            check_token_of(session, claims)
            self.check_binding(session, request)
        except InvalidToken as exc:
            logger.info("Access token refused: %s", exc)
            self.fail(request)
        if from_cookie and csrf:
            enforce_csrf(request)
        session.access_claims = claims
        if touch_due:
            self.touch(session, at)
        token_authenticated.send(
            type(self), token=session, user=session.user, claims=claims, request=request
        )
        return session.user, session

    def check_proof(self, request: Request, raw: str, claims: dict[str, Any]) -> None:
        """A bound token comes with the DPoP scheme and a proof by its key; a bearer one
        without them. The proof is checked once per request (a login carrying its token has
        checked it already)."""
        bound = confirmation_key(claims)
        if getattr(request, SCHEME_ATTR, None) != self.dpop_keyword:
            if bound:
                raise InvalidToken("a DPoP-bound token without the DPoP scheme and a proof")
            return
        if not bound:
            raise InvalidToken("the DPoP scheme with a token bound to no key")
        proof = checked_proof(request._request, raw)
        if proof is None:
            try:
                proof = dpop.verify_proof(request._request, access_token=raw, nonce_required=False)
            except dpop.InvalidDPoPProof:  # its reason is logged
                self.fail(request, INVALID_DPOP_PROOF)
            remember_proof(request._request, proof, raw)
        if not constant_time_compare(proof.jkt, bound):
            logger.info("DPoP proof refused: by another key than the token is bound to")
            self.fail(request, INVALID_DPOP_PROOF)

    def authenticate_header(self, request: Request) -> str:
        error = getattr(request, ERROR_ATTR, None)
        if getattr(request, SCHEME_ATTR, None) == self.dpop_keyword:
            return dpop.www_authenticate(error)
        if error:
            return f'Bearer realm="{self.www_authenticate_realm}", error="{error}"'
        return f'Bearer realm="{self.www_authenticate_realm}"'

    def get_raw_token(self, request: Request) -> str | None:
        """The token after a ``Bearer`` scheme (any case); None when another scheme is used."""
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, sep, credentials = header.strip().partition(" ")
        if scheme.lower() not in (self.keyword, self.dpop_keyword):
            if scheme:
                self.log_other_scheme(request, scheme, has_credentials=bool(sep))
            return None
        setattr(request, SCHEME_ATTR, scheme.lower())
        credentials = credentials.strip()
        if not credentials or " " in credentials:
            logger.info("Access token refused: malformed Authorization header")
            self.fail(request)
        return credentials

    def log_other_scheme(self, request: Request, scheme: str, *, has_credentials: bool) -> None:
        """Tell the log why a header that was likely meant for us was not read: the client sees
        only DRF's "Authentication credentials were not provided." (a 401 like no header)."""
        if scheme.lower() in OTHER_SCHEMES or self.read_elsewhere(request, scheme):
            return
        expected = self.keyword.capitalize()
        if not has_credentials:  # one word: the whole header, maybe a bare token
            logger.info("Authorization header without a scheme ignored: send %s <token>", expected)
        elif scheme.isascii() and scheme.isalpha() and len(scheme) <= SCHEME_SHOWN_MAX:
            logger.info(
                "Authorization header with scheme %s ignored: send %s <token>", scheme, expected
            )
        else:
            logger.info(
                "Authorization header with an unknown scheme ignored: send %s <token>", expected
            )

    def read_elsewhere(self, request: Request, scheme: str) -> bool:
        """Whether another authentication class of the view announces ``scheme`` (DRF's
        TokenAuthentication reads "Token"): then the header is not meant for this one."""
        for authenticator in getattr(request, "authenticators", None) or ():
            if isinstance(authenticator, JWTAuthentication):
                continue
            challenge = authenticator.authenticate_header(request) or ""
            if challenge.split(" ", 1)[0].lower() == scheme.lower():
                return True
        return False

    def check_binding(self, session: Token, request: Request) -> None:
        if not (jwt_settings.BIND_TO_IP or jwt_settings.BIND_TO_USER_AGENT):
            return
        if session.bind_on_first_use:
            self.bind_to_first_use(session, request)
        if jwt_settings.BIND_TO_IP and session.ip != client_ip(request):
            raise InvalidToken(f"session {session.pk} is bound to another IP address")
        if jwt_settings.BIND_TO_USER_AGENT and session.user_agent != user_agent(request):
            raise InvalidToken(f"session {session.pk} is bound to another user agent")

    def bind_to_first_use(self, session: Token, request: Request) -> None:
        """Record this client on a session issued without its holder's request (CLI, admin).

        One conditional UPDATE claims the binding, so of racing first uses exactly one wins;
        a loser (or a stale cached snapshot) reads the winner's binding from the primary.
        """
        ip, agent = client_ip(request), user_agent(request)
        claimed = Token.objects.filter(pk=session.pk, bind_on_first_use=True).update(
            ip=ip, user_agent=agent, bind_on_first_use=False
        )
        if claimed:
            logger.info("Session %s bound to its first client", session.pk)
            cached.mark_stale([session.pk])  # snapshots still say "unbound"
        else:
            bound = (
                Token.objects.using(router.db_for_write(Token))
                .filter(pk=session.pk)
                .values_list("ip", "user_agent")
                .first()
            )
            if bound is None:
                raise InvalidToken(f"session {session.pk} no longer exists")
            ip, agent = bound
        session.ip, session.user_agent, session.bind_on_first_use = ip, agent, False

    def touch(self, session: Token, at: datetime) -> None:
        """Record use; the condition keeps it to one write per TOUCH_INTERVAL across processes."""
        threshold = at - jwt_settings.TOUCH_INTERVAL
        Token.objects.filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=threshold), pk=session.pk
        ).update(last_used_at=at)
        session.last_used_at = at

    def fail(self, request: Request, error: str = INVALID_TOKEN) -> NoReturn:
        setattr(request, ERROR_ATTR, error)
        if error == INVALID_DPOP_PROOF:
            raise AuthenticationFailed(_("Invalid DPoP proof."), code=INVALID_DPOP_PROOF)
        raise AuthenticationFailed(_("Invalid or expired token."), code=INVALID_TOKEN)
