"""Cookie transport for browser clients (``COOKIE_TRANSPORT``).

The refresh token travels in an ``HttpOnly`` cookie scoped to the auth URLs (so it is sent
only to refresh and logout), never in a JSON body that a script could read. Optionally the
access token travels in a cookie too (``ACCESS_COOKIE_NAME``); requests authenticated by that
cookie must then pass Django's CSRF check, as DRF's ``SessionAuthentication`` does.

A cookie set by a response goes to the browser that sent the request, whoever made it send
it: a form on another site that posts the attacker's password to login would sign the victim's
browser in as the attacker (login CSRF). So login and refresh refuse cross-site browser
requests (``cross_site_reason``), judged by ``Origin`` as Django's CSRF middleware judges it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.urls import reverse
from django.utils.http import is_same_domain

from .settings import jwt_settings

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

    from .issued import IssuedTokens

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


def cross_site_reason(request: HttpRequest) -> str | None:
    """Why this request comes from another site's page, or None when it may set cookies.

    Browsers send ``Origin`` on every POST (``null`` from sandboxed frames, ``file:`` pages and
    some redirects) and ``Sec-Fetch-Site``, which a page cannot forge. A cross-site request is
    refused even from an origin in ``CSRF_TRUSTED_ORIGINS`` (docs/cookies.md): a trusted front end
    on a sibling host of the same site is ``same-site`` and passes. Native clients send neither
    header and are not browsers to protect.
    """
    origin = request.META.get("HTTP_ORIGIN")
    if request.META.get("HTTP_SEC_FETCH_SITE", "").lower() == "cross-site":
        return f"Sec-Fetch-Site is cross-site (Origin {origin!r})"
    if origin is not None and origin != own_origin(request) and not trusted_origin(origin):
        return f"Origin {origin!r} is neither this site nor in CSRF_TRUSTED_ORIGINS"
    return None


def own_origin(request: HttpRequest) -> str | None:
    """The site's origin as Django's CSRF middleware computes it; None for a disallowed host."""
    try:
        host = request.get_host()
    except DisallowedHost:
        return None
    scheme = "https" if request.is_secure() else "http"
    return f"{scheme}://{host}"


def trusted_origin(origin: str) -> bool:
    """``origin`` is in ``CSRF_TRUSTED_ORIGINS``, with its ``https://*.example.com`` form
    matched as ``CsrfViewMiddleware._origin_verified`` matches it (a private method)."""
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in {entry for entry in trusted if "*" not in entry}:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    return any(
        is_same_domain(parsed.netloc, pattern.netloc.lstrip("*"))
        for pattern in (urlsplit(entry) for entry in trusted if "*" in entry)
        if pattern.scheme == parsed.scheme
    )
