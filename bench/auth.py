"""Authentication cost per DRF request, login and refresh: this app beside simplejwt and knox.

    python bench/auth.py                 # PostgreSQL + Redis on localhost (see bench/settings.py)
    python bench/auth.py --quick         # a smoke run: few iterations
    python bench/auth.py --profile cocart-cached   # pyinstrument profile of one case

Everything runs in one process and one run, so the ratios compare like with like. Each case
calls the DRF view directly with a request from RequestFactory (no middleware, no network),
in batches; the report gives the median of the batches' mean time per request, the SQL
queries one request makes, and the ratio to simplejwt.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")


def prepare_database() -> None:
    """Create the benchmark database if missing, then migrate it."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        import psycopg

        with psycopg.connect(
            host=db["HOST"],
            port=db["PORT"] or 5432,
            user=db["USER"],
            dbname="postgres",
            password=db.get("PASSWORD") or None,
            autocommit=True,
        ) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]])
            if exists.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


@dataclass
class Result:
    name: str
    micros: float
    queries: int


def measure_all(
    cases: dict[str, Callable[[], Any]],
    iterations: int,
    batches: int,
    settings_for: Callable[[str], Any] = lambda name: nullcontext(),
) -> list[Result]:
    """Batches interleaved across the cases (A B C, A B C...), so that the machine's drift
    (other load, disk flushes) falls on every case alike; the median batch of each case."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    queries = {}
    for name, call in cases.items():
        with settings_for(name):
            for _ in range(max(20, iterations // 10)):
                call()
            with CaptureQueriesContext(connection) as captured:
                call()
        queries[name] = len(captured)
    means: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(batches):
        for name, call in cases.items():
            with settings_for(name):
                start = time.perf_counter_ns()
                for _ in range(iterations):
                    call()
                means[name].append((time.perf_counter_ns() - start) / iterations / 1000)
    return [Result(name, statistics.median(means[name]), queries[name]) for name in cases]


class Bench:
    def __init__(self) -> None:
        from django.contrib.auth import get_user_model
        from django.urls import resolve
        from rest_framework.test import APIRequestFactory

        self.factory = APIRequestFactory()
        self.resolve = resolve
        user_model = get_user_model()
        user_model.objects.filter(username="bench").delete()
        self.user = user_model.objects.create_user("bench", "bench@example.com", "bench-pass")

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


def auth_cases(bench: Bench) -> dict[str, Callable[[], Any]]:
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
    }


def settings_for(name: str) -> Any:
    return cached_mode() if name.endswith("cached") else nullcontext()


def cached_mode() -> Any:
    """Settings of the cached case, entered once around its measurement."""
    from django.test import override_settings

    return override_settings(COCART_JWT={**_cocart_settings(), "SESSION_CACHE_TTL": 300})


def _cocart_settings() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.COCART_JWT)


def login_cases(bench: Bench) -> dict[str, Callable[[], Any]]:
    import base64

    credentials = {"username": "bench", "password": "bench-pass"}
    basic = "Basic " + base64.b64encode(b"bench:bench-pass").decode()
    return {
        "simplejwt login": bench.post("/simplejwt/login/", lambda: credentials),
        "knox login": bench.post("/knox/login/", dict, HTTP_AUTHORIZATION=basic),
        "cocart_jwt login": bench.post("/cocart/login/", lambda: credentials),
    }


def refresh_cases(bench: Bench) -> dict[str, Callable[[], Any]]:
    from rest_framework_simplejwt.tokens import RefreshToken

    from cocart_jwt.models import Token

    return {
        "simplejwt refresh (rotation + blacklist)": bench.chained_refresh(
            "/simplejwt/refresh/", "refresh", str(RefreshToken.for_user(bench.user)), "refresh"
        ),
        "cocart_jwt refresh (rotation + reuse detection)": bench.chained_refresh(
            "/cocart/refresh/",
            "refresh_token",
            str(Token.objects.issue(bench.user).refresh_token),
            "refresh_token",
        ),
    }


def cached_mode_cost(bench: Bench, iterations: int, batches: int) -> list[Result]:
    """The floors: token verification, one Redis read (cached mode), one primary-key SELECT
    (strict mode), each alone."""
    from django.core.cache import caches
    from django.db import connection

    from cocart_jwt.models import Token
    from cocart_jwt.tokens import verify_access_token

    issued = Token.objects.issue(bench.user)
    token, sid = issued.access_token, issued.session.pk
    cache = caches["default"]
    cache.set("bench:floor", b"x" * 600)
    table = connection.ops.quote_name(Token._meta.db_table)

    def primary_key_select() -> Any:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s", [sid])  # noqa: S608
            return cursor.fetchone()

    floors = {
        "floor: verify_access_token": lambda: verify_access_token(token),
        "floor: one Redis GET": lambda: cache.get("bench:floor"),
        "floor: one primary-key SELECT": primary_key_select,
    }
    return measure_all(floors, iterations, batches)


def overhead_in_floors(auth: list[Result], floors: list[Result]) -> str:
    """What each mode adds to a request without authentication, in units of its floor: the
    verification and the one read it cannot avoid (a Redis GET cached, a primary-key SELECT
    strict). 1.0x would be that floor and nothing else."""
    micros = {result.name: result.micros for result in [*auth, *floors]}
    verify = micros["floor: verify_access_token"]
    lines = [
        "### Overhead over no authentication, in floors",
        "",
        "| mode | overhead µs | floor µs | overhead / floor |",
        "|---|---:|---:|---:|",
    ]
    for mode, read in (
        ("cocart_jwt cached", "floor: one Redis GET"),
        ("cocart_jwt strict", "floor: one primary-key SELECT"),
    ):
        overhead = micros[mode] - micros["no auth"]
        floor = verify + micros[read]
        lines.append(f"| {mode} | {overhead:,.1f} | {floor:,.1f} | {overhead / floor:.2f}x |")
    return "\n".join(lines) + "\n"


def report(title: str, results: list[Result], baseline: str | None) -> str:
    base = next((r.micros for r in results if r.name == baseline), None)
    lines = [
        f"### {title}",
        "",
        "| case | median µs | SQL queries | ratio to simplejwt |",
        "|---|---:|---:|---:|",
    ]
    for result in results:
        ratio = f"{result.micros / base:.2f}x" if base else "-"
        lines.append(f"| {result.name} | {result.micros:,.1f} | {result.queries} | {ratio} |")
    return "\n".join(lines) + "\n"


def machine() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()" if connection.vendor == "postgresql" else "SELECT 1")
        db_version = str(cursor.fetchone()[0]).split(",")[0]
    import django
    import jwt
    import knox
    import rest_framework
    import rest_framework_simplejwt

    return (
        f"Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs; "
        f"{db_version}; Django {django.__version__}, DRF {rest_framework.__version__}, "
        f"PyJWT {jwt.__version__}, simplejwt {rest_framework_simplejwt.__version__}, "
        f"knox {getattr(knox, '__version__', '5.x')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few iterations (a smoke run)")
    parser.add_argument("--profile", metavar="CASE", help="profile one auth case (pyinstrument)")
    args = parser.parse_args()
    import django

    django.setup()
    prepare_database()
    bench = Bench()
    iterations, batches = (50, 3) if args.quick else (2000, 7)
    auth = auth_cases(bench)
    if args.profile:
        profile(auth, args.profile, iterations)
        return
    auth_results = measure_all(auth, iterations, batches, settings_for)
    floor_results = cached_mode_cost(bench, iterations, batches)
    sections = [
        report("Authenticated request", auth_results, "simplejwt"),
        report("Floors", floor_results, None),
        overhead_in_floors(auth_results, floor_results),
        report(
            "Login",
            measure_all(login_cases(bench), iterations // 4, batches),
            "simplejwt login",
        ),
        report(
            "Refresh",
            measure_all(refresh_cases(bench), iterations // 4, batches),
            "simplejwt refresh (rotation + blacklist)",
        ),
    ]
    print(f"Machine: {machine()}\n")
    print("\n".join(sections))


def profile(cases: dict[str, Callable[[], Any]], name: str, iterations: int) -> None:
    from pyinstrument import Profiler

    wanted = {key.replace(" ", "-"): call for key, call in cases.items()}
    call = wanted[name]
    profiler = Profiler(interval=0.0001)
    with settings_for(name), profiler:
        for _ in range(iterations * 5):
            call()
    print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    main()
