"""OpenAPI with drf-spectacular (optional): the Bearer scheme and the endpoints' shapes.

Without drf-spectacular installed, ``extend_schema`` is a no-op and nothing here runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension
    from drf_spectacular.utils import OpenApiResponse, extend_schema
except ImportError:  # drf-spectacular is optional
    HAS_SPECTACULAR = False

    def extend_schema(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:  # type: ignore[misc]
        return lambda view: view

else:
    HAS_SPECTACULAR = True

    class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
        """``Authorization: Bearer <access token>``, an HTTP bearer scheme of format JWT."""

        target_class = "cocart_jwt.authentication.JWTAuthentication"
        name = "jwtAuth"

        def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
            return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def error_responses(*statuses: int) -> dict[int, Any]:
    """DRF's error shape for each status, as the endpoints answer them."""
    if not HAS_SPECTACULAR:
        return {}
    from .serializers import ErrorSerializer

    descriptions = {
        400: "Malformed request.",
        401: "Bad credentials, or a bad, expired or revoked token.",
        404: "Not one of the caller's live sessions.",
        429: "Rate limited; see Retry-After.",
    }
    return {status: OpenApiResponse(ErrorSerializer, descriptions[status]) for status in statuses}
