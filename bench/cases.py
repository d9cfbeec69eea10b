"""The cases bench/auth.py measures: one DRF request per scheme, the floors, login and
refresh of each library, and the settings each case runs under."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

Cases = dict[str, Callable[[], Any]]

SIMPLEJWT_REFRESH = "simplejwt refresh (rotation + blacklist)"
COCART_REFRESH = "cocart_jwt refresh (rotation + reuse detection)"
COCART_LOGIN = "cocart_jwt login"
COCART_LOGIN_ALONE = "cocart_jwt login, without update_last_login"
DPOP_STRICT = "cocart_jwt strict, DPoP"
DPOP_CACHED = "cocart_jwt cached, DPoP"
PING = "/ping/cocart/"


class ProofPool:
    """Fresh DPoP proofs for one case, signed before a batch is timed (``refill``, entered
    with the batch's settings), so that what is measured is the server's work: a client signs
    its proof before it sends the request. Each proof is used once, as the server demands."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec
        from jwt.algorithms import ECAlgorithm

        self.key = ec.generate_private_key(ec.SECP256R1())
        public: dict[str, Any] = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jwk = {name: public[name] for name in ("kty", "crv", "x", "y")}
        self.ath, self.size, self.proofs = "", 0, [""]

    def bind(self, token: str, size: int) -> None:
        """Proofs for ``token`` (their ``ath``), ``size`` of them per batch."""
        import hashlib
        from base64 import urlsafe_b64encode

        digest = hashlib.sha256(token.encode("ascii")).digest()
        self.ath, self.size = urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"), size

    def proof(self) -> str:
        import secrets
        import time

        import jwt

        claims = {
            "jti": secrets.token_urlsafe(16),
            "htm": "GET",
            "htu": f"http://testserver{PING}",
            "iat": int(time.time()),
            "ath": self.ath,
        }
        headers = {"typ": "dpop+jwt", "jwk": self.jwk}
        return jwt.encode(claims, self.key, algorithm="ES256", headers=headers)

    @contextmanager
    def refill(self) -> Iterator[None]:
        self.proofs = [self.proof() for _ in range(self.size)]
        yield

    def next(self) -> str:
        return self.proofs.pop()


DPOP_POOLS: dict[str, ProofPool] = {}


class Bench:
    def __init__(self) -> None:
        from django.contrib.auth import get_user_model
        from django.urls import resolve
        from rest_framework.test import APIRequestFactory

        self.factory = APIRequestFactory()
        self.resolve = resolve
        user_model = get_user_model()
        user_model.objects.filter(username__in=["bench", "bench-login"]).delete()
        self.user = user_model.objects.create_user("bench", "bench@example.com", "bench-pass")
        # Logins have a user of their own: at the session cap after ten logins, each further
        # one revokes its oldest session, never one the other cases use.
        self.login_user = user_model.objects.create_user(
            "bench-login", "bench-login@example.com", "bench-pass"
        )

    def view(self, path: str) -> Any:
        return self.resolve(path).func

    def get(self, path: str, authorization: str | None) -> Callable[[], Any]:
        view, extra = self.view(path), {}
        if authorization:
            extra["HTTP_AUTHORIZATION"] = authorization

        def call() -> Any:
            response = view(self.factory.get(path, **extra))
            assert response.status_code == 200, (path, response.status_code)
            return response.render()

        return call

    def post(
        self, path: str, body: Callable[[], dict[str, str]], **extra: str
    ) -> Callable[[], Any]:
        view = self.view(path)

        def call() -> Any:
            response = view(self.factory.post(path, body(), format="json", **extra))
            assert response.status_code == 200, (path, response.status_code, response.data)
            return response.render()

        return call

    def chained_refresh(self, path: str, field: str, first: str, answer: str) -> Callable[[], Any]:
        """Each refresh presents the refresh token the previous one returned (rotation)."""
        state = {"token": first}
        request = self.post(path, lambda: {field: state["token"]})

        def call() -> Any:
            response = request()
            state["token"] = response.data[answer]
            return response

        return call


def dpop_case(bench: Bench, name: str, iterations: int) -> Callable[[], Any]:
    """A request with the token of a session bound to a DPoP key (as a login with a proof
    binds it), and a fresh proof by that key."""
    from cocart_jwt.dpop_jose import jwk_thumbprint
    from cocart_jwt.models import Token

    pool = DPOP_POOLS[name] = ProofPool()
    token = Token.objects.issue(bench.user, dpop_jkt=jwk_thumbprint(pool.jwk)).access_token
    pool.bind(token, iterations + max(20, iterations // 10) + 2)  # a batch, or the warm-up
    view = bench.view(PING)

    def call() -> Any:
        request = bench.factory.get(PING, HTTP_AUTHORIZATION=f"DPoP {token}", HTTP_DPOP=pool.next())
        response = view(request)
        assert response.status_code == 200, (PING, response.status_code)
        return response.render()

    return call


def auth_cases(bench: Bench, iterations: int = 1000) -> Cases:
    from knox.models import AuthToken
    from rest_framework_simplejwt.tokens import RefreshToken

    from cocart_jwt.models import Token

    simplejwt = str(RefreshToken.for_user(bench.user).access_token)
    knox = AuthToken.objects.create(bench.user)[1]
    cocart = Token.objects.issue(bench.user).access_token
    return {
        "no auth": bench.get("/ping/none/", None),
        "simplejwt": bench.get("/ping/simplejwt/", f"Bearer {simplejwt}"),
        "knox": bench.get("/ping/knox/", f"Token {knox}"),
        "cocart_jwt strict": bench.get("/ping/cocart/", f"Bearer {cocart}"),
        "cocart_jwt cached": bench.get("/ping/cocart/", f"Bearer {cocart}"),
        DPOP_STRICT: dpop_case(bench, DPOP_STRICT, iterations),
        DPOP_CACHED: dpop_case(bench, DPOP_CACHED, iterations),
    }


def floor_cases(bench: Bench) -> Cases:
    """The floors: the token's verification alone, and what each mode cannot avoid inside a
    request: a request without authentication, then the verification and one read (a Redis
    GET for cached mode, a primary-key SELECT for strict mode).

    The reads are taken between the request's other work, as an authenticated request takes
    them: on a virtual machine a round trip made right after another costs a fraction of one
    made after some computing (the client and the server wake up first). Measured back to
    back, the floor would be too low for any request to reach.
    """
    from django.core.cache import caches
    from django.db import connection

    from cocart_jwt.models import Token
    from cocart_jwt.tokens import verify_access_token

    issued = Token.objects.issue(bench.user)
    token, sid = issued.access_token, issued.session.pk
    cache = caches["default"]
    cache.set("bench:floor", b"x" * 600)
    table = connection.ops.quote_name(Token._meta.db_table)
    no_auth = bench.get("/ping/none/", None)

    def primary_key_select() -> Any:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s", [sid])  # noqa: S608
            return cursor.fetchone()

    def with_redis_get() -> Any:
        no_auth()
        verify_access_token(token)
        return cache.get("bench:floor")

    def with_primary_key_select() -> Any:
        no_auth()
        verify_access_token(token)
        return primary_key_select()

    return {
        "floor: verify_access_token": lambda: verify_access_token(token),
        "floor: no auth + verify + one Redis GET": with_redis_get,
        "floor: no auth + verify + one primary-key SELECT": with_primary_key_select,
    }


def login_cases(bench: Bench) -> Cases:
    import base64

    credentials = {"username": "bench-login", "password": "bench-pass"}
    basic = "Basic " + base64.b64encode(b"bench-login:bench-pass").decode()
    cocart = bench.post("/cocart/login/", lambda: credentials)
    return {
        "simplejwt login": bench.post("/simplejwt/login/", lambda: credentials),
        "knox login": bench.post("/knox/login/", dict, HTTP_AUTHORIZATION=basic),
        COCART_LOGIN: cocart,
        COCART_LOGIN_ALONE: cocart,
    }


def refresh_cases(bench: Bench) -> Cases:
    from rest_framework_simplejwt.tokens import RefreshToken

    from cocart_jwt.models import Token

    return {
        SIMPLEJWT_REFRESH: bench.chained_refresh(
            "/simplejwt/refresh/", "refresh", str(RefreshToken.for_user(bench.user)), "refresh"
        ),
        COCART_REFRESH: bench.chained_refresh(
            "/cocart/refresh/",
            "refresh_token",
            str(Token.objects.issue(bench.user).refresh_token),
            "refresh_token",
        ),
    }


def context_for(name: str) -> AbstractContextManager[Any]:
    if name == DPOP_STRICT:
        return DPOP_POOLS[name].refill()
    if name == DPOP_CACHED:
        return both(cached_mode(), DPOP_POOLS[name].refill())
    if name == "cocart_jwt cached":
        return cached_mode()
    if name == COCART_LOGIN_ALONE:
        return without_update_last_login()
    return nullcontext()


@contextmanager
def both(first: AbstractContextManager[Any], second: AbstractContextManager[Any]) -> Iterator[None]:
    with first, second:
        yield


def cached_mode() -> Any:
    """Settings of the cached case, entered once around its measurement."""
    from django.conf import settings
    from django.test import override_settings

    return override_settings(COCART_JWT={**settings.COCART_JWT, "SESSION_CACHE_TTL": 300})


@contextmanager
def without_update_last_login() -> Iterator[None]:
    """Django's own receiver of user_logged_in off (django.contrib.auth's AppConfig connects
    it under this dispatch_uid), connected again after."""
    from django.contrib.auth.models import update_last_login
    from django.contrib.auth.signals import user_logged_in

    was_connected = user_logged_in.disconnect(dispatch_uid="update_last_login")
    try:
        yield
    finally:
        if was_connected:
            user_logged_in.connect(update_last_login, dispatch_uid="update_last_login")
