"""``manage.py jwt keygen``: new key material for ``COCART_JWT``, printed or written to files."""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.management.base import CommandError

from cocart_jwt.key_material import (
    ALGORITHMS,
    EC_CURVES,
    HMAC_MIN_BYTES,
    KNOWN_ALGORITHMS,
    RSA_ALGORITHMS,
    RSA_MIN_BITS,
    KeyConfigurationError,
    is_hmac,
)
from cocart_jwt.keys import build_key
from cocart_jwt.settings import jwt_settings

from .output import Console

RSA_DEFAULT_BITS = 3072
RSA_MAX_BITS = 16384
FILE_MODE = 0o600
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}
CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def run_keygen(console: Console, options: dict[str, Any]) -> None:
    algorithm = options.get("algorithm") or jwt_settings.ALGORITHM
    if algorithm not in ALGORITHMS:
        raise CommandError(f"Unknown algorithm {algorithm!r}; use one of {KNOWN_ALGORITHMS}.")
    material = generate(algorithm, options.get("bits"))
    written = None
    if options.get("out"):
        written = write_files(material, Path(options["out"]), force=bool(options.get("force")))
    elif options.get("force"):
        raise CommandError("--force only applies with --out.")
    text = render(material, verbosity=console.verbosity, written=written)
    if text:
        console.write(text)


@dataclass(frozen=True)
class KeyMaterial:
    algorithm: str
    kid: str
    summary: str
    secret: str | None = None
    private_pem: str | None = None
    public_pem: str | None = None


def generate(algorithm: str, bits: int | None = None) -> KeyMaterial:
    """A fresh secret (HS*) or key pair (RS*/PS*/ES*) that this app accepts for ``algorithm``."""
    if bits is not None and algorithm not in RSA_ALGORITHMS:
        raise CommandError(f"--bits applies to RSA algorithms (RS*/PS*), not to {algorithm}.")
    if is_hmac(algorithm):
        size = HMAC_MIN_BYTES[algorithm]
        # token_urlsafe(n) is n random bytes as ~1.33 n characters: the text is longer
        # than the n bytes HS256/384/512 require, and holds the hash's full strength.
        secret = secrets.token_urlsafe(size)
        kid = _check(algorithm, secret, None)
        summary = f"{algorithm} secret: {size * 8} bits of randomness, {len(secret)} characters"
        return KeyMaterial(algorithm, kid, summary, secret=secret)
    private_key: Any
    if algorithm in RSA_ALGORITHMS:
        bits = RSA_DEFAULT_BITS if bits is None else bits
        if not RSA_MIN_BITS <= bits <= RSA_MAX_BITS:
            raise CommandError(
                f"--bits must be between {RSA_MIN_BITS} and {RSA_MAX_BITS}, not {bits}."
            )
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        summary = f"{algorithm} key pair: RSA, {bits} bits"
    else:
        curve = EC_CURVES[algorithm]
        private_key = ec.generate_private_key(CURVES[curve]())
        summary = f"{algorithm} key pair: EC on {CURVE_NAMES[curve]} ({curve})"
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_pem = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    kid = _check(algorithm, private_pem, public_pem)
    return KeyMaterial(algorithm, kid, summary, private_pem=private_pem, public_pem=public_pem)


def _check(algorithm: str, signing: str, verifying: str | None) -> str:
    """Load the new material as the app will; return its key id."""
    try:
        key = build_key(
            algorithm=algorithm,
            signing=signing,
            verifying=verifying,
            kid=None,
            setting="keygen",
            can_sign=True,
        )
    except KeyConfigurationError as exc:  # pragma: no cover - a bug of this module
        raise CommandError(f"The generated key is unusable: {exc}") from exc
    return key.kid


def write_files(material: KeyMaterial, path: Path, *, force: bool) -> list[Path]:
    """Write the secret or private key to ``path`` and a public key to ``path.pub``, mode 0600.

    Refuses to replace an existing file unless ``force``; a replacement is atomic.
    """
    files: list[tuple[Path, str]]
    if material.secret is not None:
        files = [(path, material.secret)]
    else:
        assert material.private_pem is not None and material.public_pem is not None  # noqa: S101
        files = [(path, material.private_pem), (public_path(path), material.public_pem)]
    if not force:
        existing = [str(target) for target, _ in files if target.exists() or target.is_symlink()]
        if existing:
            raise CommandError(
                f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                "use --force to overwrite."
            )
    for target, content in files:
        try:
            _write(target, content.encode("ascii"), force=force)
        except FileExistsError as exc:
            raise CommandError(f"{target} already exists; use --force to overwrite.") from exc
        except OSError as exc:
            raise CommandError(f"Cannot write {target}: {exc.strerror or exc}.") from exc
    return [target for target, _ in files]


def public_path(path: Path) -> Path:
    return path.with_name(path.name + ".pub")


def _write(target: Path, data: bytes, *, force: bool) -> None:
    if not force:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            os.write(fd, data)
        finally:
            os.close(fd)
        return
    fd, temporary = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(temporary, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(temporary).unlink(missing_ok=True)
        raise


def render(material: KeyMaterial, *, verbosity: int, written: list[Path] | None) -> str:
    """What keygen prints: bare material at verbosity 0, else a block ready to paste."""
    if written:
        return _render_written(material, written, verbosity)
    if verbosity == 0:
        if material.secret is not None:
            return material.secret
        return f"{material.private_pem}{material.public_pem}".rstrip("\n")
    lines = [f"# {material.summary}. Key id (kid): {material.kid}"]
    if material.secret is not None:
        lines += [
            "# Keep it secret and out of version control. In settings.py:",
            f'#   COCART_JWT = {{"ALGORITHM": "{material.algorithm}", '
            '"SIGNING_KEY": "env:COCART_JWT_SIGNING_KEY"}',
            f"COCART_JWT_SIGNING_KEY={material.secret}",
        ]
        return "\n".join(lines)
    lines += [
        "# The private key is SIGNING_KEY: keep it secret and out of version control.",
        "# The public key is VERIFYING_KEY, for services that only verify tokens.",
        "# Tip: --out PATH writes both to files (mode 0600), then",
        f'#   COCART_JWT = {{"ALGORITHM": "{material.algorithm}", "SIGNING_KEY": "file:PATH"}}',
        (material.private_pem or "").rstrip("\n"),
        (material.public_pem or "").rstrip("\n"),
    ]
    return "\n".join(lines)


def _render_written(material: KeyMaterial, written: list[Path], verbosity: int) -> str:
    if verbosity == 0:
        return ""
    private = written[0].resolve()
    lines = [f"# {material.summary}. Key id (kid): {material.kid}"]
    if material.secret is not None:
        lines.append(f"# Wrote the secret to {private} (mode 0600).")
    else:
        public = written[1].resolve()
        lines.append(f"# Wrote the private key to {private} and the public key to {public}")
        lines.append("# (both mode 0600; the public key may be shared).")
    lines.append("# In settings.py:")
    lines.append(
        f'COCART_JWT = {{"ALGORITHM": "{material.algorithm}", "SIGNING_KEY": "file:{private}"}}'
    )
    if material.secret is None:
        public = written[1].resolve()
        lines.append(
            "# A service that only verifies tokens: "
            f'{{"ALGORITHM": "{material.algorithm}", "VERIFYING_KEY": "file:{public}"}}'
        )
    return "\n".join(lines)
