"""The OpenAPI schema (drf-spectacular) documents every endpoint and the Bearer scheme."""

from __future__ import annotations

import pytest

pytest.importorskip("drf_spectacular")

from drf_spectacular.generators import SchemaGenerator  # noqa: E402
from drf_spectacular.validation import validate_schema  # noqa: E402


@pytest.fixture
def schema():
    generated = SchemaGenerator(urlconf="tests.urls").get_schema(request=None, public=True)
    validate_schema(generated)
    return generated


def operation(schema, path, method):
    return schema["paths"][path][method]


def test_the_authentication_class_is_an_http_bearer_jwt_scheme(schema):
    assert schema["components"]["securitySchemes"]["jwtAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert operation(schema, "/api/auth/validate/", "post")["security"] == [{"jwtAuth": []}]


def test_every_endpoint_is_documented(schema):
    documented = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert {
        ("/api/auth/login/", "post"),
        ("/api/auth/refresh/", "post"),
        ("/api/auth/validate/", "post"),
        ("/api/auth/logout/", "post"),
        ("/api/auth/logout/all/", "post"),
        ("/api/auth/sessions/", "get"),
        ("/api/auth/sessions/{session_id}/", "delete"),
        ("/api/auth/jwks.json", "get"),
    } <= documented


def test_login_documents_its_request_and_token_pair(schema):
    login = operation(schema, "/api/auth/login/", "post")
    request = login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert request.endswith("/Login")
    assert set(schema["components"]["schemas"]["Login"]["properties"]) == {"username", "password"}
    pair = schema["components"]["schemas"]["TokenPair"]["properties"]
    assert {"access_token", "refresh_token", "token_type", "expires_in", "sid", "user"} <= set(pair)
    assert {"200", "400", "401", "429"} <= set(login["responses"])
    assert login.get("security", [{}]) == [{}]  # no credentials needed


def test_sessions_document_the_current_flag(schema):
    session = schema["components"]["schemas"]["Session"]["properties"]
    assert {"id", "created_at", "expires_at", "ip", "user_agent", "current"} <= set(session)
