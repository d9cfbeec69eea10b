"""Tokens are secrets: the database holds only hashes, reprs and logs hold nothing.

A database dump, an admin screenshot, a traceback or a log aggregator must never give
anyone a usable access or refresh token.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from cocart_jwt.models import RefreshToken, Token
from tests.factories import bearer, login, refresh

HIGH_RATE_LIMITS = {
    "login": "100000/min",
    "refresh": "100000/min",
    "validate": "100000/min",
    "login_link": "100000/min",
}
URL_SAFE_256_BITS = re.compile(r"[A-Za-z0-9_-]{43,}")


@pytest.fixture(autouse=True)
def no_rate_limits(settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": HIGH_RATE_LIMITS}


@pytest.fixture
def client() -> APIClient:
    client = APIClient()
    client.raise_request_exception = False
    return client


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def dump_tables(tables: list[str]) -> str:
    """Every row of ``tables`` as text, the way a database dump would show it."""
    lines = []
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                cells = []
                for value in row:
                    if isinstance(value, memoryview):
                        value = value.tobytes()
                    if isinstance(value, bytes):
                        cells.append(value.decode("latin-1"))
                    else:
                        cells.append(str(value))
                lines.append(f"{table}: " + " | ".join(cells))
    return "\n".join(lines)


def app_and_user_tables() -> list[str]:
    names = connection.introspection.table_names()
    tables = [name for name in names if name.startswith("cocart_jwt_")]
    tables.append(get_user_model()._meta.db_table)
    assert Token._meta.db_table in tables and RefreshToken._meta.db_table in tables
    return tables


def token_fragments(token: str) -> list[str]:
    """The token, and for a JWT its signature: either alone would let someone use or forge it."""
    fragments = [token]
    if token.count(".") == 2:
        fragments.append(token.rsplit(".", 1)[1])
    return fragments


class Flow:
    """login, validate, refresh (rotation), a failed refresh, a reused refresh, logout."""

    def __init__(self, client: APIClient, password: str) -> None:
        self.access_tokens: list[str] = []
        self.refresh_tokens: list[str] = []
        self.presented: list[str] = []  # refused refresh tokens the client sent

        first = login(client, "alice", password)
        assert first.status_code == 200, first.content
        self.sid = first.json()["sid"]
        self.keep(first.json())
        assert (
            client.post(
                reverse("cocart_jwt:validate"), **bearer(self.access_tokens[-1])
            ).status_code
            == 200
        )

        rotated = refresh(client, self.refresh_tokens[-1])
        assert rotated.status_code == 200, rotated.content
        assert rotated.json()["sid"] == self.sid
        self.keep(rotated.json())
        assert self.refresh_tokens[0] != self.refresh_tokens[1]

        guess = "guessed-" + self.refresh_tokens[-1][8:]
        self.presented.append(guess)
        assert refresh(client, guess).status_code == 401

        # A second session, then reuse of its spent refresh token (which revokes it).
        second = login(client, "alice", password)
        assert second.status_code == 200
        self.keep(second.json())
        self.second_sid = second.json()["sid"]
        spent = self.refresh_tokens[-1]
        rotated_again = refresh(client, spent)
        assert rotated_again.status_code == 200
        self.keep(rotated_again.json())
        assert refresh(client, spent).status_code == 401  # reuse
        assert Token.objects.get(pk=self.second_sid).revoked_at is not None

        logout = client.post(reverse("cocart_jwt:logout"), **bearer(self.access_tokens[1]))
        assert logout.status_code == 204

    def keep(self, data: dict[str, Any]) -> None:
        self.access_tokens.append(data["access_token"])
        self.refresh_tokens.append(data["refresh_token"])

    @property
    def secrets(self) -> list[str]:
        return [
            fragment
            for token in (*self.access_tokens, *self.refresh_tokens, *self.presented)
            for fragment in token_fragments(token)
        ]


@pytest.fixture
def flow(client: APIClient, user: Any, password: str, caplog: pytest.LogCaptureFixture) -> Flow:
    caplog.set_level(logging.DEBUG)
    return Flow(client, password)


def test_no_token_is_stored_anywhere_in_the_database(flow: Flow) -> None:
    dump = dump_tables(app_and_user_tables())
    # The dump really holds the registry: the session id and the refresh hashes are there.
    assert flow.sid in dump and flow.second_sid in dump
    assert sha256(flow.refresh_tokens[0]) in dump
    for secret in flow.secrets:
        assert secret not in dump, "a token (or its signature) is stored in the database"


def test_no_token_is_stored_in_any_table_of_the_database(flow: Flow) -> None:
    dump = dump_tables(connection.introspection.table_names())
    assert flow.sid in dump
    for secret in flow.secrets:
        assert secret not in dump


def test_only_the_sha256_of_each_refresh_token_is_stored(flow: Flow) -> None:
    issued = flow.refresh_tokens
    stored = set(RefreshToken.objects.values_list("token_hash", flat=True))
    assert stored == {sha256(token) for token in issued}
    for token in issued:
        row = RefreshToken.objects.get(token_hash=sha256(token))
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert len(row.token_hash) == 64
    # The family of the first session: the rotated-away token is kept (spent) beside the new.
    first_family = RefreshToken.objects.filter(session_id=flow.sid)
    assert {row.token_hash for row in first_family} == {sha256(t) for t in issued[:2]}
    assert first_family.get(token_hash=sha256(issued[0])).used_at is not None


def test_the_guessed_refresh_token_left_no_trace(flow: Flow) -> None:
    assert not RefreshToken.objects.filter(token_hash=sha256(flow.presented[0])).exists()


def test_reprs_and_strs_of_registry_rows_hold_no_secret(flow: Flow, user: Any) -> None:
    user.refresh_from_db()
    rows: list[Any] = [*Token.objects.all(), *RefreshToken.objects.all()]
    assert len(rows) >= 2 + len(flow.refresh_tokens)
    hidden = [*flow.secrets, user.password]
    hidden += [session.password_fingerprint for session in Token.objects.all()]
    for row in rows:
        for text in (repr(row), str(row)):
            for secret in hidden:
                assert secret not in text, f"{type(row).__name__} shows a secret: {text}"


def log_texts(records: list[logging.LogRecord]) -> list[str]:
    texts = []
    for record in records:
        texts.append(f"{record.msg!s} {record.args!r} {record.getMessage()}")
        if record.exc_info and record.exc_info[1] is not None:
            texts.append(repr(record.exc_info[1]))
        if record.exc_text:
            texts.append(record.exc_text)
    return texts


def test_no_log_record_of_the_whole_flow_holds_a_token(
    flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    records = caplog.get_records("setup")  # the flow runs in the fixture
    # The flow did log: the refused guess and the reuse went to the cocart_jwt logger.
    assert any(record.name.split(".")[0] == "cocart_jwt" for record in records)
    texts = log_texts(records)
    for secret in flow.secrets:
        for text in texts:
            assert secret not in text, "a token was written to the log"


def test_refresh_tokens_carry_at_least_256_bits_and_never_repeat(
    client: APIClient, user: Any, password: str, settings: Any
) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": 100}
    tokens = []
    for _ in range(50):
        response = login(client, "alice", password)
        assert response.status_code == 200
        tokens.append(response.json()["refresh_token"])
    for token in tokens:
        assert URL_SAFE_256_BITS.fullmatch(token), token
    assert len(set(tokens)) == 50
    # No shared prefix or suffix worth speaking of: the randomness is the whole token.
    assert len({token[:8] for token in tokens}) == 50
    assert len({token[-8:] for token in tokens}) == 50
    assert RefreshToken.objects.count() == 50
    assert set(RefreshToken.objects.values_list("token_hash", flat=True)) == {
        sha256(token) for token in tokens
    }


def test_reprs_of_freshly_issued_tokens_and_links_hold_no_secret(user: Any) -> None:
    from cocart_jwt import login_links

    issued = Token.objects.issue(user)
    link = login_links.issue(issued.session)

    assert issued.access_token not in repr(issued)
    assert str(issued.refresh_token) not in repr(issued)
    assert link.token not in repr(link)
