"""The example store (example_project/) end to end over HTTP, with JWTs from this app.

The test settings do not install the store, so the store runs as it does for its users: its
own settings (``example_project.settings``) in a gunicorn process with two workers, DEBUG
off, on an SQLite file in a temporary directory, migrated and seeded by ``seed_store``.
Each test logs in its own seeded shoppers, so tests do not share carts.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
SIGNING_KEY = "store-tests-signing-key-" + "0123456789abcdef" * 3
SHOPPER_PASSWORD = "shopper-password-123"
DEMO = ("demo", "demo-password-123")
DEMO2 = ("demo2", "demo2-password-123")
SEEDED_SLUGS = {
    "coffee-mug",
    "tote-bag",
    "t-shirt",
    "hoodie",
    "notebook",
    "sticker-pack",
    "water-bottle",
    "limited-poster",
}
JWT_PATTERN = re.compile(r"eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]{10,}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def example_env(directory: Path, **extra: str) -> dict[str, str]:
    """The environment of an example-store process: nothing from ours leaks in.

    DATABASE_URL / REDIS_URL (set by CI for the test suite) are replaced by an SQLite file
    of our own; every DJANGO_* / COCART_JWT_* variable is ours.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "COCART_JWT_", "EXAMPLE_"))
        and name not in ("DATABASE_URL", "REDIS_URL", "PORT", "WEB_CONCURRENCY")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DATABASE_URL=f"sqlite:///{directory / 'store.sqlite3'}",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="store-tests-django-secret-key-" + "x" * 40,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        COCART_JWT_SIGNING_KEY=SIGNING_KEY,
        # Test speed only: MD5 instead of PBKDF2, and no login limit (all from 127.0.0.1).
        DJANGO_PASSWORD_HASHERS="django.contrib.auth.hashers.MD5PasswordHasher",
        COCART_JWT_RATE_LIMITS=json.dumps({"login": None, "refresh": None, "validate": None}),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_in_example(*args: str, what: str) -> str:
    """Run ``python <args>`` from the repository root under the example store's settings (in a
    throw-away directory); its standard output, or RuntimeError saying ``what`` failed."""
    with tempfile.TemporaryDirectory() as directory:
        result = subprocess.run(  # noqa: S603 - our interpreter and arguments
            [sys.executable, *args],
            cwd=ROOT,
            env=example_env(Path(directory)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{result.stderr}")
    return result.stdout


class StoreServer:
    """The example store under gunicorn (example_project/gunicorn.conf.py), two workers.

    ``with StoreServer(directory) as server:`` starts it and always stops it.
    """

    def __init__(self, directory: Path, **extra_env: str) -> None:
        self.directory = directory
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = example_env(directory, PORT=str(self.port), WEB_CONCURRENCY="2", **extra_env)
        self.log_path = directory / "gunicorn.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.base, timeout=10)
        self.secrets: set[str] = set()

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(  # noqa: S603 - our interpreter and arguments
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stderr}"
        return result

    def start(self) -> None:
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("seed_store", "--shoppers", "60")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "example_project/gunicorn.conf.py"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.output()}")
            try:
                if self.http.get("/api/products/").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the store did not answer in {START_TIMEOUT} s:\n{self.output()}")

    def __enter__(self) -> StoreServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.http.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- HTTP -----------------------------------------------------------------------------

    def login(self, username: str, password: str = SHOPPER_PASSWORD) -> dict[str, Any]:
        response = self.http.post(
            "/api/auth/login/", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        return self.remember(response.json())

    def refresh(self, refresh_token: str) -> httpx.Response:
        response = self.http.post("/api/auth/refresh/", json={"refresh_token": refresh_token})
        if response.status_code == 200:
            self.remember(response.json())
        return response

    def remember(self, pair: dict[str, Any]) -> dict[str, Any]:
        self.secrets.update({pair["access_token"], pair["refresh_token"]})
        return pair

    def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.request(method, path, headers=headers, **kwargs)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreServer]:
    with StoreServer(tmp_path_factory.mktemp("store")) as server:
        yield server


_shopper_numbers = itertools.count(1)


@pytest.fixture
def shopper(store: StoreServer) -> dict[str, Any]:
    """A logged-in seeded shopper of its own: ``{"username", "access_token", ...}``."""
    username = f"shopper{next(_shopper_numbers):04d}"
    return {"username": username, **store.login(username)}


@pytest.fixture
def other_shopper(store: StoreServer) -> dict[str, Any]:
    username = f"shopper{next(_shopper_numbers):04d}"
    return {"username": username, **store.login(username)}


def product(store: StoreServer, slug: str) -> dict[str, Any]:
    response = store.call("GET", f"/api/products/{slug}/")
    assert response.status_code == 200, response.text
    return response.json()


def add(store: StoreServer, token: str, slug: str, quantity: int = 1) -> httpx.Response:
    return store.call(
        "POST", "/api/cart/items/", token, json={"product": slug, "quantity": quantity}
    )


def assert_refused_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "invalid_token"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'


# -- products ---------------------------------------------------------------------------


def test_products_are_listed_to_anonymous_clients(store: StoreServer) -> None:
    response = store.call("GET", "/api/products/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(SEEDED_SLUGS)
    assert {p["slug"] for p in body["results"]} == SEEDED_SLUGS
    mug = next(p for p in body["results"] if p["slug"] == "coffee-mug")
    assert mug["name"] == "Coffee mug"
    assert mug["price"] == "12.50"
    assert set(mug) == {"slug", "name", "description", "price", "stock"}


def test_a_product_is_shown_by_slug_and_an_unknown_slug_is_404(store: StoreServer) -> None:
    assert product(store, "notebook")["price"] == "9.90"

    missing = store.call("GET", "/api/products/no-such-thing/")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


def test_products_cannot_be_changed_through_the_api(
    store: StoreServer, shopper: dict[str, Any]
) -> None:
    token = shopper["access_token"]
    assert store.call("POST", "/api/products/", token, json={"slug": "x"}).status_code == 405
    assert store.call("DELETE", "/api/products/notebook/", token).status_code == 405
    assert product(store, "notebook")["name"] == "Notebook"


def test_a_bad_token_is_refused_even_where_no_token_is_needed(store: StoreServer) -> None:
    # A client that sends a token gets it checked: an expired one means "refresh", not
    # "browse as anonymous".
    assert_refused_token(store.call("GET", "/api/products/", "not-a-jwt"))


# -- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/cart/"),
        ("POST", "/api/cart/items/"),
        ("PATCH", "/api/cart/items/1/"),
        ("DELETE", "/api/cart/items/1/"),
        ("GET", "/api/orders/"),
        ("POST", "/api/orders/"),
        ("GET", "/api/orders/1/"),
        ("GET", "/api/me/"),
    ],
)
def test_anonymous_requests_to_cart_and_orders_are_refused(
    store: StoreServer, method: str, path: str
) -> None:
    response = store.call(method, path, json={"product": "notebook"})

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_forged_or_malformed_token_is_refused_on_the_cart(
    store: StoreServer, shopper: dict[str, Any]
) -> None:
    header, payload, signature = shopper["access_token"].split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"

    assert_refused_token(store.call("GET", "/api/cart/", forged))
    assert_refused_token(store.call("GET", "/api/cart/", "garbage"))
    assert store.call("GET", "/api/cart/", shopper["access_token"]).status_code == 200


