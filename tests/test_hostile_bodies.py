"""Attacks on the login, refresh and tokens/ endpoints through their request bodies and Basic
header; and on revoke and introspect, through their bodies.

The contract: 400 for a malformed request, 401 for bad credentials or an unknown refresh
token, 415 for a body type the endpoint does not parse, never a 500; errors are DRF's JSON
``{"detail", "code"}`` (validation errors also carry ``errors``). A wrong password, an
unknown user and an inactive user are indistinguishable to the client. Revocation (RFC 7009)
answers any body with an empty 200, introspection (RFC 7662) with ``{"active": false}``.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Permission
from django.contrib.auth.signals import user_login_failed
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from cocart_jwt.models import Kind, RefreshToken, Token
from tests.factories import bearer, login, refresh

LOGIN = "cocart_jwt:login"
REFRESH = "cocart_jwt:refresh"
REVOKE = "cocart_jwt:revoke"
INTROSPECT = "cocart_jwt:introspect"
TOKENS = "cocart_jwt:tokens"
HIGH_RATE_LIMITS = {
    "login": "100000/min",
    "refresh": "100000/min",
    "validate": "100000/min",
    "login_link": "100000/min",
    "revoke": "100000/min",
    "introspect": "100000/min",
}
# Headers that legitimately differ between two consecutive responses.
COUNTER_HEADERS = {"x-ratelimit-remaining", "x-ratelimit-reset", "date"}
FUZZ = hypothesis_settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(autouse=True)
def no_rate_limits(settings: Any) -> None:
    """Many requests from one IP: keep the rate limits out of the way of what is tested."""
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": HIGH_RATE_LIMITS}


@pytest.fixture
def client() -> APIClient:
    client = APIClient()
    client.raise_request_exception = False  # a 500 shows as a 500, not as an exception
    return client


def post_json(client: APIClient, name: str, data: Any, **extra: Any) -> Any:
    return client.post(reverse(name), data, format="json", **extra)


def post_raw(client: APIClient, name: str, body: bytes, content_type: str, **extra: Any) -> Any:
    return client.generic("POST", reverse(name), body, content_type=content_type, **extra)


def basic(raw: bytes) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(raw).decode("ascii")}


def assert_error_shape(response: Any) -> dict[str, Any]:
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("detail"), str) and body["detail"], body
    assert isinstance(body.get("code"), str) and body["code"], body
    return body


def assert_malformed(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    return assert_error_shape(response)


def assert_validation_error(response: Any, *fields: str) -> None:
    body = assert_malformed(response)
    assert "errors" in body, body
    for field in fields:
        assert field in body["errors"], body


def assert_bad_credentials(response: Any) -> dict[str, Any]:
    assert response.status_code == 401, (response.status_code, response.content[:300])
    assert response["WWW-Authenticate"].startswith("Bearer"), response.get("WWW-Authenticate")
    body = assert_error_shape(response)
    assert "access_token" not in body and "refresh_token" not in body
    return body


def assert_400_or_401(response: Any) -> None:
    """For input the contract lets an implementation call malformed or merely wrong."""
    assert response.status_code in (400, 401), (response.status_code, response.content[:300])
    assert_error_shape(response)


def assert_no_session_issued() -> None:
    assert not Token.objects.exists()


# --- login: JSON fields of the wrong type, missing, empty, huge, with NUL -------------------

WRONG_TYPES = {
    "username-list": {"username": ["alice"], "password": "PW"},
    "username-dict": {"username": {"name": "alice"}, "password": "PW"},
    "username-null": {"username": None, "password": "PW"},
    "username-true": {"username": True, "password": "PW"},
    "username-false": {"username": False, "password": "PW"},
    "password-list": {"username": "alice", "password": ["PW"]},
    "password-dict": {"username": "alice", "password": {"value": "PW"}},
    "password-null": {"username": "alice", "password": None},
    "password-true": {"username": "alice", "password": True},
    "both-lists": {"username": ["alice"], "password": ["PW"]},
}


def fill_password(data: Any, password: str) -> Any:
    return json.loads(json.dumps(data).replace('"PW"', json.dumps(password)))


@pytest.mark.parametrize("case", list(WRONG_TYPES))
def test_login_with_a_field_of_the_wrong_type_is_a_400(
    client: APIClient, user: Any, password: str, case: str
) -> None:
    data = fill_password(WRONG_TYPES[case], password)
    response = post_json(client, LOGIN, data)
    assert_validation_error(response, case.split("-")[0] if "both" not in case else "username")
    assert_no_session_issued()


@pytest.mark.parametrize(
    "data",
    [{"username": 12345, "password": "PW"}, {"username": 1.5, "password": "PW"}],
    ids=["int", "float"],
)
def test_login_with_a_numeric_username_is_refused_cleanly(
    client: APIClient, user: Any, password: str, data: dict[str, Any]
) -> None:
    """DRF's CharField may coerce a number; either way no session and no 500."""
    response = post_json(client, LOGIN, fill_password(data, password))
    assert_400_or_401(response)
    assert_no_session_issued()


