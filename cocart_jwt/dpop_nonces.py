"""Server-provided DPoP nonces (RFC 9449 section 8), stateless.

A nonce is base64url of the time it was made (8 bytes, Unix seconds) and an HMAC-SHA256 of
that time, keyed from ``SECRET_KEY`` with a salt of its own (``salted_hmac``): any process of
the site can check it without storing anything. It is accepted for ``DPOP_PROOF_LIFETIME``
after it was made (``LEEWAY`` either side, for the clocks of several servers); one made with a
key of ``SECRET_KEY_FALLBACKS`` too, so rotating ``SECRET_KEY`` does not refuse the nonces of
the last minute. A nonce is no secret and may be used by many proofs: each proof's ``jti``
is what is single-use.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac

from .dpop_jose import UseDPoPNonce
from .key_material import b64url
from .settings import jwt_settings
from .tokens import InvalidToken, b64url_decode
from .utils import now

SALT = "cocart_jwt.dpop.nonce"
TIME_BYTES = 8
MAC_BYTES = 32
NONCE_LENGTH = len(b64url(bytes(TIME_BYTES + MAC_BYTES)))


def new_nonce() -> str:
    """A nonce for the ``DPoP-Nonce`` header, fresh for ``DPOP_PROOF_LIFETIME``."""
    made = int(now().timestamp()).to_bytes(TIME_BYTES, "big")
    return b64url(made + _mac(made, settings.SECRET_KEY))


def check_nonce(value: Any) -> None:
    """Raise ``UseDPoPNonce`` unless ``value`` is a nonce of this site, still fresh."""
    if value is None:
        raise UseDPoPNonce("nonce required but the proof has none")
    if not isinstance(value, str) or len(value) != NONCE_LENGTH:
        raise UseDPoPNonce("nonce is not one of this server's (malformed)")
    try:
        raw = b64url_decode(value, "nonce")
    except InvalidToken:
        raise UseDPoPNonce("nonce is not one of this server's (not base64url)") from None
    made, mac = raw[:TIME_BYTES], raw[TIME_BYTES:]
    keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    # Every key is tried, whichever matches: the time taken says nothing of which did.
    matches = [hmac.compare_digest(mac, _mac(made, key)) for key in keys]
    if not any(matches):
        raise UseDPoPNonce("nonce is not one of this server's (bad MAC)")
    age = now().timestamp() - int.from_bytes(made, "big")
    leeway = jwt_settings.LEEWAY.total_seconds()
    if not -leeway <= age <= jwt_settings.DPOP_PROOF_LIFETIME.total_seconds() + leeway:
        raise UseDPoPNonce("nonce is stale")


def _mac(made: bytes, key: Any) -> bytes:
    return salted_hmac(SALT, made, secret=key, algorithm="sha256").digest()
