"""Authentication cost per DRF request, login and refresh: this app beside simplejwt and knox.

    python bench/auth.py                 # PostgreSQL + Redis on localhost (see bench/settings.py)
    python bench/auth.py --runs 5        # five runs, interleaved; the median and spread of each
    python bench/auth.py --quick         # a smoke run: few iterations
    python bench/auth.py --profile cocart_jwt-cached   # pyinstrument profile of one case

Everything runs in one process, so the ratios compare like with like. Each case calls the DRF
view directly with a request from RequestFactory (no middleware, no network), in batches; the
report gives the median of the batches' mean time per request, the SQL queries and PostgreSQL
round trips one request makes, the ratio to simplejwt, and the performance targets. With
``--runs N`` the case groups run in turn (run 1 of each group, then run 2...) and a summary
gives each measure's median over the runs, its spread, and the targets on the median.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from bench.cases import (  # noqa: E402
    COCART_LOGIN,
    COCART_LOGIN_ALONE,
    COCART_REFRESH,
    DPOP_CACHED,
    DPOP_STRICT,
    SIMPLEJWT_REFRESH,
    Bench,
    Cases,
    auth_cases,
    context_for,
    floor_cases,
    login_cases,
    refresh_cases,
)
from bench.targets import Measures, Target, summary, targets_section  # noqa: E402

# The targets (docs/benchmarks.md). The login's budget leaves out the receivers a site
# connects to user_logged_in, Django's update_last_login included: it is judged without it.
TARGETS = [
    Target("cocart_jwt login without update_last_login / simplejwt login", 1.5),
    Target("cocart_jwt login without update_last_login / knox login", 1.2),
    Target("cocart_jwt login without update_last_login round trips", 4, count=True),
    Target("cocart_jwt refresh / simplejwt refresh", 0.4),
    Target("cocart_jwt refresh round trips", 3, count=True),
    Target("cocart_jwt strict request / simplejwt request", 0.5),
    Target("cocart_jwt strict request SQL queries", 1, count=True),
    Target("cocart_jwt cached overhead over no auth / floor (verify + Redis GET)", 1.5),
    Target("cocart_jwt cached request SQL queries", 0, count=True),
]


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
    round_trips: int | None  # None: not PostgreSQL


def count_one(call: Callable[[], Any]) -> tuple[int, int | None]:
    """The SQL queries and the PostgreSQL round trips of one call."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        with CaptureQueriesContext(connection) as captured:
            call()
        return len(captured), None
    from bench.roundtrips import round_trips

    with CaptureQueriesContext(connection) as captured, round_trips() as trips:
        call()
    return len(captured), trips.total