@pytest.mark.parametrize(
    ("data", "missing"),
    [
        ({}, ["username", "password"]),
        ({"password": "x"}, ["username"]),
        ({"username": "alice"}, ["password"]),
        ({"user": "alice", "pass": "x"}, ["username", "password"]),
    ],
    ids=["empty-object", "no-username", "no-password", "wrong-names"],
)
def test_login_with_missing_fields_is_a_400(
    client: APIClient, user: Any, data: dict[str, Any], missing: list[str]
) -> None:
    assert_validation_error(post_json(client, LOGIN, data), *missing)
    assert_no_session_issued()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"username": "", "password": "x"}, "username"),
        ({"username": "alice", "password": ""}, "password"),
    ],
    ids=["empty-username", "empty-password"],
)
def test_login_with_empty_strings_is_a_400(
    client: APIClient, user: Any, data: dict[str, Any], field: str
) -> None:
    assert_validation_error(post_json(client, LOGIN, data), field)
    assert_no_session_issued()


@pytest.mark.parametrize("body", [b"[]", b'["alice", "pw"]', b'"alice"', b"42", b"null", b"true"])
def test_login_with_a_json_body_that_is_not_an_object_is_a_400(
    client: APIClient, user: Any, body: bytes
) -> None:
    assert_malformed(post_raw(client, LOGIN, body, "application/json"))
    assert_no_session_issued()


def test_login_with_a_1_mb_username_is_a_400(client: APIClient, user: Any, password: str) -> None:
    response = post_json(client, LOGIN, {"username": "a" * 1024 * 1024, "password": password})
    assert_validation_error(response, "username")
    assert b"a" * 1000 not in response.content  # the input is not echoed back
    assert_no_session_issued()


def test_login_with_a_100_kb_password_is_a_400(client: APIClient, user: Any) -> None:
    response = post_json(client, LOGIN, {"username": "alice", "password": "p" * 100 * 1024})
    assert_validation_error(response, "password")
    assert b"p" * 1000 not in response.content
    assert_no_session_issued()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"username": "alice\x00", "password": "PW"}, "username"),
        ({"username": "\x00alice", "password": "PW"}, "username"),
        ({"username": "alice", "password": "PW\x00"}, "password"),
        ({"username": "alice", "password": "\x00"}, "password"),
    ],
    ids=["username-trailing", "username-leading", "password-trailing", "password-only-nul"],
)
def test_login_with_nul_bytes_is_a_400(
    client: APIClient, user: Any, password: str, data: dict[str, Any], field: str
) -> None:
    response = post_json(client, LOGIN, fill_password(data, password))
    assert_validation_error(response, field)
    assert_no_session_issued()


@pytest.mark.parametrize(
    "body",
    [
        b'{"username": "\\ud800", "password": "PW"}',
        b'{"username": "alice", "password": "PW\\udfff"}',
        b'{"username": "alice\\udbff\\udbff", "password": "\\ud800PW"}',
    ],
    ids=["username", "password", "both"],
)
def test_login_with_lone_surrogates_is_refused_cleanly(
    client: APIClient, user: Any, password: str, body: bytes
) -> None:
    """Valid JSON, but a string no UTF-8 encoder (database, hasher) accepts."""
    body = body.replace(b"PW", password.encode())
    assert_400_or_401(post_raw(client, LOGIN, body, "application/json"))
    assert_no_session_issued()