def test_the_printed_demo_credentials_log_in(store: StoreServer) -> None:
    for username, password in (DEMO, DEMO2):
        pair = store.login(username, password)
        me = store.call("GET", "/api/me/", pair["access_token"])
        assert me.status_code == 200
        assert me.json()["username"] == username


def test_me_gives_the_user_id_as_the_token_pair_does(
    store: StoreServer, shopper: dict[str, Any]
) -> None:
    me = store.call("GET", "/api/me/", shopper["access_token"])

    assert me.status_code == 200, me.text
    assert me.json() == shopper["user"]  # {"id": 42, "username": ...}: the same JSON types
    assert type(me.json()["id"]) is int
    schema = store.http.get("/api/schema/", params={"format": "json"}).json()
    assert schema["components"]["schemas"]["Me"]["properties"]["id"]["type"] == "integer"


def test_a_refused_login_over_http_is_not_stored(store: StoreServer) -> None:
    response = store.http.post(
        "/api/auth/login/", json={"username": "demo", "password": "not-the-password"}
    )

    assert response.status_code == 401
    assert response.headers["Cache-Control"] == "no-store"


# -- cart -------------------------------------------------------------------------------


def test_add_change_and_remove_cart_lines(store: StoreServer, shopper: dict[str, Any]) -> None:
    token = shopper["access_token"]
    assert store.call("GET", "/api/cart/", token).json() == {
        "items": [],
        "item_count": 0,
        "total": "0.00",
    }

    mug = add(store, token, "coffee-mug", 2)
    assert mug.status_code == 201, mug.text
    assert mug.json() == {
        "id": mug.json()["id"],
        "product": "coffee-mug",
        "name": "Coffee mug",
        "unit_price": "12.50",
        "quantity": 2,
        "line_total": "25.00",
    }
    stickers = add(store, token, "sticker-pack")
    assert stickers.status_code == 201
    cart = store.call("GET", "/api/cart/", token).json()
    assert [(i["product"], i["quantity"]) for i in cart["items"]] == [
        ("coffee-mug", 2),
        ("sticker-pack", 1),
    ]
    assert (cart["item_count"], cart["total"]) == (3, "29.99")

    changed = store.call(
        "PATCH", f"/api/cart/items/{mug.json()['id']}/", token, json={"quantity": 5}
    )
    assert changed.status_code == 200
    assert changed.json()["line_total"] == "62.50"

    removed = store.call("DELETE", f"/api/cart/items/{stickers.json()['id']}/", token)
    assert removed.status_code == 204
    cart = store.call("GET", "/api/cart/", token).json()
    assert [(i["product"], i["quantity"]) for i in cart["items"]] == [("coffee-mug", 5)]
    assert cart["total"] == "62.50"
    gone = store.call("DELETE", f"/api/cart/items/{stickers.json()['id']}/", token)
    assert gone.status_code == 404


