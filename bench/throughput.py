"""Requests per second under gunicorn (2 workers), loaded from another process on loopback.

    python bench/throughput.py            # 10 s per case
    python bench/throughput.py --runs 5   # five runs, interleaved (4 s per case by default)
    python bench/throughput.py --seconds 3

Two gunicorn servers, both started first: one in strict mode, one in cached mode
(SESSION_CACHE_TTL=300), serving the same DRF view with no auth, simplejwt, knox and this app.
A load generator of ``--clients`` threads in ``--processes`` processes keeps connections busy
for ``--seconds`` per case and counts responses, after a short warm-up of every case. The
cases run one after another, run 1 of every case, then run 2...; each run prints its rates,
the ratios and the performance targets, and with ``--runs N`` a summary gives each ratio's
median and spread. Every response must be a 200: anything else is reported, and the script
then exits with status 1.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from bench.targets import Measures, Target, summary, targets_section  # noqa: E402

# Each load thread stops at its deadline or after this many requests, whichever comes first.
MAX_REQUESTS_PER_CLIENT = 100_000

TARGETS = [
    Target("cocart_jwt cached req/s / no auth req/s", 0.75, at_least=True),
    Target("cocart_jwt strict req/s / simplejwt req/s", 1.5, at_least=True),
]
# A measure's numerator and denominator, each a case.
RATIOS = {
    "cocart_jwt cached req/s / no auth req/s": ("cocart_jwt cached", "no auth"),
    "cocart_jwt strict req/s / simplejwt req/s": ("cocart_jwt strict", "simplejwt"),
    "cocart_jwt strict req/s / no auth req/s": ("cocart_jwt strict", "no auth"),
    "cocart_jwt cached req/s / simplejwt req/s": ("cocart_jwt cached", "simplejwt"),
    "cocart_jwt strict req/s / knox req/s": ("cocart_jwt strict", "knox"),
    "cocart_jwt cached req/s / cocart_jwt strict req/s": ("cocart_jwt cached", "cocart_jwt strict"),
}


class Case(NamedTuple):
    label: str
    mode: str  # the server: strict or cached
    path: str
    authorization: str | None


class Rate(NamedTuple):
    per_second: float
    failed: int  # responses other than 200, and connection errors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tokens() -> dict[str, str | None]:
    """Credentials of each case, made in this process against the benchmark database."""
    import django

    django.setup()
    from auth import prepare_database  # bench/auth.py
    from django.contrib.auth import get_user_model
    from knox.models import AuthToken
    from rest_framework_simplejwt.tokens import RefreshToken

    from cocart_jwt.models import Token

    prepare_database()
    user, _ = get_user_model().objects.get_or_create(username="bench-load")
    return {
        "none": None,
        "simplejwt": f"Bearer {RefreshToken.for_user(user).access_token}",
        "knox": f"Token {AuthToken.objects.create(user)[1]}",
        "cocart": f"Bearer {Token.objects.issue(user).access_token}",
    }


def client(port: int, path: str, authorization: str | None, until: float, out: list) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    done = failed = 0
    while time.monotonic() < until and done + failed < MAX_REQUESTS_PER_CLIENT:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            done += 1
            failed += response.status != 200
        except OSError:
            failed += 1
        finally:
            connection.close()
    out.append((done, failed))


def load_process(
    port: int,
    path: str,
    authorization: str | None,
    seconds: float,
    clients: int,
    queue: multiprocessing.Queue,
) -> None:
    until = time.monotonic() + seconds
    results: list = []
    threads = [
        threading.Thread(target=client, args=(port, path, authorization, until, results))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put((sum(r[0] for r in results), sum(r[1] for r in results)))


def run_case(port: int, case: Case, args: argparse.Namespace) -> Rate:
    if shutil.which("wrk") and not args.python_load:
        return run_wrk(port, case, args)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(
            target=load_process,
            args=(port, case.path, case.authorization, args.seconds, args.clients, queue),
        )
        for _ in range(args.processes)
    ]
    for process in processes:
        process.start()
    totals = [queue.get(timeout=args.seconds + 60) for _ in processes]
    for process in processes:
        process.join(10)
    done, failed = sum(t[0] for t in totals), sum(t[1] for t in totals)
    return Rate(done / args.seconds, failed)


def run_wrk(port: int, case: Case, args: argparse.Namespace) -> Rate:
    command = [
        "wrk",
        f"-t{args.processes}",
        f"-c{args.processes * args.clients}",
        f"-d{args.seconds:g}s",
        f"http://127.0.0.1:{port}{case.path}",
    ]
    if case.authorization:
        command[1:1] = ["-H", f"Authorization: {case.authorization}"]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=args.seconds + 60
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    failed = int(errors.group(1)) if errors else 0
    failed += sum(int(n) for n in sockets.groups()) if sockets else 0
    return Rate(float(rate.group(1)) if rate else 0.0, failed)


def serve(ttl: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "BENCH_SESSION_CACHE_TTL": str(ttl), "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "bench.wsgi",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, port
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("gunicorn did not start")


def cases(credentials: dict[str, str | None]) -> list[Case]:
    def case(label: str, mode: str, name: str) -> Case:
        return Case(label, mode, f"/ping/{name}/", credentials[name])

    return [
        case("no auth", "strict", "none"),
        case("simplejwt", "strict", "simplejwt"),
        case("knox", "strict", "knox"),
        case("cocart_jwt strict", "strict", "cocart"),
        case("cocart_jwt cached", "cached", "cocart"),
    ]


def one_run(
    ports: dict[str, int], every: list[Case], args: argparse.Namespace
) -> tuple[str, Measures, int]:
    """Every case once; the run's table, its ratios and how many responses failed."""
    rates = {case.label: run_case(ports[case.mode], case, args) for case in every}
    rows = [
        f"| {label} | {rate.per_second:,.0f} | {rate.failed} |" for label, rate in rates.items()
    ]
    measures = {
        name: rates[top].per_second / rates[bottom].per_second if rates[bottom].per_second else 0.0
        for name, (top, bottom) in RATIOS.items()
    }
    ratio_rows = [f"| {name} | {value:.2f}x |" for name, value in measures.items()]
    text = "\n".join(
        [
            "| case | req/s | non-200 |\n|---|---:|---:|",
            *rows,
            "",
            "| ratio | value |\n|---|---:|",
            *ratio_rows,
            "",
            targets_section(TARGETS, measures),
        ]
    )
    return text, measures, sum(rate.failed for rate in rates.values())


