"""System checks of personal access tokens and the access token's RFC 9068 claims, registered
when the app is ready.

E019: ``SCOPES`` that is not a dict of scope names (RFC 6749 section 3.3: printable ASCII
without space, ``"`` or ``\\``) to descriptions. E020: ``PAT_MAX_LIFETIME`` not positive,
``MAX_PATS_PER_USER`` not a positive integer or None, ``CLIENT_ID`` not a non-empty string.
W011: ``ISSUER`` or ``AUDIENCE`` unset: RFC 9068 requires ``iss`` and ``aud`` in every access
token, and a resource server that checks neither accepts tokens meant for another site.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .settings import SETTING_NAME, jwt_settings
from .tokens import SCOPE_TOKEN

SCOPES_HINT = (
    'For example {"products:read": "Read the catalogue", "cart:write": "Change the cart"}: '
    "names of 1 to 64 printable ASCII characters without spaces, quotes or backslashes."
)


@register(Tags.security, "cocart_jwt")
def check_personal_tokens(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not isinstance(getattr(settings, SETTING_NAME, {}), dict):
        return []  # E012 says so; nothing else can be read
    return [*check_scopes(), *check_limits(), *check_issuer_and_audience()]


def check_scopes() -> Iterator[CheckMessage]:
    scopes = jwt_settings.SCOPES
    if not isinstance(scopes, dict):
        yield Error(
            "COCART_JWT SCOPES must be a dict of scope names to descriptions.",
            hint=SCOPES_HINT,
            id="cocart_jwt.E019",
        )
        return
    for name, description in scopes.items():
        if not isinstance(name, str) or not SCOPE_TOKEN.fullmatch(name):
            yield Error(
                f"COCART_JWT SCOPES has a name that is not a scope token: {name!r}.",
                hint=SCOPES_HINT,
                id="cocart_jwt.E019",
            )
        elif not isinstance(description, str):
            yield Error(
                f"COCART_JWT SCOPES[{name!r}] must be a description (a string).",
                hint=SCOPES_HINT,
                id="cocart_jwt.E019",
            )


def check_limits() -> Iterator[CheckMessage]:
    try:
        lifetime = jwt_settings.PAT_MAX_LIFETIME
    except (TypeError, ValueError, OverflowError):  # E005 says so
        lifetime = None
    if lifetime is not None and lifetime <= timedelta(0):
        yield Error(
            "COCART_JWT PAT_MAX_LIFETIME must be positive.",
            hint="Use timedelta(days=365) (the default) or shorter.",
            id="cocart_jwt.E020",
        )
    limit = jwt_settings.MAX_PATS_PER_USER
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        yield Error(
            "COCART_JWT MAX_PATS_PER_USER must be a positive integer or None.",
            hint="Use 20 (the default), or None for no limit on a user's personal tokens.",
            id="cocart_jwt.E020",
        )
    client_id = jwt_settings.CLIENT_ID
    if not isinstance(client_id, str) or not client_id or not client_id.isprintable():
        yield Error(
            "COCART_JWT CLIENT_ID must be a non-empty string.",
            hint='The client_id claim of every access token: "cocart_jwt" (the default), or '
            "the name resource servers know this site by.",
            id="cocart_jwt.E020",
        )


def check_issuer_and_audience() -> Iterator[CheckMessage]:
    unset = [name for name in ("ISSUER", "AUDIENCE") if not getattr(jwt_settings, name)]
    if unset:
        yield Warning(
            f"COCART_JWT {' and '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set: "
            "RFC 9068 access tokens carry iss and aud, and resource servers that check them "
            "refuse tokens meant for another site.",
            hint='Set ISSUER to this site\'s URL (e.g. "https://shop.example") and AUDIENCE '
            'to what resource servers expect (e.g. "https://api.shop.example").',
            id="cocart_jwt.W011",
        )
