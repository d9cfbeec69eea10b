"""The site, its admin and ``manage.py jwt`` behind PgBouncer in transaction pooling.

The test process makes and checks its data directly on PostgreSQL, in pytest-django's test
database. A gunicorn server (4 workers) and the ``jwt`` commands reach that same database
through PgBouncer (``PGBOUNCER_URL``; its wildcard entry forwards any database name), so each of
their transactions may run on another server connection. ``.ci/services/pgbouncer`` hands out
idle server connections oldest first and ``Bouncer.spread_pool()`` leaves several idle before
the steps that once failed: state kept in one server session between transactions (a
``WITH HOLD`` cursor, a named prepared statement) then fails on every run, not under load only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests
from django.db import connection

from cocart_jwt.models import RevokeReason, Token
from cocart_jwt.settings import jwt_settings
from cocart_jwt.utils import now
from tests.servers import NO_RATE_LIMITS, ROOT, ServerProcess

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.pgbouncer,
    pytest.mark.django_db(transaction=True),
]

REQUEST_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0
WORKERS = 4
PARALLEL_LOGINS = 25
AUTH = "/api/auth/"
ME = "/api/me/"
TOKENS_ADMIN = "/admin/cocart_jwt/token/"


def with_database(url: str, name: str) -> str:
    """``url`` with the database ``name`` instead of its own."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@dataclass(frozen=True)
class Bouncer:
    """The pytest test database reached through PgBouncer."""

    url: str
    db_name: str

    def env(self) -> dict[str, str]:
        """What a child process needs to use the test database through PgBouncer."""
        return {"DATABASE_URL": self.url, "COCART_JWT_TEST_DB_NAME": self.db_name}

    def admin(self, command: str) -> list[dict[str, Any]]:
        """A command of PgBouncer's admin console (which speaks the simple protocol only)."""
        with psycopg.connect(
            with_database(self.url, "pgbouncer"),
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,
        ) as console:
            cursor = console.execute(command)
            if cursor.description is None:
                return []
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def transactions(self) -> int:
        """Transactions PgBouncer has carried to the test database so far."""
        for row in self.admin("SHOW STATS"):
            if row["database"] == self.db_name:
                return int(row["total_xact_count"])
        return 0

    def spread_pool(self, size: int = 3) -> None:
        """Leave ``size`` idle server connections in the test database's pool: ``size`` clients
        each hold one (an open transaction pins it), then all commit and leave."""
        clients = [psycopg.connect(self.url) for _ in range(size)]
        try:
            for client in clients:
                client.execute("SELECT 1")
            for client in clients:
                client.commit()
        finally:
            for client in clients:
                client.close()

    def release(self) -> None:
        """Close PgBouncer's server connections to the test database, so that pytest-django
        can drop it at the end of the run."""
        try:
            self.admin(f"KILL {self.db_name}")
            self.admin(f"RESUME {self.db_name}")
        except psycopg.Error:
            pass  # no pool for it: nothing to close


@pytest.fixture(scope="module")
def bouncer(django_db_setup: None, django_db_blocker: Any) -> Iterator[Bouncer]:
    with django_db_blocker.unblock():
        db_name = connection.settings_dict["NAME"]
    through = Bouncer(with_database(os.environ["PGBOUNCER_URL"], db_name), db_name)
    try:
        yield through
    finally:
        through.release()


@pytest.fixture(scope="module")
def server(bouncer: Bouncer) -> Iterator[ServerProcess]:
    process = ServerProcess("pgbouncer", bouncer.db_name, NO_RATE_LIMITS, WORKERS, bouncer.env())
    try:
        process.wait_until_up()
        yield process
    finally:
        process.stop()
        process.remove_log()


@pytest.fixture
def site(
    server: ServerProcess, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> Iterator[ServerProcess]:
    """The server for one test; if the test failed, print what it wrote meanwhile."""
    failed_before = request.session.testsfailed
    since = server.size()
    yield server
    if request.session.testsfailed > failed_before:
        with capsys.disabled():
            print(f"\n===== output of the server during {request.node.nodeid} =====")
            print(server.output(since))


def jwt(bouncer: Bouncer, *args: str) -> subprocess.CompletedProcess[str]:
    """``manage.py jwt *args`` in a process of its own, its database through PgBouncer."""
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "manage.py", "jwt", *args],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **bouncer.env()},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stderr}"
    return result.stdout