# --- login: bodies that do not parse, other content types ----------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"username": "alice", "password": ',
        b'{"username": "alice", "password": "x"} trailing',
        b"",
        b'{"username": NaN, "password": "x"}',
        b"\x00\x01\x02",
    ],
    ids=["garbage", "truncated", "trailing", "empty", "nan", "binary"],
)
def test_login_with_a_body_that_is_not_json_under_a_json_content_type_is_a_400(
    client: APIClient, user: Any, body: bytes
) -> None:
    assert_malformed(post_raw(client, LOGIN, body, "application/json"))
    assert_no_session_issued()


@pytest.mark.parametrize(
    "body",
    [
        b'{"username": "\xff\xfe", "password": "x"}',
        b'{"username": "alice", "password": "\xc3\x28"}',
        b"\xef\xbb\xbf\xff",
    ],
    ids=["invalid-start-bytes", "bad-continuation", "bom-then-garbage"],
)
def test_login_with_invalid_utf8_json_is_a_400(client: APIClient, user: Any, body: bytes) -> None:
    assert_malformed(post_raw(client, LOGIN, body, "application/json"))
    assert_no_session_issued()


def test_login_with_a_form_encoded_body(client: APIClient, user: Any, password: str) -> None:
    url = reverse(LOGIN)
    response = client.post(url, {"username": "alice", "password": "wrong"})
    assert_bad_credentials(response)
    response = client.post(
        url,
        f"username=alice&password={password}".encode(),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200, response.content
    assert response.json()["user"]["username"] == "alice"


@pytest.mark.parametrize(
    "body",
    [b"username=alice", b"password=x", b"", b"&&&===&&", b"username=&password="],
    ids=["no-password", "no-username", "empty", "separators-only", "empty-values"],
)
def test_login_with_an_incomplete_form_is_a_400(client: APIClient, user: Any, body: bytes) -> None:
    assert_malformed(post_raw(client, LOGIN, body, "application/x-www-form-urlencoded"))
    assert_no_session_issued()


@pytest.mark.parametrize(
    "body",
    [
        b"username=alice%00&password=x",
        b"username=%FF%FE&password=%C3%28",
        b"username=\xff&password=\xfe",
    ],
    ids=["nul", "bad-percent-utf8", "raw-non-utf8"],
)
def test_login_with_a_hostile_form_is_refused_cleanly(
    client: APIClient, user: Any, body: bytes
) -> None:
    assert_400_or_401(post_raw(client, LOGIN, body, "application/x-www-form-urlencoded"))
    assert_no_session_issued()


def test_login_with_a_multipart_body(client: APIClient, user: Any, password: str) -> None:
    url = reverse(LOGIN)
    response = client.post(url, {"username": "alice", "password": "wrong"}, format="multipart")
    assert_bad_credentials(response)
    response = client.post(url, {"username": "alice", "password": password}, format="multipart")
    assert response.status_code == 200, response.content
    assert response.json()["user"]["username"] == "alice"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (
            b'--other\r\nContent-Disposition: form-data; name="username"\r\n\r\nalice\r\n--other--',
            "multipart/form-data; boundary=BOUNDARY",
        ),
        (b"no boundary at all", "multipart/form-data"),
        (
            b'--B\r\nContent-Disposition: form-data; name="username"\r\n\r\nalice',
            "multipart/form-data; boundary=B",
        ),
        (b"\x00" * 64, "multipart/form-data; boundary=\x7f"),
    ],
    ids=["boundary-mismatch", "no-boundary", "unterminated", "binary-boundary"],
)
def test_login_with_a_broken_multipart_body_is_a_400(
    client: APIClient, user: Any, body: bytes, content_type: str
) -> None:
    assert_malformed(post_raw(client, LOGIN, body, content_type))
    assert_no_session_issued()


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "image/png"])
def test_login_with_an_unsupported_content_type_is_a_415(
    client: APIClient, user: Any, password: str, content_type: str
) -> None:
    body = json.dumps({"username": "alice", "password": password}).encode()
    response = post_raw(client, LOGIN, body, content_type)
    assert response.status_code == 415, response.content
    assert_error_shape(response)
    assert_no_session_issued()


# --- login: HTTP Basic -----------------------------------------------------------------------


