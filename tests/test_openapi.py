"""The OpenAPI schema (drf-spectacular) documents every endpoint and the Bearer scheme."""

from __future__ import annotations

import pytest

pytest.importorskip("drf_spectacular")

import re  # noqa: E402
from datetime import timedelta  # noqa: E402
from typing import Any  # noqa: E402

import jsonschema  # noqa: E402
from django.urls import reverse  # noqa: E402
from drf_spectacular.generators import SchemaGenerator  # noqa: E402
from drf_spectacular.settings import patched_settings  # noqa: E402
from drf_spectacular.validation import validate_schema  # noqa: E402

from cocart_jwt.serializers import (  # noqa: E402
    LoginSerializer,
    PersonalTokenRequestSerializer,
    RefreshSerializer,
)
from tests.factories import bearer, login  # noqa: E402

HOOKS = ["drf_spectacular.hooks.postprocess_schema_enums", "cocart_jwt.schema.postprocess_schema"]


def generate(**settings: Any) -> dict[str, Any]:
    with patched_settings(settings):
        generated = SchemaGenerator(urlconf="tests.urls").get_schema(request=None, public=True)
    validate_schema(generated)
    return generated


@pytest.fixture
def schema():
    return generate()


@pytest.fixture
def completed_schema():
    """As a site that lists cocart_jwt's postprocessing hook (docs/endpoints.md) has it."""
    return generate(POSTPROCESSING_HOOKS=HOOKS)


def operation(schema, path, method):
    return schema["paths"][path][method]


def test_the_authentication_class_is_an_http_bearer_jwt_scheme(schema):
    assert schema["components"]["securitySchemes"]["jwtAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert operation(schema, "/api/auth/validate/", "post")["security"] == [
        {"jwtAuth": []},
        {"dpopAuth": []},
    ]


def test_the_dpop_scheme_is_named_beside_bearer(schema):
    dpop = schema["components"]["securitySchemes"]["dpopAuth"]
    assert (dpop["type"], dpop["scheme"]) == ("http", "dpop")
    assert "RFC 9449" in dpop["description"]
    # Either one: a client sends a Bearer token or a DPoP-bound one, never both.
    assert operation(schema, "/api/auth/sessions/", "get")["security"] == [
        {"jwtAuth": []},
        {"dpopAuth": []},
    ]


