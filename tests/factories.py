"""Helpers shared by the tests: keys of every algorithm, tokens, logins."""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.urls import reverse
from rest_framework.test import APIClient

from cocart_jwt.keys import EC_CURVES, HMAC_MIN_BYTES, RSA_ALGORITHMS

ALL_ALGORITHMS = sorted(HMAC_MIN_BYTES) + sorted(RSA_ALGORITHMS) + sorted(EC_CURVES)
CURVES = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}


def private_pem(algorithm: str, variant: int = 0) -> str:
    """A PEM private key for ``algorithm`` (RSA 2048 for RS*/PS*); ``variant`` gives another."""
    return _private_pem(algorithm, variant)


@cache
def _private_pem(algorithm: str, variant: int) -> str:
    if algorithm in RSA_ALGORITHMS:
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(CURVES[algorithm])
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(private: str) -> str:
    key: Any = serialization.load_pem_private_key(private.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def hmac_secret(algorithm: str, variant: int = 0) -> str:
    return f"secret-{variant}-".ljust(HMAC_MIN_BYTES[algorithm] + 8, "x")


def key_settings(algorithm: str, variant: int = 0, **extra: Any) -> dict[str, Any]:
    """A COCART_JWT dict signing with ``algorithm``."""
    if algorithm in HMAC_MIN_BYTES:
        signing = hmac_secret(algorithm, variant)
    else:
        signing = private_pem(algorithm, variant)
    return {"ALGORITHM": algorithm, "SIGNING_KEY": signing, **extra}


def b64url_json(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def login(client: Any, username: str, password: str, **extra: Any) -> Any:
    return client.post(
        reverse("cocart_jwt:login"),
        {"username": username, "password": password},
        format="json",
        **extra,
    )


def signed_in(user: Any, password: str) -> dict[str, Any]:
    """A fresh login's token pair (its own client), asserted to succeed."""
    response = login(APIClient(), user.username, password)
    assert response.status_code == 200, response.content
    return dict(response.json())


def refresh(client: Any, refresh_token: str) -> Any:
    return client.post(
        reverse("cocart_jwt:refresh"), {"refresh_token": refresh_token}, format="json"
    )


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def answering_client() -> Any:
    """An APIClient that shows a 500 as a 500 response, not as an exception."""
    client = APIClient()
    client.raise_request_exception = False
    return client