def test_login_with_http_basic(client: APIClient, user: Any, password: str) -> None:
    response = client.post(reverse(LOGIN), **basic(f"alice:{password}".encode()))
    assert response.status_code == 200, response.content
    assert response.json()["user"]["username"] == "alice"
    response = client.post(reverse(LOGIN), **basic(b"alice:wrong"))
    assert_bad_credentials(response)


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!!not-base64!!!",
        "Basic YWxpY2U6cGFzc3dvcmQ",  # missing padding
        "Basic YWxp Y2U6eA==",
        "Basic " + base64.b64encode(b"alicepassword").decode(),  # no colon
        "Basic ",
        "Basic",
        "Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode(),  # not UTF-8
        "Basic " + base64.b64encode("alice:pässword".encode("latin-1")).decode(),
        "Basic ☃☃☃",
        "Basic " + base64.b64encode(b"alice\x00:x").decode(),
        "Basic " + base64.b64encode(b":").decode(),
        "Basic " + base64.b64encode(b"alice:").decode(),
    ],
    ids=[
        "bad-alphabet",
        "no-padding",
        "inner-space",
        "no-colon",
        "empty",
        "bare-scheme",
        "non-utf8",
        "latin1",
        "non-ascii-header",
        "nul",
        "colon-only",
        "empty-password",
    ],
)
def test_login_with_malformed_http_basic_is_refused_cleanly(
    client: APIClient, user: Any, authorization: str
) -> None:
    response = client.post(reverse(LOGIN), HTTP_AUTHORIZATION=authorization)
    assert_400_or_401(response)
    assert_no_session_issued()


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"alicepassword").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode(),
    ],
    ids=["bad-base64", "no-colon", "non-utf8"],
)
def test_login_with_undecodable_http_basic_is_a_400(
    client: APIClient, user: Any, authorization: str
) -> None:
    assert_malformed(client.post(reverse(LOGIN), HTTP_AUTHORIZATION=authorization))
    assert_no_session_issued()


# --- login: nothing tells an unknown user from a wrong password -------------------------------


@pytest.fixture
def failed_logins() -> Any:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, credentials: dict[str, Any], **kwargs: Any) -> None:
        seen.append(credentials)

    user_login_failed.connect(receiver, dispatch_uid="test_hostile_bodies")
    yield seen
    user_login_failed.disconnect(dispatch_uid="test_hostile_bodies")


def comparable_headers(response: Any) -> dict[str, str]:
    return {
        name.lower(): value
        for name, value in response.headers.items()
        if name.lower() not in COUNTER_HEADERS
    }


def test_unknown_user_and_wrong_password_look_the_same(
    client: APIClient, user: Any, failed_logins: list[dict[str, Any]]
) -> None:
    wrong_password = login(client, "alice", "not the password")
    unknown_user = login(client, "mallory", "not the password")
    assert_bad_credentials(wrong_password)
    assert unknown_user.status_code == wrong_password.status_code
    assert unknown_user.json() == wrong_password.json()
    assert set(unknown_user.headers) == set(wrong_password.headers)
    assert comparable_headers(unknown_user) == comparable_headers(wrong_password)
    assert [c["username"] for c in failed_logins] == ["alice", "mallory"]
    assert all("not the password" not in json.dumps(c) for c in failed_logins)
    assert_no_session_issued()


def test_inactive_user_with_the_right_password_looks_like_a_wrong_password(
    client: APIClient, user: Any, password: str, failed_logins: list[dict[str, Any]]
) -> None:
    user.is_active = False
    user.save()
    wrong_password = login(client, "alice", "not the password")
    inactive = login(client, "alice", password)
    assert_bad_credentials(inactive)
    assert inactive.status_code == wrong_password.status_code
    assert inactive.json() == wrong_password.json()
    assert comparable_headers(inactive) == comparable_headers(wrong_password)
    assert_no_session_issued()


# --- refresh ---------------------------------------------------------------------------------


@pytest.fixture
def issued(client: APIClient, user: Any, password: str) -> dict[str, Any]:
    response = login(APIClient(), "alice", password)
    assert response.status_code == 200
    return response.json()


def registry_state() -> tuple[list[Any], list[Any]]:
    tokens = list(Token.objects.order_by("pk").values_list("pk", "revoked_at", "expires_at"))
    refresh_tokens = list(
        RefreshToken.objects.order_by("pk").values_list("pk", "token_hash", "used_at")
    )
    return tokens, refresh_tokens


@pytest.mark.parametrize(
    "value",
    [["x"], {"token": "x"}, None, True, False],
    ids=["list", "dict", "null", "true", "false"],
)
def test_refresh_with_a_refresh_token_of_the_wrong_type_is_a_400(
    client: APIClient, issued: dict[str, Any], value: Any
) -> None:
    before = registry_state()
    assert_validation_error(post_json(client, REFRESH, {"refresh_token": value}), "refresh_token")
    assert registry_state() == before