def measure_all(
    cases: Cases,
    iterations: int,
    batches: int,
    context_for: Callable[[str], AbstractContextManager[Any]] = lambda name: nullcontext(),
) -> list[Result]:
    """Batches interleaved across the cases (A B C, A B C...), so that the machine's drift
    (other load, disk flushes) falls on every case alike; the median batch of each case."""
    counts = {}
    for name, call in cases.items():
        with context_for(name):
            for _ in range(max(20, iterations // 10)):
                call()
            counts[name] = count_one(call)
    means: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(batches):
        for name, call in cases.items():
            with context_for(name):
                start = time.perf_counter_ns()
                for _ in range(iterations):
                    call()
                means[name].append((time.perf_counter_ns() - start) / iterations / 1000)
    return [Result(name, statistics.median(means[name]), *counts[name]) for name in cases]


def overhead_in_floors(micros: dict[str, float]) -> dict[str, tuple[float, float]]:
    """What each mode adds to a request without authentication, and its floor: what the
    verification and the one read it cannot avoid (a Redis GET cached, a primary-key SELECT
    strict) add to that request. An overhead of 1.0x its floor would be that floor and
    nothing else."""
    return {
        mode: (micros[mode] - micros["no auth"], micros[floor] - micros["no auth"])
        for mode, floor in (
            ("cocart_jwt cached", "floor: no auth + verify + one Redis GET"),
            ("cocart_jwt strict", "floor: no auth + verify + one primary-key SELECT"),
        )
    }


def overhead_section(overheads: dict[str, tuple[float, float]]) -> str:
    lines = [
        "### Overhead over no authentication, in floors",
        "",
        "| mode | overhead µs | floor µs | overhead / floor |",
        "|---|---:|---:|---:|",
    ]
    for mode, (overhead, floor) in overheads.items():
        lines.append(f"| {mode} | {overhead:,.1f} | {floor:,.1f} | {overhead / floor:.2f}x |")
    return "\n".join(lines) + "\n"


def dpop_section(micros: dict[str, float]) -> str:
    """What DPoP adds to a request beside the same mode with a Bearer token: the proof's
    checks (signature by the client's key, htm, htu, iat, ath) and the jti claimed in Redis."""
    lines = [
        "### DPoP beside Bearer",
        "",
        "| mode | Bearer µs | DPoP µs | added µs | DPoP / Bearer |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode, dpop in (("cocart_jwt strict", DPOP_STRICT), ("cocart_jwt cached", DPOP_CACHED)):
        bearer, bound = micros[mode], micros[dpop]
        lines.append(
            f"| {mode} | {bearer:,.1f} | {bound:,.1f} | {bound - bearer:,.1f} | "
            f"{bound / bearer:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def report(title: str, results: list[Result], baseline: str | None) -> str:
    base = next((r.micros for r in results if r.name == baseline), None)
    lines = [
        f"### {title}",
        "",
        "| case | median µs | SQL queries | round trips | ratio to simplejwt |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.micros / base:.2f}x" if base else "-"
        trips = "-" if r.round_trips is None else str(r.round_trips)
        lines.append(f"| {r.name} | {r.micros:,.1f} | {r.queries} | {trips} | {ratio} |")
    return "\n".join(lines) + "\n"


def measures_of(results: dict[str, Result]) -> Measures:
    """The run's ratios and counts, under the names the targets use."""
    micros = {name: result.micros for name, result in results.items()}
    overheads = overhead_in_floors(micros)
    measures = {
        "cocart_jwt strict request / simplejwt request": (
            micros["cocart_jwt strict"] / micros["simplejwt"]
        ),
        "cocart_jwt cached request / simplejwt request": (
            micros["cocart_jwt cached"] / micros["simplejwt"]
        ),
        "cocart_jwt strict overhead over no auth / floor (verify + PK SELECT)": (
            overheads["cocart_jwt strict"][0] / overheads["cocart_jwt strict"][1]
        ),
        "cocart_jwt cached overhead over no auth / floor (verify + Redis GET)": (
            overheads["cocart_jwt cached"][0] / overheads["cocart_jwt cached"][1]
        ),
        "cocart_jwt strict request SQL queries": results["cocart_jwt strict"].queries,
        "cocart_jwt cached request SQL queries": results["cocart_jwt cached"].queries,
    }
    for case, label in ((COCART_LOGIN_ALONE, "without"), (COCART_LOGIN, "with")):
        for peer in ("simplejwt", "knox"):
            measures[f"cocart_jwt login {label} update_last_login / {peer} login"] = (
                micros[case] / micros[f"{peer} login"]
            )
    measures["cocart_jwt refresh / simplejwt refresh"] = (
        micros[COCART_REFRESH] / micros[SIMPLEJWT_REFRESH]
    )
    for case, name in (
        (COCART_LOGIN_ALONE, "cocart_jwt login without update_last_login round trips"),
        (COCART_LOGIN, "cocart_jwt login with update_last_login round trips"),
        (COCART_REFRESH, "cocart_jwt refresh round trips"),
    ):
        if results[case].round_trips is not None:
            measures[name] = results[case].round_trips
    return measures


def one_run(groups: dict[str, Cases], iterations: int, batches: int) -> tuple[str, Measures]:
    """Every group measured once; the run's tables and its measures."""
    short = max(1, iterations // 5)  # a login or a refresh costs several requests
    requests = measure_all(groups["requests"], iterations, batches, context_for)
    logins = measure_all(groups["login"], short, batches, context_for)
    refreshes = measure_all(groups["refresh"], short, batches)
    every = {r.name: r for r in [*requests, *logins, *refreshes]}
    auth = [r for r in requests if not r.name.startswith("floor:")]
    floors = [r for r in requests if r.name.startswith("floor:")]
    measures = measures_of(every)
    sections = [
        report("Authenticated request", auth, "simplejwt"),
        report("Floors", floors, None),
        overhead_section(overhead_in_floors({r.name: r.micros for r in requests})),
        dpop_section({r.name: r.micros for r in requests}),
        report("Login", logins, "simplejwt login"),
        report("Refresh", refreshes, SIMPLEJWT_REFRESH),
        targets_section(TARGETS, measures),
    ]
    return "\n".join(sections), measures


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
    parser.add_argument("--runs", type=int, default=1, help="complete runs, interleaved")
    parser.add_argument("--iterations", type=int, help="requests per batch (default 1000)")
    parser.add_argument("--batches", type=int, help="batches per case and run (default 5)")
    parser.add_argument("--profile", metavar="CASE", help="profile one auth case (pyinstrument)")
    args = parser.parse_args()
    import django

    django.setup()
    prepare_database()
    bench = Bench()
    iterations, batches = (50, 3) if args.quick else (1000, 5)
    iterations, batches = args.iterations or iterations, args.batches or batches
    if args.profile:
        profile(auth_cases(bench, iterations * 5), args.profile, iterations)
        return
    groups = {
        "requests": {**auth_cases(bench, iterations), **floor_cases(bench)},
        "login": login_cases(bench),
        "refresh": refresh_cases(bench),
    }
    print(f"Machine: {machine()}\n", flush=True)
    runs = []
    for run in range(1, args.runs + 1):
        text, measures = one_run(groups, iterations, batches)
        heading = f"## Run {run} of {args.runs}\n\n" if args.runs > 1 else ""
        print(heading + text, flush=True)
        runs.append(measures)
    if args.runs > 1:
        print(summary(runs, TARGETS))


def profile(cases: Cases, name: str, iterations: int) -> None:
    from pyinstrument import Profiler

    wanted = {key.replace(" ", "-"): key for key in cases}
    case = wanted[name]
    call = cases[case]
    profiler = Profiler(interval=0.0001)
    with context_for(case), profiler:
        for _ in range(iterations * 5):
            call()
    print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    main()
