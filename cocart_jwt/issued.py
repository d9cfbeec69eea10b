"""What a login, refresh or admin issue hands to the client, and why a refresh is refused."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .settings import jwt_settings

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

    from .models import Token

REFRESH_TOKEN_BYTES = 32  # 256 bits


class RefreshError(Exception):
    """A refresh token was refused. The message is for the log and never holds the token."""


class RefreshTokenReused(RefreshError):
    """An already-rotated refresh token came back: its session has been revoked."""


class DPoPKeyMismatch(RefreshError):
    """The session is bound to a DPoP key and the request proved another one, or none (or the
    reverse, for a renewal). Nothing was spent: it is not reuse."""


class TooManyPersonalTokens(Exception):
    """The user already holds MAX_PATS_PER_USER live personal tokens: one must go first."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} live personal access tokens per user")
        self.limit = limit


@dataclass(frozen=True)
class IssuedTokens:
    """What a login, refresh or admin issue hands to the client, once."""

    session: Token
    user: AbstractBaseUser
    access_token: str = field(repr=False)  # never in a repr: it could reach a log
    access_expires_at: datetime
    refresh_token: str | None = field(repr=False)
    issued_at: datetime
    access_claims: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def token_type(self) -> str:
        """``DPoP`` for a session bound to a key (RFC 9449 section 5), else ``Bearer``."""
        return "DPoP" if self.session.dpop_jkt else "Bearer"

    @property
    def expires_in(self) -> int:
        return max(0, int((self.access_expires_at - self.issued_at).total_seconds()))

    @property
    def refresh_expires_in(self) -> int | None:
        if self.refresh_token is None:
            return None
        return max(0, int((self.session.expires_at - self.issued_at).total_seconds()))


def new_refresh_token() -> str:
    return jwt_settings.TOKEN_PREFIX + secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
