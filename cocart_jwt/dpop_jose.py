"""The JOSE side of a DPoP proof (RFC 9449 sections 4.2 and 4.3): the compact JWS, its header
(``typ``, ``alg``, ``jwk``, no ``crit``), the public key it carries, the signature made with
that key, and the key's RFC 7638 thumbprint, which is what a token is bound to.

This module picks the algorithm, never PyJWT: ``alg`` must be in ``DPOP_ALGORITHMS`` and in
``SUPPORTED_ALGORITHMS`` (asymmetric only: never ``none`` nor HS*), the key's ``kty`` and
``crv`` must be that algorithm's, and PyJWT's algorithm object of that one name verifies.
A message of ``InvalidDPoPProof`` is for the log: it never holds the proof or a token.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from jwt.algorithms import get_default_algorithms
from jwt.exceptions import InvalidKeyError

from .key_material import RSA_MIN_BITS, b64url
from .settings import jwt_settings
from .tokens import InvalidToken, b64url_decode, decode_json_object

PROOF_TYPE = "dpop+jwt"
MAX_PROOF_LENGTH = 8 * 1024
# Algorithm -> the key type it needs and, for EC and OKP, the curves it may use.
SUPPORTED_ALGORITHMS: dict[str, tuple[str, frozenset[str]]] = {
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "PS256": ("RSA", frozenset()),
    "PS384": ("RSA", frozenset()),
    "PS512": ("RSA", frozenset()),
    "RS256": ("RSA", frozenset()),
    "RS384": ("RSA", frozenset()),
    "RS512": ("RSA", frozenset()),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
# RFC 7638 section 3.2 (RFC 8037 section 2 for OKP): the members a thumbprint hashes, in the
# lexicographic order it hashes them in.
THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}
# Private members of EC, OKP and RSA keys (RFC 7518 section 6, RFC 8037) and an oct key's k.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# An RSA public operation costs with the modulus and the exponent's length: bounded, so that a
# proof cannot buy milliseconds of CPU with one key. 32 bits: the largest exponent Windows'
# CryptoAPI keys hold; everything else uses 65537.
RSA_MAX_BITS = 8192
RSA_MAX_EXPONENT_BITS = 32


class InvalidDPoPProof(Exception):
    """The DPoP proof is refused (``error`` for the client; the message for the log only)."""

    error = "invalid_dpop_proof"


class UseDPoPNonce(InvalidDPoPProof):
    """The proof lacks a fresh nonce of this server: answer with a new one (RFC 9449 section 8)."""

    error = "use_dpop_nonce"


@dataclass(frozen=True)
class SignedProof:
    """A proof whose header and signature are checked; its claims are not yet."""

    alg: str
    jkt: str
    claims: dict[str, Any]


def read_signed_proof(value: str) -> SignedProof:
    """Checks 2 and 4 to 7 of RFC 9449 section 4.3: one well-formed JWS, ``typ``, ``alg``,
    a public ``jwk``, and the signature made with it."""
    if len(value) > MAX_PROOF_LENGTH:
        raise InvalidDPoPProof("proof longer than 8 KiB")
    segments = value.split(".")
    if len(segments) != 3:
        raise InvalidDPoPProof("not a compact JWS (three segments)")
    encoded_header, encoded_claims, encoded_signature = segments
    try:
        header = decode_json_object(encoded_header, "header")
        claims = decode_json_object(encoded_claims, "payload")
        signature = b64url_decode(encoded_signature, "signature")
    except InvalidToken as exc:  # its message names the part, never its content
        raise InvalidDPoPProof(str(exc)) from None
    alg, implementation = proof_algorithm(header)
    key = public_key(header.get("jwk"), alg, implementation)
    # PyJWT's verify answers False for any signature, even one of the wrong length.
    if not implementation.verify(f"{encoded_header}.{encoded_claims}".encode(), key, signature):
        raise InvalidDPoPProof("bad signature (not made with the key in the jwk header)")
    return SignedProof(alg=alg, jkt=jwk_thumbprint(header["jwk"]), claims=claims)


def proof_algorithm(header: dict[str, Any]) -> tuple[str, Any]:
    """``alg`` and PyJWT's object for it, once ``typ``, ``crit`` and ``alg`` are checked."""
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() != PROOF_TYPE:
        raise InvalidDPoPProof("typ is not dpop+jwt")
    if "crit" in header:
        raise InvalidDPoPProof("crit header present")
    alg: Any = header.get("alg")  # the client's: checked below
    implementation = allowed_algorithms().get(alg) if isinstance(alg, str) else None
    if implementation is None:
        # Named in the log only when it is a name PyJWT knows: the header is the client's.
        shown = repr(alg) if isinstance(alg, str) and alg in get_default_algorithms() else "alg"
        raise InvalidDPoPProof(f"{shown} is not an asymmetric algorithm of DPOP_ALGORITHMS")
    return alg, implementation


