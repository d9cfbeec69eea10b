"""Where keys come from (settings, env:, file:, paths), key rotation with FALLBACK_KEYS, reloads."""

from __future__ import annotations

import logging
import traceback
from functools import cache
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.core.checks import run_checks
from django.urls import reverse
from rest_framework.test import APIClient

from cocart_jwt.keys import KeyConfigurationError, keyring, read_key_material
from tests.factories import bearer, hmac_secret, login, private_pem, public_pem, refresh

ISSUER = "https://keys.example"
NO_RATE_LIMITS = {"login": None, "refresh": None, "validate": None}
ENV_NAME = "COCART_JWT_TEST_KEY_MATERIAL"

HS_A = hmac_secret("HS256", 11)
HS_B = hmac_secret("HS256", 12)

pytestmark = pytest.mark.django_db


def cocart_ids() -> list[str]:
    """The cocart_jwt errors (warnings such as W002 depend on which cache the run has)."""
    return sorted(
        m.id for m in run_checks() if m.id and m.id.startswith("cocart_jwt.") and m.is_serious()
    )


def cocart_errors() -> list[Any]:
    """The cocart_jwt errors themselves, to read what they say."""
    return [m for m in run_checks() if m.id and m.id.startswith("cocart_jwt.") and m.is_serious()]


def configure(settings: Any, **cocart_jwt: Any) -> None:
    settings.COCART_JWT = {"ISSUER": ISSUER, "RATE_LIMITS": NO_RATE_LIMITS, **cocart_jwt}


def access_token(api_client: Any, user: Any, password: str) -> str:
    response = login(api_client, user.username, password)
    assert response.status_code == 200, response.content
    return str(response.json()["access_token"])


def pair(api_client: Any, user: Any, password: str) -> dict[str, Any]:
    response = login(api_client, user.username, password)
    assert response.status_code == 200, response.content
    return dict(response.json())


def me_status(api_client: Any, token: str) -> int:
    return int(api_client.get("/api/me/", **bearer(token)).status_code)


def verify_with(token: str, key: Any, algorithm: str) -> dict[str, Any]:
    return dict(jwt.decode(token, key, algorithms=[algorithm], issuer=ISSUER))


def public_key(algorithm: str, variant: int = 0) -> Any:
    return serialization.load_pem_public_key(public_pem(private_pem(algorithm, variant)).encode())


def jwks_by_kid(api_client: Any) -> dict[str, dict[str, Any]]:
    response = api_client.get(reverse("cocart_jwt:jwks"))
    assert response.status_code == 200
    return {jwk["kid"]: jwk for jwk in response.json()["keys"]}


# --- Key sources -------------------------------------------------------------------------


def test_hmac_secret_given_in_settings_signs_tokens(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, ALGORITHM="HS256", SIGNING_KEY=HS_A)
    token = access_token(api_client, user, password)
    assert verify_with(token, HS_A, "HS256")["sub"] == str(user.pk)
    assert me_status(api_client, token) == 200


def test_hmac_secret_given_as_bytes_signs_tokens(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, ALGORITHM="HS256", SIGNING_KEY=HS_A.encode())
    token = access_token(api_client, user, password)
    assert verify_with(token, HS_A, "HS256")["sub"] == str(user.pk)
    assert me_status(api_client, token) == 200


def test_private_key_pem_given_in_settings_signs_tokens(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, ALGORITHM="ES256", SIGNING_KEY=private_pem("ES256", 0))
    token = access_token(api_client, user, password)
    assert verify_with(token, public_key("ES256"), "ES256")["sub"] == str(user.pk)
    assert me_status(api_client, token) == 200


def test_hmac_secret_from_environment_variable(
    settings: Any, api_client: Any, user: Any, password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_NAME, HS_B)
    configure(settings, ALGORITHM="HS256", SIGNING_KEY=f"env:{ENV_NAME}")
    token = access_token(api_client, user, password)
    assert verify_with(token, HS_B, "HS256")["sub"] == str(user.pk)
    assert me_status(api_client, token) == 200
    assert cocart_ids() == []


def test_private_key_pem_from_environment_variable(
    settings: Any, api_client: Any, user: Any, password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_NAME, private_pem("RS256", 0))
    configure(settings, ALGORITHM="RS256", SIGNING_KEY=f"env:{ENV_NAME}")
    token = access_token(api_client, user, password)
    assert verify_with(token, public_key("RS256"), "RS256")["sub"] == str(user.pk)
    assert me_status(api_client, token) == 200


