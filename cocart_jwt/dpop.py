"""DPoP proofs (RFC 9449): every check of section 4.3 on one request, and the replay guard.

``verify_proof(request)`` returns the ``Proof`` of the request's ``DPoP`` header or raises
``InvalidDPoPProof`` (``UseDPoPNonce`` when a fresh server nonce is what is missing). In
order: exactly one ``DPoP`` header; a compact JWS with ``typ`` ``dpop+jwt``, an asymmetric
``alg`` of ``DPOP_ALGORITHMS``, a public ``jwk`` that fits it and no ``crit``, signed with that
key (``dpop_jose``); the claims ``jti``, ``htm``, ``htu``, ``iat``; ``htm`` the request's method;
``htu`` the request's URI without query and fragment, as ``request.build_absolute_uri()`` says
(so Django's ``SECURE_PROXY_SSL_HEADER`` and ``USE_X_FORWARDED_HOST`` decide scheme and host),
both sides normalised (RFC 3986 section 6.2.2 and 6.2.3: scheme and host case,
percent-encoding, default port, empty path); ``iat`` in [now - ``DPOP_PROOF_LIFETIME`` -
``LEEWAY``, now + ``LEEWAY``]; with an access token, ``ath``; the nonce when required
(``dpop_nonces``). Last, the proof's ``jti`` is claimed in the cache named by ``CACHE``.

Replay: ``cache.add`` of ``cocart_jwt:{dpop:<sha256 of jkt:jti>}`` (the hash tag keeps the key
on one Redis Cluster node); a failed add is a replay, exact across processes on a shared cache.
The key lives ``DPOP_PROOF_LIFETIME`` + 2 ``LEEWAY`` (rounded up) and one second more: a proof
dated ``LEEWAY`` ahead is accepted until that long after it is first seen, and a cache expires
a key at its deadline, when the proof is still in its window. Any cache error refuses the proof.

Each refusal is logged at INFO on ``cocart_jwt`` with its reason; never the proof, a token or
a ``jti``. The binding itself (a token's ``cnf.jkt`` equal to ``Proof.jkt``) is the caller's.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.cache import caches
from django.http import HttpRequest

from .dpop_jose import (
    InvalidDPoPProof,
    UseDPoPNonce,
    allowed_algorithms,
    jwk_thumbprint,
    read_signed_proof,
)
from .dpop_nonces import check_nonce, new_nonce
from .key_material import b64url
from .settings import jwt_settings
from .utils import OutageLog, now, sha256_hex

__all__ = [
    "InvalidDPoPProof",
    "Proof",
    "UseDPoPNonce",
    "jwk_thumbprint",
    "new_nonce",
    "verify_proof",
    "www_authenticate",
]

logger = logging.getLogger("cocart_jwt")

HEADER = "HTTP_DPOP"
MAX_JTI_LENGTH = 255
DEFAULT_PORTS = {"http": 80, "https": 443}
PERCENT_ENCODED = re.compile(r"%([0-9A-Fa-f]{2})")
UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# RFC 6750 section 3: the characters an error code may hold.
ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")

replay_cache = OutageLog("DPoP replay cache")


@dataclass(frozen=True)
class Proof:
    """A valid proof: ``jkt`` is its key's RFC 7638 thumbprint (what ``cnf.jkt`` binds)."""

    jkt: str
    jti: str
    iat: int
    alg: str
    # The server nonce it carries (None: none), for a caller that must require one later.
    nonce: Any = None


def verify_proof(
    request: HttpRequest,
    *,
    access_token: str | None = None,
    nonce_required: bool | None = None,
) -> Proof:
    """The request's valid, never-seen proof; ``InvalidDPoPProof`` otherwise.

    ``access_token``: the token the request presents (a resource request); its hash must be
    the proof's ``ath``. Without one, an ``ath`` is ignored. ``nonce_required``: None follows
    ``DPOP_REQUIRE_NONCE``. A host Django refuses (``ALLOWED_HOSTS``) raises Django's own
    ``DisallowedHost``, answered 400 by Django.
    """
    try:
        proof = _checked(request, access_token, nonce_required)
    except InvalidDPoPProof as exc:
        logger.info("DPoP proof refused: %s", exc)
        raise
    return proof


def _checked(request: HttpRequest, access_token: str | None, nonce_required: bool | None) -> Proof:
    signed = read_signed_proof(single_header(request))
    jti, iat = required_claims(signed.claims)
    check_request(signed.claims, request)
    check_iat(iat)
    if access_token is not None:
        check_ath(signed.claims.get("ath"), access_token)
    required = jwt_settings.DPOP_REQUIRE_NONCE if nonce_required is None else nonce_required
    if required:
        check_nonce(signed.claims.get("nonce"))
    claim_jti(signed.jkt, jti)
    return Proof(jkt=signed.jkt, jti=jti, iat=iat, alg=signed.alg, nonce=signed.claims.get("nonce"))