def test_adding_a_product_already_in_the_cart_adds_to_its_quantity(
    store: StoreServer, shopper: dict[str, Any]
) -> None:
    token = shopper["access_token"]
    first = add(store, token, "tote-bag", 1)
    again = add(store, token, "tote-bag", 2)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["quantity"] == 3
    assert len(store.call("GET", "/api/cart/", token).json()["items"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"product": "no-such-product"}, "product"),
        ({"quantity": 1}, "product"),
        ({"product": "notebook", "quantity": 0}, "quantity"),
        ({"product": "notebook", "quantity": -3}, "quantity"),
        ({"product": "notebook", "quantity": "many"}, "quantity"),
        ({"product": "notebook", "quantity": 100}, "quantity"),
        ({"product": "limited-poster"}, "quantity"),  # sold out
    ],
)
def test_bad_cart_additions_are_400_and_change_nothing(
    store: StoreServer, shopper: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    token = shopper["access_token"]
    response = store.call("POST", "/api/cart/items/", token, json=body)

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["errors"]
    assert store.call("GET", "/api/cart/", token).json()["items"] == []


def test_a_quantity_change_beyond_the_stock_is_refused(
    store: StoreServer, shopper: dict[str, Any]
) -> None:
    token = shopper["access_token"]
    line = add(store, token, "hoodie").json()
    stock = product(store, "hoodie")["stock"]

    for quantity in (0, stock + 1):
        response = store.call(
            "PATCH", f"/api/cart/items/{line['id']}/", token, json={"quantity": quantity}
        )
        assert response.status_code == 400, (quantity, response.text)
        assert "quantity" in response.json()["errors"]
    assert store.call("GET", f"/api/cart/items/{line['id']}/", token).json()["quantity"] == 1


# -- orders -----------------------------------------------------------------------------


def test_checkout_turns_the_cart_into_an_order(store: StoreServer, shopper: dict[str, Any]) -> None:
    token = shopper["access_token"]
    stock_before = product(store, "notebook")["stock"]
    add(store, token, "notebook", 3)
    add(store, token, "t-shirt", 1)

    response = store.call("POST", "/api/orders/", token)

    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "placed"
    assert order["total"] == str(Decimal("9.90") * 3 + Decimal("24.00"))
    assert [(line["product"], line["quantity"], line["unit_price"]) for line in order["lines"]] == [
        ("notebook", 3, "9.90"),
        ("t-shirt", 1, "24.00"),
    ]
    assert store.call("GET", "/api/cart/", token).json()["items"] == []
    assert product(store, "notebook")["stock"] == stock_before - 3
    listed = store.call("GET", "/api/orders/", token).json()
    assert [o["id"] for o in listed["results"]] == [order["id"]]
    detail = store.call("GET", f"/api/orders/{order['id']}/", token)
    assert detail.status_code == 200
    assert detail.json() == order


def test_checkout_of_an_empty_cart_is_refused(store: StoreServer, shopper: dict[str, Any]) -> None:
    response = store.call("POST", "/api/orders/", shopper["access_token"])

    assert response.status_code == 400
    assert response.json()["code"] == "cart_empty"
    assert store.call("GET", "/api/orders/", shopper["access_token"]).json()["count"] == 0


def test_checkout_refuses_what_another_customer_bought_first(
    store: StoreServer, shopper: dict[str, Any], other_shopper: dict[str, Any]
) -> None:
    stock = product(store, "water-bottle")["stock"]
    assert stock >= 2
    assert add(store, shopper["access_token"], "water-bottle", stock).status_code == 201
    assert add(store, other_shopper["access_token"], "water-bottle", 1).status_code == 201
    assert store.call("POST", "/api/orders/", other_shopper["access_token"]).status_code == 201

    late = store.call("POST", "/api/orders/", shopper["access_token"])

    assert late.status_code == 409, late.text
    assert late.json()["code"] == "out_of_stock"
    assert "water-bottle" in late.json()["detail"]
    cart = store.call("GET", "/api/cart/", shopper["access_token"]).json()
    assert [(i["product"], i["quantity"]) for i in cart["items"]] == [("water-bottle", stock)]
    assert product(store, "water-bottle")["stock"] == stock - 1


# -- one user, another user -------------------------------------------------------------


def test_a_user_cannot_see_or_change_another_users_cart(
    store: StoreServer, shopper: dict[str, Any], other_shopper: dict[str, Any]
) -> None:
    mine, theirs = shopper["access_token"], other_shopper["access_token"]
    line = add(store, mine, "coffee-mug", 2).json()

    assert store.call("GET", "/api/cart/", theirs).json()["items"] == []
    path = f"/api/cart/items/{line['id']}/"
    assert store.call("GET", path, theirs).status_code == 404
    assert store.call("PATCH", path, theirs, json={"quantity": 9}).status_code == 404
    assert store.call("DELETE", path, theirs).status_code == 404
    assert store.call("POST", "/api/orders/", theirs).json()["code"] == "cart_empty"

    cart = store.call("GET", "/api/cart/", mine).json()
    assert [(i["id"], i["quantity"]) for i in cart["items"]] == [(line["id"], 2)]


def test_a_user_cannot_see_another_users_orders(
    store: StoreServer, shopper: dict[str, Any], other_shopper: dict[str, Any]
) -> None:
    mine, theirs = shopper["access_token"], other_shopper["access_token"]
    add(store, mine, "sticker-pack", 2)
    order = store.call("POST", "/api/orders/", mine).json()

    assert store.call("GET", "/api/orders/", theirs).json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }
    hidden = store.call("GET", f"/api/orders/{order['id']}/", theirs)
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "not_found"
    assert store.call("GET", f"/api/orders/{order['id']}/", mine).status_code == 200


