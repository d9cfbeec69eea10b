"""Load check of the example store under gunicorn, PostgreSQL and Redis, on loopback only.

    python bench/load.py                       # both modes, 120 s each
    python bench/load.py --seconds 60 --mode cached

For each verification mode (strict: ``SESSION_CACHE_TTL=0``; cached: ``300``) it starts
gunicorn with the example project's settings and ``example_project/gunicorn.conf.py`` (DEBUG
off, ``--workers`` sync workers) on PostgreSQL (``--database-url``, created if missing) and
Redis (``--redis-url``, a database of its own: it is flushed before each mode), migrates,
seeds, and runs mixed traffic for ``--seconds`` from ``--processes`` load processes:

- shoppers (``--users`` threads per process, each with shoppers of its own) log in, browse,
  fill the cart, refresh, sometimes check out, and end their visit with a logout, a
  logout-all, a session deleted from a second device, a replayed (spent) refresh token, or
  by simply leaving;
- every revoked session's access and refresh tokens are tried again at once and then, until
  the end, by a prober thread in each process: after a revocation has answered, every later
  request with those tokens must be refused (401);
- one more process hammers the login (wrong password) and the refresh endpoint from one
  client address each, to show that the rate limits (defaults: 5/min and 10/min per IP)
  hold across gunicorn workers.

Rate limits stay at their defaults. The store trusts 127.0.0.1 as a proxy
(``COCART_JWT_TRUSTED_PROXIES``) and every visit sends its own ``X-Forwarded-For`` address, as
distinct customers behind a load balancer would; the hammer keeps one address. Passwords are
hashed with MD5 (as in bench/settings.py) so that logins measure this app, not PBKDF2;
``--real-hashing`` keeps Django's default.

Checks, each printed and reflected in the exit status: no 5xx and no connection error; no
revoked token accepted; the hammered limits let through at most limit x windows; no
unexpected status; no traceback, worker timeout or token in the server's log.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cocart_jwt_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
SHOPPER_PASSWORD = "shopper-password-123"
USERS_PER_THREAD = 3
LOGIN_LIMIT, REFRESH_LIMIT, WINDOW = 5, 10, 60  # the app's defaults: per IP, per minute
# Stocked to a million before each mode: checkouts never run out.
PRODUCTS = ["sticker-pack", "notebook", "coffee-mug"]
JWT_PATTERN = re.compile(r"eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]{10,}")
ENDINGS = [
    ("logout", 30),
    ("logout_all", 10),
    ("session_deleted", 15),
    ("reuse", 15),
    ("leave", 30),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the server --------------------------------------------------------------------------


def ensure_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    from example_project.env import parse_database_url

    db = parse_database_url(url)
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
            return
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


class Server:
    def __init__(self, args: argparse.Namespace, ttl: int, log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "COCART_JWT_"))},
            "DJANGO_SETTINGS_MODULE": "example_project.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "COCART_JWT_SIGNING_KEY": secrets.token_urlsafe(48),
            "COCART_JWT_SESSION_CACHE_TTL": str(ttl),
            "COCART_JWT_TRUSTED_PROXIES": "127.0.0.1",
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(args.workers),
            "PYTHONUNBUFFERED": "1",
        }
        if not args.real_hashing:
            self.env["DJANGO_PASSWORD_HASHERS"] = "django.contrib.auth.hashers.MD5PasswordHasher"
        self.process: subprocess.Popen[bytes] | None = None

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True, timeout=300
        )

    def start(self, shoppers: int) -> None:
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("seed_store", "--shoppers", str(shoppers), "--stock", "1000000")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "example_project/gunicorn.conf.py"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/api/products/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"gunicorn did not start; see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- the load ----------------------------------------------------------------------------


@dataclass
class Stats:
    """What one process saw; merged across processes at the end."""

    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    unexpected: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    endings: Counter[str] = field(default_factory=Counter)
    revoked_probes: Counter[str] = field(default_factory=Counter)
    revoked_accepted: int = 0
    hammer: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    hammer_headers_ok: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, label: str, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses[label][status] += 1
            self.latencies[label].append(seconds)

    def surprise(self, what: str) -> None:
        with self.lock:
            self.unexpected[what.split(":")[0]] += 1
            if len(self.samples) < 20:
                self.samples.append(what)

    def export(self) -> dict[str, Any]:
        return {
            "statuses": {k: dict(v) for k, v in self.statuses.items()},
            "latencies": dict(self.latencies),
            "unexpected": dict(self.unexpected),
            "samples": self.samples,
            "endings": dict(self.endings),
            "revoked_probes": dict(self.revoked_probes),
            "revoked_accepted": self.revoked_accepted,
            "hammer": dict(self.hammer),
            "hammer_headers_ok": self.hammer_headers_ok,
        }


class Visitor:
    """One shopper's thread: visits, one after another, each from its own client address."""

    def __init__(
        self,
        base: str,
        stats: Stats,
        usernames: list[str],
        ips: Any,
        revoked: list[dict[str, Any]],
        revoked_lock: threading.Lock,
        rng: random.Random,
    ) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        self.stats = stats
        self.usernames = usernames
        self.ips = ips
        self.revoked = revoked
        self.revoked_lock = revoked_lock
        self.rng = rng
        self.ip = ""

    def call(
        self,
        label: str,
        method: str,
        path: str,
        expected: tuple[int, ...],
        token: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response | None:
        headers = {"X-Forwarded-For": self.ip}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        start = time.perf_counter()
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            self.stats.record(label, 0, time.perf_counter() - start)
            self.stats.surprise(f"{label}: connection error {type(exc).__name__}")
            return None
        self.stats.record(label, response.status_code, time.perf_counter() - start)
        if response.status_code not in expected:
            self.stats.surprise(f"{label}: {response.status_code} {response.text[:120]}")
        return response

    def login(self, username: str) -> dict[str, Any] | None:
        response = self.call(
            "login",
            "POST",
            "/api/auth/login/",
            (200,),
            json={"username": username, "password": SHOPPER_PASSWORD},
        )
        return response.json() if response is not None and response.status_code == 200 else None

    def refresh(self, refresh_token: str) -> dict[str, Any] | None:
        response = self.call(
            "refresh", "POST", "/api/auth/refresh/", (200,), json={"refresh_token": refresh_token}
        )
        return response.json() if response is not None and response.status_code == 200 else None

    def visit(self) -> None:
        self.ip = next(self.ips)
        username = self.rng.choice(self.usernames)
        pair = self.login(username)
        if pair is None:
            return
        access = pair["access_token"]
        self.call("products", "GET", "/api/products/", (200,))
        slug = self.rng.choice(PRODUCTS)
        self.call("product", "GET", f"/api/products/{slug}/", (200,), token=access)
        line = self.call(
            "cart add", "POST", "/api/cart/items/", (200, 201), access, json={"product": slug}
        )
        cart = self.call("cart", "GET", "/api/cart/", (200,), access)
        # Carts outlive visits: check out now and then, and always before one grows big.
        full = cart is not None and cart.status_code == 200 and cart.json()["item_count"] > 20
        if line is not None and line.status_code in (200, 201) and self.rng.random() < 0.3:
            self.call(
                "cart change",
                "PATCH",
                f"/api/cart/items/{line.json()['id']}/",
                (200,),
                access,
                json={"quantity": 1},
            )
        if self.rng.random() < 0.5:
            renewed = self.refresh(pair["refresh_token"])
            if renewed is None:
                return
            pair, access = renewed, renewed["access_token"]
            self.call("cart", "GET", "/api/cart/", (200,), access)
        if full or self.rng.random() < 0.25:
            self.call("checkout", "POST", "/api/orders/", (201,), access)
            self.call("orders", "GET", "/api/orders/", (200,), access)
        self.end(username, pair)

    def end(self, username: str, pair: dict[str, Any]) -> None:
        names, weights = zip(*ENDINGS, strict=True)
        ending = self.rng.choices(names, weights)[0]
        self.stats.endings[ending] += 1
        revoked: list[dict[str, Any]] = []
        if ending == "logout":
            response = self.call(
                "logout", "POST", "/api/auth/logout/", (204,), pair["access_token"]
            )
            if response is not None and response.status_code == 204:
                revoked = [pair]
        elif ending in ("logout_all", "session_deleted"):
            self.ip = next(self.ips)  # a second device
            other = self.login(username)
            if other is None:
                return
            if ending == "logout_all":
                response = self.call(
                    "logout all", "POST", "/api/auth/logout/all/", (204,), other["access_token"]
                )
                revoked = [pair, other]
            else:
                response = self.call(
                    "session delete",
                    "DELETE",
                    f"/api/auth/sessions/{pair['sid']}/",
                    (204,),
                    other["access_token"],
                )
                revoked = [pair]
            if response is None or response.status_code != 204:
                return
        elif ending == "reuse":
            renewed = self.refresh(pair["refresh_token"])
            if renewed is None:
                return
            replay = self.call(
                "refresh reuse",
                "POST",
                "/api/auth/refresh/",
                (401,),
                json={"refresh_token": pair["refresh_token"]},
            )
            if replay is None or replay.status_code != 401:
                return
            revoked = [pair, renewed]
        for tokens in revoked:
            # The revocation has answered: from now on these must be refused, everywhere.
            self.probe(tokens, "at once")
            with self.revoked_lock:
                self.revoked.append(tokens)

    def probe(self, tokens: dict[str, Any], when: str) -> None:
        """One request with a revoked session's token: anything but 401 is a failure."""
        self.ip = next(self.ips)
        if self.rng.random() < 0.8:
            kind = "access"
            response = self.call(
                f"revoked {kind}", "GET", "/api/cart/", (401,), tokens["access_token"]
            )
        else:
            kind = "refresh"
            response = self.call(
                f"revoked {kind}",
                "POST",
                "/api/auth/refresh/",
                (401,),
                json={"refresh_token": tokens["refresh_token"]},
            )
        if response is None:
            return
        with self.stats.lock:
            self.stats.revoked_probes[f"{kind} {when}"] += 1
            if response.status_code == 200:
                self.stats.revoked_accepted += 1


def address_stream(process_index: int) -> Any:
    """Client addresses 10.P.x.y, one per visit: distinct customers, as a proxy reports them."""
    lock = threading.Lock()
    counter = iter(range(1, 1 << 24))

    class Stream:
        def __next__(self) -> str:
            with lock:
                n = next(counter)
            return f"10.{process_index}.{(n >> 8) & 255}.{n & 255}"

    return Stream()


def load_process(
    index: int, base: str, seconds: float, threads: int, queue: multiprocessing.Queue
) -> None:
    stats = Stats()
    deadline = time.monotonic() + seconds
    ips = address_stream(index + 1)
    revoked: list[dict[str, Any]] = []
    revoked_lock = threading.Lock()

    def shopper(thread: int) -> None:
        first = (index * threads + thread) * USERS_PER_THREAD + 1
        usernames = [f"shopper{n:04d}" for n in range(first, first + USERS_PER_THREAD)]
        rng = random.Random(index * 1000 + thread)  # noqa: S311 - traffic mix, not secrets
        visitor = Visitor(base, stats, usernames, ips, revoked, revoked_lock, rng)
        while time.monotonic() < deadline:
            visitor.visit()

    def prober() -> None:
        rng = random.Random(-index - 1)  # noqa: S311 - traffic mix, not secrets
        visitor = Visitor(base, stats, [], ips, revoked, revoked_lock, rng)
        while time.monotonic() < deadline:
            with revoked_lock:
                tokens = rng.choice(revoked) if revoked else None
            if tokens is None:
                time.sleep(0.1)
                continue
            visitor.probe(tokens, "later")
            time.sleep(0.01)

    workers = [threading.Thread(target=shopper, args=(t,)) for t in range(threads)]
    workers.append(threading.Thread(target=prober))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    queue.put(stats.export())


def hammer_process(base: str, seconds: float, queue: multiprocessing.Queue) -> None:
    """Hammer login and refresh from one client address each, two threads per endpoint."""
    stats = Stats()
    deadline = time.monotonic() + seconds
    started = time.time()

    def hammer(name: str, path: str, body: dict[str, str], ip: str) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    response = http.post(path, json=body, headers={"X-Forwarded-For": ip})
                except httpx.HTTPError as exc:
                    stats.record(f"hammer {name}", 0, time.perf_counter() - start)
                    stats.surprise(f"hammer {name}: connection error {type(exc).__name__}")
                    continue
                stats.record(f"hammer {name}", response.status_code, time.perf_counter() - start)
                if response.status_code == 429:
                    if not (
                        int(response.headers.get("Retry-After", "0")) >= 1
                        and response.headers.get("X-RateLimit-Remaining") == "0"
                    ):
                        stats.hammer_headers_ok = False
                elif response.status_code == 401:
                    with stats.lock:
                        reset = int(response.headers.get("X-RateLimit-Reset", "0"))
                        stats.hammer[name].append((int(time.time() - started), reset))
                else:
                    stats.surprise(f"hammer {name}: {response.status_code}")
                time.sleep(0.02)

    targets = [
        (
            "login",
            "/api/auth/login/",
            {"username": "shopper0001", "password": "wrong"},
            "203.0.113.7",
        ),
        ("refresh", "/api/auth/refresh/", {"refresh_token": "x" * 43}, "203.0.113.8"),
    ]
    threads = [threading.Thread(target=hammer, args=target) for target in targets for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put(stats.export())


# -- the report --------------------------------------------------------------------------


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {
        "statuses": defaultdict(Counter),
        "latencies": defaultdict(list),
        "unexpected": Counter(),
        "samples": [],
        "endings": Counter(),
        "revoked_probes": Counter(),
        "revoked_accepted": 0,
        "hammer": defaultdict(list),
        "hammer_headers_ok": True,
    }
    for part in parts:
        for label, counts in part["statuses"].items():
            total["statuses"][label].update({int(k): v for k, v in counts.items()})
        for label, values in part["latencies"].items():
            total["latencies"][label].extend(values)
        total["unexpected"].update(part["unexpected"])
        total["samples"].extend(part["samples"])
        total["endings"].update(part["endings"])
        total["revoked_probes"].update(part["revoked_probes"])
        total["revoked_accepted"] += part["revoked_accepted"]
        for name, hits in part["hammer"].items():
            total["hammer"][name].extend(hits)
        total["hammer_headers_ok"] &= part["hammer_headers_ok"]
    return total


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def windows_of(hits: list[tuple[int, int]]) -> list[int]:
    """Allowed attempts per rate-limit window (by the window's end time, within 2 s)."""
    counts: list[list[int]] = []
    for _, reset in sorted(hits, key=lambda hit: hit[1]):
        if counts and reset - counts[-1][0] <= 2:
            counts[-1][1] += 1
        else:
            counts.append([reset, 1])
    return [count for _, count in counts]


def report(mode: str, ttl: int, args: argparse.Namespace, data: dict[str, Any], log: str) -> bool:
    statuses = data["statuses"]
    lines = [
        "",
        f"## {mode} mode (SESSION_CACHE_TTL={ttl}): gunicorn {args.workers} sync workers, "
        f"PostgreSQL + Redis, {args.seconds:g} s, {args.processes} load processes x "
        f"{args.users} shoppers + 1 prober each, 1 hammer process",
        "",
        "| request | count | 2xx | 401 | 409 | 429 | other 4xx | 5xx | conn. errors "
        "| p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    totals: Counter[str] = Counter()
    for label in sorted(statuses):
        counts = statuses[label]
        row = {
            "count": sum(counts.values()),
            "2xx": sum(v for k, v in counts.items() if 200 <= k < 300),
            "401": counts.get(401, 0),
            "409": counts.get(409, 0),
            "429": counts.get(429, 0),
            "4xx": sum(v for k, v in counts.items() if 400 <= k < 500 and k not in (401, 409, 429)),
            "5xx": sum(v for k, v in counts.items() if k >= 500),
            "errors": counts.get(0, 0),
        }
        totals.update(row)
        values = data["latencies"][label]
        lines.append(
            f"| {label} | {row['count']:,} | {row['2xx']:,} | {row['401']:,} | {row['409']:,} "
            f"| {row['429']:,} | {row['4xx']:,} | {row['5xx']:,} | {row['errors']:,} "
            f"| {percentile(values, 0.5):.1f} | {percentile(values, 0.95):.1f} "
            f"| {percentile(values, 0.99):.1f} |"
        )
    lines.append(
        f"| **total** | {totals['count']:,} | {totals['2xx']:,} | {totals['401']:,} "
        f"| {totals['409']:,} | {totals['429']:,} | {totals['4xx']:,} | {totals['5xx']:,} "
        f"| {totals['errors']:,} | | | |"
    )
    rate = totals["count"] / args.seconds
    logins = sum(statuses["login"].values()) / args.seconds
    refreshes = sum(statuses["refresh"].values()) / args.seconds
    endings = data["endings"]
    revocations = sum(
        endings[name] for name in ("logout", "logout_all", "session_deleted", "reuse")
    )
    lines += [
        "",
        f"Throughput: {rate:,.0f} requests/s overall; {logins:,.1f} logins/s and "
        f"{refreshes:,.1f} refreshes/s from shoppers.",
        f"Visits ended by: {', '.join(f'{k} {v:,}' for k, v in sorted(endings.items()))} "
        f"({revocations:,} revocations).",
        f"Requests with a revoked session's token: "
        f"{', '.join(f'{k} {v:,}' for k, v in sorted(data['revoked_probes'].items()))}; "
        f"accepted: {data['revoked_accepted']}.",
    ]
    held = True
    for name, limit in (("login", LOGIN_LIMIT), ("refresh", REFRESH_LIMIT)):
        hits = data["hammer"].get(name, [])
        attempts = sum(statuses.get(f"hammer {name}", Counter()).values())
        refused = statuses.get(f"hammer {name}", Counter()).get(429, 0)
        bound = limit * (int(args.seconds // WINDOW) + 1)
        per_window = windows_of(hits)
        ok = len(hits) <= bound and all(count <= limit for count in per_window)
        held &= ok
        lines.append(
            f"Hammered {name} ({limit}/min from one address, 2 threads): {attempts:,} attempts, "
            f"{len(hits)} let through (at most {bound} allowed; per window: {per_window}), "
            f"{refused:,} refused with 429."
        )
    tracebacks = log.count("Traceback")
    timeouts = log.count("WORKER TIMEOUT")
    server_errors = len(re.findall(r'" 5\d\d ', log))
    leaked = len(JWT_PATTERN.findall(log))
    lines.append(
        f"Server log: {tracebacks} tracebacks, {timeouts} worker timeouts, "
        f"{server_errors} 5xx access-log lines, {leaked} tokens."
    )
    checks = {
        "no 5xx": totals["5xx"] == 0 and server_errors == 0,
        "no connection error": totals["errors"] == 0,
        "no revoked token accepted": data["revoked_accepted"] == 0,
        "rate limits held": held and data["hammer_headers_ok"],
        "no unexpected status": not data["unexpected"],
        "clean server log": tracebacks == 0 and timeouts == 0 and leaked == 0,
    }
    lines.append(
        "Checks: " + "; ".join(f"{name}: {'PASS' if ok else 'FAIL'}" for name, ok in checks.items())
    )
    if data["unexpected"]:
        lines.append(f"Unexpected: {dict(data['unexpected'])}; samples: {data['samples'][:10]}")
    print("\n".join(lines), flush=True)
    return all(checks.values())


def run_mode(mode: str, ttl: int, args: argparse.Namespace) -> bool:
    flush_redis(args.redis_url)
    log_path = Path(args.log_dir) / f"load-{mode}.log"
    server = Server(args, ttl, log_path)
    print(f"[{mode}] seeding and starting gunicorn on {server.base} (log: {log_path})", flush=True)
    server.start(shoppers=args.processes * args.users * USERS_PER_THREAD)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(
            target=load_process, args=(i, server.base, args.seconds, args.users, queue)
        )
        for i in range(args.processes)
    ]
    processes.append(
        multiprocessing.Process(target=hammer_process, args=(server.base, args.seconds, queue))
    )
    try:
        for process in processes:
            process.start()
        print(f"[{mode}] {len(processes)} load processes for {args.seconds:g} s", flush=True)
        parts = [queue.get(timeout=args.seconds + 120) for _ in processes]
        for process in processes:
            process.join(timeout=30)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        server.stop()
    data = merge(parts)
    if args.json:
        Path(args.log_dir, f"load-{mode}.json").write_text(
            json.dumps(
                {
                    "statuses": {k: dict(v) for k, v in data["statuses"].items()},
                    "p50_ms": {
                        k: statistics.median(v) * 1000 for k, v in data["latencies"].items() if v
                    },
                    "revoked_probes": dict(data["revoked_probes"]),
                    "revoked_accepted": data["revoked_accepted"],
                    "endings": dict(data["endings"]),
                },
                indent=2,
            )
        )
    return report(mode, ttl, args, data, log_path.read_text(errors="replace"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120, help="per mode (default 120)")
    parser.add_argument("--mode", choices=["strict", "cached", "both"], default="both")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument("--processes", type=int, default=3, help="load processes (default 3)")
    parser.add_argument("--users", type=int, default=6, help="shopper threads per process")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--real-hashing", action="store_true", help="PBKDF2, not MD5")
    parser.add_argument("--log-dir", default=tempfile.gettempdir())
    parser.add_argument("--json", action="store_true", help="also write load-<mode>.json")
    args = parser.parse_args()
    ensure_database(args.database_url)
    modes = [("strict", 0), ("cached", 300)]
    if args.mode != "both":
        modes = [m for m in modes if m[0] == args.mode]
    results = [run_mode(mode, ttl, args) for mode, ttl in modes]
    print("\nALL CHECKS PASSED" if all(results) else "\nSOME CHECKS FAILED", flush=True)
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
