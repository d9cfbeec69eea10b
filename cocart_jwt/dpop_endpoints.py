"""DPoP at the token endpoints (RFC 9449 sections 5 and 8): which key a login, refresh or
reauthentication proves, and the answers when it proves none that will do.

``proven_key(request)`` is the RFC 7638 thumbprint of the key of the request's ``DPoP`` proof,
or "" when it carries none (a Bearer client: nothing changes for it). A proof the
authentication class already checked on this request (``Authorization: DPoP``: a
reauthentication, a login carrying its token) is not checked twice, which its ``jti`` would
refuse as a replay; with ``DPOP_REQUIRE_NONCE``, its nonce is still required here.

A bad proof is a 400 ``{"error": "invalid_dpop_proof"}``; a missing or stale server nonce a 400
``{"error": "use_dpop_nonce"}``, and every answer of these endpoints carries a fresh
``DPoP-Nonce`` while ``DPOP_REQUIRE_NONCE`` is on. An access token in a cookie
(``ACCESS_COOKIE_NAME``) would ride on requests with no proof: no session is bound then.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from . import cookies
from .dpop import HEADER, InvalidDPoPProof, Proof, UseDPoPNonce, new_nonce, verify_proof
from .dpop_nonces import check_nonce
from .settings import jwt_settings

logger = logging.getLogger("cocart_jwt")

# Set on the Django request by JWTAuthentication: (the proof, the access token it was for).
CHECKED_PROOF = "_cocart_jwt_dpop_proof"
NONCE_HEADER = "DPoP-Nonce"


class InvalidDPoPProofError(APIException):
    """400 ``invalid_dpop_proof`` (RFC 9449 section 5): the client's ``error`` as OAuth has it,
    beside this app's ``detail`` and ``code``."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = _("The DPoP proof is invalid, or not by the key this session is bound to.")
    default_code = "invalid_dpop_proof"

    def __init__(self) -> None:
        # The views' exception handler adds the "code" beside the "detail".
        super().__init__({"error": self.default_code, "detail": self.default_detail})


class UseDPoPNonceError(InvalidDPoPProofError):
    """400 ``use_dpop_nonce`` (RFC 9449 section 8): retry with the ``DPoP-Nonce`` of this
    answer."""

    default_detail = _("Send the DPoP proof again with the nonce in the DPoP-Nonce header.")
    default_code = "use_dpop_nonce"


def checked_proof(request: HttpRequest, access_token: str) -> Proof | None:
    """The proof JWTAuthentication checked on this request for ``access_token``, if any."""
    checked = getattr(request, CHECKED_PROOF, None)
    if checked is None or checked[1] != access_token:
        return None
    proof: Proof = checked[0]
    return proof


def remember_proof(request: HttpRequest, proof: Proof, access_token: str | None) -> None:
    setattr(request, CHECKED_PROOF, (proof, access_token))


def proven_key(request: Request) -> str:
    """The thumbprint of the DPoP key this token-endpoint request proves; "" without a proof.
    Raises the 400s above for a proof that will not do."""
    django_request = request._request
    checked = getattr(django_request, CHECKED_PROOF, None)
    if checked is not None:
        proof: Proof = checked[0]
        if jwt_settings.DPOP_REQUIRE_NONCE:
            try:
                check_nonce(proof.nonce)
            except UseDPoPNonce as exc:
                logger.info("DPoP proof refused: %s", exc)
                raise UseDPoPNonceError() from None
        return proof.jkt
    if HEADER not in request.META:
        return ""
    if cookies.enabled() and jwt_settings.ACCESS_COOKIE_NAME:
        raise refused("an access token in a cookie (ACCESS_COOKIE_NAME) cannot be bound")
    access_token = bearer_of_dpop_scheme(request)
    try:
        proof = verify_proof(django_request, access_token=access_token)  # logs a refusal
    except UseDPoPNonce:
        raise UseDPoPNonceError() from None
    except InvalidDPoPProof:
        raise InvalidDPoPProofError() from None
    remember_proof(django_request, proof, access_token)
    return proof.jkt


def bearer_of_dpop_scheme(request: Request) -> str | None:
    """The token of an ``Authorization: DPoP <token>`` header (its proof must hash it)."""
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    return credentials.strip() or None if scheme.lower() == "dpop" else None


def refused(reason: str) -> InvalidDPoPProofError:
    logger.info("DPoP proof refused: %s", reason)
    return InvalidDPoPProofError()


def add_nonce(response: Response) -> Any:
    """A fresh server nonce on an answer of a token endpoint, while DPOP_REQUIRE_NONCE is on."""
    if jwt_settings.DPOP_REQUIRE_NONCE:
        response[NONCE_HEADER] = new_nonce()
    return response
