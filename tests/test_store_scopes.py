"""The example store's scopes: what a personal access token may do there (example_project/).

The store (as tests/test_store.py runs it: its own settings, gunicorn, SQLite) declares
``SCOPES`` and has ``HasScope`` among its default permissions; each view names the scopes a
personal token needs. A login session's token is unaffected (tests/test_store.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.test_store import StoreServer

STORE_SCOPES = {"profile:read", "cart:read", "cart:write", "orders:read", "orders:write"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreServer]:
    with StoreServer(tmp_path_factory.mktemp("store-scopes")) as server:
        yield server


_shoppers = iter(range(1, 61))


@pytest.fixture
def shopper(store: StoreServer) -> dict[str, Any]:
    """A fresh login of a seeded shopper of its own (recent enough to make tokens)."""
    return store.login(f"shopper{next(_shoppers):04d}")


def make_token(store: StoreServer, access: str, *scopes: str) -> str:
    response = store.call(
        "POST", "/api/auth/tokens/", access, json={"name": "script", "scopes": list(scopes)}
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    store.secrets.add(token)
    return token


def assert_insufficient_scope(response: httpx.Response, scope: str) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "insufficient_scope"
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="api", error="insufficient_scope", scope="{scope}"'
    )


def test_the_store_offers_its_scopes_to_personal_tokens(store: StoreServer) -> None:
    schema = store.http.get("/api/schema/", params={"format": "json"}).json()
    request = schema["paths"]["/api/auth/tokens/"]["post"]["requestBody"]["content"]
    reference = request["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    items = schema["components"]["schemas"][reference]["properties"]["scopes"]["items"]
    enum = (
        items.get("enum")
        or schema["components"]["schemas"][items["allOf"][0]["$ref"].rsplit("/", 1)[1]]["enum"]
    )

    assert set(enum) == STORE_SCOPES


def test_a_read_only_token_reads_orders_and_is_refused_on_the_cart_and_checkout(
    store: StoreServer, shopper: dict[str, Any]
) -> None:
    access = shopper["access_token"]
    assert store.call(
        "POST", "/api/cart/items/", access, json={"product": "notebook", "quantity": 1}
    ).is_success
    token = make_token(store, access, "orders:read")

    assert store.call("GET", "/api/orders/", token).status_code == 200
    assert_insufficient_scope(
        store.call("POST", "/api/cart/items/", token, json={"product": "notebook"}), "cart:write"
    )
    # 403 before the step-up: a personal token has no login to make recent.
    assert_insufficient_scope(store.call("POST", "/api/orders/", token), "orders:write")
    assert_insufficient_scope(store.call("GET", "/api/cart/", token), "cart:read")
    assert store.call("GET", "/api/cart/", access).json()["item_count"] == 1  # nothing changed


def test_a_token_with_orders_write_still_meets_the_step_up_at_checkout(
    store: StoreServer, shopper: dict[str, Any]
) -> None:
    token = make_token(store, shopper["access_token"], "orders:write", "cart:write")
    assert store.call(
        "POST", "/api/cart/items/", token, json={"product": "notebook", "quantity": 1}
    ).is_success

    response = store.call("POST", "/api/orders/", token)

    assert response.status_code == 401
    assert response.json()["code"] == "reauthentication_required"
    assert store.call("GET", "/api/orders/", shopper["access_token"]).json()["count"] == 0


def test_a_cart_line_is_read_with_cart_read_and_changed_with_cart_write(
    store: StoreServer, shopper: dict[str, Any]
) -> None:
    access = shopper["access_token"]
    line = store.call(
        "POST", "/api/cart/items/", access, json={"product": "tote-bag", "quantity": 1}
    ).json()
    url = f"/api/cart/items/{line['id']}/"
    reader = make_token(store, access, "cart:read")
    writer = make_token(store, access, "cart:write")

    assert store.call("GET", url, reader).status_code == 200
    assert_insufficient_scope(store.call("PATCH", url, reader, json={"quantity": 2}), "cart:write")
    assert_insufficient_scope(store.call("GET", url, writer), "cart:read")
    assert store.call("PATCH", url, writer, json={"quantity": 2}).json()["quantity"] == 2


def test_me_takes_profile_read(store: StoreServer, shopper: dict[str, Any]) -> None:
    access = shopper["access_token"]

    assert_insufficient_scope(
        store.call("GET", "/api/me/", make_token(store, access, "orders:read")), "profile:read"
    )
    me = store.call("GET", "/api/me/", make_token(store, access, "profile:read"))
    assert me.json() == shopper["user"]


def test_products_stay_public_to_any_token(store: StoreServer, shopper: dict[str, Any]) -> None:
    token = make_token(store, shopper["access_token"], "orders:read")

    assert store.call("GET", "/api/products/", token).status_code == 200


def test_a_scope_the_store_does_not_offer_is_refused_by_name(
    store: StoreServer, shopper: dict[str, Any]
) -> None:
    response = store.call(
        "POST",
        "/api/auth/tokens/",
        shopper["access_token"],
        json={"name": "script", "scopes": ["orders:read", "products:write", "admin"]},
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {"scopes": ["Unknown scopes: admin, products:write."]}


def test_a_deleted_token_is_refused_by_the_store(
    store: StoreServer, shopper: dict[str, Any]
) -> None:
    access = shopper["access_token"]
    token = make_token(store, access, "orders:read")
    listed = store.call("GET", "/api/auth/tokens/", access).json()["results"]
    assert [item["name"] for item in listed] == ["script"]

    assert store.call("DELETE", f"/api/auth/tokens/{listed[0]['id']}/", access).status_code == 204

    refused = store.call("GET", "/api/orders/", token)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"


def test_the_server_log_holds_no_personal_token(store: StoreServer) -> None:
    log = store.output()

    assert store.secrets
    assert not [secret for secret in store.secrets if secret in log]
