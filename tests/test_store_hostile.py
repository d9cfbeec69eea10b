"""The example store against ids and bodies no client would send: a NUL byte in a product slug
(URL or cart body), ids past the integer range. PostgreSQL refuses a NUL byte in a query
parameter with an error, not an empty result, so these are checked on PostgreSQL (the store on
a database of its own, made and dropped here) as well as on SQLite: 400 or 404, never 500.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from example_project.env import parse_database_url
from tests import services
from tests.test_store import StoreServer

NUL = "\u0000"
HUGE_ID = "9" * 30


def postgres_store_url() -> tuple[str, str]:
    """A PostgreSQL URL for a database of the store's own, and the URL to administer it."""
    admin_url = services.postgres_url()
    assert admin_url is not None
    name = f"cocart_jwt_store_hostile_{os.getpid()}"
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}")), admin_url


def run_admin_sql(admin_url: str, sql: str) -> None:
    import psycopg

    config = parse_database_url(admin_url)
    with psycopg.connect(
        dbname="postgres",  # the server's maintenance database: the URL's may not exist yet
        user=config["USER"] or None,
        password=config["PASSWORD"] or None,
        host=config["HOST"] or None,
        port=config["PORT"] or None,
        autocommit=True,
    ) as connection:
        connection.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreServer]:
    directory: Path = tmp_path_factory.mktemp(f"store_{request.param}")
    if request.param == "sqlite":
        with StoreServer(directory) as server:
            yield server
        return
    url, admin_url = postgres_store_url()
    name = urlsplit(url).path.lstrip("/")
    run_admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    run_admin_sql(admin_url, f'CREATE DATABASE "{name}"')
    try:
        with StoreServer(directory, DATABASE_URL=url) as server:
            yield server
    finally:
        run_admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def token(store: StoreServer) -> str:
    access: str = store.login("shopper0001")["access_token"]
    return access


@pytest.fixture(scope="module")
def cart_line(store: StoreServer, token: str) -> int:
    response = store.call(
        "POST", "/api/cart/items/", token, json={"product": "notebook", "quantity": 1}
    )
    assert response.status_code in (200, 201), response.text
    line: int = response.json()["id"]
    return line


def assert_not_found(response: Any) -> None:
    """404: from the API (JSON with a code), or from the URL resolver (Django's page)."""
    assert response.status_code == 404, (response.status_code, response.text[:300])
    if response.headers["Content-Type"].startswith("application/json"):
        assert response.json()["code"] == "not_found"


def assert_invalid(response: Any, field: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    body = response.json()
    assert body["code"] == "invalid_request", body
    assert field in body["errors"], body


@pytest.mark.parametrize(
    "path",
    [
        "/api/products/a%00b/",
        "/api/products/%00/",
        "/api/products/coffee-mug%00/",
    ],
)
def test_a_nul_byte_in_a_product_slug_is_a_404(store: StoreServer, path: str) -> None:
    assert_not_found(store.call("GET", path))


@pytest.mark.parametrize(
    "path",
    [
        f"/api/cart/items/{HUGE_ID}/",
        f"/api/orders/{HUGE_ID}/",
        "/api/cart/items/1%00/",
        "/api/orders/1%00/",
    ],
)
def test_an_id_no_row_can_have_is_a_404(store: StoreServer, token: str, path: str) -> None:
    assert_not_found(store.call("GET", path, token))


def test_a_nul_byte_in_the_page_number_is_a_404(store: StoreServer) -> None:
    assert_not_found(store.call("GET", "/api/products/?page=1%00"))


@pytest.mark.parametrize("slug", [f"a{NUL}b", NUL, f"coffee-mug{NUL}"])
def test_a_nul_byte_in_the_product_of_a_cart_body_is_a_400(
    store: StoreServer, token: str, slug: str
) -> None:
    before = store.call("GET", "/api/cart/", token).json()

    response = store.call("POST", "/api/cart/items/", token, json={"product": slug, "quantity": 1})

    assert_invalid(response, "product")
    assert store.call("GET", "/api/cart/", token).json() == before


def test_a_nul_byte_in_a_form_encoded_cart_body_is_a_400(store: StoreServer, token: str) -> None:
    response = store.http.post(
        "/api/cart/items/",
        headers={"Authorization": f"Bearer {token}"},
        data={"product": f"a{NUL}b", "quantity": "1"},
    )

    assert_invalid(response, "product")


@pytest.mark.parametrize("quantity", [f"1{NUL}", NUL])
def test_a_nul_byte_in_a_quantity_is_a_400(
    store: StoreServer, token: str, cart_line: int, quantity: str
) -> None:
    added = store.call(
        "POST", "/api/cart/items/", token, json={"product": "tote-bag", "quantity": quantity}
    )
    changed = store.call(
        "PATCH", f"/api/cart/items/{cart_line}/", token, json={"quantity": quantity}
    )

    assert_invalid(added, "quantity")
    assert_invalid(changed, "quantity")


def test_the_cart_still_works_after_the_hostile_requests(
    store: StoreServer, token: str, cart_line: int
) -> None:
    line = store.call("GET", f"/api/cart/items/{cart_line}/", token)

    assert line.status_code == 200
    assert line.json()["product"] == "notebook"
