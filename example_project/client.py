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

With ``--dpop`` the client holds a DPoP key (RFC 9449, ``DPoPKey``: the part to copy for
sender-constrained tokens) and signs a fresh proof for every request: the session is bound to
the key, its tokens go as ``Authorization: DPoP <token>``, and the journey shows that the same
token sent as a Bearer, or with a replayed proof, is refused. A server that asks for a nonce
(``DPOP_REQUIRE_NONCE``) gets one: the client retries once with the ``DPoP-Nonce`` it sent.

When the access token lives at most ``--max-wait`` seconds (start the server with
``COCART_JWT_ACCESS_TOKEN_LIFETIME=5`` to see it), the client waits for it to expire and
the refresh happens for real; otherwise it refreshes on purpose to show the rotation.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import sys
import time
from base64 import urlsafe_b64encode
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

DEFAULT_BASE_URL = os.environ.get("STORE_URL", "http://127.0.0.1:8000")
AUTH = "/api/auth/"


class JourneyError(Exception):
    """The server did something this app promises it will not."""


def short(token: str) -> str:
    """Enough of a token to tell two apart in the output; never the whole secret."""
    return f"{token[:10]}...({len(token)} chars)"


def b64url(raw: bytes) -> str:
    return urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class DPoPKey:
    """A DPoP key (RFC 9449): an EC P-256 pair (ES256) that never leaves the client (a browser
    keeps a non-extractable WebCrypto key: docs/dpop.md), and the server's latest nonce."""

    algorithm = "ES256"

    def __init__(self) -> None:
        self._private = ec.generate_private_key(ec.SECP256R1())
        public: dict[str, Any] = ECAlgorithm.to_jwk(self._private.public_key(), as_dict=True)
        self.jwk = {name: public[name] for name in ("kty", "crv", "x", "y")}
        self.nonce: str | None = None

    @property
    def thumbprint(self) -> str:
        """RFC 7638: what the server puts in the access token's ``cnf.jkt``."""
        members = ",".join(f'"{name}":"{self.jwk[name]}"' for name in ("crv", "kty", "x", "y"))
        return b64url(hashlib.sha256(f"{{{members}}}".encode()).digest())

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """A fresh proof for one request to ``url`` (its query and fragment are left out)."""
        scheme, netloc, path, _query, _fragment = urlsplit(url)
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method.upper(),
            "htu": urlunsplit((scheme, netloc, path, "", "")),
            "iat": int(time.time()),
        }
        if access_token is not None:
            claims["ath"] = b64url(hashlib.sha256(access_token.encode("ascii")).digest())
        if self.nonce is not None:
            claims["nonce"] = self.nonce
        headers = {"typ": "dpop+jwt", "jwk": self.jwk}
        return jwt.encode(claims, self._private, algorithm=self.algorithm, headers=headers)