def test_refresh_with_a_list_holding_the_real_token_is_a_400(
    client: APIClient, issued: dict[str, Any]
) -> None:
    before = registry_state()
    response = post_json(client, REFRESH, {"refresh_token": [issued["refresh_token"]]})
    assert_validation_error(response, "refresh_token")
    assert registry_state() == before
    # The real token was not spent by the refused request.
    assert refresh(client, issued["refresh_token"]).status_code == 200


@pytest.mark.parametrize("value", [12345, 1.5, -1], ids=["int", "float", "negative"])
def test_refresh_with_a_numeric_refresh_token_is_refused_cleanly(
    client: APIClient, issued: dict[str, Any], value: Any
) -> None:
    before = registry_state()
    assert_400_or_401(post_json(client, REFRESH, {"refresh_token": value}))
    assert registry_state() == before


@pytest.mark.parametrize(
    "data",
    [{}, {"refresh": "x"}, {"refresh_token": ""}],
    ids=["empty", "wrong-name", "empty-value"],
)
def test_refresh_with_a_missing_or_empty_refresh_token_is_a_400(
    client: APIClient, issued: dict[str, Any], data: dict[str, Any]
) -> None:
    assert_validation_error(post_json(client, REFRESH, data), "refresh_token")


@pytest.mark.parametrize("where", ["end", "start", "only"])
def test_refresh_with_nul_bytes_is_a_400(
    client: APIClient, issued: dict[str, Any], where: str
) -> None:
    token = issued["refresh_token"]
    value = {"end": token + "\x00", "start": "\x00" + token, "only": "\x00"}[where]
    before = registry_state()
    assert_validation_error(post_json(client, REFRESH, {"refresh_token": value}), "refresh_token")
    assert registry_state() == before


def test_refresh_with_a_10_kb_refresh_token_is_refused_cleanly(
    client: APIClient, issued: dict[str, Any]
) -> None:
    before = registry_state()
    response = post_json(client, REFRESH, {"refresh_token": "r" * 10 * 1024})
    assert_400_or_401(response)
    assert b"r" * 1000 not in response.content
    assert registry_state() == before


@pytest.mark.parametrize(
    "value",
    [
        "!!@@##$$%%^^&&**",
        "\u2603" * 40,
        "\x01\x02\x03\x1b[31m",
        "' OR 1=1 --",
        "a" * 43,
        "../../etc/passwd",
    ],
    ids=["punctuation", "snowmen", "control-chars", "sql", "right-length", "path"],
)
def test_refresh_with_a_garbage_refresh_token_is_a_401(
    client: APIClient, issued: dict[str, Any], value: str
) -> None:
    before = registry_state()
    response = post_raw(
        client, REFRESH, json.dumps({"refresh_token": value}).encode(), "application/json"
    )
    assert_bad_credentials(response)
    assert registry_state() == before


@pytest.mark.parametrize("value", ["\ud800", "x\udfffy"], ids=["surrogate", "inner-surrogate"])
def test_refresh_with_lone_surrogates_is_refused_cleanly(
    client: APIClient, issued: dict[str, Any], value: str
) -> None:
    """Valid JSON, but a string no UTF-8 encoder (hash, database) accepts."""
    before = registry_state()
    response = post_raw(
        client, REFRESH, json.dumps({"refresh_token": value}).encode(), "application/json"
    )
    assert_400_or_401(response)
    assert registry_state() == before


