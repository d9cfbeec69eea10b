"""OpenAPI with drf-spectacular (optional): the Bearer scheme and the endpoints' shapes.

Without drf-spectacular installed, ``extend_schema`` is a no-op and nothing here runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from copy import deepcopy
from typing import Any

from django.urls import NoReverseMatch, reverse

from .serializers import SCOPE_NAME_MAX_LENGTH, ErrorSerializer
from .settings import jwt_settings

try:
    from drf_spectacular.extensions import (
        OpenApiAuthenticationExtension,
        OpenApiSerializerFieldExtension,
    )
    from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
except ImportError:  # drf-spectacular is optional
    HAS_SPECTACULAR = False

    def extend_schema(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:  # type: ignore[misc]
        return lambda view: view

else:
    HAS_SPECTACULAR = True

    class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
        """``Authorization: Bearer <access token>``, an HTTP bearer scheme of format JWT; or,
        for a session bound to a key, ``Authorization: DPoP <access token>`` with a ``DPoP``
        proof header (RFC 9449): either one."""

        target_class = "cocart_jwt.authentication.JWTAuthentication"
        name = ["jwtAuth", "dpopAuth"]

        def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
            return [
                {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                {  # bearerFormat belongs to the bearer scheme alone (OpenAPI 3.0)
                    "type": "http",
                    "scheme": "dpop",
                    "description": "A DPoP-bound access token (RFC 9449): `Authorization: DPoP "
                    "<token>`, with a fresh proof by the session's key in the `DPoP` header "
                    "(docs/dpop.md).",
                },
            ]

        def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
            return [{"jwtAuth": []}, {"dpopAuth": []}]  # either scheme, not both

    class ScopeNameSchema(OpenApiSerializerFieldExtension):
        """A scope name a personal token may be given: one of the site's ``SCOPES``, read
        when the schema is made (a site without any states a string)."""

        target_class = "cocart_jwt.serializers.ScopeNameField"

        def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
            schema: dict[str, Any] = {"type": "string", "maxLength": SCOPE_NAME_MAX_LENGTH}
            scopes = jwt_settings.SCOPES
            if isinstance(scopes, dict) and scopes:
                schema["enum"] = sorted(scopes)
            return schema


ERROR_DESCRIPTIONS = {
    400: "Malformed request: `invalid_request` with `errors` by field, or `parse_error`.",
    401: "No credentials, wrong ones, or a bad, expired or revoked token; "
    "`WWW-Authenticate` says Bearer.",
    403: "Refused: a cross-site browser request (cookie transport), or a cookie-authenticated "
    "request without its CSRF token.",
    404: "Not found.",
    409: "Conflict with the current state.",
    429: "Rate limited; see Retry-After.",
}

# The refusals that differ from endpoint to endpoint.
LOGIN_REFUSED = "Wrong username or password, or an inactive user."
REFRESH_REFUSED = "Unknown, spent or expired refresh token, or a revoked session."
CROSS_SITE = "A cross-site browser request, with cookie transport on."
CSRF_REFUSED = "Authenticated by the access cookie (cookie transport) without a CSRF token."
NOT_A_LIVE_SESSION = "Not one of the caller's live sessions."
INVALID_CURSOR = "A `cursor` that is not one this endpoint gave."
REAUTHENTICATE_REFUSED = (
    "Wrong password (`invalid_credentials`), or a bad, expired or revoked token."
)
CROSS_SITE_OR_NOT_A_LOGIN = (
    "A session no login started (`not_a_login_session`: a personal access token, or a token "
    "made in the admin, the CLI or for a login link), a cross-site browser request (cookie "
    "transport), or an access cookie without its CSRF token."
)
CSRF_OR_PERSONAL = (
    "A personal access token (`not_a_login_session`), or an access cookie (cookie transport) "
    "without its CSRF token."
)
NOT_A_LOGIN = (
    "Not a login session's token (`not_a_login_session`: a personal access token, or one made "
    "in the admin or the CLI), or an access cookie (cookie transport) without its CSRF token."
)
NOT_A_LIVE_PAT = "Not one of the caller's live personal access tokens."
PAT_REFUSED = (
    "Malformed request (`invalid_request` with `errors` by field: no name, no or unknown "
    "scopes, an `expires_in` out of range; or `parse_error`), or the user already holds "
    "`MAX_PATS_PER_USER` personal access tokens (`too_many_personal_tokens`)."
)
# A view guarded by cocart_jwt.permissions.HasScope (RFC 6750 section 3.1).
INSUFFICIENT_SCOPE = (
    "A personal access token without a scope this request needs: `insufficient_scope`, with "
    '`WWW-Authenticate: Bearer realm="api", error="insufficient_scope", scope="<needed>"`.'
)
# A view guarded by cocart_jwt.permissions.RecentLogin (RFC 9470).
RECENT_LOGIN_REQUIRED = (
    "No credentials, or a bad, expired or revoked token; or a login older than the view "
    "allows: `reauthentication_required`, with `WWW-Authenticate: Bearer "
    'error="insufficient_user_authentication", max_age=<seconds>` (RFC 9470). POST the '
    "password to `reauthenticate/` and retry."
)


def error_responses(
    *statuses: int, descriptions: Mapping[int, str] | None = None
) -> dict[int, Any]:
    """DRF's error shape (``{"detail", "code"}``) for each status, as the endpoints answer
    them; ``descriptions`` words one for an endpoint. Pair with ``error_headers``."""
    if not HAS_SPECTACULAR:
        return {}
    words = {**ERROR_DESCRIPTIONS, **(descriptions or {})}
    return {status: OpenApiResponse(ErrorSerializer, words[status]) for status in statuses}


def error_headers(*statuses: int, step_up: bool = False) -> list[Any]:
    """The headers every such error carries: the Bearer challenge of a 401 (RFC 6750; with
    ``step_up``, RFC 9470's too) and the ``Retry-After`` of a 429. Schemathesis checks that
    each answer has them."""
    if not HAS_SPECTACULAR:
        return []
    headers = []
    if 401 in statuses:
        challenge = '`Bearer realm="api"`, with `error="invalid_token"` when a token was sent '
        if step_up:
            challenge += (
                'and refused, `error="insufficient_user_authentication", max_age=<seconds>` '
                "when the login is older than the view allows (RFC 9470)."
            )
        else:
            challenge += "and refused."
        headers.append(
            OpenApiParameter(
                "WWW-Authenticate",
                {"type": "string", "pattern": "^Bearer "},
                OpenApiParameter.HEADER,
                required=True,
                response=[401],
                description=challenge,
            )
        )
    if 429 in statuses:
        headers.append(
            OpenApiParameter(
                "Retry-After",
                {"type": "integer", "minimum": 1},
                OpenApiParameter.HEADER,
                required=True,
                response=[429],
                description="Seconds until the limit lets a request through again.",
            )
        )
    return headers


# -- the login link page: a plain Django view, which drf-spectacular does not enumerate ------


def page(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def link_refusals() -> dict[str, Any]:
    return {
        "400": page("Malformed or unknown link."),
        "410": page("Expired, used or revoked link."),
        "429": {
            **page("Rate limited (per client IP, limit `login_link`)."),
            "headers": {
                "Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}
            },
        },
    }


def login_link_operations() -> dict[str, Any]:
    """GET (the confirm page) and POST (sign in) of ``cocart_jwt:login-link``: HTML pages."""
    return {
        "get": {
            "operationId": "login_link_confirm",
            "summary": "Login link: the confirm page",
            "description": "Shows who the link signs in and a button; using it takes a POST, "
            "so a link preview or a mail scanner does not spend the link.",
            "tags": ["auth"],
            "security": [{}],
            "parameters": [
                {
                    "name": "token",
                    "in": "query",
                    "required": True,
                    "description": "The single-use login link token.",
                    "schema": {"type": "string"},
                }
            ],
            "responses": {"200": page("The confirm page."), **link_refusals()},
        },
        "post": {
            "operationId": "login_link_sign_in",
            "summary": "Login link: sign in",
            "description": "Spends the link and starts a Django session for its user. A form "
            "post with Django's CSRF token (the confirm page's form); `token` in the body or "
            "the query.",
            "tags": ["auth"],
            "security": [{}],
            "requestBody": {
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "token": {"type": "string"},
                                "next": {
                                    "type": "string",
                                    "description": "A same-host URL to land on.",
                                },
                                "csrfmiddlewaretoken": {"type": "string"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "302": {
                    "description": "Signed in: to `next`, or the site's landing page.",
                    "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
                },
                **link_refusals(),
                "403": page("No or a wrong CSRF token (Django's CSRF failure page)."),
            },
        },
    }


def postprocess_schema(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (list it in ``POSTPROCESSING_HOOKS``): what view
    inspection cannot see. The login link page, a Django view (HTML, CSRF, a Django session)
    that drf-spectacular does not enumerate; and the OpenAPI links from a token pair to where
    its tokens go (refresh, revoke), and from a personal token made to deleting it, which
    clients and stateful testers follow.
    """
    paths = result.get("paths", {})
    key_of = schema_paths(paths, generator.urlconf)
    if key_of is None:
        return result  # cocart_jwt.urls not included: nothing to add
    link_page = key_of("cocart_jwt:login-link")
    if link_page is not None:
        paths[link_page] = login_link_operations()
    add_token_pair_links(paths, key_of)
    add_personal_token_link(paths, key_of)
    return result


def schema_paths(paths: dict[str, Any], urlconf: Any) -> Callable[..., str | None] | None:
    """The key a URL name has in ``paths``, as drf-spectacular spelled the app's paths (a
    prefix trimmed by ``SCHEMA_PATH_PREFIX_TRIM`` included); None without the login URL."""
    try:
        login = reverse("cocart_jwt:login", urlconf=urlconf)
    except NoReverseMatch:
        return None
    login_key = max((path for path in paths if login.endswith(path)), key=len, default=None)
    if login_key is None:
        return None
    trimmed = login[: len(login) - len(login_key)]

    def key_of(name: str, argument: str | None = None) -> str | None:
        kwargs = {argument: "ARGUMENT"} if argument else {}
        try:
            url = reverse(name, urlconf=urlconf, kwargs=kwargs)
        except NoReverseMatch:
            return None
        if argument:
            url = url.replace("ARGUMENT", "{" + argument + "}")
        return url[len(trimmed) :] if url.startswith(trimmed) else None

    return key_of


def add_personal_token_link(paths: dict[str, Any], key_of: Callable[..., str | None]) -> None:
    """From a personal token just made to deleting it."""
    create = paths.get(key_of("cocart_jwt:tokens") or "", {}).get("post")
    delete = paths.get(key_of("cocart_jwt:token", "token_id") or "", {}).get("delete")
    if create is None or delete is None or "201" not in create["responses"]:
        return
    create["responses"]["201"]["links"] = {
        "DeleteToken": {
            "operationId": delete["operationId"],
            "parameters": {"token_id": "$response.body#/id"},
            "description": "The personal access token just made.",
        }
    }


def add_token_pair_links(paths: dict[str, Any], key_of: Callable[..., str | None]) -> None:
    refresh = paths.get(key_of("cocart_jwt:refresh") or "", {}).get("post")
    revoke = paths.get(key_of("cocart_jwt:session", "session_id") or "", {}).get("delete")
    links = {}
    if refresh is not None:
        links["Refresh"] = {
            "operationId": refresh["operationId"],
            "requestBody": {"refresh_token": "$response.body#/refresh_token"},
            "description": "The refresh token, spent once for a new pair.",
        }
    if revoke is not None:
        links["RevokeSession"] = {
            "operationId": revoke["operationId"],
            "parameters": {"session_id": "$response.body#/sid"},
            "description": "The session the pair belongs to.",
        }
    for operation in (paths.get(key_of("cocart_jwt:login") or "", {}).get("post"), refresh):
        if operation is not None and links and "200" in operation["responses"]:
            operation["responses"]["200"]["links"] = deepcopy(links)