def public_key(jwk: Any, alg: str, implementation: Any) -> Any:
    """The key of the ``jwk`` header, refused unless it is a public key made for ``alg``;
    read by ``implementation``, PyJWT's object for ``alg``."""
    if not isinstance(jwk, dict):
        raise InvalidDPoPProof("jwk header missing or not a JSON object")
    if not PRIVATE_MEMBERS.isdisjoint(jwk):
        raise InvalidDPoPProof("jwk holds private key members")
    kty, curves = SUPPORTED_ALGORITHMS[alg]
    if jwk.get("kty") != kty:
        raise InvalidDPoPProof(f"jwk kty is not {kty}, as {alg} needs")
    crv = jwk.get("crv")
    if curves and not (isinstance(crv, str) and crv in curves):
        raise InvalidDPoPProof(f"jwk crv is not one {alg} uses")
    if "alg" in jwk and jwk["alg"] != alg:
        raise InvalidDPoPProof("jwk alg member names another algorithm than the alg header")
    members = thumbprint_members(jwk)
    for name in set(members) - {"kty", "crv"}:
        check_key_member(members[name], name, unsigned_integer=kty == "RSA")
    try:
        key = implementation.from_jwk(members)
    except (InvalidKeyError, ValueError, TypeError, OverflowError) as exc:
        raise InvalidDPoPProof(f"jwk is not a valid public key ({type(exc).__name__})") from None
    if kty == "RSA":
        check_rsa_size(key)
    return key


def check_key_member(value: str, name: str, *, unsigned_integer: bool) -> None:
    """Canonical base64url; an RSA ``n`` or ``e`` in the fewest octets (RFC 7518 section 2):
    one spelling per key, so one thumbprint per key."""
    try:
        raw = b64url_decode(value, f"jwk {name}")
    except InvalidToken as exc:
        raise InvalidDPoPProof(str(exc)) from None
    if unsigned_integer and (not raw or (len(raw) > 1 and raw[0] == 0)):
        raise InvalidDPoPProof(f"jwk {name} is not a minimal base64url unsigned integer")


def check_rsa_size(key: Any) -> None:
    if not RSA_MIN_BITS <= key.key_size <= RSA_MAX_BITS:
        raise InvalidDPoPProof(f"RSA key not of {RSA_MIN_BITS} to {RSA_MAX_BITS} bits")
    if key.public_numbers().e.bit_length() > RSA_MAX_EXPONENT_BITS:
        raise InvalidDPoPProof(f"RSA exponent longer than {RSA_MAX_EXPONENT_BITS} bits")


def thumbprint_members(jwk: dict[str, Any]) -> dict[str, str]:
    """The required members of an EC, RSA or OKP key, each a string."""
    kty = jwk.get("kty") if isinstance(jwk, dict) else None
    names = THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if names is None:
        raise InvalidDPoPProof("jwk kty is not EC, RSA or OKP")
    members: dict[str, str] = {}
    for name in names:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise InvalidDPoPProof(f"jwk {name} member missing or not a string")
        members[name] = value
    return members


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace,
    base64url without padding. EC, RSA and OKP keys; anything else raises InvalidDPoPProof."""
    # thumbprint_members keeps THUMBPRINT_MEMBERS' order; UTF-8, nothing escaped.
    canonical = json.dumps(thumbprint_members(jwk), separators=(",", ":"), ensure_ascii=False)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


_allowed: dict[str, Any] | None = None


def allowed_algorithms() -> dict[str, Any]:
    """PyJWT's algorithm objects of ``DPOP_ALGORITHMS`` (in its order), asymmetric ones only,
    built once per settings change. A name that is not supported is left out (E021 says so)."""
    global _allowed
    if _allowed is None:
        configured = jwt_settings.DPOP_ALGORITHMS
        names = configured if isinstance(configured, list | tuple) else ()
        implementations = get_default_algorithms()
        _allowed = {
            name: implementations[name]
            for name in names
            if isinstance(name, str) and name in SUPPORTED_ALGORITHMS
        }
    return _allowed


@jwt_settings.on_reload
def _forget_algorithms() -> None:
    global _allowed
    _allowed = None
