"""``manage.py jwt``: list, view, create, destroy (with its prompt), cleanup, keygen.

Most tests go through ``call_command`` with stdout and stderr captured. The confirmation
prompt of ``destroy`` is also driven through a real pseudo-terminal, by a ``manage.py``
child process that shares the test database (PostgreSQL only: the tests commit their data).
The cleanup's memory is measured with ``tracemalloc`` at 20k and 100k dead sessions.
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import stat
import subprocess
import sys
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.checks import ERROR, run_checks
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.db import DatabaseError, connection
from django.db.models.signals import pre_delete
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from cocart_jwt.choices import Kind
from cocart_jwt.keys import HMAC_MIN_BYTES
from cocart_jwt.models import RefreshToken, RevokeReason, Token
from cocart_jwt.signals import token_revoked
from cocart_jwt.tokens import verify_access_token
from cocart_jwt.utils import now, sha256_hex
from tests.factories import bearer, login, refresh

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
ME = "/api/me/"
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----\n.*?\n-----END \1-----\n?", re.S)
CHILD_TIMEOUT = 60.0


class Terminal(io.StringIO):
    """A stream that says it is a terminal: the prompt's stdin, or a cleanup's stderr."""

    def isatty(self) -> bool:
        return True


class Discard(io.TextIOBase):
    """A stdout that keeps nothing, so measuring memory measures the command only."""

    def write(self, text: str) -> int:
        return len(text)


def run(*args: Any, **options: Any) -> tuple[str, str]:
    """``manage.py jwt *args``; returns (stdout, stderr)."""
    out = options.pop("stdout", None) or io.StringIO()
    err = options.pop("stderr", None) or io.StringIO()
    call_command("jwt", *args, stdout=out, stderr=err, **options)
    return (
        out.getvalue() if isinstance(out, io.StringIO) else "",
        err.getvalue() if isinstance(err, io.StringIO) else "",
    )


def issue(user: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("refreshable", False)
    kwargs.setdefault("lifetime", timedelta(hours=1))
    return Token.objects.issue(user, **kwargs)


def me_status(api_client: Any, access_token: str) -> int:
    api_client.credentials()
    return int(api_client.get(ME, **bearer(access_token)).status_code)


def make_dead(
    session: Token, *, expired_ago: timedelta | None = None, revoked_ago: timedelta | None = None
) -> None:
    at = now()
    changes: dict[str, Any] = {}
    if expired_ago is not None:
        changes["expires_at"] = at - expired_ago
        changes["created_at"] = at - expired_ago - timedelta(hours=1)
    if revoked_ago is not None:
        changes.update(revoked_at=at - revoked_ago, revoke_reason=RevokeReason.LOGOUT)
    Token.objects.filter(pk=session.pk).update(**changes)


# -- the command itself -------------------------------------------------------------------


def test_a_subcommand_is_required():
    with pytest.raises(CommandError, match="subcommand"):
        run()


def test_unknown_subcommand_is_an_error():
    with pytest.raises(CommandError, match="invalid choice"):
        run("launch")


def test_django_options_work_after_the_subcommand(user):
    issue(user)
    assert "1 session." not in run("list")[0]
    assert "1 session." in run("list", "-v", "2")[0]
    assert "1 session." in run("list", "--verbosity=2", "--no-color")[0]


def test_exit_status_is_non_zero_on_failure_from_the_command_line():
    result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "manage.py", "jwt", "keygen", "--algorithm", "none"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode == 1
    assert "Unknown algorithm 'none'" in result.stderr
    assert result.stdout == ""


# -- list ---------------------------------------------------------------------------------


def test_list_shows_a_table_of_sessions(user, other_user):
    mine = issue(user, description="CI deploy key").session
    theirs = issue(other_user).session
    Token.objects.filter(pk=mine.pk).update(ip="192.0.2.7", last_used_at=now())

    out, _ = run("list")

    header, *rows = out.splitlines()
    for title in ("ID", "USER", "DESCRIPTION", "CREATED", "EXPIRES", "LAST USED", "IP", "STATUS"):
        assert title in header
    row = next(line for line in rows if line.startswith(mine.pk))
    assert "alice" in row and "CI deploy key" in row and "192.0.2.7" in row
    assert row.rstrip().endswith("valid")
    assert any(line.startswith(theirs.pk) and "bob" in line for line in rows)


def test_list_filters_by_user_given_by_username_email_or_id(user, other_user):
    mine = issue(user).session
    theirs = issue(other_user).session
    for who in ("alice", "alice@example.com", str(user.pk)):
        out, _ = run("list", "--user", who)
        assert mine.pk in out
        assert theirs.pk not in out


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("valid", {"live"}),
        ("expired", {"expired"}),
        ("revoked", {"revoked"}),
        ("all", {"live", "expired", "revoked"}),
    ],
)
def test_list_filters_by_status(user, status, expected):
    sessions = {name: issue(user).session for name in ("live", "expired", "revoked")}
    make_dead(sessions["expired"], expired_ago=timedelta(minutes=1))
    sessions["revoked"].revoke(RevokeReason.ADMIN)

    out, _ = run("list", "--status", status, "--format", "json")

    listed = {row["id"]: row["status"] for row in json.loads(out)}
    assert set(listed) == {sessions[name].pk for name in expected}
    assert all(
        listed[sessions[name].pk] == ("valid" if name == "live" else name) for name in expected
    )


def test_list_json_is_an_array_for_scripts_without_any_token(user, api_client, password):
    tokens = login(api_client, "alice", password).json()
    Token.objects.filter(pk=tokens["sid"]).update(description="phone")

    out, _ = run("list", "--format", "json")

    rows = json.loads(out)
    assert [row["id"] for row in rows] == [tokens["sid"]]
    row = rows[0]
    assert row["user"] == {"id": user.pk, "username": "alice"}
    assert row["description"] == "phone"
    assert row["status"] == "valid"
    assert row["refreshable"] is True
    for name in ("created_at", "expires_at", "last_used_at", "ip", "user_agent", "claims"):
        assert name in row
    assert tokens["access_token"] not in out
    assert tokens["refresh_token"] not in out
    assert sha256_hex(tokens["refresh_token"]) not in out


def test_list_json_of_nothing_is_an_empty_array(db):
    out, _ = run("list", "--format", "json")
    assert json.loads(out) == []


def test_list_of_nothing_says_so(db):
    out, _ = run("list")
    assert out.strip() == "No sessions."


def test_list_of_an_unknown_user_fails_naming_the_user(db):
    with pytest.raises(CommandError, match="User 'nobody' not found"):
        run("list", "--user", "nobody")


def test_list_memory_does_not_grow_with_the_number_of_sessions(user):
    """Streamed with .iterator() (2000 rows a chunk): 12k sessions take no more memory than 4k."""

    def peak_listing() -> int:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            call_command("jwt", "list", "--format", "json", stdout=Discard(), stderr=Discard())
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    bulk_sessions(user, 200, "warm", expires_in=timedelta(days=1))
    peak_listing()
    bulk_sessions(user, 3800, "small", expires_in=timedelta(days=1))
    small = peak_listing()
    bulk_sessions(user, 8000, "large", expires_in=timedelta(days=1))
    large = peak_listing()
    print(f"\njwt list --format json: peak {small} bytes at 4k rows, {large} bytes at 12k rows")
    assert large < 1.5 * small


# -- view ---------------------------------------------------------------------------------


def test_view_of_a_session_shows_its_details_but_never_a_refresh_token(user):
    issued = issue(user, refreshable=True, description="backup job", claims={"scope": "backup"})

    out, _ = run("view", "--", issued.session.pk)

    assert issued.session.pk in out
    assert "alice" in out
    assert "backup job" in out
    assert '"scope": "backup"' in out
    assert re.search(r"Status:\s+valid", out)
    assert re.search(r"Refreshable:\s+yes", out)
    assert "1 issued, 0 spent" in out
    assert issued.refresh_token not in out
    assert sha256_hex(issued.refresh_token) not in out
    assert issued.access_token not in out


def test_view_and_list_never_pass_control_characters_to_the_terminal(user):
    """User agents and claims come from clients: an escape sequence is shown, not obeyed."""
    request = RequestFactory().post("/", HTTP_USER_AGENT="curl\x1b]0;pwned\x07\x1b[2J")
    issued = issue(user, request=request, description="ci\x1b[31m", claims={"x": "\x1b\x9b"})

    outputs = [
        run("view", "--", issued.session.pk)[0],
        run("view", issued.access_token)[0],
        run("list")[0],
        run("list", "--format", "json")[0],
    ]

    for out in outputs:
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "\\x1b]0;pwned" in outputs[0]


def test_view_of_a_valid_access_token_shows_verified_header_and_claims(user):
    issued = issue(user, claims={"role": "deployer"})

    out, _ = run("view", issued.access_token)

    assert out.startswith("Access token: VERIFIED")
    assert "Signature: valid" in out
    assert re.search(r"^Expiry:\s+valid until", out, re.M)
    assert "UNVERIFIED" not in out
    assert '"typ": "at+jwt"' in out
    assert f'"sid": "{issued.session.pk}"' in out
    assert '"role": "deployer"' in out
    assert "This access token is accepted." in out


def test_view_accepts_a_pasted_authorization_header_value(user):
    issued = issue(user)
    out, _ = run("view", f"Bearer {issued.access_token}")
    assert "This access token is accepted." in out


def test_view_of_an_expired_token_says_so_unverified_and_fails(user):
    issued = issue(user, lifetime=timedelta(minutes=5))

    out = io.StringIO()
    with time_machine.travel(now() + timedelta(minutes=10), tick=False):
        with pytest.raises(CommandError, match="This access token would be refused"):
            run("view", issued.access_token, stdout=out)

    text = out.getvalue()
    assert text.startswith("Access token: UNVERIFIED")
    assert re.search(r"^Expiry:\s+EXPIRED at .* \(300 s ago\)$", text, re.M)
    assert "Signature: valid" in text  # the signature is fine; the expiry is not
    assert "Claims (UNVERIFIED):" in text
    assert f'"sid": "{issued.session.pk}"' in text


def test_view_of_a_token_with_a_bad_signature_says_so_unverified_and_fails(user):
    issued = issue(user)
    header = jwt.get_unverified_header(issued.access_token)
    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    forged = jwt.encode(
        {**claims, "role": "admin"}, "a-different-secret".ljust(48, "!"), headers=header
    )

    out = io.StringIO()
    with pytest.raises(CommandError, match="This access token would be refused"):
        run("view", forged, stdout=out)

    text = out.getvalue()
    assert text.startswith("Access token: UNVERIFIED")
    assert "Signature: INVALID" in text
    assert re.search(r"^Expiry:\s+valid until", text, re.M)
    assert '"role": "admin"' in text  # shown, but labelled unverified
    assert "Claims (UNVERIFIED):" in text
    assert "accepted" not in text


def test_view_of_a_token_signed_by_an_unknown_key_says_so(user):
    issued = issue(user)
    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    foreign = jwt.encode(
        claims, "x" * 32, headers={"typ": "at+jwt", "kid": "someone-else"}, algorithm="HS256"
    )

    out = io.StringIO()
    with pytest.raises(CommandError, match="would be refused"):
        run("view", foreign, stdout=out)
    assert "Signature: UNCHECKED: no configured key has the key id 'someone-else'" in out.getvalue()


def test_view_of_a_token_with_a_mangled_signature_still_shows_its_claims(user):
    issued = issue(user)
    head, payload, _ = issued.access_token.split(".")

    out = io.StringIO()
    with pytest.raises(CommandError, match="refused"):
        run("view", f"{head}.{payload}.!!", stdout=out)

    assert f'"sid": "{issued.session.pk}"' in out.getvalue()
    assert "UNVERIFIED" in out.getvalue()


def test_view_of_a_token_of_a_revoked_session_fails(user):
    issued = issue(user)
    issued.session.revoke(RevokeReason.ADMIN)

    out = io.StringIO()
    with pytest.raises(CommandError, match="its session is revoked"):
        run("view", issued.access_token, stdout=out)
    assert re.search(r"Status:\s+revoked", out.getvalue())


def test_view_of_a_token_of_an_expired_session_fails(user):
    issued = issue(user)
    Token.objects.filter(pk=issued.session.pk).update(expires_at=now() - timedelta(seconds=1))

    with pytest.raises(CommandError, match="would be refused: its session has expired"):
        run("view", issued.access_token)


def test_view_of_a_token_of_an_inactive_user_fails(user):
    issued = issue(user)
    type(user).objects.filter(pk=user.pk).update(is_active=False)  # no receiver revokes it

    out = io.StringIO()
    with pytest.raises(CommandError, match="would be refused: its user is inactive"):
        run("view", issued.access_token, stdout=out)
    assert "Access token: VERIFIED" in out.getvalue()


def test_view_of_a_token_whose_session_belongs_to_another_user_fails(user, other_user):
    issued = issue(user)
    Token.objects.filter(pk=issued.session.pk).update(user=other_user)

    with pytest.raises(CommandError, match="its sub claim does not name the session's user"):
        run("view", issued.access_token)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("bm90IGpzb24", "payload is not JSON"),  # "not json"
        ("WzFd", "payload is not a JSON object"),  # "[1]"
        ("e30=", "payload is not canonical base64url"),  # "{}" with its padding
        ("e3!9", "payload is not base64url"),
    ],
)
def test_view_of_a_token_with_an_undecodable_payload_says_why(user, payload, reason):
    head, _, signature = issue(user).access_token.split(".")

    out = io.StringIO()
    with pytest.raises(CommandError, match="This access token would be refused"):
        run("view", f"{head}.{payload}.{signature}", stdout=out)

    text = out.getvalue()
    assert "Access token: UNVERIFIED" in text
    assert f"Claims (UNVERIFIED):\n(undecodable: {reason}" in text
    assert "Session: no sid claim." in text


def test_view_of_a_token_whose_sid_no_session_can_have_queries_nothing(user):
    """A NUL byte in an unverified sid never reaches the database (PostgreSQL refuses it)."""
    claims = {"sub": str(user.pk), "sid": "a\x00b", "exp": int(now().timestamp()) + 60}
    token = jwt.encode(claims, "x" * 32, headers={"typ": "at+jwt", "kid": "k"}, algorithm="HS256")

    out = io.StringIO()
    with CaptureQueriesContext(connection) as queries:
        with pytest.raises(CommandError, match="would be refused"):
            run("view", token, stdout=out)
    assert "Session: none found." in out.getvalue()
    assert not [q for q in queries.captured_queries if Token._meta.db_table in q["sql"]]


def test_view_of_something_with_two_dots_that_is_not_a_jwt_fails(db):
    with pytest.raises(CommandError, match="Not a JWT"):
        run("view", "not.a.jwt")


def test_view_of_a_session_id_starting_with_a_dash_after_double_dash(user):
    Token.objects.create(id="-AbC_dash", user=user, expires_at=now() + timedelta(hours=1))
    out, _ = run("view", "--", "-AbC_dash")
    assert re.search(r"^Session:\s+-AbC_dash$", out, re.M)


def test_view_of_an_unknown_session_id_fails(db):
    with pytest.raises(CommandError, match="No session with this id"):
        run("view", "no-such-session")


def test_view_of_a_refresh_token_refuses_without_echoing_it(user):
    issued = issue(user, refreshable=True)

    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as caught:
        run("view", "--", issued.refresh_token, stdout=out, stderr=err)

    assert "refresh token" in str(caught.value)
    for text in (str(caught.value), out.getvalue(), err.getvalue()):
        assert issued.refresh_token not in text


# -- create -------------------------------------------------------------------------------


def test_create_prints_a_working_access_token_once(user, api_client):
    out, _ = run("create", "alice", "--description", "deploy bot")

    session = Token.objects.get()
    assert session.description == "deploy bot"
    assert session.refreshable is False
    assert session.expires_at - session.created_at == timedelta(hours=24)  # ADMIN_TOKEN_LIFETIME
    assert not RefreshToken.objects.exists()
    access_token = re.search(r"^(ey[\w-]+\.[\w-]+\.[\w-]+)$", out, re.M).group(1)
    assert "Refresh token" not in out
    assert "shown only once" in out
    response = api_client.get(ME, **bearer(access_token))
    assert response.status_code == 200
    assert response.json()["sid"] == session.pk


def test_create_refreshable_prints_a_refresh_token_that_refreshes(user, api_client):
    out, _ = run("create", "alice", "--refreshable", "-v", "0")

    access_token, refresh_token = out.split()
    assert me_status(api_client, access_token) == 200
    assert refresh(api_client, refresh_token).status_code == 200


def test_create_json_is_the_token_pair_of_the_login_endpoint(user, api_client):
    out, _ = run("create", "alice", "--refreshable", "--ttl", "2h", "--format", "json")

    pair = json.loads(out)
    session = Token.objects.get()
    assert pair["sid"] == session.pk
    assert pair["token_type"] == "Bearer"
    assert pair["user"] == {"id": user.pk, "username": "alice"}
    assert pair["refresh_expires_in"] == 7200
    assert me_status(api_client, pair["access_token"]) == 200
    assert refresh(api_client, pair["refresh_token"]).status_code == 200


def test_create_at_verbosity_0_prints_only_the_access_token(user):
    out, err = run("create", "alice", "-v", "0")
    assert len(out.split()) == 1
    assert verify_access_token(out.strip())["sid"] == Token.objects.get().pk
    assert err == ""


@pytest.mark.parametrize("who", ["alice", "alice@example.com", "ALICE@example.com", "pk"])
def test_create_finds_the_user_by_username_email_or_id(user, who):
    run("create", str(user.pk) if who == "pk" else who)
    assert Token.objects.get().user == user


@pytest.mark.parametrize(
    ("ttl", "lifetime"),
    [
        ("3600", timedelta(hours=1)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("P1D", timedelta(days=1)),
        ("PT15M", timedelta(minutes=15)),
        ("01:30:00", timedelta(hours=1, minutes=30)),
        # The admin form's grammar too (cocart_jwt/parsing.py): any case, a space, decimals.
        ("24H", timedelta(hours=24)),
        ("15 m", timedelta(minutes=15)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_create_ttl_accepts_seconds_units_and_iso_8601(user, ttl, lifetime):
    run("create", "alice", "--ttl", ttl)
    session = Token.objects.get()
    assert session.expires_at - session.created_at == lifetime


def test_create_ttl_beyond_the_session_maximum_is_capped_with_a_warning(user):
    _, err = run("create", "alice", "--ttl", "365d")
    session = Token.objects.get()
    assert session.expires_at - session.created_at == timedelta(days=90)
    assert "SESSION_MAX_LIFETIME" in err


@pytest.mark.parametrize(
    ("ttl", "message"),
    [
        ("abc", "--ttl: 'abc' is not a duration"),
        ("1y", "--ttl: '1y' is not a duration"),
        ("", "--ttl: '' is not a duration"),
        ("0", "--ttl must be positive"),
        ("-P1D", "--ttl must be positive"),
        ("99999999999d", "--ttl: '99999999999d' is not a duration"),
        ("-5m", "--ttl: '-5m' is not a duration"),
        ("nan", "--ttl: 'nan' is not a duration"),
        ("1" * 65, "--ttl: A duration is at most 64 characters"),
    ],
)
def test_create_with_a_bad_ttl_fails_naming_the_option(user, ttl, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("create", "alice", f"--ttl={ttl}")
    assert not Token.objects.exists()


def test_create_puts_additional_claims_in_the_access_token(user):
    out, _ = run(
        "create", "alice", "--claims", '{"warehouse": "orders-read", "tier": 2}', "-v", "0"
    )
    claims = verify_access_token(out.strip())
    assert claims["warehouse"] == "orders-read"
    assert claims["tier"] == 2
    assert Token.objects.get().claims == {"warehouse": "orders-read", "tier": 2}


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ("{not json", "--claims: This is not valid JSON"),
        ('["a", "b"]', '--claims: Enter a JSON object, such as {"tenant": "acme"}, not a list.'),
        ('"text"', "--claims: Enter a JSON object, such as"),
        ('{"sub": "1"}', '--claims: "sub" is set by cocart_jwt on every token'),
        ('{"exp": 1, "sid": "x", "ok": 1}', '"exp", "sid" are set by cocart_jwt on every token'),
        ("[" * 100000, "--claims: The claims are too long: at most 4096 characters of JSON."),
        (json.dumps({"blob": "x" * 5000}), "--claims: The claims are too long"),
        # Refused by the admin form before, and now by the command too (PostgreSQL refuses
        # both in a JSON column).
        ('{"a": NaN}', "--claims: This is not valid JSON: NaN is not JSON"),
        ('{"a": "nul \\u0000 byte"}', "--claims: The claims cannot contain the NUL character"),
    ],
)
def test_create_with_bad_claims_fails_clearly(user, claims, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("create", "alice", "--claims", claims)
    assert not Token.objects.exists()


def test_create_for_an_unknown_user_fails_naming_the_user(db):
    with pytest.raises(CommandError, match="User 'mallory' not found"):
        run("create", "mallory")
    assert not Token.objects.exists()


def test_create_for_an_inactive_user_fails(user):
    user.is_active = False
    user.save()
    with pytest.raises(CommandError, match="inactive"):
        run("create", "alice")
    assert not Token.objects.exists()


def test_create_with_a_too_long_description_fails(user):
    with pytest.raises(CommandError, match="--description"):
        run("create", "alice", "--description", "x" * 256)


def test_create_makes_an_admin_token_that_evicts_no_login_session_at_the_cap(user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": 2}
    logins = [issue(user, kind=Kind.SESSION).session for _ in range(2)]

    _, err = run("create", "alice")

    created = Token.objects.exclude(pk__in=[s.pk for s in logins]).get()
    assert created.kind == Kind.ADMIN
    assert created.scopes == []
    assert Token.objects.filter(user=user).live().count() == 3
    assert err == ""
    # The next login still counts only the two login sessions: the oldest goes, not the CLI's.
    issue(user, kind=Kind.SESSION)
    assert Token.objects.get(pk=logins[0].pk).revoke_reason == RevokeReason.MAX_TOKENS
    assert Token.objects.get(pk=created.pk).revoked_at is None


def test_create_with_misconfigured_keys_fails_cleanly(user, settings):
    settings.COCART_JWT = {"ALGORITHM": "HS256", "SIGNING_KEY": "short"}
    with pytest.raises(CommandError, match="misconfigured"):
        run("create", "alice")


# -- create --scope: personal access tokens -----------------------------------------------

SCOPES = {"orders:read": "Read your orders", "cart:write": "Change your cart"}


@pytest.fixture
def scopes(settings: Any) -> dict[str, str]:
    settings.COCART_JWT = {**settings.COCART_JWT, "SCOPES": SCOPES}
    return SCOPES


def test_create_with_scopes_makes_a_personal_access_token_carrying_them(user, scopes, api_client):
    out, err = run(
        "create",
        "alice",
        "--scope",
        "orders:read",
        "--scope",
        "cart:write",
        "--description",
        "invoice sync",
    )

    session = Token.objects.get()
    assert session.kind == Kind.PERSONAL
    assert session.scopes == ["orders:read", "cart:write"]
    assert session.description == "invoice sync"
    assert session.refreshable is False
    assert not RefreshToken.objects.exists()
    assert session.expires_at - session.created_at == timedelta(hours=24)  # ADMIN_TOKEN_LIFETIME
    assert f"Created personal access token {session.pk} (scopes: orders:read cart:write)" in out
    access_token = re.search(r"^(ey[\w-]+\.[\w-]+\.[\w-]+)$", out, re.M).group(1)
    claims = verify_access_token(access_token)
    assert claims["scope"] == "orders:read cart:write"
    assert claims["client_id"] == "cocart_jwt"
    assert "auth_time" not in claims
    assert me_status(api_client, access_token) == 200
    assert err == ""


def test_create_with_a_scope_named_twice_keeps_it_once(user, scopes):
    run("create", "alice", "--scope", "cart:write", "--scope=cart:write", "--description", "x")
    assert Token.objects.get().scopes == ["cart:write"]


def test_create_json_of_a_personal_token_is_the_token_pair_with_its_scope(user, scopes):
    out, _ = run(
        "create",
        "alice",
        "--scope",
        "orders:read",
        "--description",
        "reports",
        "--ttl",
        "30d",
        "--format",
        "json",
    )

    pair = json.loads(out)
    assert pair["scope"] == "orders:read"
    assert pair["refresh_token"] is None
    assert pair["expires_in"] == 30 * 86400
    assert pair["sid"] == Token.objects.get(kind=Kind.PERSONAL).pk
    assert verify_access_token(pair["access_token"])["scope"] == "orders:read"


def test_create_json_of_an_admin_token_has_no_scope(user, scopes):
    pair = json.loads(run("create", "alice", "--format", "json")[0])
    assert "scope" not in pair
    assert "scope" not in verify_access_token(pair["access_token"])
    assert Token.objects.get().kind == Kind.ADMIN


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "orders:write"], "Unknown scope: orders:write. Known scopes: cart:write, "),
        (
            ["--scope", "b", "--scope", "orders:read", "--scope", "a"],
            "Unknown scopes: a, b. Known scopes: cart:write, orders:read.",
        ),
    ],
)
def test_create_with_an_unknown_scope_fails_naming_it_and_the_known_ones(
    user, scopes, args, message
):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("create", "alice", *args, "--description", "x")
    assert not Token.objects.exists()


def test_create_with_a_scope_while_none_are_configured_says_so(user):
    with pytest.raises(CommandError, match="Known scopes: none: COCART_JWT SCOPES is empty"):
        run("create", "alice", "--scope", "orders:read", "--description", "x")
    assert not Token.objects.exists()


def test_create_with_a_scope_and_refreshable_fails(user, scopes):
    with pytest.raises(CommandError, match="never refreshable: drop --refreshable or --scope"):
        run("create", "alice", "--scope", "orders:read", "--refreshable", "--description", "x")
    assert not Token.objects.exists()


@pytest.mark.parametrize("description", [None, "", "   "])
def test_create_with_a_scope_needs_a_name(user, scopes, description):
    named = [] if description is None else ["--description", description]
    with pytest.raises(CommandError, match="needs a name: give --description"):
        run("create", "alice", "--scope", "orders:read", *named)
    assert not Token.objects.exists()


def test_create_personal_ttl_up_to_pat_max_lifetime_passes_session_max_lifetime(user, scopes):
    _, err = run("create", "alice", "--scope", "orders:read", "--description", "x", "--ttl", "200d")

    session = Token.objects.get()
    assert session.expires_at - session.created_at == timedelta(days=200)
    assert err == ""  # no SESSION_MAX_LIFETIME warning: it bounds login sessions only


def test_create_personal_ttl_beyond_pat_max_lifetime_fails_saying_the_max(user, scopes, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "PAT_MAX_LIFETIME": timedelta(days=30)}

    with pytest.raises(CommandError, match=re.escape("PAT_MAX_LIFETIME (30 days)")):
        run("create", "alice", "--scope", "orders:read", "--description", "x", "--ttl", "31d")
    assert not Token.objects.exists()
    run("create", "alice", "--scope", "orders:read", "--description", "x", "--ttl", "30d")
    assert Token.objects.get().kind == Kind.PERSONAL


def test_create_personal_beyond_max_pats_per_user_fails_and_evicts_nothing(user, scopes, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_PATS_PER_USER": 2}
    held = [
        issue(user, kind=Kind.PERSONAL, scopes=["orders:read"], description=f"t{n}").session
        for n in range(2)
    ]

    with pytest.raises(CommandError) as refused:
        run("create", "alice", "--scope", "orders:read", "--description", "third")

    assert "alice already holds 2 live personal access tokens" in str(refused.value)
    assert "MAX_PATS_PER_USER" in str(refused.value)
    assert Token.objects.count() == 2
    assert all(Token.objects.get(pk=s.pk).revoked_at is None for s in held)
    # An admin token is in no limit: still possible for that user.
    run("create", "alice")
    assert Token.objects.filter(kind=Kind.ADMIN).count() == 1


def test_list_shows_the_kind_and_scopes_of_each_session(user, scopes):
    personal = issue(
        user, kind=Kind.PERSONAL, scopes=["orders:read", "cart:write"], description="sync"
    ).session
    login = issue(user, kind=Kind.SESSION).session
    admin = issue(user, kind=Kind.ADMIN).session

    out, _ = run("list")
    rows, _ = run("list", "--format", "json")

    header, *lines = out.splitlines()
    assert "KIND" in header and "SCOPES" in header
    row = {line.split()[0]: line.split()[1:] for line in lines}
    assert row[personal.pk][1:3] == ["personal", "orders:read"]  # the scopes, cut to fit
    assert "orders:read cart:w" in next(line for line in lines if line.startswith(personal.pk))
    assert row[login.pk][1:3] == ["session", "-"]
    assert row[admin.pk][1:3] == ["admin", "-"]
    listed = {item["id"]: (item["kind"], item["scopes"]) for item in json.loads(rows)}
    assert listed == {
        personal.pk: ("personal", ["orders:read", "cart:write"]),
        login.pk: ("session", []),
        admin.pk: ("admin", []),
    }


def test_view_shows_the_kind_and_scopes_of_a_personal_token(user, scopes):
    issued = issue(user, kind=Kind.PERSONAL, scopes=["orders:read"], description="reports")

    by_id, _ = run("view", "--", issued.session.pk)
    by_token, _ = run("view", issued.access_token)

    for out in (by_id, by_token):
        assert re.search(r"^Kind:\s+personal$", out, re.M)
        assert re.search(r"^Scopes:\s+orders:read$", out, re.M)
    assert '"scope": "orders:read"' in by_token
    assert re.search(r"^Scopes:\s+-$", run("view", "--", issue(user).session.pk)[0], re.M)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_create_with_an_unknown_scope_exits_non_zero_from_the_command_line(user):
    env = {**child_env(), "COCART_JWT_TEST_OVERRIDES": json.dumps({"SCOPES": SCOPES})}
    result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "manage.py", "jwt", "create", "alice", "--scope", "admin:all"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )

    assert result.returncode == 1
    assert "Unknown scope: admin:all. Known scopes: cart:write, orders:read." in result.stderr
    assert result.stdout == ""
    assert not Token.objects.exists()


# -- destroy ------------------------------------------------------------------------------


@pytest.fixture
def revoked_signals():
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs)

    token_revoked.connect(receiver, weak=False)
    yield calls
    token_revoked.disconnect(receiver)


def test_destroy_noinput_revokes_every_session_of_the_user_only(
    user, other_user, api_client, revoked_signals
):
    mine = [issue(user) for _ in range(2)]
    theirs = issue(other_user)

    out, _ = run("destroy", "alice", "--noinput")

    assert "Revoked 2 sessions of alice" in out
    for issued in mine:
        assert issued.session.pk in out
        assert me_status(api_client, issued.access_token) == 401
    assert me_status(api_client, theirs.access_token) == 200
    assert sorted(call["token"].pk for call in revoked_signals) == sorted(
        issued.session.pk for issued in mine
    )
    assert {call["reason"] for call in revoked_signals} == {RevokeReason.COMMAND}
    assert set(Token.objects.filter(user=user).values_list("revoke_reason", flat=True)) == {
        RevokeReason.COMMAND
    }


def test_destroy_holds_at_once_in_cached_mode(user, api_client, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}
    issued = issue(user)
    assert me_status(api_client, issued.access_token) == 200  # the session is now cached

    run("destroy", "alice", "--noinput")

    assert me_status(api_client, issued.access_token) == 401


def test_destroy_no_input_spelling_works_too(user, api_client):
    issued = issue(user)
    run("destroy", "alice", "--no-input")
    assert me_status(api_client, issued.access_token) == 401


def test_destroy_by_id_revokes_only_those_sessions(user, api_client):
    keep, drop = issue(user), issue(user)

    out, _ = run("destroy", "alice", f"--id={drop.session.pk}", interactive=False)

    assert "Revoked 1 session of alice" in out
    assert me_status(api_client, drop.access_token) == 401
    assert me_status(api_client, keep.access_token) == 200


def test_destroy_by_an_id_that_is_not_the_users_fails_and_revokes_nothing(
    user, other_user, api_client
):
    mine, theirs = issue(user), issue(other_user)

    with pytest.raises(CommandError, match=f"Not a live session of alice: {theirs.session.pk}"):
        run("destroy", "alice", f"--id={mine.session.pk}", f"--id={theirs.session.pk}", "--noinput")

    assert me_status(api_client, mine.access_token) == 200
    assert me_status(api_client, theirs.access_token) == 200


def test_destroy_all_users_revokes_everyone(user, other_user, api_client):
    tokens = [issue(user), issue(other_user)]

    out, _ = run("destroy", "--all-users", "--noinput")

    assert "Revoked 2 sessions of every user" in out
    assert [me_status(api_client, t.access_token) for t in tokens] == [401, 401]


def test_destroy_needs_a_user_or_all_users_not_both(user):
    with pytest.raises(CommandError, match="or --all-users"):
        run("destroy", "--noinput")
    with pytest.raises(CommandError, match="not both"):
        run("destroy", "alice", "--all-users", "--noinput")


def test_destroy_of_an_unknown_user_fails_naming_the_user(db):
    with pytest.raises(CommandError, match="User 'mallory' not found"):
        run("destroy", "mallory", "--noinput")


def test_destroy_with_nothing_live_says_so(user):
    make_dead(issue(user).session, expired_ago=timedelta(minutes=1))
    out, _ = run("destroy", "alice", "--noinput")
    assert "nothing to revoke" in out


def test_destroy_without_a_terminal_refuses_and_revokes_nothing(user, api_client):
    issued = issue(user)

    with pytest.raises(CommandError, match="Refusing to destroy without a terminal; use --noinput"):
        run("destroy", "alice", stdin=io.StringIO("y\n"))

    assert me_status(api_client, issued.access_token) == 200


def test_destroy_asks_and_no_keeps_the_tokens(user, api_client):
    tokens = [issue(user), issue(user)]

    out, _ = run("destroy", "alice", stdin=Terminal("n\n"))

    assert "This will revoke 2 live sessions of alice" in out
    assert all(t.session.pk in out for t in tokens)
    assert "Are you sure? [y/N]" in out
    assert "nothing was revoked" in out
    assert [me_status(api_client, t.access_token) for t in tokens] == [200, 200]


@pytest.mark.parametrize("answer", ["", "\n", "maybe\n", "N\n", "yess\n"])
def test_destroy_treats_anything_but_yes_as_no(user, api_client, answer):
    issued = issue(user)
    run("destroy", "alice", stdin=Terminal(answer))
    assert me_status(api_client, issued.access_token) == 200


@pytest.mark.parametrize("answer", ["y\n", "yes\n", "Y\n", " YES \n"])
def test_destroy_asks_and_yes_revokes(user, api_client, answer):
    issued = issue(user)

    out, _ = run("destroy", "alice", stdin=Terminal(answer))

    assert "Revoked 1 session of alice." in out
    assert me_status(api_client, issued.access_token) == 401


def test_destroy_lists_at_most_twenty_ids_unless_verbose(user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": None}
    sessions = [issue(user).session for _ in range(25)]

    out, _ = run("destroy", "alice", stdin=Terminal("n\n"))
    assert "and 5 more" in out
    assert sum(session.pk in out for session in sessions) == 20

    out, _ = run("destroy", "alice", "-v", "2", stdin=Terminal("n\n"))
    assert all(session.pk in out for session in sessions)


# -- destroy through a real terminal ------------------------------------------------------


def child_env() -> dict[str, str]:
    return {
        **os.environ,  # DATABASE_URL / REDIS_URL pass through when set
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "COCART_JWT_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "DJANGO_COLORS": "nocolor",
        "PYTHONUNBUFFERED": "1",
    }


def run_in_terminal(args: list[str], answer: bytes) -> tuple[int, str]:
    """Run ``manage.py jwt *args`` on a pseudo-terminal; type ``answer`` at the prompt."""
    master, slave = os.openpty()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "manage.py", "jwt", *args],
        cwd=ROOT,
        env=child_env(),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    output = b""
    answered = False
    deadline = time.monotonic() + CHILD_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"[y/N]" in output:
                os.write(master, answer)
                answered = True
        else:
            raise AssertionError(f"the command did not finish: {output!r}")
        return process.wait(timeout=CHILD_TIMEOUT), output.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_destroy_in_a_terminal_answering_no_keeps_the_tokens_working(user, api_client):
    tokens = [issue(user), issue(user)]

    status, output = run_in_terminal(["destroy", "alice"], b"n\n")

    assert status == 0, output
    assert "This will revoke 2 live sessions of alice" in output
    assert "Are you sure? [y/N]" in output
    assert "nothing was revoked" in output
    assert [me_status(api_client, t.access_token) for t in tokens] == [200, 200]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_destroy_in_a_terminal_answering_yes_revokes_the_tokens(user, other_user, api_client):
    tokens = [issue(user), issue(user)]
    theirs = issue(other_user)

    status, output = run_in_terminal(["destroy", "alice"], b"y\n")

    assert status == 0, output
    assert "Revoked 2 sessions of alice." in output
    assert [me_status(api_client, t.access_token) for t in tokens] == [401, 401]
    assert me_status(api_client, theirs.access_token) == 200
    assert set(Token.objects.filter(user=user).values_list("revoke_reason", flat=True)) == {
        RevokeReason.COMMAND
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_destroy_without_a_terminal_exits_non_zero_and_revokes_nothing(user, api_client):
    issued = issue(user)

    result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "manage.py", "jwt", "destroy", "alice"],
        cwd=ROOT,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )

    assert result.returncode != 0
    assert "Refusing to destroy without a terminal; use --noinput" in result.stderr
    assert me_status(api_client, issued.access_token) == 200
    assert Token.objects.get().revoked_at is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_destroy_of_an_unknown_user_exits_non_zero_naming_it(db):
    result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "manage.py", "jwt", "destroy", "mallory", "--noinput"],
        cwd=ROOT,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode == 1
    assert "User 'mallory' not found" in result.stderr


# -- cleanup ------------------------------------------------------------------------------


@pytest.fixture
def population(user):
    """Sessions on both sides of the default 7-day grace period, with refresh tokens."""

    def session(name: str) -> Token:
        issued = issue(user, refreshable=True, description=name)
        return issued.session

    sessions = {
        name: session(name)
        for name in (
            "live",
            "expired_long_ago",
            "expired_recently",
            "revoked_long_ago",
            "revoked_recently",
            "revoked_long_ago_still_unexpired",
        )
    }
    make_dead(sessions["expired_long_ago"], expired_ago=timedelta(days=8))
    make_dead(sessions["expired_recently"], expired_ago=timedelta(days=6))
    make_dead(
        sessions["revoked_long_ago"], expired_ago=timedelta(days=8), revoked_ago=timedelta(days=9)
    )
    make_dead(sessions["revoked_recently"], revoked_ago=timedelta(days=1))
    make_dead(sessions["revoked_long_ago_still_unexpired"], revoked_ago=timedelta(days=8))
    Token.objects.filter(pk=sessions["revoked_long_ago_still_unexpired"].pk).update(
        expires_at=now() + timedelta(days=20)
    )
    return sessions


def remaining(population: dict[str, Token]) -> set[str]:
    names = {session.pk: name for name, session in population.items()}
    return {names[pk] for pk in Token.objects.values_list("pk", flat=True)}


def test_cleanup_deletes_sessions_dead_longer_than_7_days_by_default(population, api_client):
    live_token = Token.objects.get(pk=population["live"].pk)

    out, _ = run("cleanup")

    assert remaining(population) == {"live", "expired_recently", "revoked_recently"}
    assert "Deleted 3 sessions (3 refresh tokens) expired or revoked more than 1 week ago." in out
    assert set(RefreshToken.objects.values_list("session_id", flat=True)) == {
        population[name].pk for name in ("live", "expired_recently", "revoked_recently")
    }
    assert live_token.status == "valid"


def test_cleanup_older_than_sets_the_grace_period(population):
    out, _ = run("cleanup", "--older-than", "2d")
    assert remaining(population) == {"live", "revoked_recently"}
    assert "more than 2 days ago" in out


def test_cleanup_never_deletes_a_live_session_even_with_no_grace(population, user, api_client):
    old_but_live = issue(user, lifetime=timedelta(days=30))
    Token.objects.filter(pk=old_but_live.session.pk).update(created_at=now() - timedelta(days=80))

    run("cleanup", "--older-than", "0")

    assert set(Token.objects.values_list("pk", flat=True)) == {
        population["live"].pk,
        old_but_live.session.pk,
    }
    assert me_status(api_client, old_but_live.access_token) == 200


def test_cleanup_dry_run_counts_and_deletes_nothing(population):
    out, _ = run("cleanup", "--dry-run")
    assert "Would delete 3 sessions (3 refresh tokens)" in out
    assert "nothing was deleted" in out
    assert len(remaining(population)) == 6


def test_cleanup_works_in_batches(population):
    out, _ = run("cleanup", "--older-than", "0", "--batch-size", "2", "-v", "2")
    batches = re.findall(r"^Batch (\d+): deleted (\d+) sessions?", out, re.M)
    assert [int(n) for n, _ in batches] == [1, 2, 3]
    assert all(int(d) <= 2 for _, d in batches)
    assert sum(int(d) for _, d in batches) == 5
    assert "Deleted 5 sessions (5 refresh tokens)" in out


def test_cleanup_shows_progress_on_a_terminal_only(population):
    terminal = Terminal()
    out, _ = run("cleanup", "--older-than", "0", "--batch-size", "2", stderr=terminal)
    assert re.findall(r"^Batch (\d+): deleted", terminal.getvalue(), re.M) == ["1", "2", "3"]
    assert "(5/5)" in terminal.getvalue()
    assert "Batch" not in out
    assert "Deleted 5 sessions" in out


def test_cleanup_from_cron_prints_only_the_count(population):
    out, err = run("cleanup", "--older-than", "0", "--batch-size", "2")
    assert out.strip() == (
        "Deleted 5 sessions (5 refresh tokens) expired or revoked (no grace period)."
    )
    assert err == ""


def test_cleanup_at_verbosity_0_prints_nothing(population):
    assert run("cleanup", "-v", "0") == ("", "")
    assert len(remaining(population)) == 3


def test_cleanup_never_loads_refresh_tokens_into_memory(population):
    with CaptureQueriesContext(connection) as queries:
        run("cleanup", "--older-than", "0", "--batch-size", "2")

    refresh_table = RefreshToken._meta.db_table
    statements = [query["sql"] for query in queries.captured_queries]
    selects = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]
    assert not any(re.search(rf'FROM "?{refresh_table}"?', sql, re.I) for sql in selects), selects
    deletes = [sql for sql in statements if sql.lstrip().upper().startswith("DELETE")]
    assert any(refresh_table in sql for sql in deletes)
    # Every read of sessions is bounded by the batch size.
    token_selects = [sql for sql in selects if Token._meta.db_table in sql and "COUNT" not in sql]
    assert token_selects
    assert all("LIMIT 2" in sql or "IN (" in sql for sql in token_selects), token_selects


@pytest.mark.django_db(transaction=True)
def test_an_interrupted_cleanup_keeps_the_batches_it_finished(user):
    for _ in range(6):
        make_dead(issue(user).session, expired_ago=timedelta(days=30))
    deleted: list[str] = []

    def fail_in_the_third_batch(sender: Any, instance: Token, **kwargs: Any) -> None:
        deleted.append(instance.pk)
        if len(deleted) == 5:
            raise DatabaseError("connection lost")

    pre_delete.connect(fail_in_the_third_batch, sender=Token, weak=False)
    try:
        with pytest.raises(DatabaseError):
            run("cleanup", "--batch-size", "2")
    finally:
        pre_delete.disconnect(fail_in_the_third_batch, sender=Token)

    # Two batches were committed; the third rolled back alone.
    assert Token.objects.count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be between 1 and 10000"),
        (["--batch-size", "100001"], "--batch-size must be between 1 and 10000"),
        (["--batch-size", "many"], "invalid int value"),
        (["--older-than", "soon"], "--older-than: 'soon' is not a duration"),
        (["--older-than=-P1D"], "--older-than must not be negative"),
    ],
)
def test_cleanup_with_bad_options_fails_naming_them(population, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("cleanup", *args)
    assert len(remaining(population)) == 6


def bulk_sessions(
    user: Any,
    count: int,
    prefix: str,
    *,
    expires_in: timedelta,
    refresh_every: int = 0,
    chunk: int = 5000,
) -> None:
    """``count`` sessions (ids ``prefix0000000``...) expiring about ``expires_in`` from now."""
    at = now()
    for start in range(0, count, chunk):
        sessions = [
            Token(
                id=f"{prefix}{index:07d}",
                user=user,
                # Distinct times, as real sessions have (one per millisecond, counting down).
                created_at=at + expires_in - timedelta(hours=1, milliseconds=index),
                expires_at=at + expires_in - timedelta(milliseconds=index),
                refreshable=bool(refresh_every),
            )
            for index in range(start, min(start + chunk, count))
        ]
        Token.objects.bulk_create(sessions)
        if refresh_every:
            RefreshToken.objects.bulk_create(
                RefreshToken(session_id=s.pk, token_hash=sha256_hex(s.pk), created_at=at)
                for s in sessions[::refresh_every]
            )


def test_cleanup_memory_stays_flat_as_the_table_grows(user, other_user):
    """tracemalloc peak of the whole cleanup: 10k dead sessions take no more than 2k."""

    def peak_cleanup() -> int:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            call_command("jwt", "cleanup", stdout=Discard(), stderr=Discard())
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    dead = timedelta(days=-30)
    bulk_sessions(other_user, 500, "live", expires_in=timedelta(days=1), refresh_every=1)
    bulk_sessions(user, 1000, "warm", expires_in=dead, refresh_every=10)
    peak_cleanup()  # imports, caches and query compilation out of the way
    bulk_sessions(user, 2000, "small", expires_in=dead, refresh_every=10)
    small = peak_cleanup()
    bulk_sessions(user, 10_000, "large", expires_in=dead, refresh_every=10)
    large = peak_cleanup()

    print(f"\njwt cleanup (tracemalloc): peak {small} bytes for 2k, {large} bytes for 10k sessions")
    assert large < 1.5 * small
    assert Token.objects.count() == Token.objects.live().count() == 500
    assert RefreshToken.objects.count() == 500


def pg_sessions(user: Any, count: int, prefix: str, *, expires_in: timedelta) -> None:
    """``count`` sessions in one INSERT ... SELECT generate_series (PostgreSQL), a tenth of
    them with a refresh token; copies of a template row, so every column stays valid."""
    template = Token.objects.create(
        id=f"{prefix}template", user=user, expires_at=now(), refreshable=True
    )
    qn = connection.ops.quote_name
    columns, values, params = [], [], []
    for field in Token._meta.concrete_fields:
        columns.append(qn(field.column))
        if field.name == "id":
            values.append("%s || lpad(i::text, 7, '0')")
            params.append(prefix)
        elif field.name in ("expires_at", "created_at"):
            shift = " - interval '1 hour'" if field.name == "created_at" else ""
            values.append(f"%s - i * interval '1 millisecond'{shift}")
            params.append(now() + expires_in)
        else:
            values.append(qn(field.column))
    refresh_fields = {field.name: qn(field.column) for field in RefreshToken._meta.concrete_fields}
    assert set(refresh_fields) == {"id", "session", "token_hash", "created_at", "used_at", "parent"}
    table, refresh_table = qn(Token._meta.db_table), qn(RefreshToken._meta.db_table)
    with connection.cursor() as cursor:
        # Table and column names come from the models' metadata; values are parameters.
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} "  # noqa: S608
            f"FROM {table}, generate_series(0, %s) AS i WHERE {qn('id')} = %s",
            [*params, count - 1, template.pk],
        )
        cursor.execute(
            f"INSERT INTO {refresh_table} ({refresh_fields['session']}, "  # noqa: S608
            f"{refresh_fields['token_hash']}, {refresh_fields['created_at']}) "
            f"SELECT id, md5(id) || md5('rt' || id), created_at FROM {table} "
            f"WHERE id LIKE %s AND id ~ '0$'",
            [f"{prefix}%"],
        )
    template.delete()


CHILD_CLEANUP = """
import re, runpy, sys
sys.argv = ["manage.py", "jwt", "cleanup", "-v", "2"]
try:
    runpy.run_path("manage.py", run_name="__main__")
