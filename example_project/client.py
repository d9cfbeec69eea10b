#!/usr/bin/env python
"""A headless client of the example store: the whole journey over HTTP, with httpx.

    python example_project/client.py                      # against http://127.0.0.1:8000
    python example_project/client.py --base-url http://127.0.0.1:8080 --username demo2 \\
        --password demo2-password-123

Log in, browse the products, fill the cart, refresh the tokens when the access token
expires, check out (reauthenticating when the login is no longer recent), log out, and show
that the old tokens are refused. Each step is printed; the exit status is 0 when the server
behaved as this app promises, 1 otherwise.

The part to copy into a real client is ``StoreClient.request``: send the access token; on
a 401 whose ``WWW-Authenticate`` says ``error="invalid_token"``, refresh once and retry; on
one that says ``error="insufficient_user_authentication"`` (RFC 9470: the checkout wants a
recent login), post the password to ``reauthenticate/`` and retry. Tokens are kept in memory
only, and never printed in full.

Start the server with ``COCART_JWT_REAUTH_MAX_AGE=3`` to see the reauthentication.

When the access token lives at most ``--max-wait`` seconds (start the server with
``COCART_JWT_ACCESS_TOKEN_LIFETIME=5`` to see it), the client waits for it to expire and
the refresh happens for real; otherwise it refreshes on purpose to show the rotation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

DEFAULT_BASE_URL = os.environ.get("STORE_URL", "http://127.0.0.1:8000")
AUTH = "/api/auth/"


class JourneyError(Exception):
    """The server did something this app promises it will not."""


def short(token: str) -> str:
    """Enough of a token to tell two apart in the output; never the whole secret."""
    return f"{token[:10]}...({len(token)} chars)"


class StoreClient:
    """``ask_password`` is called when the server wants the password again: a real app asks
    its user then; this script answers with the one it logged in with."""

    def __init__(
        self, base_url: str, ask_password: Callable[[], str], *, timeout: float = 10.0
    ) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout)
        self.ask_password = ask_password
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.sid: str | None = None
        self.access_expires_at = 0.0
        self.refreshes = 0
        self.reauthentications = 0

    def close(self) -> None:
        self.http.close()

    # -- tokens ---------------------------------------------------------------------------

    def login(self, username: str, password: str) -> dict[str, Any]:
        response = self.http.post(
            f"{AUTH}login/", json={"username": username, "password": password}
        )
        if response.status_code == 429:
            raise JourneyError(
                f"login rate limited (429): try again in {response.headers.get('Retry-After')} s"
            )
        expect(response, 200, "login")
        return self.keep(response.json())

    def refresh(self) -> dict[str, Any]:
        if self.refresh_token is None:
            raise JourneyError("no refresh token to refresh with")
        response = self.http.post(f"{AUTH}refresh/", json={"refresh_token": self.refresh_token})
        expect(response, 200, "refresh")
        self.refreshes += 1
        return self.keep(response.json())

    def reauthenticate(self) -> dict[str, Any]:
        """The password again, for the same session: a fresh ``auth_time``, a new pair."""
        response = self.http.post(
            f"{AUTH}reauthenticate/", json={"password": self.ask_password()}, headers=self.bearer()
        )
        expect(response, 200, "reauthenticate")
        self.reauthentications += 1
        return self.keep(response.json())

    def keep(self, pair: dict[str, Any]) -> dict[str, Any]:
        self.access_token = pair["access_token"]
        self.refresh_token = pair["refresh_token"]
        self.sid = pair["sid"]
        self.access_expires_at = time.monotonic() + pair["expires_in"]
        return pair

    def logout(self) -> httpx.Response:
        return self.http.post(f"{AUTH}logout/", headers=self.bearer())

    def bearer(self, token: str | None = None) -> dict[str, str]:
        token = token or self.access_token
        return {"Authorization": f"Bearer {token}"} if token else {}

    # -- API calls ------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the API with the access token; if it was refused, refresh once and retry; if
        the login is not recent enough, reauthenticate once and retry."""
        response = self.http.request(method, path, headers=self.bearer(), **kwargs)
        if challenged(response, "invalid_token"):
            say(f"  {method} {path} -> 401 invalid_token: the access token expired; refreshing")
            old_sid = self.sid
            self.refresh()
            same = "same session" if self.sid == old_sid else "NEW session?"
            say(f"  refreshed: new access token {short(self.access_token or '')}, {same}")
            response = self.http.request(method, path, headers=self.bearer(), **kwargs)
        if challenged(response, "insufficient_user_authentication"):
            max_age = response.headers["WWW-Authenticate"].rpartition("max_age=")[2]
            say(
                f"  {method} {path} -> 401 insufficient_user_authentication: the login is older "
                f"than {max_age} s; reauthenticating"
            )
            old_sid = self.sid
            self.reauthenticate()
            same = "same session" if self.sid == old_sid else "NEW session?"
            say(f"  reauthenticated: new access token {short(self.access_token or '')}, {same}")
            response = self.http.request(method, path, headers=self.bearer(), **kwargs)
        return response


def challenged(response: httpx.Response, error: str) -> bool:
    """A 401 whose Bearer challenge names ``error``."""
    challenge = response.headers.get("WWW-Authenticate", "")
    return response.status_code == 401 and f'error="{error}"' in challenge


