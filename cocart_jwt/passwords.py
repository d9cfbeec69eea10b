"""What a session remembers of its user's password: an HMAC of the hash, so that a password
change, even one that bypassed ``save()``, ends its refreshes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.utils.crypto import constant_time_compare, salted_hmac

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

PASSWORD_FINGERPRINT_SALT = "cocart_jwt.password_fingerprint"  # noqa: S105 (a salt)


def password_fingerprint(user: AbstractBaseUser, secret: str | bytes | None = None) -> str:
    password = getattr(user, "password", "") or ""
    return salted_hmac(
        PASSWORD_FINGERPRINT_SALT, password, secret=secret, algorithm="sha256"
    ).hexdigest()


def password_unchanged(user: AbstractBaseUser, fingerprint: str) -> bool:
    secrets_in_use = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return any(
        constant_time_compare(password_fingerprint(user, secret), fingerprint)
        for secret in secrets_in_use
    )


def has_last_login(user: AbstractBaseUser) -> bool:
    """Whether the user model keeps ``last_login`` (AbstractBaseUser does; a custom one may not)."""
    try:
        type(user)._meta.get_field("last_login")
    except FieldDoesNotExist:
        return False
    return True