def required_claims(claims: dict[str, Any]) -> tuple[str, int]:
    """``jti`` (a short printable string), ``htm`` and ``htu`` (strings), ``iat`` (an integer)."""
    jti, iat = claims.get("jti"), claims.get("iat")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH or not jti.isprintable():
        raise InvalidDPoPProof("jti claim missing, empty, longer than 255 or unprintable")
    for name in ("htm", "htu"):
        if not isinstance(claims.get(name), str):
            raise InvalidDPoPProof(f"{name} claim missing or not a string")
    if type(iat) is not int:
        raise InvalidDPoPProof("iat claim missing or not an integer")
    return jti, iat


def check_request(claims: dict[str, Any], request: HttpRequest) -> None:
    """``htm`` is the request's method, ``htu`` its URI (checks 8 and 9)."""
    if claims["htm"] != request.method:
        raise InvalidDPoPProof("htm does not match the request method")
    expected = normalised_uri(request.build_absolute_uri())
    if expected is None or normalised_uri(claims["htu"]) != expected:
        raise InvalidDPoPProof("htu does not match the request URI (scheme, host, port or path)")


def single_header(request: HttpRequest) -> str:
    """RFC 9449 section 4.3 check 1: one ``DPoP`` field. Servers join repeated fields with
    commas (a JWS holds none), so a comma means several."""
    value = request.META.get(HEADER)
    if value is None:
        raise InvalidDPoPProof("no DPoP header")
    if not isinstance(value, str) or not value:
        raise InvalidDPoPProof("empty DPoP header")
    if "," in value:
        raise InvalidDPoPProof("more than one DPoP header")
    return value


def normalised_uri(uri: str) -> str | None:
    """Scheme and host lowercased, the default port dropped, percent-encodings in one case and
    unreserved characters decoded, an empty path as ``/``; query and fragment left out (RFC
    9449 compares without them). None when it is no absolute http(s) URI without userinfo."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    if ":" in host:  # IPv6: urlsplit drops the brackets
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    path = PERCENT_ENCODED.sub(_normalised_escape, parts.path) or "/"
    return f"{scheme}://{host}{path}"


def _normalised_escape(match: re.Match[str]) -> str:
    character = chr(int(match.group(1), 16))
    return character if character in UNRESERVED else f"%{match.group(1).upper()}"


def check_iat(iat: int) -> None:
    current = now().timestamp()
    leeway = jwt_settings.LEEWAY.total_seconds()
    if iat > current + leeway:
        raise InvalidDPoPProof("iat is in the future (beyond LEEWAY)")
    if iat < current - jwt_settings.DPOP_PROOF_LIFETIME.total_seconds() - leeway:
        raise InvalidDPoPProof("iat is older than DPOP_PROOF_LIFETIME (and LEEWAY)")


def check_ath(ath: object, access_token: str) -> None:
    """``ath``: base64url of the SHA-256 of the access token's ASCII, compared in constant time."""
    if not isinstance(ath, str):
        raise InvalidDPoPProof("ath claim missing or not a string, with an access token")
    try:
        expected = b64url(hashlib.sha256(access_token.encode("ascii")).digest())
    except UnicodeEncodeError:
        raise InvalidDPoPProof("access token is not ASCII") from None
    if not hmac.compare_digest(ath.encode("utf-8"), expected.encode("ascii")):
        raise InvalidDPoPProof("ath is not the hash of the access token")


def replay_key(jkt: str, jti: str) -> str:
    return f"cocart_jwt:{{dpop:{sha256_hex(f'{jkt}:{jti}')}}}"


def replay_ttl() -> int:
    """Whole seconds a jti is kept: the window of a proof dated LEEWAY ahead, and one more."""
    # At least 1: a window under -1 s (a negative LEEWAY, E005) accepts no iat at all.
    window = jwt_settings.DPOP_PROOF_LIFETIME + 2 * jwt_settings.LEEWAY
    return math.ceil(window.total_seconds()) + 1


def claim_jti(jkt: str, jti: str) -> None:
    """Refuse a ``jti`` seen before with this key, in any process sharing the cache."""
    try:
        added = caches[jwt_settings.CACHE].add(replay_key(jkt, jti), 1, replay_ttl())
    except Exception as exc:  # whatever the cache raises, the proof is refused
        replay_cache.failed(exc, "every DPoP proof is refused until it is back")
        raise InvalidDPoPProof(f"replay cache unavailable ({type(exc).__name__})") from None
    replay_cache.ok()
    if added is None:  # django-redis with IGNORE_EXCEPTIONS: an error, swallowed
        raise InvalidDPoPProof("replay cache gave no answer (are its errors ignored?)")
    if not added:
        raise InvalidDPoPProof("jti already used with this key (a replayed proof)")


def www_authenticate(error: str | None = None) -> str:
    """The ``WWW-Authenticate`` challenge of RFC 9449 section 7.1:
    ``DPoP error="invalid_dpop_proof", algs="ES256 ..."``, or ``DPoP algs="..."``."""
    params = [f'algs="{" ".join(allowed_algorithms())}"']
    if error is not None:
        if not ERROR_CODE.fullmatch(error):
            raise ValueError("an error code is printable ASCII without quote or backslash")
        params.insert(0, f'error="{error}"')
    return "DPoP " + ", ".join(params)