def say(line: str) -> None:
    print(line, flush=True)


def expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise JourneyError(
            f"{what}: expected {status}, got {response.status_code}: {response.text[:300]}"
        )


def journey(client: StoreClient, username: str, password: str, max_wait: float) -> None:
    say(f"1. Log in as {username}")
    pair = client.login(username, password)
    say(
        f"   200: session {pair['sid']}, access token {short(pair['access_token'])} "
        f"for {pair['expires_in']} s, refresh token for {pair['refresh_expires_in']} s"
    )

    say("2. Browse the products (public: no token needed)")
    listing = client.http.get("/api/products/")
    expect(listing, 200, "product list")
    products = [p for p in listing.json()["results"] if p["stock"] >= 3]
    if len(products) < 2:
        raise JourneyError("the store needs two products in stock: run manage.py seed_store")
    first, second = products[0], products[1]
    detail = client.http.get(f"/api/products/{first['slug']}/")
    expect(detail, 200, "product detail")
    say(f"   {listing.json()['count']} products; {first['name']} costs {first['price']}")

    say("3. Fill the cart")
    added = client.request("POST", "/api/cart/items/", json={"product": first["slug"]})
    expect_one_of(added, (200, 201), "add to cart")
    line = added.json()
    more = client.request(
        "POST", "/api/cart/items/", json={"product": second["slug"], "quantity": 2}
    )
    expect_one_of(more, (200, 201), "add to cart")
    changed = client.request("PATCH", f"/api/cart/items/{line['id']}/", json={"quantity": 2})
    expect(changed, 200, "change quantity")
    removed = client.request("DELETE", f"/api/cart/items/{more.json()['id']}/")
    expect(removed, 204, "remove from cart")
    cart = client.request("GET", "/api/cart/")
    expect(cart, 200, "cart")
    say(
        f"   added {first['slug']} and {second['slug']}, set {first['slug']} to 2, "
        f"removed {second['slug']}: {cart.json()['item_count']} items, total "
        f"{cart.json()['total']}"
    )

    say("4. Refresh when the access token expires")
    remaining = client.access_expires_at - time.monotonic()
    if remaining <= max_wait:
        say(f"   the access token expires in {max(remaining, 0):.0f} s: waiting for it")
        time.sleep(max(remaining, 0) + 1.5)
        refreshes = client.refreshes
        cart = client.request("GET", "/api/cart/")
        expect(cart, 200, "cart after the access token expired")
        if client.refreshes != refreshes + 1:
            raise JourneyError("the expired access token was accepted")
    else:
        say(
            f"   the access token is good for {remaining:.0f} s more (over --max-wait "
            f"{max_wait:g} s); refreshing now to show the rotation"
        )
        spent = client.refresh_token
        client.refresh()
        say(f"   200: same session {client.sid}; the refresh token rotated")
        if client.refresh_token == spent:
            raise JourneyError("the refresh token did not rotate")
        expect(client.request("GET", "/api/cart/"), 200, "cart after refresh")

    say("5. Check out")
    order = client.request("POST", "/api/orders/")
    expect(order, 201, "checkout")
    placed = order.json()
    orders = client.request("GET", "/api/orders/")
    expect(orders, 200, "order list")
    if placed["id"] not in [o["id"] for o in orders.json()["results"]]:
        raise JourneyError("the new order is not in the order list")
    empty = client.request("GET", "/api/cart/")
    expect(empty, 200, "cart after checkout")
    if empty.json()["items"]:
        raise JourneyError("the cart is not empty after checkout")
    say(f"   201: order {placed['id']}, total {placed['total']}; the cart is empty again")

    say("6. Log out")
    revoked_access, revoked_refresh = client.access_token, client.refresh_token
    logout = client.logout()
    expect(logout, 204, "logout")
    say("   204: the session is revoked")

    say("7. The old tokens are refused")
    refused = client.http.get("/api/cart/", headers=client.bearer(revoked_access))
    expect(refused, 401, "cart with the logged-out access token")
    refused_refresh = client.http.post(f"{AUTH}refresh/", json={"refresh_token": revoked_refresh})
    expect(refused_refresh, 401, "refresh with the logged-out refresh token")
    say(
        f"   access token: {refused.status_code} {refused.json()['code']}; "
        f"refresh token: {refused_refresh.status_code} {refused_refresh.json()['code']}"
    )
    say("Journey complete: every step behaved as expected.")


def expect_one_of(response: httpx.Response, statuses: tuple[int, ...], what: str) -> None:
    if response.status_code not in statuses:
        raise JourneyError(
            f"{what}: expected one of {statuses}, got {response.status_code}: {response.text[:300]}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help="default: %(default)s")
    parser.add_argument("--username", default="demo")
    parser.add_argument("--password", default="demo-password-123")
    parser.add_argument(
        "--max-wait",
        type=float,
        default=30,
        help="wait for the access token to expire if it lives at most this long (seconds)",
    )
    args = parser.parse_args(argv)
    client = StoreClient(args.base_url, ask_password=lambda: args.password)
    try:
        journey(client, args.username, args.password, args.max_wait)
    except JourneyError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"FAILED: cannot talk to {args.base_url}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
