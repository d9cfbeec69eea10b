"""A DPoP client for tests: keys and proofs made with PyJWT and cryptography, as a real client
makes them (RFC 9449 section 4.2), and requests that carry them (Django's RequestFactory).

``proof(...)`` signs a valid proof for ``URL`` unless told otherwise: ``claims`` and ``header``
add or replace members, ``drop`` removes claims, ``key``/``jwk`` choose the signing key and the
key shown in the header (they differ for a forged proof). ``compact(...)`` puts together what
PyJWT would refuse to make. ``assert_refused`` checks a refusal and its one log line.
"""

from __future__ import annotations

import functools
import json
import secrets
from base64 import urlsafe_b64decode, urlsafe_b64encode
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from django.http import HttpRequest
from django.test import RequestFactory
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from cocart_jwt.dpop import InvalidDPoPProof, Proof, verify_proof
from cocart_jwt.utils import now

PATH = "/api/orders/"
URL = f"http://testserver{PATH}"
DEFAULT_ALGORITHMS = ["ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "EdDSA"]
CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


def private_key(alg: str, number: int = 0) -> Any:
    """A key for ``alg``, the same for the same (alg, number) in one process. The RS and PS
    algorithms share the RSA key of their number: 2048-bit keys are slow to make."""
    if alg in CURVES or alg in ("EdDSA", "Ed448"):
        return _key(alg, number)
    if alg.startswith(("RS", "PS")):
        return _key("RSA", number)
    raise ValueError(alg)


@functools.cache
def _key(kind: str, number: int) -> Any:
    if kind in CURVES:
        return ec.generate_private_key(CURVES[kind]())
    if kind == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "Ed448":
        return ed448.Ed448PrivateKey.generate()
    return rsa_key(2048)


def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def public_jwk(key: Any) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return RSAAlgorithm.to_jwk(public, as_dict=True)
    if isinstance(public, ec.EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(public, as_dict=True)
    return OKPAlgorithm.to_jwk(public, as_dict=True)


def proof(
    alg: str = "ES256",
    *,
    key: Any = None,
    jwk: dict[str, Any] | None = None,
    htm: str = "GET",
    htu: str = URL,
    iat: int | None = None,
    claims: dict[str, Any] | None = None,
    header: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> str:
    key = private_key(alg) if key is None else key
    payload: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": htm,
        "htu": htu,
        "iat": int(now().timestamp()) if iat is None else iat,
        **(claims or {}),
    }
    for name in drop:
        payload.pop(name)
    headers = {"typ": "dpop+jwt", "jwk": public_jwk(key) if jwk is None else jwk, **(header or {})}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def request(value: str | None, method: str = "GET", path: str = PATH, **extra: Any) -> HttpRequest:
    """A request to ``path`` carrying ``value`` as its DPoP header (none when None)."""
    if value is not None:
        extra["HTTP_DPOP"] = value
    return RequestFactory().generic(method, path, **extra)


def accepted(value: str, **kwargs: Any) -> Proof:
    return verify_proof(request(value, **kwargs))


def b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(header: Any, claims: Any, signature: bytes = b"\x01" * 64) -> str:
    """A JWS put together by hand (its signature made of ``signature``'s bytes)."""
    encode = json.dumps
    return ".".join((b64(encode(header).encode()), b64(encode(claims).encode()), b64(signature)))


def fresh_claims() -> dict[str, Any]:
    return {
        "jti": secrets.token_urlsafe(8),
        "htm": "GET",
        "htu": URL,
        "iat": int(now().timestamp()),
    }


def jti_of(value: str) -> str | None:
    """The proof's jti, when it is long enough to be looked for in a log."""
    try:
        segment = value.split(".")[1]
        jti = str(json.loads(urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))["jti"])
    except (ValueError, IndexError, KeyError, TypeError):
        return None
    return jti if len(jti) > 3 else None


def assert_refused(
    caplog: pytest.LogCaptureFixture,
    value: str | None,
    reason: str,
    *,
    req: HttpRequest | None = None,
    **kwargs: Any,
) -> InvalidDPoPProof:
    """Verify ``value`` (or ``req``), expect ``InvalidDPoPProof`` and exactly one log line,
    ``DPoP proof refused: <reason>``, that holds no part of the proof and not its jti."""
    req = request(value) if req is None else req
    value = req.META.get("HTTP_DPOP") or ""
    caplog.set_level("INFO", logger="cocart_jwt")
    caplog.clear()
    with pytest.raises(InvalidDPoPProof) as caught:
        verify_proof(req, **kwargs)
    assert caught.value.error == "invalid_dpop_proof"
    assert [record.getMessage() for record in caplog.records] == [f"DPoP proof refused: {reason}"]
    pieces = [piece for piece in value.replace(",", ".").split(".") if len(piece) > 8]
    for secret in [*pieces, jti_of(value)]:
        assert secret is None or secret not in caplog.text
    return caught.value