class StoreClient:
    """``ask_password`` is called when the server wants the password again: a real app asks
    its user then; this script answers with the one it logged in with."""

    def __init__(
        self,
        base_url: str,
        ask_password: Callable[[], str],
        *,
        timeout: float = 10.0,
        dpop: DPoPKey | None = None,
    ) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout)
        self.ask_password = ask_password
        self.dpop = dpop
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
        response = self.post(f"{AUTH}login/", {"username": username, "password": password})
        if response.status_code == 429:
            raise JourneyError(
                f"login rate limited (429): try again in {response.headers.get('Retry-After')} s"
            )
        expect(response, 200, "login")
        return self.keep(response.json())

    def refresh(self) -> dict[str, Any]:
        if self.refresh_token is None:
            raise JourneyError("no refresh token to refresh with")
        response = self.post(f"{AUTH}refresh/", {"refresh_token": self.refresh_token})
        expect(response, 200, "refresh")
        self.refreshes += 1
        return self.keep(response.json())

    def reauthenticate(self) -> dict[str, Any]:
        """The password again, for the same session: a fresh ``auth_time``, a new pair."""
        response = self.post(
            f"{AUTH}reauthenticate/", {"password": self.ask_password()}, self.access_token
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

    def post(self, path: str, body: dict[str, Any], token: str | None = None) -> httpx.Response:
        """POST to a token endpoint; with DPoP, a proof, and once more with the server's nonce
        when it answers ``use_dpop_nonce`` (RFC 9449 section 8)."""
        response = self.http.post(path, json=body, headers=self.credentials("POST", path, token))
        if self.dpop is not None and response.headers.get("DPoP-Nonce"):
            self.dpop.nonce = response.headers["DPoP-Nonce"]
            if response.status_code == 400 and response.json().get("error") == "use_dpop_nonce":
                headers = self.credentials("POST", path, token)
                response = self.http.post(path, json=body, headers=headers)
        return response

    def logout(self) -> httpx.Response:
        return self.http.post(f"{AUTH}logout/", headers=self.credentials("POST", f"{AUTH}logout/"))

    def credentials(self, method: str, path: str, token: str | None = None) -> dict[str, str]:
        """``Authorization`` for ``token`` (default: the access token, if any) and, with DPoP,
        a fresh proof for this request (a token endpoint's without a token has no ``ath``)."""
        token = token if token is not None else self.access_token
        if self.dpop is None:
            return self.bearer(token)
        url = str(self.http.base_url.join(path))
        headers = {"DPoP": self.dpop.proof(method, url, token)}
        if token:
            headers["Authorization"] = f"DPoP {token}"
        return headers

    def bearer(self, token: str | None = None) -> dict[str, str]:
        token = token or self.access_token
        return {"Authorization": f"Bearer {token}"} if token else {}

    # -- API calls ------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the API with the access token; if it was refused, refresh once and retry; if
        the login is not recent enough, reauthenticate once and retry."""
        response = self.http.request(method, path, headers=self.credentials(method, path), **kwargs)
        if challenged(response, "invalid_token"):
            say(f"  {method} {path} -> 401 invalid_token: the access token expired; refreshing")
            old_sid = self.sid
            self.refresh()
            same = "same session" if self.sid == old_sid else "NEW session?"
            say(f"  refreshed: new access token {short(self.access_token or '')}, {same}")
            response = self.http.request(
                method, path, headers=self.credentials(method, path), **kwargs
            )
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
            response = self.http.request(
                method, path, headers=self.credentials(method, path), **kwargs
            )
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
    say(f"1. Log in as {username}" + (" with a DPoP key" if client.dpop else ""))
    pair = client.login(username, password)
    if client.dpop is not None and pair["token_type"] != "DPoP":  # noqa: S105 (a scheme)
        raise JourneyError(f"login with a DPoP proof gave token_type {pair['token_type']}")
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

    if client.dpop is not None:
        stolen_token_refused(client)

    say("6. Log out")
    revoked_access, revoked_refresh = client.access_token, client.refresh_token
    logout = client.logout()
    expect(logout, 204, "logout")
    say("   204: the session is revoked")

    say("7. The old tokens are refused")
    refused = client.http.get(
        "/api/cart/", headers=client.credentials("GET", "/api/cart/", revoked_access)
    )
    expect(refused, 401, "cart with the logged-out access token")
    refused_refresh = client.post(f"{AUTH}refresh/", {"refresh_token": revoked_refresh or ""})
    expect(refused_refresh, 401, "refresh with the logged-out refresh token")
    say(
        f"   access token: {refused.status_code} {refused.json()['code']}; "
        f"refresh token: {refused_refresh.status_code} {refused_refresh.json()['code']}"
    )
    say("Journey complete: every step behaved as expected.")


def stolen_token_refused(client: StoreClient) -> None:
    """What DPoP is for: the access token alone, or with a proof already used, is refused."""
    say("   DPoP: the same access token without the key is refused")
    as_bearer = client.http.get("/api/cart/", headers=client.bearer())
    expect(as_bearer, 401, "the DPoP-bound access token sent as a Bearer")
    headers = client.credentials("GET", "/api/cart/")
    expect(client.http.get("/api/cart/", headers=headers), 200, "cart with a fresh proof")
    replayed = client.http.get("/api/cart/", headers=headers)
    expect(replayed, 401, "the same proof sent again")
    say(f"   as a Bearer: {as_bearer.status_code}; with a replayed proof: {replayed.status_code}")


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
    parser.add_argument(
        "--dpop", action="store_true", help="bind the session to a DPoP key (RFC 9449)"
    )
    args = parser.parse_args(argv)
    dpop = DPoPKey() if args.dpop else None
    client = StoreClient(args.base_url, ask_password=lambda: args.password, dpop=dpop)
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