# -- the session life cycle, seen from the store ----------------------------------------


def test_after_logout_the_token_is_refused_and_the_other_session_still_works(
    store: StoreServer, shopper: dict[str, Any]
) -> None:
    phone = shopper
    laptop = store.login(shopper["username"])
    add(store, phone["access_token"], "notebook")

    logout = store.call("POST", "/api/auth/logout/", phone["access_token"])

    assert logout.status_code == 204
    for _ in range(4):  # whichever gunicorn worker answers
        assert_refused_token(store.call("GET", "/api/cart/", phone["access_token"]))
    assert store.refresh(phone["refresh_token"]).status_code == 401
    cart = store.call("GET", "/api/cart/", laptop["access_token"])
    assert cart.status_code == 200
    assert [i["product"] for i in cart.json()["items"]] == ["notebook"]


def test_logout_everywhere_refuses_every_session_of_that_user_only(
    store: StoreServer, shopper: dict[str, Any], other_shopper: dict[str, Any]
) -> None:
    second = store.login(shopper["username"])

    response = store.call("POST", "/api/auth/logout/all/", second["access_token"])

    assert response.status_code == 204
    assert_refused_token(store.call("GET", "/api/cart/", shopper["access_token"]))
    assert_refused_token(store.call("POST", "/api/orders/", second["access_token"]))
    assert store.call("GET", "/api/cart/", other_shopper["access_token"]).status_code == 200