def test_refresh_with_an_unknown_well_formed_refresh_token_is_a_401_and_changes_nothing(
    client: APIClient, issued: dict[str, Any]
) -> None:
    before = registry_state()
    response = refresh(client, secrets.token_urlsafe(32))
    assert_bad_credentials(response)
    assert registry_state() == before
    # The session is intact: its real refresh token still works.
    assert refresh(client, issued["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b'{"refresh_token": "\xff\xfe"}', "application/json", 400),
        (b'["refresh_token"]', "application/json", 400),
        (b"refresh_token=unknown-token-value", "application/x-www-form-urlencoded", 401),
        (b"refresh_token=%00", "application/x-www-form-urlencoded", 400),
        (b"refresh_token=", "application/x-www-form-urlencoded", 400),
        (b"garbage", "multipart/form-data; boundary=B", 400),
        (b"refresh_token=x", "text/plain", 415),
    ],
    ids=[
        "not-json",
        "invalid-utf8",
        "array",
        "form-unknown",
        "form-nul",
        "form-empty",
        "multipart-garbage",
        "text-plain",
    ],
)
def test_refresh_with_a_hostile_body(
    client: APIClient, issued: dict[str, Any], body: bytes, content_type: str, status: int
) -> None:
    before = registry_state()
    response = post_raw(client, REFRESH, body, content_type)
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert_error_shape(response)
    if status == 400 and content_type == "application/json" and body.startswith(b"["):
        assert "errors" in response.json()
    assert registry_state() == before


def test_refresh_with_a_multipart_body(client: APIClient, issued: dict[str, Any]) -> None:
    url = reverse(REFRESH)
    response = client.post(url, {"refresh_token": "unknown"}, format="multipart")
    assert_bad_credentials(response)
    response = client.post(url, {"refresh_token": issued["refresh_token"]}, format="multipart")
    assert response.status_code == 200, response.content
    assert response.json()["sid"] == issued["sid"]


# --- fuzzing: no input gives a 500 --------------------------------------------------------------

b64_segment = st.binary(max_size=64).map(
    lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
)
header_text = st.text(max_size=200)
authorization_values = st.one_of(
    header_text,
    st.binary(max_size=200).map(lambda raw: raw.decode("latin-1")),
    header_text.map(lambda text: "Bearer " + text),
    st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR"]).flatmap(
        lambda scheme: st.lists(b64_segment, min_size=0, max_size=5).map(
            lambda parts: f"{scheme} {'.'.join(parts)}"
        )
    ),
    st.tuples(
        st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4), b64_segment
    ).map(
        lambda pair: (
            "Bearer "
            + base64.urlsafe_b64encode(json.dumps(pair[0]).encode()).rstrip(b"=").decode()
            + ".e30."
            + pair[1]
        )
    ),
    header_text.map(lambda text: "Basic " + text),
)


