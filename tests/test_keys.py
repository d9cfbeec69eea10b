"""Where keys come from (settings, env:, file:, paths), key rotation with FALLBACK_KEYS, reloads."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.core.checks import run_checks
from django.urls import reverse
from rest_framework.test import APIClient

from cocart_jwt.keys import KeyConfigurationError, keyring
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
