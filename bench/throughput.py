"""Requests per second under gunicorn (2 workers), loaded from another process on loopback.

    python bench/throughput.py            # 10 s per case
    python bench/throughput.py --seconds 3

Two gunicorn runs: one in strict mode, one in cached mode (SESSION_CACHE_TTL=300). Each
serves the same DRF view with no auth, simplejwt, knox and this app; a load generator of
``--clients`` threads in ``--processes`` processes keeps connections busy for ``--seconds``
per case and counts responses. Every response must be 200: anything else is reported.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")


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
    while time.monotonic() < until:
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


def run_case(port: int, name: str, authorization: str | None, args: argparse.Namespace) -> str:
    if shutil.which("wrk") and not args.python_load:
        return run_wrk(port, name, authorization, args)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(
            target=load_process,
            args=(port, f"/ping/{name}/", authorization, args.seconds, args.clients, queue),
        )
        for _ in range(args.processes)
    ]
    for process in processes:
        process.start()
    totals = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    done, failed = sum(t[0] for t in totals), sum(t[1] for t in totals)
    return f"{done / args.seconds:,.0f} req/s ({failed} non-200)"


def run_wrk(port: int, name: str, authorization: str | None, args: argparse.Namespace) -> str:
    command = [
        "wrk",
        f"-t{args.processes}",
        f"-c{args.processes * args.clients}",
        f"-d{args.seconds:g}s",
        f"http://127.0.0.1:{port}/ping/{name}/",
    ]
    if authorization:
        command[1:1] = ["-H", f"Authorization: {authorization}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    requests_per_second = float(rate.group(1)) if rate else 0.0
    return f"{requests_per_second:,.0f} req/s ({errors.group(1) if errors else 0} non-200)"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4, help="connections per load thread")
    parser.add_argument(
        "--python-load", action="store_true", help="the Python load generator, not wrk"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    credentials = tokens()
    rows = []
    for mode, ttl in (("strict", 0), ("cached", 300)):
        server, port = serve(ttl)
        try:
            names = ["none", "simplejwt", "knox", "cocart"] if ttl == 0 else ["cocart"]
            for name in names:
                label = f"cocart_jwt {mode}" if name == "cocart" else name
                rows.append(f"| {label} | {run_case(port, name, credentials[name], args)} |")
        finally:
            server.terminate()
            server.wait(10)
    tool = "wrk" if shutil.which("wrk") and not args.python_load else "the Python load generator"
    print(
        f"gunicorn, 2 sync workers; {tool}, {args.processes} threads x {args.clients} "
        f"connections, {args.seconds:g} s per case\n"
    )
    print("| case | throughput |\n|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