@FUZZ
@given(authorization=authorization_values)
def test_fuzz_authorization_header_on_a_protected_view_is_always_a_401(
    client: APIClient, db: None, authorization: str
) -> None:
    """Nothing here is a valid token: a 401 with a Bearer challenge, whatever the scheme.

    A non-Bearer scheme means no authentication ran: DRF's NotAuthenticated, which is a 401
    (not a 403) because the authentication class supplies a ``WWW-Authenticate`` challenge.
    """
    response = client.get("/api/me/", HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401, (response.status_code, response.content[:300])
    assert response["WWW-Authenticate"].startswith('Bearer realm="api"')


@FUZZ
@given(authorization=authorization_values)
def test_fuzz_authorization_header_on_validate_is_always_a_401(
    client: APIClient, db: None, authorization: str
) -> None:
    response = client.post(reverse("cocart_jwt:validate"), HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401, (response.status_code, response.content[:300])
    assert response["WWW-Authenticate"].startswith('Bearer realm="api"')
    assert_error_shape(response)


CONTENT_TYPES = [
    "application/json",
    "application/json; charset=latin-1",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=BOUNDARY",
    "multipart/form-data",
    "text/plain",
    "application/octet-stream",
]
raw_bodies = st.one_of(
    st.binary(max_size=512),
    st.text(max_size=256).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.lists(
        st.tuples(
            st.sampled_from(["username", "password", "refresh_token", "x"]),
            st.text(max_size=32),
        ),
        max_size=4,
    ).map(
        lambda pairs: "&".join(f"{name}={value}" for name, value in pairs).encode(
            "utf-8", "surrogatepass"
        )
    ),
    st.binary(max_size=256).map(
        lambda raw: (
            b'--BOUNDARY\r\nContent-Disposition: form-data; name="username"\r\n\r\n'
            + raw
            + b"\r\n--BOUNDARY--\r\n"
        )
    ),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=64),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def assert_never_500(response: Any, allowed: set[int]) -> None:
    assert response.status_code in allowed, (response.status_code, response.content[:300])
    assert_error_shape(response)


@FUZZ
@given(body=raw_bodies, content_type=st.sampled_from(CONTENT_TYPES))
def test_fuzz_login_body_never_gives_a_500(
    client: APIClient, user: Any, body: bytes, content_type: str
) -> None:
    response = post_raw(client, LOGIN, body, content_type)
    assert_never_500(response, {400, 401, 415})


@FUZZ
@given(body=raw_bodies, content_type=st.sampled_from(CONTENT_TYPES))
def test_fuzz_refresh_body_never_gives_a_500(
    client: APIClient, issued: dict[str, Any], body: bytes, content_type: str
) -> None:
    response = post_raw(client, REFRESH, body, content_type)
    assert_never_500(response, {400, 401, 415})


@FUZZ
@given(username=json_values, password=json_values)
def test_fuzz_login_json_fields_never_give_a_500(
    client: APIClient, user: Any, username: Any, password: Any
) -> None:
    body = json.dumps({"username": username, "password": password}).encode()
    assert_never_500(post_raw(client, LOGIN, body, "application/json"), {400, 401})


@FUZZ
@given(value=json_values)
def test_fuzz_refresh_json_field_never_gives_a_500(
    client: APIClient, issued: dict[str, Any], value: Any
) -> None:
    body = json.dumps({"refresh_token": value}).encode()
    assert_never_500(post_raw(client, REFRESH, body, "application/json"), {400, 401})


@FUZZ
@given(
    credentials=st.one_of(
        header_text, st.binary(max_size=128).map(lambda raw: base64.b64encode(raw).decode())
    )
)
def test_fuzz_http_basic_login_never_gives_a_500(
    client: APIClient, user: Any, credentials: str
) -> None:
    response = client.post(reverse(LOGIN), HTTP_AUTHORIZATION="Basic " + credentials)
    assert_never_500(response, {400, 401})


# --- revoke and introspect: any body, the same answer ------------------------------------------

token_bodies = st.one_of(
    raw_bodies,
    st.lists(
        st.tuples(st.sampled_from(["token", "token_type_hint", "x"]), st.text(max_size=64)),
        max_size=4,
    ).map(
        lambda pairs: "&".join(f"{name}={value}" for name, value in pairs).encode(
            "utf-8", "surrogatepass"
        )
    ),
)


@pytest.fixture
def introspector(issued: dict[str, Any], user: Any) -> dict[str, str]:
    """The Authorization header of a user who may introspect."""
    user.user_permissions.add(Permission.objects.get(codename="introspect_token"))
    return bearer(issued["access_token"])


def assert_empty_200(response: Any) -> None:
    assert response.status_code == 200, (response.status_code, response.content[:300])
    assert response.content == b""


def assert_inactive(response: Any) -> None:
    assert response.status_code == 200, (response.status_code, response.content[:300])
    assert response.json() == {"active": False}


@FUZZ
@given(body=token_bodies, content_type=st.sampled_from(CONTENT_TYPES))
def test_fuzz_revoke_body_is_always_an_empty_200_that_changes_nothing(
    client: APIClient, issued: dict[str, Any], body: bytes, content_type: str
) -> None:
    before = registry_state()
    assert_empty_200(post_raw(client, REVOKE, body, content_type))
    assert registry_state() == before


@FUZZ
@given(token=json_values, hint=json_values)
def test_fuzz_revoke_json_fields_are_always_an_empty_200(
    client: APIClient, issued: dict[str, Any], token: Any, hint: Any
) -> None:
    before = registry_state()
    body = json.dumps({"token": token, "token_type_hint": hint}).encode()
    assert_empty_200(post_raw(client, REVOKE, body, "application/json"))
    assert registry_state() == before


@FUZZ
@given(body=token_bodies, content_type=st.sampled_from(CONTENT_TYPES))
def test_fuzz_introspect_body_is_inactive_never_a_500(
    client: APIClient, introspector: dict[str, str], body: bytes, content_type: str
) -> None:
    assert_inactive(post_raw(client, INTROSPECT, body, content_type, **introspector))


@FUZZ
@given(token=json_values, hint=json_values)
def test_fuzz_introspect_json_fields_are_inactive_never_a_500(
    client: APIClient, introspector: dict[str, str], token: Any, hint: Any
) -> None:
    body = json.dumps({"token": token, "token_type_hint": hint}).encode()
    assert_inactive(post_raw(client, INTROSPECT, body, "application/json", **introspector))


# --- tokens/: making a personal access token -------------------------------------------------

TOKEN_SCOPES = {"orders:read": "See your orders", "cart:write": "Change your cart"}


@pytest.fixture
def recent(user: Any, password: str, settings: Any) -> dict[str, str]:
    """The Bearer header of a fresh login (recent enough to make tokens), on a site with scopes."""
    settings.COCART_JWT = {**settings.COCART_JWT, "SCOPES": TOKEN_SCOPES}
    response = login(APIClient(), "alice", password)
    assert response.status_code == 200
    return bearer(response.json()["access_token"])


def personal_tokens() -> list[Any]:
    return list(Token.objects.filter(kind=Kind.PERSONAL).values_list("pk", flat=True))


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b'{"name": "\xff\xfe", "scopes": ["orders:read"]}', "application/json", 400),
        (b'["name", "scopes"]', "application/json", 400),
        (b"null", "application/json", 400),
        (b"[" * 100_000, "application/json", 400),
        (
            b'{"name": "ci", "scopes": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
            "application/json",
            400,
        ),
        (b'{"name": "ci", "scopes": ["\\u0000"]}', "application/json", 400),
        (b'{"name": "ci", "scopes": ["\\ud800"]}', "application/json", 400),
        (
            b'{"name": "ci", "scopes": ["orders:read"], "expires_in": 1e999}',
            "application/json",
            400,
        ),
        (b"name=ci&scopes=%00", "application/x-www-form-urlencoded", 400),
        (b"name=%00&scopes=orders%3Aread", "application/x-www-form-urlencoded", 400),
        (b"name=ci", "application/x-www-form-urlencoded", 400),
        (b"garbage", "multipart/form-data; boundary=B", 400),
        (b"name=ci&scopes=orders%3Aread", "text/plain", 415),
    ],
    ids=[
        "not-json",
        "invalid-utf8",
        "array",
        "null",
        "nested-deep",
        "scopes-nested-deep",
        "scope-nul",
        "scope-surrogate",
        "expires-infinite",
        "form-scope-nul",
        "form-name-nul",
        "form-no-scopes",
        "multipart-garbage",
        "text-plain",
    ],
)
def test_making_a_token_with_a_hostile_body(
    client: APIClient, recent: dict[str, str], body: bytes, content_type: str, status: int
) -> None:
    response = client.generic("POST", reverse(TOKENS), body, content_type=content_type, **recent)

    assert response.status_code == status, (response.status_code, response.content[:300])
    assert_error_shape(response)
    assert personal_tokens() == []