def test_a_session_deleted_from_another_device_is_refused(
    store: StoreServer, shopper: dict[str, Any]
) -> None:
    other_device = store.login(shopper["username"])

    deleted = store.call(
        "DELETE", f"/api/auth/sessions/{shopper['sid']}/", other_device["access_token"]
    )

    assert deleted.status_code == 204
    assert_refused_token(store.call("GET", "/api/orders/", shopper["access_token"]))
    assert store.call("GET", "/api/orders/", other_device["access_token"]).status_code == 200


def test_a_refreshed_token_works_and_a_reused_refresh_token_ends_the_session(
    store: StoreServer, shopper: dict[str, Any]
) -> None:
    renewed = store.refresh(shopper["refresh_token"])
    assert renewed.status_code == 200
    pair = renewed.json()
    assert pair["sid"] == shopper["sid"]
    assert add(store, pair["access_token"], "coffee-mug").status_code == 201

    replay = store.refresh(shopper["refresh_token"])

    assert replay.status_code == 401
    assert replay.json()["code"] == "invalid_grant"
    assert_refused_token(store.call("GET", "/api/cart/", pair["access_token"]))
    assert store.refresh(pair["refresh_token"]).status_code == 401


def test_a_deactivated_user_is_refused_at_once(store: StoreServer, shopper: dict[str, Any]) -> None:
    store.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        f"u = get_user_model().objects.get(username={shopper['username']!r}); "
        "u.is_active = False; u.save()",
    )

    assert_refused_token(store.call("GET", "/api/cart/", shopper["access_token"]))
    assert store.refresh(shopper["refresh_token"]).status_code == 401


# -- seed data and settings -------------------------------------------------------------


def test_seed_store_is_idempotent(store: StoreServer) -> None:
    again = store.manage("seed_store", "--shoppers", "60").stdout

    assert "Products: 8 in the catalogue, 0 created." in again
    assert "User demo / demo-password-123: exists." in again
    assert "User demo2 / demo2-password-123: exists." in again
    assert "Shoppers: 60 (0 created)" in again
    assert store.call("GET", "/api/products/").json()["count"] == len(SEEDED_SLUGS)


def test_seed_store_restock_puts_the_stock_back(store: StoreServer) -> None:
    store.manage("seed_store", "--restock")

    assert product(store, "water-bottle")["stock"] == 40
    assert product(store, "limited-poster")["stock"] == 0


def test_the_server_log_holds_no_token(store: StoreServer) -> None:
    """Runs last of the server tests: no token handed out so far is in the server's log."""
    pair = store.login(*DEMO2)
    store.call("POST", "/api/auth/logout/", pair["access_token"])
    assert_refused_token(store.call("GET", "/api/cart/", pair["access_token"]))
    assert store.refresh(pair["refresh_token"]).status_code == 401
    time.sleep(0.5)  # let gunicorn's workers flush their lines

    output = store.output()
    assert f"Access token refused: session {pair['sid']} is revoked" in output
    assert f"Refresh refused: session {pair['sid']} is revoked" in output
    leaked = [secret[:12] for secret in store.secrets if secret in output]
    assert not leaked
    assert not JWT_PATTERN.search(output)


