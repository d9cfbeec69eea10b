"""The admin (and the hot paths) at a million sessions, on a database of its own.

    python bench/scale.py                       # loads once (about 35 s), then measures
    python bench/scale.py --sessions 100000     # a smaller data set for development
    python bench/scale.py --reload              # drop the loaded rows and load again

Loads, with ``INSERT ... SELECT ... generate_series`` into PostgreSQL (default database
``cocart_jwt_scale``; ``--database-url`` or ``BENCH_SCALE_DATABASE_URL``): ``--users`` users
(10,000), ``--sessions`` sessions (1,000,000) spread over them and over 90 days, a fifth
revoked (half of those by an administrator), a third expired, one refresh token per
refreshable session, and ``--log-entries`` ``django_admin_log`` rows (100,000), one per
session an administrator revoked. A data set already loaded with the same sizes is reused.

Then prints, as the median of ``--runs`` runs, the admin's token list (first page, page 50,
page 500, search by username, the status and user filters, a session's view page) through
Django's test client signed in as a superuser, the strict authentication of one request and a
login under the per-user cap for reference, ``jwt cleanup``'s first batches (rolled back), and
the ``EXPLAIN (ANALYZE, BUFFERS)`` of each admin query on the token and log tables. Every SQL
statement is bounded by ``--statement-timeout``; the whole run by the runs asked for.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cocart_jwt_scale"
PASSWORD = "scale-pass"
ADMIN = "scale-admin"
MARKER = "bench_scale_loaded"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- loading -------------------------------------------------------------------------------


def loaded_sizes(cursor: Any) -> tuple[int, int, int] | None:
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {MARKER} (users int, sessions int, logs int)")
    cursor.execute(f"SELECT users, sessions, logs FROM {MARKER}")
    row = cursor.fetchone()
    return tuple(row) if row else None  # type: ignore[return-value]


def load(users: int, sessions: int, logs: int, reload: bool) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    with connection.cursor() as cursor:
        if not reload and loaded_sizes(cursor) == (users, sessions, logs):
            say(f"Reusing the loaded data: {users:,} users, {sessions:,} sessions.")
            return
        say("Loading...")
        started = time.monotonic()
        cursor.execute(
            "TRUNCATE cocart_jwt_token, cocart_jwt_refreshtoken, cocart_jwt_loginlink, "
            f"django_admin_log, {MARKER}"
        )
        cursor.execute("DELETE FROM auth_user WHERE username LIKE 'user%%'")
        user_model = get_user_model()
        admins = [
            user_model.objects.filter(username=name).first()
            or user_model.objects.create_superuser(name, f"{name}@example.com", PASSWORD)
            for name in (ADMIN, "ops-anna", "ops-ben", "ops-chloe", "ops-dan")
        ]
        insert_users(cursor, users, make_password(PASSWORD))
        insert_sessions(cursor, users, sessions)
        say(f"  sessions inserted ({time.monotonic() - started:.0f} s)")
        insert_refresh_tokens(cursor)
        insert_log_entries(cursor, logs, [admin.pk for admin in admins])
        cursor.execute(f"INSERT INTO {MARKER} VALUES (%s, %s, %s)", [users, sessions, logs])
        say(f"  rows inserted ({time.monotonic() - started:.0f} s); VACUUM ANALYZE...")
    with connection.cursor() as cursor:
        for table in ("auth_user", "cocart_jwt_token", "cocart_jwt_refreshtoken"):
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("VACUUM ANALYZE django_admin_log")
    say(f"Loaded in {time.monotonic() - started:.0f} s.")


def insert_users(cursor: Any, users: int, password: str) -> None:
    cursor.execute(
        """
        INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                               is_staff, is_active, date_joined)
        SELECT %s, false, 'user' || lpad(n::text, 5, '0'), '', '',
               'user' || lpad(n::text, 5, '0') || '@example.com', false, true,
               now() - interval '400 days'
        FROM generate_series(1, %s) AS n
        """,
        [password, users],
    )


def insert_sessions(cursor: Any, users: int, sessions: int) -> None:
    """Session n: created at an even pace over 90 days (n = 1 the oldest), every 5th revoked
    (every 10th by an administrator), every 3rd expired; a quarter without description."""
    cursor.execute(
        """
        WITH owners AS (
            SELECT row_number() OVER (ORDER BY id) - 1 AS k, id FROM auth_user
            WHERE username LIKE 'user%%'
        ), s AS (
            SELECT n, now() - (%(sessions)s - n) * (interval '90 days' / %(sessions)s)
                          - (n %% 60) * interval '1 second' AS created
            FROM generate_series(1, %(sessions)s) AS n
        )
        INSERT INTO cocart_jwt_token (id, user_id, created_at, expires_at, last_used_at,
            revoked_at, revoke_reason, ip, user_agent, description, refreshable, claims,
            password_fingerprint, bind_on_first_use)
        SELECT left(translate(encode(sha256(('scale-' || n)::bytea), 'base64'), '+/', '-_'), 22),
               owners.id, created,
               CASE WHEN n %% 3 = 0 THEN least(created + interval '1 day',
                                                 now() - interval '1 minute')
                    ELSE created + interval '120 days' END,
               created + (n %% 97) * interval '1 minute',
               CASE WHEN n %% 5 = 0 THEN least(created + interval '1 hour', now()) END,
               CASE WHEN n %% 10 = 0 THEN 'admin' WHEN n %% 5 = 0 THEN 'logout' ELSE '' END,
               '10.0.0.0'::inet + (n %% 65536),
               'Mozilla/5.0 (scale bench ' || (n %% 50) || ')',
               CASE n %% 4 WHEN 0 THEN '' WHEN 1 THEN 'laptop ' || (n %% 997)
                           WHEN 2 THEN 'phone ' || (n %% 991) ELSE 'CI deploy key ' || (n %% 101)
               END,
               n %% 2 = 0, '{}'::jsonb, '', false
        FROM s JOIN owners ON owners.k = s.n %% %(users)s
        """,
        {"sessions": sessions, "users": users},
    )


def insert_refresh_tokens(cursor: Any) -> None:
    cursor.execute(
        """
        INSERT INTO cocart_jwt_refreshtoken (session_id, token_hash, created_at, used_at)
        SELECT id, encode(sha256(('refresh-' || id)::bytea), 'hex'), created_at, NULL
        FROM cocart_jwt_token WHERE refreshable
        """
    )


def insert_log_entries(cursor: Any, logs: int, admin_ids: list[int]) -> None:
    """One "Revoked" change per session revoked by an administrator (``--log-entries`` of
    them at most), by one of the five administrators, at the revocation."""
    from django.contrib.contenttypes.models import ContentType

    from cocart_jwt.models import Token

    content_type = ContentType.objects.get_for_model(Token)
    cursor.execute(
        """
        INSERT INTO django_admin_log (action_time, user_id, content_type_id, object_id,
                                      object_repr, action_flag, change_message)
        SELECT t.revoked_at, (%(admins)s::int[])[1 + (row_number() OVER () %% 5)],
               %(content_type)s, t.id, 'Token ' || t.id, 2,
               '[{"changed": {"fields": ["revoked"]}}]'
        FROM (SELECT id, revoked_at FROM cocart_jwt_token WHERE revoke_reason = 'admin'
              ORDER BY created_at DESC LIMIT %(logs)s) AS t
        """,
        {"admins": admin_ids, "content_type": content_type.pk, "logs": logs},
    )


# -- measuring -----------------------------------------------------------------------------


def median_ms(call: Callable[[], Any], runs: int) -> float:
    call()  # warm: compiled queries, templates, the database's cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def admin_cases(sessions: int) -> dict[str, str]:
    from django.contrib.auth import get_user_model

    from cocart_jwt.models import Token

    pages = max(1, sessions // 100)  # 100 rows a page

    user = get_user_model().objects.get(username="user04242")
    session = Token.objects.filter(revoke_reason="admin").order_by("-created_at").first()
    base = "/admin/cocart_jwt/token/"
    cases = {
        "list, first page": base,
        f"list, page {min(50, pages)}": f"{base}?p={min(50, pages)}",
        f"list, page {min(500, pages)}": f"{base}?p={min(500, pages)}",
        "search by username": f"{base}?q=user04242",
        "search by email": f"{base}?q=user04242%40example.com",
        "status filter: valid": f"{base}?status=valid",
        "status filter: revoked": f"{base}?status=revoked",
        "user filter": f"{base}?user__id__exact={user.pk}",
    }
    if session is not None:
        cases["view page (revoked by an administrator)"] = f"{base}{session.pk}/change/"
    return cases


def measure_admin(sessions: int, runs: int, explain: bool) -> list[str]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(get_user_model().objects.get(username=ADMIN))
    lines = ["| admin page | median ms | SQL queries |", "|---|---:|---:|"]
    plans: list[str] = []
    for name, url in admin_cases(sessions).items():

        def get(url: str = url) -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

        try:
            millis = median_ms(get, runs)
        except Exception as error:  # a statement timeout: say so, go on
            connection.close()
            lines.append(f"| {name} | failed: {str(error).splitlines()[0][:60]} | - |")
            continue
        with CaptureQueriesContext(connection) as captured:
            get()
        lines.append(f"| {name} | {millis:,.1f} | {len(captured)} |")
        if explain:
            plans += explained(name, [q["sql"] for q in captured.captured_queries])
    return lines + [""] + plans


def explained(name: str, statements: list[str]) -> list[str]:
    """EXPLAIN ANALYZE of the statements that read the token or the log table."""
    from django.db import connection

    out = []
    for sql in statements:
        if not sql.startswith("SELECT") or not (
            "cocart_jwt_token" in sql or "django_admin_log" in sql
        ):
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            plan = [row[0] for row in cursor.fetchall()]
        out += [f"-- {name}: {shorten(sql)}", *plan, ""]
    return out


def shorten(sql: str) -> str:
    return sql if len(sql) <= 240 else sql[:160] + " ... " + sql[-75:]


def measure_reference(runs: int) -> list[str]:
    """Strict authentication of one request, and a login under the per-user cap of 10."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import override_settings
    from django.urls import resolve
    from rest_framework.test import APIRequestFactory

    from cocart_jwt.models import Token

    factory = APIRequestFactory()
    user = get_user_model().objects.get(username="user00042")
    access = Token.objects.issue(user).access_token
    ping, login = resolve("/ping/cocart/").func, resolve("/cocart/login/").func

    def authenticate() -> None:
        for _ in range(20):
            request = factory.get("/ping/cocart/", HTTP_AUTHORIZATION=f"Bearer {access}")
            assert ping(request).status_code == 200

    credentials = {"username": "user00043", "password": PASSWORD}

    def log_in() -> None:
        response = login(factory.post("/cocart/login/", credentials, format="json"))
        assert response.status_code == 200, response.status_code

    capped = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": 10}
    with override_settings(COCART_JWT=capped):
        login_ms = median_ms(log_in, runs * 4)
    return [
        "| reference | median ms |",
        "|---|---:|",
        f"| strict authentication, one request | {median_ms(authenticate, runs) / 20:,.2f} |",
        f"| login, capped at 10 sessions per user | {login_ms:,.2f} |",
    ]