def test_every_endpoint_is_documented(schema):
    documented = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert {
        ("/api/auth/login/", "post"),
        ("/api/auth/refresh/", "post"),
        ("/api/auth/validate/", "post"),
        ("/api/auth/logout/", "post"),
        ("/api/auth/logout/all/", "post"),
        ("/api/auth/logout/others/", "post"),
        ("/api/auth/reauthenticate/", "post"),
        ("/api/auth/sessions/", "get"),
        ("/api/auth/sessions/{session_id}/", "delete"),
        ("/api/auth/events/", "get"),
        ("/api/auth/tokens/", "get"),
        ("/api/auth/tokens/", "post"),
        ("/api/auth/tokens/{token_id}/", "delete"),
        ("/api/auth/jwks.json", "get"),
        ("/api/auth/revoke/", "post"),
        ("/api/auth/introspect/", "post"),
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


def test_reauthenticate_documents_its_password_and_token_pair(schema):
    step_up = operation(schema, "/api/auth/reauthenticate/", "post")
    body = step_up["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(body)
    request = body["application/json"]["schema"]["$ref"]
    assert set(schema["components"]["schemas"][request.rsplit("/", 1)[1]]["properties"]) == {
        "password"
    }
    assert step_up["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/TokenPair"
    )
    assert step_up["security"] == [{"jwtAuth": []}, {"dpopAuth": []}]
    assert "not_a_login_session" in step_up["responses"]["403"]["description"]


def test_sessions_document_the_current_flag(schema):
    session = schema["components"]["schemas"]["Session"]["properties"]
    assert {"id", "created_at", "expires_at", "ip", "user_agent", "current"} <= set(session)


def test_the_hook_documents_the_login_link_page(completed_schema):
    page = completed_schema["paths"]["/api/auth/login-link/"]
    assert set(page["get"]["responses"]) == {"200", "400", "410", "429"}
    assert page["get"]["parameters"][0]["name"] == "token"
    assert set(page["post"]["responses"]) == {"302", "400", "403", "410", "429"}
    assert "text/html" in page["get"]["responses"]["200"]["content"]
    form = page["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    assert {"token", "next", "csrfmiddlewaretoken"} <= set(form["schema"]["properties"])


def test_the_hook_follows_a_trimmed_path_prefix():
    trimmed = generate(
        POSTPROCESSING_HOOKS=HOOKS, SCHEMA_PATH_PREFIX="/api/auth", SCHEMA_PATH_PREFIX_TRIM=True
    )
    assert "/login-link/" in trimmed["paths"]
    assert "/api/auth/login-link/" not in trimmed["paths"]


def test_a_token_pair_links_to_refresh_and_to_revoking_its_session(completed_schema):
    paths = completed_schema["paths"]
    revoke = paths["/api/auth/sessions/{session_id}/"]["delete"]["operationId"]
    refresh = paths["/api/auth/refresh/"]["post"]["operationId"]
    for path in ("/api/auth/login/", "/api/auth/refresh/"):
        links = paths[path]["post"]["responses"]["200"]["links"]
        assert links["Refresh"]["operationId"] == refresh
        assert links["Refresh"]["requestBody"] == {"refresh_token": "$response.body#/refresh_token"}
        assert links["RevokeSession"]["operationId"] == revoke
        assert links["RevokeSession"]["parameters"] == {"session_id": "$response.body#/sid"}


def responses(schema):
    for item in schema["paths"].values():
        for operation in item.values():
            yield from operation["responses"].items()


def test_every_401_names_its_bearer_challenge_and_every_429_its_retry_after(completed_schema):
    required = {"401": "WWW-Authenticate", "429": "Retry-After"}
    checked = 0
    for status, response in responses(completed_schema):
        if status in required:
            assert response["headers"][required[status]]["required"] is True
            checked += 1
    assert checked >= 10


def test_every_error_of_the_app_is_documented_as_it_answers(completed_schema):
    paths = completed_schema["paths"]

    def documented(path, method):
        return set(paths[path][method]["responses"])

    assert documented("/api/auth/login/", "post") == {"200", "400", "401", "403", "429"}
    assert documented("/api/auth/refresh/", "post") == {"200", "400", "401", "403", "429"}
    assert documented("/api/auth/validate/", "post") == {"200", "401", "403", "429"}
    assert documented("/api/auth/logout/", "post") == {"204", "401", "403"}
    assert documented("/api/auth/logout/all/", "post") == {"204", "401", "403"}
    assert documented("/api/auth/logout/others/", "post") == {"204", "401", "403"}
    assert documented("/api/auth/reauthenticate/", "post") == {"200", "400", "401", "403", "429"}
    # 403: a personal access token may not see the account's sessions or security log.
    assert documented("/api/auth/sessions/", "get") == {"200", "401", "403"}
    # A page_size that is no whole number from 1 is a 400, a cursor it never gave a 404.
    assert documented("/api/auth/events/", "get") == {"200", "400", "401", "403", "404"}
    assert documented("/api/auth/sessions/{session_id}/", "delete") == {
        "204",
        "401",
        "403",
        "404",
    }
    # RFC 7009: 200 whatever the token; RFC 7662: {"active": false} for anything inactive.
    assert documented("/api/auth/revoke/", "post") == {"200", "429"}
    assert documented("/api/auth/introspect/", "post") == {"200", "401", "403", "429"}
    # Personal tokens: 403 for a token no login made; making one takes a recent login (401).
    assert documented("/api/auth/tokens/", "get") == {"200", "400", "401", "403", "404"}
    assert documented("/api/auth/tokens/", "post") == {"201", "400", "401", "403"}
    assert documented("/api/auth/tokens/{token_id}/", "delete") == {"204", "401", "403", "404"}
    for path, method in [
        ("/api/auth/tokens/", "get"),
        ("/api/auth/tokens/", "post"),
        ("/api/auth/tokens/{token_id}/", "delete"),
        ("/api/auth/logout/all/", "post"),
        ("/api/auth/logout/others/", "post"),
    ]:
        assert "not_a_login_session" in paths[path][method]["responses"]["403"]["description"]
    making = paths["/api/auth/tokens/"]["post"]["responses"]
    assert "too_many_personal_tokens" in making["400"]["description"]
    assert "reauthentication_required" in making["401"]["description"]
    assert (
        "insufficient_user_authentication"
        in (making["401"]["headers"]["WWW-Authenticate"]["description"])
    )


# What the schema says of a credential is what the serializer accepts: a blank one is refused
# by both ("" everywhere; " " too for the trimmed refresh token), anything else by neither.
CREDENTIALS = ["", " ", "\t\n", "\x1e", "\u3000", "\ufeff", "a", " a ", "pässwörd", "x" * 200]


@pytest.mark.parametrize("value", CREDENTIALS)
@pytest.mark.parametrize(
    ("component", "serializer", "field", "other"),
    [
        ("Login", LoginSerializer, "username", {"password": "pw"}),
        ("Login", LoginSerializer, "password", {"username": "alice"}),
        ("Refresh", RefreshSerializer, "refresh_token", {}),
    ],
)
def test_a_credential_is_schema_valid_exactly_when_the_endpoint_takes_it(
    schema, component, serializer, field, other, value
):
    body = {**other, field: value}
    validator = jsonschema.Draft4Validator(schema["components"]["schemas"][component])

    assert validator.is_valid(body) == serializer(data=body).is_valid()


def test_the_refresh_token_pattern_names_the_white_space_drf_trims(schema):
    """Spelled out: ``\\s`` means other characters in JSON Schema's regex dialect (ECMA 262:
    not U+001C to U+001F, but U+FEFF), so a client's validator would disagree with the server."""
    pattern = schema["components"]["schemas"]["Refresh"]["properties"]["refresh_token"]["pattern"]
    assert "\\s" not in pattern.lower()
    allowed = re.compile(pattern)
    assert [c for c in range(0x110000) if bool(allowed.search(chr(c))) == chr(c).isspace()] == []


# -- a session id no session can have: the JSON 404 the schema documents -----------------------

NOT_SESSION_IDS = ["%C2%84", "%00", "a%2Fb", "a/b", "%0A", "x" * 65, "%20"]


@pytest.mark.parametrize("session_id", NOT_SESSION_IDS)
def test_revoking_a_session_id_no_session_can_have_is_a_json_404(
    api_client, user, password, session_id
):
    token = login(api_client, "alice", password).json()["access_token"]

    response = api_client.delete(f"/api/auth/sessions/{session_id}/", **bearer(token))

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_a_session_id_no_session_can_have_still_needs_a_token(api_client):
    response = api_client.delete("/api/auth/sessions/%C2%84/")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer ")


def test_a_real_session_id_still_reaches_its_session(api_client, user, password):
    pair = login(api_client, "alice", password).json()
    url = reverse("cocart_jwt:session", kwargs={"session_id": pair["sid"]})

    assert api_client.delete(url, **bearer(pair["access_token"])).status_code == 204


def test_events_documents_its_cursor_page_of_the_callers_events(schema):
    events = operation(schema, "/api/auth/events/", "get")
    assert {parameter["name"] for parameter in events["parameters"]} == {"cursor", "page_size"}
    page = events["responses"]["200"]["content"]["application/json"]["schema"]
    properties = (
        page.get("properties")
        or schema["components"]["schemas"][page["$ref"].rsplit("/", 1)[1]]["properties"]
    )
    assert {"next", "previous", "results"} <= set(properties)
    assert events["security"] == [{"jwtAuth": []}, {"dpopAuth": []}]


# -- RFC 7009 and RFC 7662 ----------------------------------------------------------------------


def request_body(schema, path):
    """The request body of POST ``path``: its media types and the component they share."""
    content = operation(schema, path, "post")["requestBody"]["content"]
    refs = {media["schema"]["$ref"] for media in content.values()}
    assert len(refs) == 1, refs
    return set(content), schema["components"]["schemas"][refs.pop().rsplit("/", 1)[1]]


@pytest.mark.parametrize("path", ["/api/auth/revoke/", "/api/auth/introspect/"])
def test_revoke_and_introspect_take_a_form_or_json_token(schema, path):
    media_types, body = request_body(schema, path)

    assert {"application/x-www-form-urlencoded", "application/json"} <= media_types
    assert set(body["properties"]) == {"token", "token_type_hint"}
    assert body["required"] == ["token"]
    assert body["properties"]["token"] == {
        "type": "string",
        "maxLength": 8192,
        "description": body["properties"]["token"]["description"],
    }


def test_revoke_needs_no_credentials_and_answers_an_empty_200(schema):
    revoke = operation(schema, "/api/auth/revoke/", "post")

    assert revoke.get("security", [{}]) == [{}]
    assert "content" not in revoke["responses"]["200"]
    assert "RFC 7009" in revoke["summary"]
    assert revoke["responses"]["429"]["headers"]["Retry-After"]["required"] is True


def test_introspect_needs_a_bearer_and_documents_its_answer(schema):
    introspect = operation(schema, "/api/auth/introspect/", "post")
    answer = introspect["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][answer.rsplit("/", 1)[1]]

    assert introspect["security"] == [{"jwtAuth": []}, {"dpopAuth": []}]
    assert component["required"] == ["active"]
    assert set(component["properties"]) == {
        "active",
        "sub",
        "username",
        "client_id",
        "scope",
        "token_type",
        "exp",
        "iat",
        "nbf",
        "sid",
        "jti",
        "iss",
        "aud",
    }
    assert {component["properties"][name]["type"] for name in ("exp", "iat", "nbf")} == {"integer"}
    assert "introspect_token" in introspect["responses"]["403"]["description"]


# -- personal access tokens ----------------------------------------------------------------------

SCOPES = {"orders:read": "See your orders", "cart:write": "Change your cart"}


def component(schema, reference):
    return schema["components"]["schemas"][reference.rsplit("/", 1)[1]]


def test_making_a_token_documents_its_request_and_the_token_shown_once(settings):
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "SCOPES": SCOPES,
        "PAT_MAX_LIFETIME": timedelta(days=30),
    }
    schema = generate()
    making = operation(schema, "/api/auth/tokens/", "post")
    body = making["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(body)
    request = component(schema, body["application/json"]["schema"]["$ref"])
    assert set(request["properties"]) == {"name", "scopes", "expires_in"}
    assert set(request["required"]) == {"name", "scopes"}
    scopes = request["properties"]["scopes"]
    assert (scopes["type"], scopes["minItems"]) == ("array", 1)
    names = (
        scopes["items"].get("enum")
        or component(schema, scopes["items"]["allOf"][0]["$ref"])["enum"]
    )
    assert sorted(names) == ["cart:write", "orders:read"]
    expires_in = request["properties"]["expires_in"]
    assert (expires_in["minimum"], expires_in["maximum"]) == (1, 30 * 24 * 3600)
    made = making["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    assert set(component(schema, made)["properties"]) == {
        "id",
        "name",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "token",
    }
    assert making["security"] == [{"jwtAuth": []}, {"dpopAuth": []}]


def test_a_site_without_scopes_documents_scope_names_as_strings(settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "SCOPES": {}}
    schema = generate()
    request = operation(schema, "/api/auth/tokens/", "post")["requestBody"]["content"]
    items = component(schema, request["application/json"]["schema"]["$ref"])["properties"][
        "scopes"
    ]["items"]

    assert items == {"type": "string", "maxLength": 64}


def test_the_token_list_is_a_cursor_page_that_never_holds_a_token(schema):
    listing = operation(schema, "/api/auth/tokens/", "get")
    assert {parameter["name"] for parameter in listing["parameters"]} == {"cursor", "page_size"}
    page = component(
        schema, listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert {"next", "previous", "results"} <= set(page["properties"])
    item = component(schema, page["properties"]["results"]["items"]["$ref"])
    assert set(item["properties"]) == {
        "id",
        "name",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
    }
    deleting = operation(schema, "/api/auth/tokens/{token_id}/", "delete")
    assert deleting["parameters"][0]["schema"]["pattern"] == "^[A-Za-z0-9_-]{1,64}$"


def test_a_token_made_links_to_deleting_it(completed_schema):
    paths = completed_schema["paths"]
    delete = paths["/api/auth/tokens/{token_id}/"]["delete"]["operationId"]
    links = paths["/api/auth/tokens/"]["post"]["responses"]["201"]["links"]

    assert links["DeleteToken"]["operationId"] == delete
    assert links["DeleteToken"]["parameters"] == {"token_id": "$response.body#/id"}


NAMES = ["", " ", "\t\n", "a", " a ", "CI deploys", "bell\x07", "line\nbreak", "\x85", "x" * 255]


@pytest.mark.parametrize("value", NAMES + ["x" * 256])
def test_a_token_name_is_schema_valid_exactly_when_the_endpoint_takes_it(schema, value):
    making = operation(schema, "/api/auth/tokens/", "post")["requestBody"]["content"]
    request = component(schema, making["application/json"]["schema"]["$ref"])
    validator = jsonschema.Draft4Validator(request["properties"]["name"])
    serializer = PersonalTokenRequestSerializer(data={"name": value, "scopes": ["x"]})
    serializer.is_valid()

    assert validator.is_valid(value) == ("name" not in serializer.errors)