def settings_probe(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our interpreter and code
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_settings_refuse_to_start_with_debug_off_and_no_signing_key(tmp_path: Path) -> None:
    env = example_env(tmp_path)
    del env["COCART_JWT_SIGNING_KEY"]

    result = settings_probe(env, "print('started')")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "set COCART_JWT_SIGNING_KEY" in result.stderr
    assert "started" not in result.stdout


def test_settings_refuse_to_start_with_debug_off_and_no_secret_key(tmp_path: Path) -> None:
    env = example_env(tmp_path)
    del env["DJANGO_SECRET_KEY"]

    result = settings_probe(env, "print('started')")

    assert result.returncode != 0
    assert "set DJANGO_SECRET_KEY" in result.stderr


def test_gunicorn_refuses_to_start_without_a_signing_key(tmp_path: Path) -> None:
    env = example_env(tmp_path, PORT=str(free_port()))
    del env["COCART_JWT_SIGNING_KEY"]

    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "example_project/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "set COCART_JWT_SIGNING_KEY" in result.stdout + result.stderr


def test_in_debug_a_development_key_is_made_once_kept_and_announced(tmp_path: Path) -> None:
    key_file = tmp_path / "dev-key"
    env = example_env(tmp_path, DJANGO_DEBUG="1", EXAMPLE_SIGNING_KEY_FILE=str(key_file))
    del env["COCART_JWT_SIGNING_KEY"]
    kid = "from cocart_jwt.keys import keyring; print(keyring().signing_key.kid)"

    first = settings_probe(env, kid)
    assert first.returncode == 0, first.stderr
    content = key_file.read_text()
    second = settings_probe(env, kid)

    assert "WARNING: COCART_JWT_SIGNING_KEY is not set. Created a DEVELOPMENT signing key" in (
        first.stderr
    )
    assert "Using a DEVELOPMENT signing key" in second.stderr
    assert first.stdout == second.stdout  # the same key id: tokens survive a restart
    assert key_file.read_text() == content
    assert len(content.strip()) >= 64
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_database_and_cache_come_from_the_environment(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings as s; "
        "db = s.DATABASES['default']; "
        "print(db['ENGINE'], db['NAME'], db.get('HOST'), db.get('PORT'), "
        "s.CACHES['default']['BACKEND'], s.CACHES['default'].get('LOCATION'))"
    )
    env = example_env(tmp_path)
    del env["DATABASE_URL"]
    plain = settings_probe(env, code)
    assert plain.returncode == 0, plain.stderr
    engine, name, *_, cache, _location = plain.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert name == str(ROOT / "db.sqlite3")
    assert cache == "django.core.cache.backends.locmem.LocMemCache"

    services = settings_probe(
        {
            **env,
            "DATABASE_URL": "postgres://shop:pw@db.internal:5433/shop",
            "REDIS_URL": "redis://cache.internal:6379/2",
        },
        code,
    )
    assert services.returncode == 0, services.stderr
    assert services.stdout.split() == [
        "django.db.backends.postgresql",
        "shop",
        "db.internal",
        "5433",
        "django_redis.cache.RedisCache",
        "redis://cache.internal:6379/2",
    ]


def test_the_store_serves_its_openapi_schema_and_swagger_ui(store: StoreServer) -> None:
    schema = store.call("GET", "/api/schema/", params={"format": "json"})

    assert schema.status_code == 200
    document = schema.json()
    assert document["components"]["securitySchemes"]["jwtAuth"]["scheme"] == "bearer"
    paths = set(document["paths"])
    assert {"/api/products/", "/api/auth/login/", "/api/auth/refresh/"} <= paths
    assert any(path.startswith("/api/cart") for path in paths)
    assert any(path.startswith("/api/orders") for path in paths)
    docs = store.call("GET", "/api/docs/")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_the_store_schema_documents_every_view_without_warnings(store: StoreServer) -> None:
    result = store.manage("spectacular", "--validate", "--fail-on-warn", "--file", os.devnull)
    assert result.returncode == 0, result.stderr[-2000:]
