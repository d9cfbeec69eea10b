"""The key ring: the signing key and every key that verifies, by key id, parsed once.

``build_keyring`` reads ``SIGNING_KEY``/``VERIFYING_KEY`` and ``FALLBACK_KEYS`` (through
``key_material``, which says what a key setting may hold) and derives each key's ``kid``;
``keyring()`` keeps the result until ``COCART_JWT`` changes. Fallback keys only verify: tokens
are always signed with the current key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from jwt.algorithms import ECAlgorithm, RSAAlgorithm, get_default_algorithms

from .key_material import (
    ALGORITHM_NAME_MAX,
    ALGORITHMS,
    EC_CURVES,
    FALLBACK_KEYS_HINT,
    HMAC_MIN_BYTES,
    KEY_ID_HINT,
    KNOWN_ALGORITHMS,
    RSA_ALGORITHMS,
    KeyConfigurationError,
    b64url,
    hmac_key,
    is_hmac,
    key_hint,
    load_private_key,
    load_public_key,
    read_key_material,
)
from .settings import jwt_settings

__all__ = [
    "ALGORITHMS",
    "EC_CURVES",
    "HMAC_MIN_BYTES",
    "KNOWN_ALGORITHMS",
    "RSA_ALGORITHMS",
    "Key",
    "KeyConfigurationError",
    "KeyRing",
    "build_keyring",
    "derive_kid",
    "is_hmac",
    "keyring",
    "read_key_material",
]


@dataclass(frozen=True)
class Key:
    """One key: ``signer`` is None for a key kept for verification only."""

    kid: str
    algorithm: str
    verifier: Any
    signer: Any = None

    @cached_property
    def implementation(self) -> Any:
        """PyJWT's algorithm object (sign/verify) for this key's algorithm alone."""
        return get_default_algorithms()[self.algorithm]

    @property
    def public_jwk(self) -> dict[str, Any] | None:
        """The JWK of a public key (RFC 7517), or None for an HMAC secret."""
        if is_hmac(self.algorithm):
            return None
        if self.algorithm in RSA_ALGORITHMS:
            jwk = RSAAlgorithm.to_jwk(self.verifier, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(self.verifier, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


@dataclass(frozen=True)
class KeyRing:
    signing_key: Key | None
    by_kid: dict[str, Key] = field(default_factory=dict)

    @property
    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        keys = (key.public_jwk for key in self.by_kid.values())
        return {"keys": [jwk for jwk in keys if jwk is not None]}


def derive_kid(algorithm: str, verifier: Any) -> str:
    """RFC 7638 thumbprint of a public key; for a secret, an HMAC that reveals nothing of it."""
    if is_hmac(algorithm):
        digest = hmac.new(verifier, b"cocart_jwt key id", hashlib.sha256).digest()
        return b64url(digest[:16])
    if algorithm in RSA_ALGORITHMS:
        jwk = RSAAlgorithm.to_jwk(verifier, as_dict=True)
        members = {name: jwk[name] for name in ("e", "kty", "n")}
    else:
        jwk = ECAlgorithm.to_jwk(verifier, as_dict=True)
        members = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return b64url(hashlib.sha256(canonical).digest())


def asymmetric_pair(algorithm: str, signing: Any, verifying: Any, scope: str) -> tuple[Any, Any]:
    """(private key or None, public key) for an RS/PS/ES algorithm."""
    signing_name, verifying_name = f"{scope} SIGNING_KEY", f"{scope} VERIFYING_KEY"
    private_pem = read_key_material(
        signing, asymmetric=True, setting=signing_name, algorithm=algorithm
    )
    public_pem = read_key_material(
        verifying, asymmetric=True, setting=verifying_name, algorithm=algorithm
    )
    signer = load_private_key(private_pem, algorithm, signing_name) if private_pem else None
    if public_pem:
        verifier = load_public_key(public_pem, algorithm, verifying_name)
    elif signer is not None:
        verifier = signer.public_key()
    else:
        raise KeyConfigurationError(
            "cocart_jwt.E003",
            f"{scope}: {algorithm} needs SIGNING_KEY (a private key) or VERIFYING_KEY.",
            key_hint(algorithm, signing_name),
        )
    if signer is not None and signer.public_key().public_numbers() != verifier.public_numbers():
        raise KeyConfigurationError(
            "cocart_jwt.E004",
            f"{verifying_name} is not the public half of {signing_name}.",
            "Leave VERIFYING_KEY unset (it is derived from SIGNING_KEY), or set it to the "
            "public key made with that private key.",
        )
    return signer, verifier


def build_key(
    *,
    algorithm: Any,
    signing: Any,
    verifying: Any,
    kid: Any,
    setting: str,
    can_sign: bool,
) -> Key:
    """One key from its settings; ``setting`` names where they are (``COCART_JWT``,
    ``COCART_JWT FALLBACK_KEYS[0]``), for messages such as ``COCART_JWT SIGNING_KEY ...``."""
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:  # a list: unhashable
        raise KeyConfigurationError(
            "cocart_jwt.E001",
            f"{setting} ALGORITHM {_shown_algorithm(algorithm)} is not a known algorithm.",
            f"Use one of {KNOWN_ALGORITHMS}.",
        )
    if is_hmac(algorithm):
        signing_name = f"{setting} SIGNING_KEY"
        material = read_key_material(
            signing, asymmetric=False, setting=signing_name, algorithm=algorithm
        )
        signer = verifier = hmac_key(material, algorithm, signing_name)
    else:
        signer, verifier = asymmetric_pair(algorithm, signing, verifying, setting)
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 128):
        raise KeyConfigurationError(
            "cocart_jwt.E007",
            f"{setting} KEY_ID must be a non-empty string of at most 128 characters.",
            KEY_ID_HINT,
        )
    return Key(
        kid=kid or derive_kid(algorithm, verifier),
        algorithm=algorithm,
        verifier=verifier,
        signer=signer if can_sign else None,
    )


def _shown_algorithm(value: Any) -> str:
    """An unknown ALGORITHM, quoted only when it is short: a key pasted there is not echoed."""
    if isinstance(value, str) and len(value) <= ALGORITHM_NAME_MAX:
        return repr(value)
    return f"(a {type(value).__name__} that is no algorithm name)"


def build_keyring() -> KeyRing:
    """Parse the current settings into a ``KeyRing``; raise ``KeyConfigurationError``."""
    current = build_key(
        algorithm=jwt_settings.ALGORITHM,
        signing=jwt_settings.SIGNING_KEY,
        verifying=jwt_settings.VERIFYING_KEY,
        kid=jwt_settings.KEY_ID,
        setting="COCART_JWT",
        can_sign=True,
    )
    by_kid = {current.kid: current}
    fallbacks = jwt_settings.FALLBACK_KEYS
    if not isinstance(fallbacks, list | tuple):
        raise KeyConfigurationError(
            "cocart_jwt.E007", "COCART_JWT FALLBACK_KEYS must be a list.", FALLBACK_KEYS_HINT
        )
    for index, entry in enumerate(fallbacks):
        scope = f"COCART_JWT FALLBACK_KEYS[{index}]"
        if not isinstance(entry, dict):
            raise KeyConfigurationError(
                "cocart_jwt.E007", f"{scope} must be a dict.", FALLBACK_KEYS_HINT
            )
        key = build_key(
            algorithm=entry.get("ALGORITHM", jwt_settings.ALGORITHM),
            signing=entry.get("SIGNING_KEY"),
            verifying=entry.get("VERIFYING_KEY"),
            kid=entry.get("KEY_ID"),
            setting=scope,
            can_sign=False,
        )
        if key.kid in by_kid:
            raise KeyConfigurationError(
                "cocart_jwt.E007",
                f"{scope} has key id {key.kid!r}, already in use.",
                "Give each key its own KEY_ID, and drop a fallback that repeats the current key.",
            )
        by_kid[key.kid] = key
    signing_key = current if current.signer is not None else None
    return KeyRing(signing_key=signing_key, by_kid=by_kid)


_keyring: KeyRing | None = None


def keyring() -> KeyRing:
    """The parsed keys, built on first use after each settings change."""
    global _keyring
    if _keyring is None:
        _keyring = build_keyring()
    return _keyring


@jwt_settings.on_reload
def _forget_keyring() -> None:
    global _keyring
    _keyring = None
