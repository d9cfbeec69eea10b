"""Cookie transport for browser clients (``COOKIE_TRANSPORT``).

The refresh token travels in an ``HttpOnly`` cookie scoped to the auth URLs (so it is sent
only to refresh and logout), never in a JSON body that a script could read. Optionally the
access token travels in a cookie too (``ACCESS_COOKIE_NAME``); requests authenticated by that
cookie must then pass Django's CSRF check, as DRF's ``SessionAuthentication`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.urls import reverse

from .settings import jwt_settings

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

    from .managers import IssuedTokens

SAMESITE_VALUES = frozenset({"Lax", "Strict", "None"})


def enabled() -> bool:
    return bool(jwt_settings.COOKIE_TRANSPORT)


def auth_path() -> str:
    """``COOKIE_PATH``, or where ``cocart_jwt.urls`` is mounted (``/api/auth/``)."""
    if jwt_settings.COOKIE_PATH:
        return str(jwt_settings.COOKIE_PATH)
    return reverse("cocart_jwt:refresh").removesuffix("refresh/")


def _attributes(path: str) -> dict[str, Any]:
    return {
        "path": path,
        "domain": jwt_settings.COOKIE_DOMAIN,
        "secure": bool(jwt_settings.COOKIE_SECURE),
        "httponly": True,
        "samesite": jwt_settings.COOKIE_SAMESITE,
    }


def set_token_cookies(response: HttpResponse, issued: IssuedTokens) -> None:
    if issued.refresh_token is not None:
        response.set_cookie(
            jwt_settings.REFRESH_COOKIE_NAME,
            issued.refresh_token,
            max_age=issued.refresh_expires_in,
            **_attributes(auth_path()),
        )
    if jwt_settings.ACCESS_COOKIE_NAME:
        response.set_cookie(
            jwt_settings.ACCESS_COOKIE_NAME,
            issued.access_token,
            max_age=issued.expires_in,
            **_attributes("/"),
        )


def delete_token_cookies(response: HttpResponse) -> None:
    response.delete_cookie(
        jwt_settings.REFRESH_COOKIE_NAME,
        path=auth_path(),
        domain=jwt_settings.COOKIE_DOMAIN,
        samesite=jwt_settings.COOKIE_SAMESITE,
    )
    if jwt_settings.ACCESS_COOKIE_NAME:
        response.delete_cookie(
            jwt_settings.ACCESS_COOKIE_NAME,
            path="/",
            domain=jwt_settings.COOKIE_DOMAIN,
            samesite=jwt_settings.COOKIE_SAMESITE,
        )


def without_cookie_tokens(body: dict[str, Any]) -> dict[str, Any]:
    """The token pair's JSON without what travels in cookies."""
    hidden = {"refresh_token"}
    if jwt_settings.ACCESS_COOKIE_NAME:
        hidden.add("access_token")
    return {name: value for name, value in body.items() if name not in hidden}


def refresh_token_from(request: HttpRequest) -> str | None:
    if not enabled():
        return None
    value = request.COOKIES.get(jwt_settings.REFRESH_COOKIE_NAME)
    return value or None


def access_token_from(request: HttpRequest) -> str | None:
    name = jwt_settings.ACCESS_COOKIE_NAME
    if not (enabled() and name):
        return None
    return request.COOKIES.get(name) or None