def warm_up(ports: dict[str, int], every: list[Case], args: argparse.Namespace) -> int:
    """A short load of every case first, not counted: each worker imports the views, opens
    its connections and fills its caches on its first requests. Returns the failures."""
    short = argparse.Namespace(**{**vars(args), "seconds": min(2.0, args.seconds)})
    return sum(run_case(ports[case.mode], case, short).failed for case in every)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="complete runs, interleaved")
    parser.add_argument("--seconds", type=float, help="per case and run (10, or 4 with --runs)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4, help="connections per load thread")
    parser.add_argument(
        "--python-load", action="store_true", help="the Python load generator, not wrk"
    )
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 10.0 if args.runs == 1 else 4.0
    sys.path.insert(0, str(ROOT / "bench"))
    every = cases(tokens())
    tool = "wrk" if shutil.which("wrk") and not args.python_load else "the Python load generator"
    print(
        f"gunicorn, 2 sync workers per server; {tool}, {args.processes} threads x {args.clients} "
        f"connections, {args.seconds:g} s per case\n",
        flush=True,
    )
    servers: list[subprocess.Popen] = []
    runs: list[Measures] = []
    failed = 0
    try:
        ports = {}
        for mode, ttl in (("strict", 0), ("cached", 300)):
            server, ports[mode] = serve(ttl)
            servers.append(server)
        failed += warm_up(ports, every, args)
        for run in range(1, args.runs + 1):
            text, measures, failures = one_run(ports, every, args)
            heading = f"## Run {run} of {args.runs}\n\n" if args.runs > 1 else ""
            print(heading + text, flush=True)
            runs.append(measures)
            failed += failures
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
    if args.runs > 1:
        print(summary(runs, TARGETS))
    if failed:
        raise SystemExit(f"{failed} responses were not a 200")


if __name__ == "__main__":
    main()
