"""Deeply nested JSON is a malformed request (400), never a 500, on every endpoint of the app
and of the example store.

DRF's JSONParser turns a ValueError into a 400 but lets the decoder's RecursionError through:
``"[" * 100000 + "]" * 100000`` is 200 KB, well under any upload limit. The endpoints are read
from the URL resolvers (``tests.servers.endpoints``), so a new one is covered without a list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from cocart_jwt.models import Token
from tests.factories import answering_client, bearer, login
from tests.servers import endpoints
from tests.test_store import StoreServer, run_in_example

DEPTH = 100_000
DEEP = b"[" * DEPTH + b"]" * DEPTH
BODIES = {
    "deep-array": DEEP,
    "deep-object": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    "deep-in-a-field": b'{"username": ' + DEEP + b', "password": "x", "refresh_token": "x"}',
}
BODY_METHODS = ("post", "put", "patch")
# What an endpoint may answer before it reads the body (no token, wrong method, no such
# object, rate limited), or when it never reads one (validate, logout): anything but a 5xx
# that leaked from the parser.
REFUSED_EARLIER = {401, 403, 404, 405, 429}
BODY_IGNORED = {200, 201, 204}
SID = "the-callers-own-session"  # replaced per test by the caller's session id
# by argument name, or any that fits
APP_SAMPLES = {"session_id": SID, "token_id": "no-such-token", "pk": "1"}
STORE_SAMPLES = {"slug": "coffee-mug", "pk": "1"}


def body_methods(methods: list[str]) -> list[str]:
    """The body-carrying methods the view answers; POST (a 405) when it answers none."""
    return [method for method in BODY_METHODS if method in methods] or ["post"]


def cases(found: list[dict[str, Any]]) -> list[Any]:
    return [
        pytest.param(endpoint["url"], method, body, id=f"{endpoint['name']}-{method}-{body}")
        for endpoint in found
        for method in body_methods(endpoint["methods"])
        for body in BODIES
    ]


def app_endpoints() -> list[dict[str, Any]]:
    return endpoints("cocart_jwt.urls", APP_SAMPLES)


@cache
def store_endpoints() -> list[dict[str, Any]]:
    """The example store's endpoints, read from its URL resolver in a process with its own
    settings (the test settings do not install the store app)."""
    code = (
        "import django, json; django.setup(); from tests.servers import endpoints; "
        f"print(json.dumps(endpoints('example_project.store.urls', {STORE_SAMPLES!r})))"
    )
    found: list[dict[str, Any]] = json.loads(
        run_in_example("-c", code, what="listing the store's URLs")
    )
    return found


def assert_not_a_server_error(status: int, content: bytes, content_type: str) -> None:
    assert status in {400} | REFUSED_EARLIER | BODY_IGNORED, (status, content[:300])
    if status == 400 and content_type.startswith("application/json"):
        # parse_error where the view reads its body; a checkout of an empty cart, which reads
        # none, says cart_empty.
        body = json.loads(content)
        assert body["detail"] and body["code"], body


# -- the app --------------------------------------------------------------------------------


@pytest.fixture
def client() -> APIClient:
    return answering_client()


@pytest.fixture
def tokens(client: APIClient, user: Any, password: str) -> dict[str, Any]:
    response = login(client, "alice", password)
    assert response.status_code == 200
    tokens: dict[str, Any] = response.json()
    return tokens


@pytest.mark.django_db
@pytest.mark.parametrize("body", list(BODIES))
@pytest.mark.parametrize("name", ["cocart_jwt:login", "cocart_jwt:refresh"])
def test_login_and_refresh_answer_deep_json_with_a_400(
    client: APIClient, user: Any, name: str, body: str
) -> None:
    response = client.generic("POST", reverse(name), BODIES[body], "application/json")

    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response.json() == {
        "detail": "JSON parse error - the document is nested too deeply.",
        "code": "parse_error",
    }
    assert not Token.objects.exists()


@pytest.mark.django_db
def test_form_and_multipart_logins_still_work(client: APIClient, user: Any, password: str) -> None:
    credentials = {"username": "alice", "password": password}

    assert client.post(reverse("cocart_jwt:login"), credentials).status_code == 200
    assert client.post(reverse("cocart_jwt:login"), credentials, format="json").status_code == 200
    form = client.generic(
        "POST",
        reverse("cocart_jwt:login"),
        f"username=alice&password={password}",
        "application/x-www-form-urlencoded",
    )
    assert form.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "method", "body"), cases(app_endpoints()))
def test_no_endpoint_of_the_app_answers_deep_json_with_a_500(
    client: APIClient, tokens: dict[str, Any], url: str, method: str, body: str
) -> None:
    url = url.replace(SID, tokens["sid"])
    response = client.generic(
        method.upper(),
        url,
        BODIES[body],
        "application/json",
        **bearer(tokens["access_token"]),
    )

    assert_not_a_server_error(
        response.status_code, response.content, response.get("Content-Type", "")
    )


# -- the example store ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreServer]:
    with StoreServer(tmp_path_factory.mktemp("store")) as server:
        yield server


def send_json(store: StoreServer, method: str, url: str, token: str, body: bytes) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return store.http.request(method, url, headers=headers, content=body)


@pytest.fixture(scope="module")
def shopper_token(store: StoreServer) -> str:
    token: str = store.login("shopper0001")["access_token"]
    return token


def test_the_store_lists_its_cart_among_its_endpoints() -> None:
    """The listing itself works: the store's parametrized cases below are not vacuous."""
    names = {endpoint["name"] for endpoint in store_endpoints()}
    assert {"product-list", "product-detail", "cart", "cart-items", "cart-item"} <= names


@pytest.mark.parametrize("body", list(BODIES))
def test_adding_deep_json_to_the_cart_is_a_400(
    store: StoreServer, shopper_token: str, body: str
) -> None:
    response = send_json(store, "POST", "/api/cart/items/", shopper_token, BODIES[body])

    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.json()["code"] == "parse_error"


@pytest.mark.parametrize(("url", "method", "body"), cases(store_endpoints()))
def test_no_endpoint_of_the_store_answers_deep_json_with_a_500(
    store: StoreServer, shopper_token: str, url: str, method: str, body: str
) -> None:
    response = send_json(store, method.upper(), url, shopper_token, BODIES[body])

    assert_not_a_server_error(
        response.status_code, response.content, response.headers.get("Content-Type", "")
    )