def test_unknown_scopes_are_named_however_odd(client: APIClient, recent: dict[str, str]) -> None:
    odd = ["a\nb", "\u202e", "<script>", "x" * 64, "orders:read "]
    response = client.post(reverse(TOKENS), {"name": "ci", "scopes": odd}, format="json", **recent)

    assert_validation_error(response, "scopes")
    message = response.json()["errors"]["scopes"][0]
    assert message == "Unknown scopes: " + ", ".join(sorted(odd)) + "."
    assert personal_tokens() == []


@FUZZ
@given(body=raw_bodies, content_type=st.sampled_from(CONTENT_TYPES))
def test_fuzz_tokens_body_never_gives_a_500(
    client: APIClient, recent: dict[str, str], body: bytes, content_type: str
) -> None:
    response = client.generic("POST", reverse(TOKENS), body, content_type=content_type, **recent)
    assert_never_500(response, {400, 415})


@FUZZ
@given(name=json_values, scopes=json_values, expires_in=json_values)
def test_fuzz_tokens_json_fields_never_give_a_500(
    client: APIClient, recent: dict[str, str], name: Any, scopes: Any, expires_in: Any
) -> None:
    body = json.dumps({"name": name, "scopes": scopes, "expires_in": expires_in}).encode()
    response = client.generic(
        "POST", reverse(TOKENS), body, content_type="application/json", **recent
    )
    assert response.status_code in (201, 400), (response.status_code, response.content[:300])
    if response.status_code == 400:
        assert_error_shape(response)


@FUZZ
@given(token_id=st.text(max_size=80))
def test_fuzz_deleting_a_token_never_gives_a_500(
    client: APIClient, recent: dict[str, str], token_id: str
) -> None:
    response = client.delete(f"/api/auth/tokens/{quote(token_id, safe='')}/", **recent)
    assert response.status_code == 404, (response.status_code, response.content[:300])
    assert_error_shape(response)