def login(site: ServerProcess, username: str, password: str) -> dict[str, Any]:
    response = requests.post(
        site.url(f"{AUTH}login/"),
        json={"username": username, "password": password},
        timeout=REQUEST_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def refresh(site: ServerProcess, refresh_token: str) -> requests.Response:
    return requests.post(
        site.url(f"{AUTH}refresh/"), json={"refresh_token": refresh_token}, timeout=REQUEST_TIMEOUT
    )


def call(site: ServerProcess, method: str, path: str, access_token: str) -> int:
    response = requests.request(
        method,
        site.url(path),
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=REQUEST_TIMEOUT,
    )
    return response.status_code


def me(site: ServerProcess, access_token: str) -> int:
    return call(site, "GET", ME, access_token)


# -- the API -------------------------------------------------------------------------------


def test_life_cycle_over_http_through_pgbouncer(
    bouncer: Bouncer, site: ServerProcess, user: Any, password: str
) -> None:
    carried_before = bouncer.transactions()
    first = login(site, user.username, password)
    assert me(site, first["access_token"]) == 200

    # Refresh rotates; the spent refresh token presented again is reuse: the session dies.
    renewed = refresh(site, first["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    assert me(site, renewed.json()["access_token"]) == 200
    reused = refresh(site, first["refresh_token"])
    assert reused.status_code == 401
    assert reused.json()["code"] == "invalid_grant"
    assert me(site, renewed.json()["access_token"]) == 401
    assert Token.objects.get(pk=first["sid"]).revoke_reason == RevokeReason.REFRESH_TOKEN_REUSED

    # Revoking one session from another, then logout, then logout everywhere.
    second, third, fourth = (login(site, user.username, password) for _ in range(3))
    assert call(site, "DELETE", f"{AUTH}sessions/{second['sid']}/", third["access_token"]) == 204
    assert me(site, second["access_token"]) == 401
    assert refresh(site, second["refresh_token"]).status_code == 401
    assert call(site, "POST", f"{AUTH}logout/", third["access_token"]) == 204
    assert me(site, third["access_token"]) == 401
    assert me(site, fourth["access_token"]) == 200
    assert call(site, "POST", f"{AUTH}logout/all/", fourth["access_token"]) == 204
    assert me(site, fourth["access_token"]) == 401
    assert not Token.objects.live().filter(user=user).exists()

    assert bouncer.transactions() > carried_before  # the site's queries did go through it


def test_cap_holds_under_parallel_logins_through_pgbouncer(
    site: ServerProcess, user: Any, password: str
) -> None:
    cap = jwt_settings.MAX_TOKENS_PER_USER
    with ThreadPoolExecutor(max_workers=PARALLEL_LOGINS) as pool:
        pairs = list(
            pool.map(lambda _: login(site, user.username, password), range(PARALLEL_LOGINS))
        )

    live = set(Token.objects.live().filter(user=user).values_list("pk", flat=True))
    assert len(live) == cap
    evicted = Token.objects.filter(user=user, revoke_reason=RevokeReason.MAX_TOKENS)
    assert evicted.count() == PARALLEL_LOGINS - cap
    for pair in pairs:
        assert me(site, pair["access_token"]) == (200 if pair["sid"] in live else 401)


def test_admin_lists_shows_and_revokes_through_pgbouncer(
    site: ServerProcess, admin_user: Any, user: Any, password: str
) -> None:
    pair = login(site, user.username, password)
    browser = requests.Session()
    browser.get(site.url("/admin/login/"), timeout=REQUEST_TIMEOUT)
    signed_in = browser.post(
        site.url("/admin/login/"),
        data={
            "username": admin_user.username,
            "password": "password",  # pytest-django's admin_user
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            "next": TOKENS_ADMIN,
        },
        headers={"Referer": site.url("/admin/login/")},
        timeout=REQUEST_TIMEOUT,
    )
    assert signed_in.status_code == 200
    assert pair["sid"] in signed_in.text  # the list, after the redirect

    shown = browser.get(site.url(f"{TOKENS_ADMIN}{pair['sid']}/change/"), timeout=REQUEST_TIMEOUT)
    assert shown.status_code == 200
    assert user.username in shown.text
    revoked = browser.post(
        site.url(f"{TOKENS_ADMIN}{pair['sid']}/revoke/"),
        data={"csrfmiddlewaretoken": browser.cookies["csrftoken"]},
        headers={"Referer": site.url(f"{TOKENS_ADMIN}{pair['sid']}/revoke/")},
        timeout=REQUEST_TIMEOUT,
    )
    assert revoked.status_code == 200
    assert me(site, pair["access_token"]) == 401
    assert Token.objects.get(pk=pair["sid"]).revoke_reason == RevokeReason.ADMIN


def test_database_down_refuses_tokens_with_a_server_error_and_recovers(
    bouncer: Bouncer, site: ServerProcess, user: Any, password: str
) -> None:
    """A token that cannot be checked is never accepted (strict mode fails closed)."""
    pair = login(site, user.username, password)
    since = site.size()
    bouncer.admin(f"DISABLE {bouncer.db_name}")  # new connections refused...
    bouncer.admin(f"KILL {bouncer.db_name}")  # ...and the open ones closed
    try:
        checked = requests.get(
            site.url(ME),
            headers={"Authorization": f"Bearer {pair['access_token']}"},
            timeout=REQUEST_TIMEOUT,
        )
        refreshed = refresh(site, pair["refresh_token"])
        logged_in = requests.post(
            site.url(f"{AUTH}login/"),
            json={"username": user.username, "password": password},
            timeout=REQUEST_TIMEOUT,
        )
    finally:
        bouncer.admin(f"ENABLE {bouncer.db_name}")
        bouncer.admin(f"RESUME {bouncer.db_name}")

    assert checked.status_code == 500
    assert refreshed.status_code == 500
    assert logged_in.status_code == 500
    for secret in (pair["access_token"], pair["refresh_token"], password):
        assert secret not in checked.text + refreshed.text + logged_in.text
        assert secret not in site.output(since)
    assert me(site, pair["access_token"]) == 200  # back with the database


# -- manage.py jwt ---------------------------------------------------------------------------


def test_jwt_list_lists_every_session_on_each_of_three_runs_through_pgbouncer(
    bouncer: Bouncer, user: Any, other_user: Any
) -> None:
    mine = {Token.objects.issue(user).session.pk for _ in range(2)}
    theirs = {Token.objects.issue(other_user).session.pk}

    for _ in range(3):
        bouncer.spread_pool()
        table = succeeded(jwt(bouncer, "list"))
        assert set(re.findall(r"^(\S{22})\s", table, flags=re.MULTILINE)) == mine | theirs
        bouncer.spread_pool()
        listed = succeeded(jwt(bouncer, "list", "--user", user.username, "--format", "json"))
        assert {row["id"] for row in json.loads(listed)} == mine


def test_jwt_create_view_destroy_and_cleanup_through_pgbouncer(
    bouncer: Bouncer, site: ServerProcess, user: Any
) -> None:
    bouncer.spread_pool()
    created = succeeded(
        jwt(bouncer, "create", user.username, "--refreshable", "--description", "via pgbouncer")
    )
    sid = re.search(r"Created session (\S+) for", created)
    assert sid is not None, created
    session = Token.objects.get(pk=sid[1])
    assert session.description == "via pgbouncer"
    access_token = created.split("Access token", 1)[1].splitlines()[1].strip()
    assert me(site, access_token) == 200

    bouncer.spread_pool()
    shown = succeeded(jwt(bouncer, "view", session.pk))
    assert session.pk in shown
    assert "via pgbouncer" in shown

    bouncer.spread_pool()
    succeeded(jwt(bouncer, "destroy", user.username, "--id", session.pk, "--noinput"))
    assert me(site, access_token) == 401
    assert Token.objects.get(pk=session.pk).revoke_reason == RevokeReason.COMMAND

    long_dead = Token.objects.issue(user).session
    Token.objects.filter(pk=long_dead.pk).update(
        revoked_at=now() - timedelta(days=30), revoke_reason=RevokeReason.LOGOUT
    )
    bouncer.spread_pool()
    assert "Would delete 1 session" in succeeded(jwt(bouncer, "cleanup", "--dry-run"))
    assert Token.objects.filter(pk=long_dead.pk).exists()
    bouncer.spread_pool()
    assert "Deleted 1 session" in succeeded(jwt(bouncer, "cleanup"))
    assert not Token.objects.filter(pk=long_dead.pk).exists()
    assert Token.objects.filter(pk=session.pk).exists()  # revoked today: kept for a week