class Enough(Exception):
    pass


def measure_cleanup(batches: int) -> list[str]:
    """``jwt cleanup``'s first batches of 1,000 (no grace), rolled back: the data stays."""
    from django.db import transaction

    from cocart_jwt.cleanup import Batch, cleanup
    from cocart_jwt.utils import now

    seconds: list[float] = []

    def on_batch(batch: Batch) -> None:
        seconds.append(batch.seconds)
        if len(seconds) >= batches:
            raise Enough

    started = time.monotonic()
    try:
        with transaction.atomic():
            try:
                cleanup(now(), 1000, on_batch)
            finally:
                transaction.set_rollback(True)
    except Enough:
        pass
    total = time.monotonic() - started
    return [
        f"jwt cleanup: {len(seconds)} batches of 1,000 in {total:.2f} s, "
        f"median batch {statistics.median(seconds) * 1000:,.0f} ms (rolled back)"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_SCALE_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="default: $BENCH_SCALE_DATABASE_URL, else " + DEFAULT_DATABASE_URL,
    )
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--log-entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5, help="runs per case (the median)")
    parser.add_argument("--statement-timeout", type=int, default=60, help="seconds per SQL")
    parser.add_argument("--cleanup-batches", type=int, default=20)
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument("--reload", action="store_true", help="load again even if loaded")
    args = parser.parse_args()
    if args.users < 10_000:
        parser.error("--users must be at least 10000 (the cases name user04242)")
    os.environ["BENCH_DATABASE_URL"] = args.database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.scale_settings"
    import django
    from django.conf import settings

    options = settings.DATABASES["default"].setdefault("OPTIONS", {})
    options["options"] = f"-c statement_timeout={args.statement_timeout * 1000}"
    django.setup()
    from bench.auth import machine, prepare_database

    started = time.monotonic()
    prepare_database()
    say(f"Migrated in {time.monotonic() - started:.1f} s.")
    load(args.users, args.sessions, args.log_entries, args.reload)
    print(f"Machine: {machine()}\n")
    print(f"{args.sessions:,} sessions, {args.users:,} users, {args.runs} runs per case.\n")
    print("\n".join(measure_admin(args.sessions, args.runs, not args.no_explain)))
    print("\n".join(measure_reference(args.runs)))
    print()
    print("\n".join(measure_cleanup(args.cleanup_batches)))


if __name__ == "__main__":
    main()
