"""Signing and verification keys: read from settings, the environment or files, never the DB.

A key setting is one of:

* the key itself: an HMAC secret (str or bytes) or a PEM string;
* ``"env:NAME"``: the value of environment variable ``NAME`` (itself a secret, PEM or path);
* ``"file:/path/key.pem"`` or a ``pathlib.Path``: the file's content;
* for RS/PS/ES algorithms, a plain filesystem path (a PEM key never looks like one).

Keys are parsed once per change of ``COCART_JWT`` and held in a ``KeyRing`` by key id.

No error message ever repeats a key value (it ends up in ``manage.py check`` output, CI logs
and error reports): a value that is not a PEM under an RS/PS/ES algorithm may be a misplaced
secret as well as a path, so it is described, never quoted. Only a path given explicitly
(``file:`` or a ``pathlib.Path``) is named, and a value read from ``env:NAME`` only by
``NAME``. Each message says what the setting should hold and how to make one.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.exceptions import ImproperlyConfigured

HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
ALGORITHMS = frozenset(HMAC_MIN_BYTES) | RSA_ALGORITHMS | frozenset(EC_CURVES)
KNOWN_ALGORITHMS = ", ".join(sorted(ALGORITHMS))
RSA_MIN_BITS = 2048
PEM_MARKER = b"-----BEGIN"
# Longer than any algorithm name, shorter than any usable secret (32 bytes at least).
ALGORITHM_NAME_MAX = 16
SOURCES_HINT = (
    'Give the key itself, "env:NAME" (an environment variable), or "file:/path/to/key" '
    "(or a pathlib.Path)."
)
KEY_ID_HINT = (
    'Leave KEY_ID unset to derive one from the key, or use a short name such as "2026-01".'
)
FALLBACK_KEYS_HINT = (
    'A list of dicts, for example [{"ALGORITHM": "HS256", "SIGNING_KEY": "env:OLD_JWT_KEY"}].'
)


class KeyConfigurationError(ImproperlyConfigured):
    """A key setting is unusable; ``check_id`` is the system check that reports it.

    ``message`` says what is wrong and ``hint`` how to fix it; neither holds a key value.
    ``absent`` marks a key that is not there yet (an unset ``env:`` variable, a key file
    that does not exist): a release step may run before secrets are mounted, so the
    checks let ``migrate`` go on (see ``checks.check_keys``); a key that is there but
    wrong is never ``absent``.
    """

    def __init__(
        self, check_id: str, message: str, hint: str | None = None, *, absent: bool = False
    ) -> None:
        super().__init__(f"{message} {hint}" if hint else message)
        self.check_id = check_id
        self.message = message
        self.hint = hint
        self.absent = absent


def key_hint(algorithm: str, setting: str) -> str:
    """What ``setting`` should hold for ``algorithm``, and the command that makes one."""
    if is_hmac(algorithm):
        kind = f"a random secret of at least {HMAC_MIN_BYTES[algorithm]} bytes"
    else:
        family = "an RSA" if algorithm in RSA_ALGORITHMS else f"an EC ({EC_CURVES[algorithm]})"
        half = "public" if setting.endswith("VERIFYING_KEY") else "private"
        kind = f'{family} {half} key in PEM, or "file:/path/to/key.pem"'
    return (
        f"{algorithm} needs {kind}. Make one with: "
        f"python manage.py jwt keygen --algorithm {algorithm}"
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def is_hmac(algorithm: str) -> bool:
    return algorithm in HMAC_MIN_BYTES


def read_key_material(
    value: Any,
    *,
    asymmetric: bool,
    setting: str,
    algorithm: str | None = None,
    env_name: str | None = None,
) -> bytes | None:
    """Resolve a key setting to bytes: the secret or the PEM text.

    ``algorithm`` makes errors say which key is expected; ``env_name`` is the variable the
    value came from (so errors name it, never the value).
    """
    if value is None or value == "" or value == b"":
        return None
    if isinstance(value, os.PathLike):
        return _read_file(Path(value), setting, _Source(algorithm, env_name, explicit=True))
    if isinstance(value, str):
        if value.startswith("env:"):
            return _read_env(value[4:], asymmetric=asymmetric, setting=setting, algorithm=algorithm)
        if value.startswith("file:"):
            source = _Source(algorithm, env_name, explicit=True)
            return _read_file(Path(value[5:]), setting, source)
        value = value.encode("utf-8")
    if not isinstance(value, bytes):
        raise KeyConfigurationError(
            "cocart_jwt.E002",
            f"{setting} must be a string, bytes or a path, not {type(value).__name__}.",
            SOURCES_HINT,
        )
    if asymmetric and PEM_MARKER not in value:
        # A path, or a secret in the wrong place: read it, but never quote it.
        path = Path(value.decode("utf-8", "replace").strip())
        return _read_file(path, setting, _Source(algorithm, env_name, explicit=False))
    return value


def _read_env(name: str, *, asymmetric: bool, setting: str, algorithm: str | None) -> bytes | None:
    if name not in os.environ:
        hint = f"Set {name} in the environment of every process of the site."
        if algorithm is not None and algorithm in ALGORITHMS:
            hint = f"{hint} {key_hint(algorithm, setting)}"
        raise KeyConfigurationError(
            "cocart_jwt.E002",
            f"{setting} names environment variable {name!r}, which is not set.",
            hint,
            absent=True,
        )
    return read_key_material(
        os.environ[name], asymmetric=asymmetric, setting=setting, algorithm=algorithm, env_name=name
    )


@dataclass(frozen=True)
class _Source:
    """Where a key value came from: decides what an error may say about it."""

    algorithm: str | None
    env_name: str | None
    explicit: bool  # a path given as such (``file:``, a Path): not a key value


def _read_file(path: Path, setting: str, source: _Source) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        reason = exc.strerror or type(exc).__name__
        # Not there yet (a secret mounted after the release step) when it was given as a
        # path (file:, a Path) or is an absolute one: a relative plain string may as well be
        # a misplaced secret, which is there but wrong.
        absent = source.explicit or path.is_absolute()
    except OSError as exc:
        reason, absent = exc.strerror or type(exc).__name__, False
    except ValueError:  # a NUL byte: no file has that name
        reason, absent = "not a file name", False
    # Raised outside the except block: the OSError, whose filename may be a misplaced secret,
    # must not travel along as __context__ into a logged traceback.
    raise _unreadable(path, setting, source, reason, absent=absent)


def _unreadable(
    path: Path, setting: str, source: _Source, reason: str, *, absent: bool
) -> KeyConfigurationError:
    if source.algorithm is not None and source.algorithm in ALGORITHMS:
        hint = key_hint(source.algorithm, setting)
    else:
        hint = "Check the path, and that the site's user may read the file."
    if source.env_name is not None and source.explicit:
        message = (
            f"{setting}: environment variable {source.env_name!r} names a key file that "
            f"cannot be read ({reason})."
        )
    elif source.env_name is not None:
        message = (
            f"{setting}: environment variable {source.env_name!r} holds neither a PEM key nor "
            f"the path of a readable key file ({reason})."
        )
    elif source.explicit:
        message = f"{setting}: cannot read key file {str(path)!r} ({reason})."
    else:
        message = (
            f"{setting} is neither a PEM key nor the path of a readable key file ({reason}); "
            "a secret of an HS algorithm does not work here."
        )
    return KeyConfigurationError("cocart_jwt.E003", message, hint, absent=absent)


def hmac_key(secret: bytes | None, algorithm: str, setting: str) -> bytes:
    hint = key_hint(algorithm, setting)
    if not secret:
        if setting == "COCART_JWT SIGNING_KEY":  # a new site's first error: show the way
            hint = (
                'Keep it out of the code: "env:COCART_JWT_SIGNING_KEY" reads it from that '
                f"environment variable. {hint}"
            )
        raise KeyConfigurationError(
            "cocart_jwt.E002", f"{setting} is required for {algorithm}.", hint
        )
    if PEM_MARKER in secret or secret.startswith(b"ssh-"):
        raise KeyConfigurationError(
            "cocart_jwt.E004", f"{setting} is a PEM/SSH key, but {algorithm} needs a secret.", hint
        )
    minimum = HMAC_MIN_BYTES[algorithm]
    if len(secret) < minimum:
        raise KeyConfigurationError(
            "cocart_jwt.E002",
            f"{setting} is {len(secret)} bytes; {algorithm} needs at least {minimum}.",
            hint,
        )
    return secret


def load_private_key(pem: bytes, algorithm: str, setting: str) -> Any:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyConfigurationError(
            "cocart_jwt.E003",
            f"{setting} is not a usable unencrypted PEM private key.",
            key_hint(algorithm, setting),
        ) from exc
    check_key_matches(key.public_key(), algorithm, setting)
    return key


def load_public_key(pem: bytes, algorithm: str, setting: str) -> Any:
    try:
        if b"PRIVATE KEY" in pem:
            key: Any = serialization.load_pem_private_key(pem, password=None).public_key()
        else:
            key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise KeyConfigurationError(
            "cocart_jwt.E003",
            f"{setting} is not a usable PEM public key.",
            key_hint(algorithm, setting),
        ) from exc
    check_key_matches(key, algorithm, setting)
    return key


def check_key_matches(public_key: Any, algorithm: str, setting: str) -> None:
    hint = key_hint(algorithm, setting)
    if algorithm in RSA_ALGORITHMS:
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise KeyConfigurationError(
                "cocart_jwt.E004", f"{setting} is not an RSA key, but {algorithm} needs one.", hint
            )
        if public_key.key_size < RSA_MIN_BITS:
            raise KeyConfigurationError(
                "cocart_jwt.E004",
                f"{setting} is a {public_key.key_size}-bit RSA key; use {RSA_MIN_BITS} or more.",
                hint,
            )
        return
    curve = EC_CURVES[algorithm]
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != curve:
        raise KeyConfigurationError(
            "cocart_jwt.E004",
            f"{setting} is not an EC key on {curve}, as {algorithm} needs.",
            hint,
        )