finally:
    with open("/proc/self/status") as status:
        print("VmHWM", re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1), flush=True)
"""


def cleanup_in_a_child_process() -> tuple[int, str]:
    """Run ``manage.py jwt cleanup -v 2`` in a new process: its peak RSS in bytes, its output.

    The peak is the process's own VmHWM (``ru_maxrss`` would include the forking pytest's).
    """
    result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-c", CHILD_CLEANUP],
        cwd=ROOT,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    peak = re.search(r"^VmHWM (\d+)$", result.stdout, re.M)
    assert peak is not None, result.stdout
    return int(peak.group(1)) * 1024, result.stdout


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_cleanup_of_100k_sessions_on_postgresql_runs_in_batches_with_flat_memory(
    user, other_user, api_client
):
    """As cron runs it: its own process, committed batches; peak RSS at 20k and at 100k."""
    live = [issue(other_user) for _ in range(3)]
    pg_sessions(other_user, 1000, "live", expires_in=timedelta(days=1))
    baseline, _ = cleanup_in_a_child_process()  # nothing to delete: the process itself

    pg_sessions(user, 20_000, "small", expires_in=timedelta(days=-30))
    small, small_out = cleanup_in_a_child_process()
    pg_sessions(user, 100_000, "large", expires_in=timedelta(days=-30))
    large, large_out = cleanup_in_a_child_process()

    def batches(output: str) -> list[float]:
        return [float(s) for s in re.findall(r"^Batch \d+: .* in (\d+\.\d+) s", output, re.M)]

    small_batches, large_batches = batches(small_out), batches(large_out)
    print(
        f"\njwt cleanup (PostgreSQL, peak RSS of the process): {baseline} bytes with nothing "
        f"to delete; {small} bytes for 20k sessions ({len(small_batches)} batches, "
        f"{sum(small_batches):.2f} s, slowest {max(small_batches):.3f} s); {large} bytes for "
        f"100k sessions ({len(large_batches)} batches, {sum(large_batches):.2f} s, "
        f"slowest {max(large_batches):.3f} s)"
    )
    assert "Deleted 20000 sessions (2000 refresh tokens)" in small_out
    assert "Deleted 100000 sessions (10000 refresh tokens)" in large_out
    assert len(small_batches) == 20
    assert len(large_batches) == 100
    assert max(large_batches) < 2.0  # short transactions
    # Five times the rows, not five times the memory: the growth over the idle process
    # stays within what one batch needs, whatever the table size.
    assert large - baseline < 1.5 * (small - baseline) + 4 * 1024 * 1024
    assert large < 1.1 * small
    assert Token.objects.count() == Token.objects.live().count() == 1003
    assert RefreshToken.objects.count() == 100
    assert [me_status(api_client, t.access_token) for t in live] == [200, 200, 200]


# -- keygen -------------------------------------------------------------------------------


KEY_SETTINGS = ("ALGORITHM", "SIGNING_KEY", "VERIFYING_KEY", "KEY_ID", "FALLBACK_KEYS")


def configure_keys(settings: Any, algorithm: str, **keys: Any) -> None:
    """The test settings (rate limits off...) with only these keys."""
    rest = {name: value for name, value in settings.COCART_JWT.items() if name not in KEY_SETTINGS}
    settings.COCART_JWT = {**rest, "ALGORITHM": algorithm, **keys}


def assert_keys_work(api_client: Any, password: str, algorithm: str) -> None:
    errors = [
        message
        for message in run_checks()
        if str(message.id).startswith("cocart_jwt.") and message.level >= ERROR
    ]
    assert errors == []
    response = login(api_client, "alice", password)
    assert response.status_code == 200, response.content
    access_token = response.json()["access_token"]
    assert jwt.get_unverified_header(access_token)["alg"] == algorithm
    assert me_status(api_client, access_token) == 200


def pem_blocks(text: str) -> dict[str, str]:
    return {match.group(1): match.group(0) for match in PEM_BLOCK.finditer(text)}


@pytest.mark.parametrize("algorithm", ["HS256", "HS512", "RS256", "PS384", "ES256", "ES512"])
def test_keygen_output_works_as_signing_and_verifying_key(
    algorithm, settings, user, password, api_client
):
    out, _ = run("keygen", "--algorithm", algorithm)

    if algorithm.startswith("HS"):
        secret = re.search(r"^COCART_JWT_SIGNING_KEY=(\S+)$", out, re.M).group(1)
        configure_keys(settings, algorithm, SIGNING_KEY=secret)
    else:
        blocks = pem_blocks(out)
        configure_keys(
            settings,
            algorithm,
            SIGNING_KEY=blocks["PRIVATE KEY"],
            VERIFYING_KEY=blocks["PUBLIC KEY"],
        )
    assert_keys_work(api_client, password, algorithm)


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_keygen_hs_secret_is_long_enough_random_and_url_safe(algorithm):
    secrets = {run("keygen", "--algorithm", algorithm, "-v", "0")[0].strip() for _ in range(3)}
    assert len(secrets) == 3
    for secret in secrets:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", secret)
        # token_urlsafe(n): n random bytes, 4/3 as many characters.
        assert len(secret) >= HMAC_MIN_BYTES[algorithm] * 4 // 3


def test_keygen_defaults_to_the_configured_algorithm_even_with_no_usable_key(settings, capsys):
    settings.COCART_JWT = {"ALGORITHM": "ES384"}  # no key yet: the system checks fail
    assert any(message.id == "cocart_jwt.E003" for message in run_checks())

    # As from the command line, where system checks run unless a command opts out.
    load_command_class("cocart_jwt", "jwt").run_from_argv(["manage.py", "jwt", "keygen", "-v", "0"])

    out = capsys.readouterr().out

    key: Any = serialization.load_pem_private_key(pem_blocks(out)["PRIVATE KEY"].encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp384r1"


@pytest.mark.parametrize(
    ("algorithm", "curve"), [("ES256", "secp256r1"), ("ES384", "secp384r1"), ("ES512", "secp521r1")]
)
def test_keygen_ec_keys_are_on_the_algorithms_curve(algorithm, curve):
    out, _ = run("keygen", "--algorithm", algorithm, "-v", "0")
    blocks = pem_blocks(out)
    assert set(blocks) == {"PRIVATE KEY", "PUBLIC KEY"}
    assert out.strip() == (blocks["PRIVATE KEY"] + blocks["PUBLIC KEY"]).strip()
    key: Any = serialization.load_pem_public_key(blocks["PUBLIC KEY"].encode())
    assert key.curve.name == curve


def test_keygen_rsa_is_3072_bits_by_default_and_bits_changes_it():
    out, _ = run("keygen", "--algorithm", "RS256", "-v", "0")
    key: Any = serialization.load_pem_private_key(pem_blocks(out)["PRIVATE KEY"].encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 3072

    out, _ = run("keygen", "--algorithm", "PS256", "--bits", "2048", "-v", "0")
    key = serialization.load_pem_private_key(pem_blocks(out)["PRIVATE KEY"].encode(), None)
    assert key.key_size == 2048


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--algorithm", "none"], "Unknown algorithm 'none'"),
        (["--algorithm", "HS1"], "Unknown algorithm 'HS1'"),
        (["--algorithm", "RS256", "--bits", "1024"], "--bits must be between 2048"),
        (["--algorithm", "ES256", "--bits", "4096"], "--bits applies to RSA algorithms"),
        (["--algorithm", "HS256", "--force"], "--force only applies with --out"),
    ],
)
def test_keygen_with_bad_options_fails(args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("keygen", *args)


def test_keygen_out_writes_private_and_public_key_files_with_mode_0600(
    tmp_path, settings, user, password, api_client
):
    path = tmp_path / "jwt.pem"

    out, _ = run("keygen", "--algorithm", "ES256", "--out", str(path))

    public = tmp_path / "jwt.pem.pub"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in path.read_text()
    assert set(pem_blocks(public.read_text())) == {"PUBLIC KEY"}
    assert "BEGIN" not in out  # the key went to the file, not to the screen
    assert f'"SIGNING_KEY": "file:{path}"' in out
    configure_keys(settings, "ES256", SIGNING_KEY=f"file:{path}", VERIFYING_KEY=f"file:{public}")
    assert_keys_work(api_client, password, "ES256")


def test_keygen_out_writes_an_hs_secret_without_a_newline(
    tmp_path, settings, user, password, api_client
):
    path = tmp_path / "jwt.secret"
    run("keygen", "--algorithm", "HS384", "--out", str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not (tmp_path / "jwt.secret.pub").exists()
    assert re.fullmatch(r"[A-Za-z0-9_-]{64}", path.read_text())
    configure_keys(settings, "HS384", SIGNING_KEY=f"file:{path}")
    assert_keys_work(api_client, password, "HS384")


def test_keygen_out_refuses_to_overwrite_unless_forced(tmp_path):
    path = tmp_path / "jwt.pem"
    path.write_text("precious")
    path.chmod(0o644)

    with pytest.raises(CommandError, match="already exists; use --force"):
        run("keygen", "--algorithm", "RS256", "--bits", "2048", "--out", str(path))
    assert path.read_text() == "precious"
    assert not (tmp_path / "jwt.pem.pub").exists()

    run("keygen", "--algorithm", "RS256", "--bits", "2048", "--out", str(path), "--force")
    assert "PRIVATE KEY" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["jwt.pem", "jwt.pem.pub"]


def test_keygen_out_into_a_missing_directory_fails(tmp_path):
    with pytest.raises(CommandError, match="Cannot write"):
        run("keygen", "--out", str(tmp_path / "missing" / "jwt.secret"))


def test_cleanup_deletes_login_links_that_expired_long_ago(user):
    from cocart_jwt import login_links
    from cocart_jwt.models import LoginLink

    session = Token.objects.issue(user, lifetime=timedelta(days=30)).session
    old = login_links.issue(session, at=now() - timedelta(days=8))
    fresh = login_links.issue(session)

    out, _ = run("cleanup")

    assert set(LoginLink.objects.values_list("pk", flat=True)) == {fresh.link.pk}
    assert old.link.pk != fresh.link.pk
    assert "Deleted 1 login link expired or revoked more than 1 week ago." in out
    assert Token.objects.live().filter(pk=session.pk).exists()