def test_environment_variable_holding_a_key_file_path(
    settings: Any,
    api_client: Any,
    user: Any,
    password: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "signing.pem"
    key_file.write_text(private_pem("ES384", 0))
    monkeypatch.setenv(ENV_NAME, str(key_file))
    configure(settings, ALGORITHM="ES384", SIGNING_KEY=f"env:{ENV_NAME}")
    token = access_token(api_client, user, password)
    assert verify_with(token, public_key("ES384"), "ES384")["sub"] == str(user.pk)


def test_hmac_secret_from_file_prefix(
    settings: Any, api_client: Any, user: Any, password: str, tmp_path: Path
) -> None:
    secret_file = tmp_path / "jwt-secret"
    secret_file.write_text(HS_B)
    configure(settings, ALGORITHM="HS256", SIGNING_KEY=f"file:{secret_file}")
    token = access_token(api_client, user, password)
    assert verify_with(token, HS_B, "HS256")["sub"] == str(user.pk)
    assert me_status(api_client, token) == 200
    assert cocart_ids() == []


def test_private_key_from_file_prefix(
    settings: Any, api_client: Any, user: Any, password: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "private.pem"
    key_file.write_text(private_pem("PS256", 0))
    configure(settings, ALGORITHM="PS256", SIGNING_KEY=f"file:{key_file}")
    token = access_token(api_client, user, password)
    assert verify_with(token, public_key("PS256"), "PS256")["sub"] == str(user.pk)


@pytest.mark.parametrize("algorithm", ["HS384", "RS256", "ES256"])
def test_key_from_pathlib_path(
    algorithm: str, settings: Any, api_client: Any, user: Any, password: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    if algorithm.startswith("HS"):
        material, verifier = hmac_secret(algorithm, 3), hmac_secret(algorithm, 3)
    else:
        material, verifier = private_pem(algorithm, 0), public_key(algorithm)
    key_file.write_text(material)
    configure(settings, ALGORITHM=algorithm, SIGNING_KEY=key_file)
    token = access_token(api_client, user, password)
    assert verify_with(token, verifier, algorithm)["sub"] == str(user.pk)
    assert me_status(api_client, token) == 200
    assert cocart_ids() == []


@pytest.mark.parametrize("algorithm", ["RS256", "PS512", "ES256", "ES512"])
def test_asymmetric_private_key_from_bare_file_path(
    algorithm: str, settings: Any, api_client: Any, user: Any, password: str, tmp_path: Path
) -> None:
    key_file = tmp_path / f"{algorithm}.pem"
    key_file.write_text(private_pem(algorithm, 0))
    configure(settings, ALGORITHM=algorithm, SIGNING_KEY=str(key_file))
    token = access_token(api_client, user, password)
    assert verify_with(token, public_key(algorithm), algorithm)["sub"] == str(user.pk)
    assert me_status(api_client, token) == 200
    assert cocart_ids() == []


def test_verifying_key_from_bare_file_path_published_in_jwks(
    settings: Any, api_client: Any, tmp_path: Path
) -> None:
    public_file = tmp_path / "public.pem"
    public_file.write_text(public_pem(private_pem("RS256", 0)))
    configure(settings, ALGORITHM="RS256", VERIFYING_KEY=str(public_file))

    keys = list(jwks_by_kid(api_client).values())
    assert len(keys) == 1
    assert jwt.PyJWK(keys[0]).key.public_numbers() == public_key("RS256").public_numbers()


def test_unset_environment_variable_is_check_e002(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_NAME, raising=False)
    configure(settings, ALGORITHM="HS256", SIGNING_KEY=f"env:{ENV_NAME}")
    assert cocart_ids() == ["cocart_jwt.E002"]


def test_unset_environment_variable_for_rsa_key_is_check_e002(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_NAME, raising=False)
    configure(settings, ALGORITHM="RS256", SIGNING_KEY=f"env:{ENV_NAME}")
    assert cocart_ids() == ["cocart_jwt.E002"]


@pytest.mark.parametrize(
    "make_value",
    [
        pytest.param(lambda tmp: f"file:{tmp / 'missing.key'}", id="file-prefix-missing"),
        pytest.param(lambda tmp: tmp / "missing.key", id="pathlib-missing"),
        pytest.param(lambda tmp: f"file:{tmp}", id="file-prefix-directory"),
    ],
)
def test_unreadable_hmac_key_file_is_check_e003(
    make_value: Any, settings: Any, tmp_path: Path
) -> None:
    configure(settings, ALGORITHM="HS256", SIGNING_KEY=make_value(tmp_path))
    assert cocart_ids() == ["cocart_jwt.E003"]


@pytest.mark.parametrize(
    "make_value",
    [
        pytest.param(lambda tmp: str(tmp / "missing.pem"), id="bare-path-missing"),
        pytest.param(lambda tmp: f"file:{tmp / 'missing.pem'}", id="file-prefix-missing"),
        pytest.param(lambda tmp: tmp / "missing.pem", id="pathlib-missing"),
        pytest.param(lambda tmp: str(tmp), id="bare-path-directory"),
    ],
)
def test_unreadable_private_key_file_is_check_e003(
    make_value: Any, settings: Any, tmp_path: Path
) -> None:
    configure(settings, ALGORITHM="RS256", SIGNING_KEY=make_value(tmp_path))
    assert cocart_ids() == ["cocart_jwt.E003"]


def path_under_a_file(tmp: Path) -> Path:
    """A path whose parent is a regular file: ENOTDIR, for root as for anyone."""
    parent = tmp / "private.pem"
    parent.write_text(private_pem("ES256", 0))
    return parent / "key.pem"


def symlink_to_a_directory(tmp: Path) -> Path:
    """A symlink naming the directory of the keys, not a key: EISDIR, for root as for anyone."""
    link = tmp / "current.pem"
    link.symlink_to(tmp, target_is_directory=True)
    return link


def name_too_long(tmp: Path) -> Path:
    """A file name longer than any file system holds: ENAMETOOLONG, for root as for anyone."""
    return tmp / ("k" * 300 + ".pem")


def symlink_loop(tmp: Path) -> Path:
    """Two symlinks naming each other: ELOOP, for root as for anyone."""
    first, second = tmp / "a.pem", tmp / "b.pem"
    first.symlink_to(second)
    second.symlink_to(first)
    return first


# Key paths no one can read, whoever runs the tests: CI runs them as root, who reads a file
# of any mode, so a chmod 0 file is no unreadable file there. Each is given as a bare path,
# with file: and as a pathlib.Path; the check says why it cannot be read.
UNOPENABLE = {
    "path-under-a-file": (path_under_a_file, "Not a directory"),
    "symlink-to-a-directory": (symlink_to_a_directory, "Is a directory"),
    "symlink-loop": (symlink_loop, "Too many levels of symbolic links"),
    "name-too-long": (name_too_long, "File name too long"),
}


@pytest.mark.parametrize("form", ["bare-path", "file-prefix", "pathlib"])
@pytest.mark.parametrize("case", list(UNOPENABLE))
def test_key_file_that_cannot_be_opened_is_check_e003_even_as_root(
    case: str, form: str, settings: Any, tmp_path: Path
) -> None:
    make_path, reason = UNOPENABLE[case]
    path = make_path(tmp_path)
    value: Any = {"bare-path": str(path), "file-prefix": f"file:{path}", "pathlib": path}[form]
    configure(settings, ALGORITHM="ES256", SIGNING_KEY=value)

    errors = cocart_errors()

    assert [m.id for m in errors] == ["cocart_jwt.E003"]
    assert reason in errors[0].msg
    with pytest.raises(KeyConfigurationError, match=reason):
        keyring()


# --- What a bad key setting says ---------------------------------------------------------


def migrate_ids() -> list[str]:
    """What ``migrate`` says of the keys: an error, or W007 for a key that is not there yet."""
    messages = run_checks(databases=["default"])
    return sorted(
        m.id
        for m in messages
        if m.id and m.id.startswith("cocart_jwt.") and (m.is_serious() or m.id.endswith("W007"))
    )


@pytest.mark.parametrize("case", list(UNOPENABLE))
def test_a_key_file_there_but_unreadable_fails_migrate_too(
    case: str, settings: Any, tmp_path: Path
) -> None:
    # Not a secret mounted late: waiting will not make it readable.
    make_path, _ = UNOPENABLE[case]
    configure(settings, ALGORITHM="ES256", SIGNING_KEY=f"file:{make_path(tmp_path)}")
    assert migrate_ids() == ["cocart_jwt.E003"]


@pytest.mark.parametrize(
    "make_value",
    [
        pytest.param(lambda tmp: f"file:{tmp / 'missing.pem'}", id="file-prefix"),
        pytest.param(lambda tmp: tmp / "missing.pem", id="pathlib"),
        pytest.param(lambda tmp: str(tmp / "missing.pem"), id="bare-path"),
    ],
)
def test_a_missing_key_file_says_no_such_file(
    make_value: Any, settings: Any, tmp_path: Path
) -> None:
    configure(settings, ALGORITHM="RS256", SIGNING_KEY=make_value(tmp_path))

    (error,) = cocart_errors()

    assert error.id == "cocart_jwt.E003"
    assert "(No such file or directory)" in error.msg


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("k3y\x00" * 12, "not a file name", id="nul-byte"),
        pytest.param(bytes(range(160, 208)), "No such file or directory", id="not-utf-8"),
    ],
)
@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_a_binary_secret_under_an_asymmetric_algorithm_is_check_e003(
    algorithm: str, value: Any, reason: str, settings: Any
) -> None:
    # A binary secret pasted where a PEM or a path belongs: an error that says so, no crash.
    configure(settings, ALGORITHM=algorithm, SIGNING_KEY=value)

    (error,) = cocart_errors()

    assert error.id == "cocart_jwt.E003"
    assert error.msg == (
        "COCART_JWT SIGNING_KEY is neither a PEM key nor the path of a readable key file "
        f"({reason}); a secret of an HS algorithm does not work here."
    )
    assert migrate_ids() == ["cocart_jwt.E003"]  # there but wrong: no W007
    with pytest.raises(KeyConfigurationError, match=reason):
        keyring()


@pytest.mark.parametrize(
    "make_value",
    [
        pytest.param(lambda tmp: "file:keys/missing.pem", id="file-prefix-relative"),
        pytest.param(lambda tmp: f"file:{tmp / 'missing.pem'}", id="file-prefix-absolute"),
        pytest.param(lambda tmp: Path("keys/missing.pem"), id="pathlib-relative"),
        pytest.param(lambda tmp: str(tmp / "missing.pem"), id="bare-absolute-path"),
    ],
)
def test_a_missing_key_file_named_as_a_path_lets_migrate_go_on(
    make_value: Any, settings: Any, tmp_path: Path
) -> None:
    # A secret mounted after the release step: W007 for migrate, E003 for everything else.
    configure(settings, ALGORITHM="ES256", SIGNING_KEY=make_value(tmp_path))
    assert migrate_ids() == ["cocart_jwt.W007"]
    assert cocart_ids() == ["cocart_jwt.E003"]


@pytest.mark.parametrize(
    ("algorithm", "needs"),
    [
        ("HS256", "HS256 needs a random secret of at least 32 bytes."),
        ("HS512", "HS512 needs a random secret of at least 64 bytes."),
        ("RS256", 'RS256 needs an RSA private key in PEM, or "file:/path/to/key.pem".'),
        ("ES384", 'ES384 needs an EC (secp384r1) private key in PEM, or "file:/path/to/key.pem".'),
    ],
)
def test_an_unset_environment_variable_says_to_set_it_and_what_it_should_hold(
    algorithm: str, needs: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_NAME, raising=False)
    configure(settings, ALGORITHM=algorithm, SIGNING_KEY=f"env:{ENV_NAME}")

    (error,) = cocart_errors()

    assert error.id == "cocart_jwt.E002"
    assert error.msg == (
        f"COCART_JWT SIGNING_KEY names environment variable '{ENV_NAME}', which is not set."
    )
    assert error.hint == (
        f"Set {ENV_NAME} in the environment of every process of the site. {needs} "
        f"Make one with: python manage.py jwt keygen --algorithm {algorithm}"
    )


@pytest.mark.parametrize("algorithm", [None, "HS1024"])
def test_key_material_read_for_no_known_algorithm_says_how_to_fix_the_source(
    algorithm: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the check of SIGNING_KEY against SECRET_KEY reads SECRET_KEY: no algorithm to name.
    monkeypatch.delenv(ENV_NAME, raising=False)
    with pytest.raises(KeyConfigurationError) as unset:
        read_key_material(
            f"env:{ENV_NAME}", asymmetric=False, setting="SECRET_KEY", algorithm=algorithm
        )
    with pytest.raises(KeyConfigurationError) as missing:
        read_key_material(
            f"file:{tmp_path / 'nope'}", asymmetric=False, setting="SECRET_KEY", algorithm=algorithm
        )

    assert unset.value.hint == f"Set {ENV_NAME} in the environment of every process of the site."
    assert missing.value.hint == "Check the path, and that the site's user may read the file."
    assert (unset.value.absent, missing.value.absent) == (True, True)


@pytest.mark.parametrize(
    ("algorithm", "shown"),
    [
        pytest.param("HS256-but-longer", "'HS256-but-longer'", id="16-characters-quoted"),
        pytest.param("HS256-but-longerx", "(a str that is no algorithm name)", id="17-hidden"),
        pytest.param(HS_A, "(a str that is no algorithm name)", id="secret-pasted-there"),
        pytest.param(b"HS256", "(a bytes that is no algorithm name)", id="bytes"),
        pytest.param(["HS256"], "(a list that is no algorithm name)", id="list"),
    ],
)
def test_an_unknown_algorithm_is_quoted_only_when_short_enough_to_be_no_secret(
    algorithm: Any, shown: str, settings: Any
) -> None:
    configure(settings, ALGORITHM=algorithm, SIGNING_KEY=HS_A)

    (error,) = cocart_errors()

    assert error.id == "cocart_jwt.E001"
    assert error.msg == f"COCART_JWT ALGORITHM {shown} is not a known algorithm."
    assert error.hint == (
        "Use one of ES256, ES384, ES512, HS256, HS384, HS512, PS256, PS384, PS512, RS256, RS384, "
        "RS512."
    )


def test_a_key_configuration_error_without_hint_reads_as_its_message() -> None:
    error = KeyConfigurationError("cocart_jwt.E002", "COCART_JWT SIGNING_KEY is required.")
    assert str(error) == "COCART_JWT SIGNING_KEY is required."
    hinted = KeyConfigurationError("cocart_jwt.E002", "It is wrong.", "Fix it.")
    assert str(hinted) == "It is wrong. Fix it."


@cache
def rsa_1024_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (refused)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode()


def keygen(algorithm: str) -> str:
    return f"Make one with: python manage.py jwt keygen --algorithm {algorithm}"


SOURCES = (
    'Give the key itself, "env:NAME" (an environment variable), or "file:/path/to/key" '
    "(or a pathlib.Path)."
)
FALLBACKS = (
    'A list of dicts, for example [{"ALGORITHM": "HS256", "SIGNING_KEY": "env:OLD_JWT_KEY"}].'
)
KEY_ID_RULE = "COCART_JWT KEY_ID must be a non-empty string of at most 128 characters."
KEY_ID_FIX = 'Leave KEY_ID unset to derive one from the key, or use a short name such as "2026-01".'
HS256_NEEDS = f"HS256 needs a random secret of at least 32 bytes. {keygen('HS256')}"
ES256_PRIVATE = (
    'ES256 needs an EC (secp256r1) private key in PEM, or "file:/path/to/key.pem". '
    f"{keygen('ES256')}"
)
RS256_PRIVATE = (
    f'RS256 needs an RSA private key in PEM, or "file:/path/to/key.pem". {keygen("RS256")}'
)
RS256_PUBLIC = (
    f'RS256 needs an RSA public key in PEM, or "file:/path/to/key.pem". {keygen("RS256")}'
)
BAD_PRIVATE_PEM = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
BAD_PUBLIC_PEM = "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"

# name: (the key settings, the check id, its message, its hint). Each message names the setting
# and says what is wrong; each hint says what the setting should hold and how to make one.
BAD_KEYS: dict[str, tuple[Any, str, str, str]] = {
    "secret-of-a-wrong-type": (
        lambda: {"SIGNING_KEY": 42},
        "E002",
        "COCART_JWT SIGNING_KEY must be a string, bytes or a path, not int.",
        SOURCES,
    ),
    "fallback-secret-of-a-wrong-type": (
        lambda: {
            "SIGNING_KEY": HS_B,
            "FALLBACK_KEYS": [{"KEY_ID": "a", "SIGNING_KEY": HS_A}, {"SIGNING_KEY": 4.5}],
        },
        "E002",
        "COCART_JWT FALLBACK_KEYS[1] SIGNING_KEY must be a string, bytes or a path, not float.",
        SOURCES,
    ),
    "no-secret": (
        lambda: {"ALGORITHM": "HS256", "SIGNING_KEY": None},
        "E002",
        "COCART_JWT SIGNING_KEY is required for HS256.",
        'Keep it out of the code: "env:COCART_JWT_SIGNING_KEY" reads it from that environment '
        f"variable. {HS256_NEEDS}",
    ),
    "fallback-without-secret": (
        lambda: {"SIGNING_KEY": HS_B, "FALLBACK_KEYS": [{"ALGORITHM": "HS384"}]},
        "E002",
        "COCART_JWT FALLBACK_KEYS[0] SIGNING_KEY is required for HS384.",
        f"HS384 needs a random secret of at least 48 bytes. {keygen('HS384')}",
    ),
    "short-secret": (
        lambda: {"ALGORITHM": "HS384", "SIGNING_KEY": "x" * 47},
        "E002",
        "COCART_JWT SIGNING_KEY is 47 bytes; HS384 needs at least 48.",
        f"HS384 needs a random secret of at least 48 bytes. {keygen('HS384')}",
    ),
    "pem-as-secret": (
        lambda: {"ALGORITHM": "HS256", "SIGNING_KEY": private_pem("ES256", 0)},
        "E004",
        "COCART_JWT SIGNING_KEY is a PEM/SSH key, but HS256 needs a secret.",
        HS256_NEEDS,
    ),
    "env-names-a-missing-file": (
        lambda: {"ALGORITHM": "ES256", "SIGNING_KEY": f"env:{ENV_NAME}"},
        "E003",
        f"COCART_JWT SIGNING_KEY: environment variable '{ENV_NAME}' names a key file that "
        "cannot be read (No such file or directory).",
        ES256_PRIVATE,
    ),
    "env-holds-a-missing-path": (
        lambda: {"ALGORITHM": "ES256", "SIGNING_KEY": f"env:{ENV_NAME}_PATH"},
        "E003",
        f"COCART_JWT SIGNING_KEY: environment variable '{ENV_NAME}_PATH' holds neither a PEM "
        "key nor the path of a readable key file (No such file or directory).",
        ES256_PRIVATE,
    ),
    "missing-file": (
        lambda: {"ALGORITHM": "ES256", "SIGNING_KEY": "file:/nonexistent/jwt.pem"},
        "E003",
        "COCART_JWT SIGNING_KEY: cannot read key file '/nonexistent/jwt.pem' "
        "(No such file or directory).",
        ES256_PRIVATE,
    ),
    "missing-public-key-file": (
        lambda: {"ALGORITHM": "RS256", "VERIFYING_KEY": Path("/nonexistent/jwt.pem.pub")},
        "E003",
        "COCART_JWT VERIFYING_KEY: cannot read key file '/nonexistent/jwt.pem.pub' "
        "(No such file or directory).",
        RS256_PUBLIC,
    ),
    "garbage-private-pem": (
        lambda: {"ALGORITHM": "RS256", "SIGNING_KEY": BAD_PRIVATE_PEM},
        "E003",
        "COCART_JWT SIGNING_KEY is not a usable unencrypted PEM private key.",
        RS256_PRIVATE,
    ),
    "garbage-public-pem": (
        lambda: {"ALGORITHM": "RS256", "VERIFYING_KEY": BAD_PUBLIC_PEM},
        "E003",
        "COCART_JWT VERIFYING_KEY is not a usable PEM public key.",
        RS256_PUBLIC,
    ),
    "no-asymmetric-key": (
        lambda: {"ALGORITHM": "ES256", "SIGNING_KEY": None},
        "E003",
        "COCART_JWT: ES256 needs SIGNING_KEY (a private key) or VERIFYING_KEY.",
        ES256_PRIVATE,
    ),
    "ec-key-for-ps256": (
        lambda: {"ALGORITHM": "PS256", "SIGNING_KEY": private_pem("ES256", 0)},
        "E004",
        "COCART_JWT SIGNING_KEY is not an RSA key, but PS256 needs one.",
        f'PS256 needs an RSA private key in PEM, or "file:/path/to/key.pem". {keygen("PS256")}',
    ),
    "rsa-1024-private": (
        lambda: {"ALGORITHM": "RS256", "SIGNING_KEY": rsa_1024_pem()},
        "E004",
        "COCART_JWT SIGNING_KEY is a 1024-bit RSA key; use 2048 or more.",
        RS256_PRIVATE,
    ),
    "rsa-1024-public": (
        lambda: {"ALGORITHM": "RS256", "VERIFYING_KEY": public_pem(rsa_1024_pem())},
        "E004",
        "COCART_JWT VERIFYING_KEY is a 1024-bit RSA key; use 2048 or more.",
        RS256_PUBLIC,
    ),
    "p256-key-for-es384": (
        lambda: {"ALGORITHM": "ES384", "VERIFYING_KEY": public_pem(private_pem("ES256", 0))},
        "E004",
        "COCART_JWT VERIFYING_KEY is not an EC key on secp384r1, as ES384 needs.",
        f'ES384 needs an EC (secp384r1) public key in PEM, or "file:/path/to/key.pem". '
        f"{keygen('ES384')}",
    ),
    "rsa-key-for-es512": (
        lambda: {"ALGORITHM": "ES512", "SIGNING_KEY": private_pem("RS256", 0)},
        "E004",
        "COCART_JWT SIGNING_KEY is not an EC key on secp521r1, as ES512 needs.",
        f'ES512 needs an EC (secp521r1) private key in PEM, or "file:/path/to/key.pem". '
        f"{keygen('ES512')}",
    ),
    "not-the-public-half": (
        lambda: {
            "ALGORITHM": "RS256",
            "SIGNING_KEY": private_pem("RS256", 0),
            "VERIFYING_KEY": public_pem(private_pem("RS256", 1)),
        },
        "E004",
        "COCART_JWT VERIFYING_KEY is not the public half of COCART_JWT SIGNING_KEY.",
        "Leave VERIFYING_KEY unset (it is derived from SIGNING_KEY), or set it to the public "
        "key made with that private key.",
    ),
    "empty-key-id": (lambda: {"SIGNING_KEY": HS_A, "KEY_ID": ""}, "E007", KEY_ID_RULE, KEY_ID_FIX),
    "key-id-of-129": (
        lambda: {"SIGNING_KEY": HS_A, "KEY_ID": "k" * 129},
        "E007",
        KEY_ID_RULE,
        KEY_ID_FIX,
    ),
    "key-id-not-a-string": (
        lambda: {"SIGNING_KEY": HS_A, "KEY_ID": 2026},
        "E007",
        KEY_ID_RULE,
        KEY_ID_FIX,
    ),
    "fallbacks-not-a-list": (
        lambda: {"SIGNING_KEY": HS_B, "FALLBACK_KEYS": {"SIGNING_KEY": HS_A}},
        "E007",
        "COCART_JWT FALLBACK_KEYS must be a list.",
        FALLBACKS,
    ),
    "fallback-not-a-dict": (
        lambda: {"SIGNING_KEY": HS_B, "FALLBACK_KEYS": [{"SIGNING_KEY": HS_A}, "old"]},
        "E007",
        "COCART_JWT FALLBACK_KEYS[1] must be a dict.",
        FALLBACKS,
    ),
    "fallback-repeating-a-key-id": (
        lambda: {
            "SIGNING_KEY": HS_B,
            "KEY_ID": "k1",
            "FALLBACK_KEYS": [{"SIGNING_KEY": HS_A, "KEY_ID": "k1"}],
        },
        "E007",
        "COCART_JWT FALLBACK_KEYS[0] has key id 'k1', already in use.",
        "Give each key its own KEY_ID, and drop a fallback that repeats the current key.",
    ),
}


@pytest.mark.parametrize("name", list(BAD_KEYS))
def test_each_bad_key_setting_says_what_is_wrong_and_how_to_fix_it(
    name: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_keys, check_id, message, hint = BAD_KEYS[name]
    monkeypatch.setenv(ENV_NAME, "file:/nonexistent/from-the-environment.pem")
    monkeypatch.setenv(f"{ENV_NAME}_PATH", "/nonexistent/from-the-environment.pem")
    configure(settings, **make_keys())

    (error,) = cocart_errors()

    assert (error.id, error.msg, error.hint) == (f"cocart_jwt.{check_id}", message, hint)
    with pytest.raises(KeyConfigurationError) as raised:
        keyring()
    assert str(raised.value) == f"{message} {hint}"


@pytest.mark.parametrize("empty", ["", b""], ids=["str", "bytes"])
def test_an_empty_key_setting_counts_as_unset(
    empty: Any, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    # VERIFYING_KEY="" (an empty environment template) is derived from SIGNING_KEY...
    configure(settings, ALGORITHM="RS256", SIGNING_KEY=private_pem("RS256", 0), VERIFYING_KEY=empty)
    assert cocart_ids() == []
    token = access_token(api_client, user, password)
    assert verify_with(token, public_key("RS256"), "RS256")["sub"] == str(user.pk)
    assert me_status(api_client, token) == 200

    # ... and SIGNING_KEY="" leaves a site that verifies only.
    public = public_pem(private_pem("RS256", 0))
    configure(settings, ALGORITHM="RS256", SIGNING_KEY=empty, VERIFYING_KEY=public)
    assert cocart_ids() == []
    assert keyring().signing_key is None
    assert me_status(api_client, token) == 200


def test_a_private_key_given_as_verifying_key_publishes_only_its_public_half(
    settings: Any, api_client: Any
) -> None:
    configure(settings, ALGORITHM="ES384", VERIFYING_KEY=private_pem("ES384", 0))

    assert cocart_ids() == []
    (jwk,) = jwks_by_kid(api_client).values()
    assert jwt.PyJWK(jwk).key.public_numbers() == public_key("ES384").public_numbers()
    assert "d" not in jwk


@pytest.mark.parametrize("length", [1, 127, 128])
def test_a_key_id_of_up_to_128_characters_is_the_kid(
    length: int, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    kid = "k" * length
    configure(settings, ALGORITHM="HS256", SIGNING_KEY=HS_A, KEY_ID=kid)

    assert cocart_ids() == []
    token = access_token(api_client, user, password)
    assert jwt.get_unverified_header(token)["kid"] == kid
    assert me_status(api_client, token) == 200


# --- Settings reload -----------------------------------------------------------------------


def test_changed_signing_key_is_used_on_the_very_next_request(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, ALGORITHM="HS256", SIGNING_KEY=HS_A)
    old = access_token(api_client, user, password)
    assert me_status(api_client, old) == 200

    configure(settings, ALGORITHM="HS256", SIGNING_KEY=HS_B)

    assert me_status(api_client, old) == 401
    new = access_token(api_client, user, password)
    assert verify_with(new, HS_B, "HS256")["sub"] == str(user.pk)
    with pytest.raises(jwt.InvalidSignatureError):
        verify_with(new, HS_A, "HS256")
    assert me_status(api_client, new) == 200


def test_changed_algorithm_and_key_change_jwks_on_the_very_next_request(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(settings, ALGORITHM="RS256", SIGNING_KEY=private_pem("RS256", 0))
    first = jwks_by_kid(api_client)
    assert [jwk["alg"] for jwk in first.values()] == ["RS256"]

    configure(settings, ALGORITHM="ES256", SIGNING_KEY=private_pem("ES256", 0))
    second = jwks_by_kid(api_client)
    assert [jwk["alg"] for jwk in second.values()] == ["ES256"]
    assert set(first).isdisjoint(second)

    token = access_token(api_client, user, password)
    assert jwt.get_unverified_header(token)["kid"] in second
    assert verify_with(token, public_key("ES256"), "ES256")["sub"] == str(user.pk)


def test_signing_key_file_is_read_again_after_settings_change(
    settings: Any, api_client: Any, user: Any, password: str, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(HS_A)
    configure(settings, ALGORITHM="HS256", SIGNING_KEY=f"file:{secret_file}")
    assert verify_with(access_token(api_client, user, password), HS_A, "HS256")

    secret_file.write_text(HS_B)
    configure(settings, ALGORITHM="HS256", SIGNING_KEY=f"file:{secret_file}")
    assert verify_with(access_token(api_client, user, password), HS_B, "HS256")


# --- Rotation with FALLBACK_KEYS -----------------------------------------------------------


@pytest.mark.parametrize("explicit_kids", [True, False], ids=["KEY_ID", "derived-kid"])
def test_hmac_rotation_keeps_old_tokens_until_fallback_removed(
    explicit_kids: bool, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    kid_a = {"KEY_ID": "hs-a"} if explicit_kids else {}
    kid_b = {"KEY_ID": "hs-b"} if explicit_kids else {}
    configure(settings, ALGORITHM="HS256", SIGNING_KEY=HS_A, **kid_a)
    old = pair(api_client, user, password)
    old_kid = jwt.get_unverified_header(old["access_token"])["kid"]

    fallback = {"ALGORITHM": "HS256", "SIGNING_KEY": HS_A, **kid_a}
    configure(
        settings,
        ALGORITHM="HS512",
        SIGNING_KEY=hmac_secret("HS512", 5),
        FALLBACK_KEYS=[fallback],
        **kid_b,
    )
    assert cocart_ids() == []

    assert me_status(api_client, old["access_token"]) == 200
    new = access_token(api_client, user, password)
    header = jwt.get_unverified_header(new)
    assert header["alg"] == "HS512"
    assert header["kid"] != old_kid
    if explicit_kids:
        assert (old_kid, header["kid"]) == ("hs-a", "hs-b")
    assert verify_with(new, hmac_secret("HS512", 5), "HS512")["sub"] == str(user.pk)
    assert me_status(api_client, new) == 200

    # The refresh token issued under A is opaque: it still works and yields a B token.
    refreshed = refresh(api_client, old["refresh_token"])
    assert refreshed.status_code == 200, refreshed.content
    assert jwt.get_unverified_header(refreshed.json()["access_token"])["kid"] == header["kid"]

    configure(settings, ALGORITHM="HS512", SIGNING_KEY=hmac_secret("HS512", 5), **kid_b)
    assert me_status(api_client, old["access_token"]) == 401
    assert me_status(api_client, new) == 200


@pytest.mark.parametrize("explicit_kids", [True, False], ids=["KEY_ID", "derived-kid"])
def test_rs256_to_es256_rotation_keeps_old_tokens_and_publishes_both_keys(
    explicit_kids: bool, settings: Any, api_client: Any, user: Any, password: str
) -> None:
    kid_a = {"KEY_ID": "rsa-a"} if explicit_kids else {}
    kid_b = {"KEY_ID": "ec-b"} if explicit_kids else {}
    rsa_private = private_pem("RS256", 0)
    configure(settings, ALGORITHM="RS256", SIGNING_KEY=rsa_private, **kid_a)
    old = access_token(api_client, user, password)
    old_kid = jwt.get_unverified_header(old)["kid"]

    fallback = {"ALGORITHM": "RS256", "VERIFYING_KEY": public_pem(rsa_private), **kid_a}
    configure(
        settings,
        ALGORITHM="ES256",
        SIGNING_KEY=private_pem("ES256", 0),
        FALLBACK_KEYS=[fallback],
        **kid_b,
    )
    assert cocart_ids() == []

    assert me_status(api_client, old) == 200
    new = access_token(api_client, user, password)
    new_header = jwt.get_unverified_header(new)
    assert new_header["alg"] == "ES256"
    assert new_header["kid"] != old_kid
    if explicit_kids:
        assert (old_kid, new_header["kid"]) == ("rsa-a", "ec-b")

    published = jwks_by_kid(api_client)
    assert set(published) == {old_kid, new_header["kid"]}
    assert published[old_kid]["alg"] == "RS256"
    assert published[new_header["kid"]]["alg"] == "ES256"
    for jwk in published.values():
        assert jwk["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    # A relying party with only the JWKS verifies both tokens.
    assert verify_with(old, jwt.PyJWK(published[old_kid]).key, "RS256")["sub"] == str(user.pk)
    assert verify_with(new, jwt.PyJWK(published[new_header["kid"]]).key, "ES256")

    configure(settings, ALGORITHM="ES256", SIGNING_KEY=private_pem("ES256", 0), **kid_b)
    assert me_status(api_client, old) == 401
    assert me_status(api_client, new) == 200
    assert set(jwks_by_kid(api_client)) == {new_header["kid"]}


def resign(token: str, key: Any, algorithm: str, kid: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(claims, key, algorithm=algorithm, headers={"typ": "at+jwt", "kid": kid})


def test_token_signed_by_fallback_key_but_naming_current_kid_is_refused(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    configure(
        settings,
        ALGORITHM="HS256",
        SIGNING_KEY=HS_B,
        KEY_ID="hs-b",
        FALLBACK_KEYS=[{"KEY_ID": "hs-a", "ALGORITHM": "HS256", "SIGNING_KEY": HS_A}],
    )
    genuine = access_token(api_client, user, password)
    # Control: the same claims re-signed properly are accepted, under either kid.
    assert me_status(api_client, resign(genuine, HS_B, "HS256", "hs-b")) == 200
    assert me_status(api_client, resign(genuine, HS_A, "HS256", "hs-a")) == 200

    assert me_status(api_client, resign(genuine, HS_A, "HS256", "hs-b")) == 401
    assert me_status(api_client, resign(genuine, HS_B, "HS256", "hs-a")) == 401


def test_token_with_fallback_algorithm_naming_current_kid_is_refused(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    rsa_private = private_pem("RS256", 0)
    configure(
        settings,
        ALGORITHM="ES256",
        SIGNING_KEY=private_pem("ES256", 0),
        KEY_ID="ec-b",
        FALLBACK_KEYS=[
            {"KEY_ID": "rsa-a", "ALGORITHM": "RS256", "VERIFYING_KEY": public_pem(rsa_private)}
        ],
    )
    genuine = access_token(api_client, user, password)
    assert me_status(api_client, resign(genuine, rsa_private, "RS256", "rsa-a")) == 200

    assert me_status(api_client, resign(genuine, rsa_private, "RS256", "ec-b")) == 401
    assert me_status(api_client, resign(genuine, private_pem("ES256", 0), "ES256", "rsa-a")) == 401


def test_hmac_token_with_fallback_algorithm_naming_current_kid_is_refused(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    current = hmac_secret("HS512", 5)
    configure(
        settings,
        ALGORITHM="HS512",
        SIGNING_KEY=current,
        KEY_ID="hs-b",
        FALLBACK_KEYS=[{"KEY_ID": "hs-a", "ALGORITHM": "HS256", "SIGNING_KEY": HS_A}],
    )
    genuine = access_token(api_client, user, password)
    assert me_status(api_client, genuine) == 200

    # HS256 is the fallback's algorithm: refused under the current kid, even with its secret.
    assert me_status(api_client, resign(genuine, current, "HS256", "hs-b")) == 401
    assert me_status(api_client, resign(genuine, HS_A, "HS256", "hs-b")) == 401


def test_fallback_given_a_private_key_only_verifies_and_publishes_its_public_half(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    rsa_private = private_pem("RS256", 0)
    configure(settings, ALGORITHM="RS256", SIGNING_KEY=rsa_private, KEY_ID="old")
    old = access_token(api_client, user, password)

    configure(
        settings,
        ALGORITHM="ES256",
        SIGNING_KEY=private_pem("ES256", 0),
        KEY_ID="new",
        FALLBACK_KEYS=[{"KEY_ID": "old", "ALGORITHM": "RS256", "SIGNING_KEY": rsa_private}],
    )
    assert me_status(api_client, old) == 200
    assert jwt.get_unverified_header(access_token(api_client, user, password))["kid"] == "new"
    published = jwks_by_kid(api_client)
    assert set(published) == {"old", "new"}
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(published["old"])


def test_a_fallback_key_never_signs(
    settings: Any, api_client: Any, user: Any, password: str
) -> None:
    rsa_private = private_pem("RS256", 0)
    configure(
        settings,
        ALGORITHM="HS256",
        SIGNING_KEY=HS_B,
        KEY_ID="new",
        FALLBACK_KEYS=[
            {"KEY_ID": "old-hs", "ALGORITHM": "HS256", "SIGNING_KEY": HS_A},
            {"KEY_ID": "old-rs", "ALGORITHM": "RS256", "SIGNING_KEY": rsa_private},
        ],
    )

    token = access_token(api_client, user, password)

    assert jwt.get_unverified_header(token)["kid"] == "new"
    assert verify_with(token, HS_B, "HS256")["sub"] == str(user.pk)
    ring = keyring()
    assert ring.signing_key is ring.by_kid["new"]
    # Kept for verification only: even given a secret or a private key, nothing to sign with.
    assert (ring.by_kid["old-hs"].signer, ring.by_kid["old-rs"].signer) == (None, None)


def openssh_public_key(kind: str) -> str:
    """An OpenSSH public key line, as ~/.ssh/id_*.pub holds it."""
    private: Any
    if kind == "ssh-rsa":
        private = serialization.load_pem_private_key(private_pem("RS256", 0).encode(), None)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    line = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert line.startswith(f"{kind} ".encode())
    return f"{line.decode()} alice@laptop"


@pytest.mark.parametrize("algorithm", ["HS256", "HS512"])
@pytest.mark.parametrize("kind", ["ssh-rsa", "ssh-ed25519"])
def test_an_ssh_public_key_given_as_hmac_secret_is_check_e004(
    kind: str, algorithm: str, settings: Any
) -> None:
    # Pasted where a secret belongs: long enough to pass for one, and public.
    ssh_key = openssh_public_key(kind)
    configure(settings, ALGORITHM=algorithm, SIGNING_KEY=ssh_key)

    errors = cocart_errors()

    assert [m.id for m in errors] == ["cocart_jwt.E004"]
    assert "PEM/SSH key" in errors[0].msg
    assert not quotes_any_part(ssh_key, f"{errors[0].msg} {errors[0].hint}")


@pytest.mark.parametrize(
    ("algorithm", "setting", "needs"),
    [
        ("RS256", "VERIFYING_KEY", "RS256 needs an RSA public key in PEM"),
        ("RS256", "SIGNING_KEY", "RS256 needs an RSA private key in PEM"),
        ("ES256", "VERIFYING_KEY", "ES256 needs an EC (secp256r1) public key in PEM"),
    ],
)
def test_an_ssh_public_key_given_where_a_pem_belongs_is_check_e003(
    algorithm: str, setting: str, needs: str, settings: Any
) -> None:
    # ~/.ssh/id_rsa.pub pasted for the PEM: neither a key this app reads nor a path.
    ssh_key = openssh_public_key("ssh-rsa")
    configure(settings, ALGORITHM=algorithm, **{setting: ssh_key})

    errors = cocart_errors()

    assert [m.id for m in errors] == ["cocart_jwt.E003"]
    assert errors[0].msg.startswith(f"COCART_JWT {setting} is neither a PEM key nor the path")
    assert errors[0].hint.startswith(needs)
    assert not quotes_any_part(ssh_key, f"{errors[0].msg} {errors[0].hint}")
    assert migrate_ids() == ["cocart_jwt.E003"]  # there but wrong: no W007


# --- No key value in any error ------------------------------------------------------------

# What `jwt keygen --algorithm HS256` prints: pasted where a PEM private key belongs.
HMAC_LIKE_SECRET = "Xy4q-Rt8vWm2Kp9LzN3sBd6Fh1Jc5Gn0Qe7Tu_Ai2o"


def quotes_any_part(secret: str, text: str, width: int = 12) -> bool:
    return any(secret[i : i + width] in text for i in range(len(secret) - width + 1))


def misplaced_secret(
    settings: Any, monkeypatch: pytest.MonkeyPatch, algorithm: str, where: str
) -> None:
    monkeypatch.setenv(ENV_NAME, HMAC_LIKE_SECRET)
    pem = private_pem(algorithm, 0)
    keys = {
        "signing": {"SIGNING_KEY": HMAC_LIKE_SECRET},
        "verifying": {"VERIFYING_KEY": HMAC_LIKE_SECRET},
        "env": {"SIGNING_KEY": f"env:{ENV_NAME}"},
        "env-file": {"SIGNING_KEY": f"env:{ENV_NAME}"},
        "fallback": {"SIGNING_KEY": pem, "FALLBACK_KEYS": [{"VERIFYING_KEY": HMAC_LIKE_SECRET}]},
    }[where]
    if where == "env-file":  # the variable holds "file:<secret>": still the variable's value
        monkeypatch.setenv(ENV_NAME, f"file:{HMAC_LIKE_SECRET}")
    configure(settings, ALGORITHM=algorithm, **keys)


@pytest.mark.parametrize("where", ["signing", "verifying", "env", "env-file", "fallback"])
@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "PS256"])
def test_keyring_error_never_quotes_a_misplaced_secret(
    algorithm: str, where: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    misplaced_secret(settings, monkeypatch, algorithm, where)

    with pytest.raises(KeyConfigurationError) as raised:
        keyring()

    # The whole traceback, as an error report would show it, chained exceptions included.
    shown = "".join(traceback.format_exception(raised.value))
    assert not quotes_any_part(HMAC_LIKE_SECRET, shown)
    assert f"python manage.py jwt keygen --algorithm {algorithm}" in str(raised.value)
    if where.startswith("env"):
        assert ENV_NAME in str(raised.value)
    else:
        assert raised.value.message.endswith("; a secret of an HS algorithm does not work here.")


def test_a_login_with_a_misplaced_secret_is_a_generic_500_and_logs_no_secret(
    settings: Any, monkeypatch: pytest.MonkeyPatch, user: Any, password: str, caplog: Any
) -> None:
    settings.DEBUG = False
    misplaced_secret(settings, monkeypatch, "RS256", "signing")
    client = APIClient()
    client.raise_request_exception = False

    with caplog.at_level(logging.DEBUG):
        response = login(client, user.username, password)

    assert response.status_code == 500
    assert not quotes_any_part(HMAC_LIKE_SECRET, response.content.decode())
    assert b"SIGNING_KEY" not in response.content
    formatter = logging.Formatter("%(name)s %(message)s")
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert "Internal Server Error" in logged and "SIGNING_KEY" in logged
    assert not quotes_any_part(HMAC_LIKE_SECRET, logged)
