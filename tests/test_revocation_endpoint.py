"""``POST revoke/`` (RFC 7009): a refresh or access token revokes its session; every request
gets a 200 with an empty body (429 aside), whatever it sent.

The token is the credential: no authentication, no cookie read. A refresh token (spent or not)
revokes its session without counting as reuse; an access token (login, personal, admin) that
verifies revokes its session if that session is its ``sub``'s. Anything else changes nothing,
at the cost of at most one query. In cached mode the revocation tombstones the session's entry
(across processes: tests/test_cached_mode_processes.py).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from cocart_jwt import signals
from cocart_jwt.models import Event, Kind, RefreshToken, RevokeReason, Token, TokenEvent
from cocart_jwt.store import cached
from cocart_jwt.tokens import mint_access_token
from cocart_jwt.utils import now
from tests.factories import answering_client, bearer, hmac_secret, refresh, signed_in

pytestmark = pytest.mark.django_db

REVOKE = reverse("cocart_jwt:revoke")
ME = "/api/me/"
FORM = "application/x-www-form-urlencoded"
CLIENT = {"REMOTE_ADDR": "192.0.2.7", "HTTP_USER_AGENT": "Revoker/1.0"}
SIGNALS = ("token_issued", "token_refreshed", "token_revoked", "refresh_token_reused")


@pytest.fixture
def client() -> APIClient:
    return answering_client()


@pytest.fixture
def sent() -> Iterator[list[str]]:
    """The names of the life-cycle signals sent meanwhile, in order."""
    names: list[str] = []
    receivers = {}
    for name in SIGNALS:

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            names.append(_name)

        receivers[name] = receiver
        getattr(signals, name).connect(receiver, dispatch_uid=f"test_revoke_{name}")
    yield names
    for name in SIGNALS:
        getattr(signals, name).disconnect(dispatch_uid=f"test_revoke_{name}")


def revoke_form(client: APIClient, token: str, hint: str | None = None, **extra: Any) -> Any:
    fields = {"token": token} if hint is None else {"token": token, "token_type_hint": hint}
    return client.post(REVOKE, fields, **extra)  # the test client's default: form-encoded


def revoke_json(client: APIClient, token: str, hint: str | None = None) -> Any:
    fields = {"token": token} if hint is None else {"token": token, "token_type_hint": hint}
    return client.post(REVOKE, fields, format="json")


def post_raw(client: APIClient, body: bytes, content_type: str, **extra: Any) -> Any:
    return client.generic("POST", REVOKE, body, content_type=content_type, **extra)


def assert_empty_200(response: Any) -> None:
    assert response.status_code == 200, (response.status_code, response.content[:300])
    assert response.content == b""
    assert response["Cache-Control"] == "no-store"


def me(access_token: str) -> int:
    return int(APIClient().get(ME, **bearer(access_token)).status_code)


def session(sid: str) -> Token:
    return Token.objects.get(pk=sid)


def registry_state() -> tuple[list[Any], list[Any], int]:
    tokens = list(Token.objects.order_by("pk").values_list("pk", "revoked_at", "expires_at"))
    family = list(RefreshToken.objects.order_by("pk").values_list("pk", "used_at"))
    return tokens, family, TokenEvent.objects.count()


def personal_token(user: Any, scopes: list[str] | None = None) -> Any:
    return Token.objects.issue(
        user, kind=Kind.PERSONAL, scopes=scopes or ["orders:read"], description="CI"
    )


def admin_token(user: Any) -> Any:
    return Token.objects.issue(user, kind=Kind.ADMIN, refreshable=False)


# -- what revokes -------------------------------------------------------------------------------


def test_a_form_encoded_access_token_revokes_its_session(client, user, password, sent):
    pair = signed_in(user, password)
    sent.clear()

    assert_empty_200(revoke_form(client, pair["access_token"], **CLIENT))

    revoked = session(pair["sid"])
    assert revoked.revoked_at is not None
    assert revoked.revoke_reason == RevokeReason.REVOCATION_REQUEST
    assert me(pair["access_token"]) == 401
    assert refresh(client, pair["refresh_token"]).status_code == 401
    assert sent == ["token_revoked"]
    event = TokenEvent.objects.get(sid=pair["sid"], event=Event.REVOKED)
    assert (event.reason, event.ip, event.user_agent) == (
        RevokeReason.REVOCATION_REQUEST,
        "192.0.2.7",
        "Revoker/1.0",
    )


def test_a_json_refresh_token_revokes_its_session(client, user, password, sent):
    pair = signed_in(user, password)
    sent.clear()

    assert_empty_200(revoke_json(client, pair["refresh_token"]))

    assert session(pair["sid"]).revoke_reason == RevokeReason.REVOCATION_REQUEST
    assert me(pair["access_token"]) == 401
    assert refresh(client, pair["refresh_token"]).status_code == 401
    assert sent == ["token_revoked"]  # no reuse, no refresh


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token", "id_token", ""])
@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
@pytest.mark.parametrize("encoding", ["form", "json"])
def test_each_token_type_is_revoked_whatever_the_hint(client, user, password, kind, hint, encoding):
    """The hint orders the lookups; a wrong or unknown one still finds the token."""
    pair = signed_in(user, password)
    send = revoke_form if encoding == "form" else revoke_json

    assert_empty_200(send(client, pair[kind], hint))

    assert session(pair["sid"]).revoke_reason == RevokeReason.REVOCATION_REQUEST
    assert me(pair["access_token"]) == 401


def test_a_hint_that_is_no_string_does_not_cost_the_token(client, user, password):
    pair = signed_in(user, password)
    body = {"token": pair["access_token"], "token_type_hint": ["refresh_token", 7]}

    assert_empty_200(client.post(REVOKE, body, format="json"))

    assert session(pair["sid"]).is_revoked


def test_a_refresh_token_revoked_kills_the_access_tokens_its_refreshes_gave(client, user, password):
    first = signed_in(user, password)
    second = refresh(client, first["refresh_token"]).json()
    assert me(second["access_token"]) == 200

    assert_empty_200(revoke_form(client, second["refresh_token"], "refresh_token"))

    assert me(first["access_token"]) == 401
    assert me(second["access_token"]) == 401
    assert refresh(client, second["refresh_token"]).status_code == 401


def test_a_spent_refresh_token_revokes_its_session_and_is_no_reuse(client, user, password, sent):
    first = signed_in(user, password)
    second = refresh(client, first["refresh_token"]).json()
    sent.clear()

    assert_empty_200(revoke_form(client, first["refresh_token"]))  # spent by the refresh

    assert session(first["sid"]).revoke_reason == RevokeReason.REVOCATION_REQUEST
    assert me(second["access_token"]) == 401
    assert sent == ["token_revoked"]
    assert not TokenEvent.objects.filter(sid=first["sid"], event=Event.REUSED).exists()


@pytest.mark.parametrize("make", [personal_token, admin_token], ids=["personal", "admin"])
def test_the_access_token_of_a_personal_or_admin_token_revokes_it(client, user, make):
    issued = make(user)
    assert me(issued.access_token) == 200

    assert_empty_200(revoke_form(client, issued.access_token, "access_token"))

    assert session(issued.session.pk).revoke_reason == RevokeReason.REVOCATION_REQUEST
    assert me(issued.access_token) == 401


def test_only_the_tokens_session_is_revoked(client, user, other_user, password):
    mine, other, bobs = (
        signed_in(user, password),
        signed_in(user, password),
        signed_in(other_user, password),
    )

    assert_empty_200(revoke_form(client, mine["access_token"]))

    assert me(mine["access_token"]) == 401
    assert me(other["access_token"]) == 200
    assert me(bobs["access_token"]) == 200


def test_a_revoked_session_answers_200_again_and_sends_nothing(client, user, password, sent):
    pair = signed_in(user, password)
    assert_empty_200(revoke_form(client, pair["refresh_token"]))
    revoked_at = session(pair["sid"]).revoked_at
    sent.clear()

    assert_empty_200(revoke_form(client, pair["refresh_token"]))
    assert_empty_200(revoke_form(client, pair["access_token"]))  # expired? no: revoked

    assert session(pair["sid"]).revoked_at == revoked_at
    assert sent == []
    assert TokenEvent.objects.filter(sid=pair["sid"], event=Event.REVOKED).count() == 1


def test_a_token_in_the_authorization_header_is_not_read(client, user, password):
    pair = signed_in(user, password)

    assert_empty_200(client.post(REVOKE, **bearer(pair["access_token"])))

    assert me(pair["access_token"]) == 200


def test_a_bad_authorization_header_does_not_matter(client, user, password):
    pair = signed_in(user, password)

    response = revoke_form(client, pair["access_token"], HTTP_AUTHORIZATION="Bearer not.a.token")

    assert_empty_200(response)
    assert me(pair["access_token"]) == 401


def test_cookies_are_not_read(client, user, password, settings):
    """With cookie transport the refresh cookie rides on every request to the site: a page of
    another site posting here must not revoke the visitor's session."""
    settings.COCART_JWT = {**settings.COCART_JWT, "COOKIE_TRANSPORT": True}
    browser = APIClient()
    login = browser.post(
        reverse("cocart_jwt:login"), {"username": "alice", "password": password}, format="json"
    )
    assert login.status_code == 200
    assert browser.cookies.get("cocart_refresh")

    assert_empty_200(browser.post(REVOKE))
    assert_empty_200(browser.post(REVOKE, {"token_type_hint": "refresh_token"}))

    assert not session(login.json()["sid"]).is_revoked


# -- what changes nothing -------------------------------------------------------------------


def test_an_access_token_whose_sub_is_not_its_sessions_user_changes_nothing(
    client, user, other_user, password, sent, caplog
):
    """Signed by this site, but naming Bob's session with Alice as its subject: no one may
    revoke a session with a token that is not its user's."""
    bobs = signed_in(other_user, password)
    forged = mint_access_token(session(bobs["sid"]), user, now()).token
    before = registry_state()
    sent.clear()

    assert_empty_200(revoke_form(client, forged))

    assert registry_state() == before
    assert sent == []
    assert me(bobs["access_token"]) == 200
    # Found as an access token: the refresh-token lookup is not even tried.
    assert caplog.messages[-1] == (
        f"Revocation request: access token whose sub is not the user of session {bobs['sid']}, kept"
    )


def test_an_expired_access_token_changes_nothing(client, user, password):
    pair = signed_in(user, password)
    before = registry_state()

    with time_machine.travel(now() + timedelta(minutes=16)):
        assert_empty_200(revoke_form(client, pair["access_token"]))

    assert registry_state() == before
    assert refresh(client, pair["refresh_token"]).status_code == 200


def test_another_sites_token_changes_nothing(client, user, password, settings):
    """Signed with another key (another site, or one removed from FALLBACK_KEYS), for a session
    that is live here."""
    pair = signed_in(user, password)
    ours = settings.COCART_JWT
    settings.COCART_JWT = {**ours, "SIGNING_KEY": hmac_secret("HS256", variant=7)}
    foreign = mint_access_token(session(pair["sid"]), user, now()).token
    settings.COCART_JWT = ours
    before = registry_state()

    assert_empty_200(revoke_form(client, foreign))

    assert registry_state() == before
    assert me(pair["access_token"]) == 200


UNKNOWN = {
    "refresh-like": lambda: secrets.token_urlsafe(32),
    "jwt-like": lambda: "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl",
    "punctuation": lambda: "!!@@##$$%%^^&&**",
    "control": lambda: "\x01\x02\x1b[31m",
    "sql": lambda: "' OR 1=1 --",
    "snowmen": lambda: "\u2603" * 40,
    "8-kib": lambda: "a" * 8192,
}


@pytest.mark.parametrize("make", list(UNKNOWN.values()), ids=list(UNKNOWN))
@pytest.mark.parametrize("hint", [None, "refresh_token"])
def test_an_unknown_token_changes_nothing_at_the_cost_of_one_query(
    client, user, password, make, hint, sent
):
    pair = signed_in(user, password)
    before = registry_state()
    sent.clear()

    with CaptureQueriesContext(connection) as queries:
        assert_empty_200(revoke_json(client, make(), hint))

    assert len(queries) <= 1, [query["sql"] for query in queries]
    assert registry_state() == before
    assert sent == []
    assert me(pair["access_token"]) == 200


HOSTILE = {
    "no-token": (b"token_type_hint=refresh_token", FORM),
    "empty-form": (b"", FORM),
    "blank-token": (b"token=%20%20", FORM),
    "nul": (b"token=abc%00def", FORM),
    "raw-non-utf8": (b"token=\xff\xfe", FORM),
    "separators": (b"&&&===&&", FORM),
    "huge": (b"token=" + b"x" * 1024 * 1024, FORM),
    "json-list": (b'{"token": ["x"]}', "application/json"),
    "json-number": (b'{"token": 12345}', "application/json"),
    "json-null": (b'{"token": null}', "application/json"),
    "json-array-body": (b'["token"]', "application/json"),
    "json-string-body": (b'"token"', "application/json"),
    "not-json": (b"{not json", "application/json"),
    "surrogate": (b'{"token": "\\ud800"}', "application/json"),
    "deep": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "bad-utf8-json": (b'{"token": "\xff\xfe"}', "application/json"),
    "text-plain": (b"token=x", "text/plain"),
    "multipart-garbage": (b"garbage", "multipart/form-data; boundary=B"),
    "many-fields": (b"&".join(b"f%d=1" % i for i in range(2000)), FORM),
}


@pytest.mark.parametrize(("body", "content_type"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_body_is_a_200_that_changes_nothing(client, user, password, body, content_type):
    pair = signed_in(user, password)
    before = registry_state()

    with CaptureQueriesContext(connection) as queries:
        assert_empty_200(post_raw(client, body, content_type))

    assert len(queries) <= 1, [query["sql"] for query in queries]
    assert registry_state() == before
    assert me(pair["access_token"]) == 200


def test_a_huge_token_runs_no_query(client, user, password):
    signed_in(user, password)

    with CaptureQueriesContext(connection) as queries:
        assert_empty_200(revoke_json(client, "x" * 1024 * 1024))

    assert len(queries) == 0, [query["sql"] for query in queries]


def test_a_multipart_body_is_read_too(client, user, password):
    pair = signed_in(user, password)

    assert_empty_200(client.post(REVOKE, {"token": pair["access_token"]}, format="multipart"))

    assert session(pair["sid"]).is_revoked


def test_get_is_not_allowed(client):
    assert client.get(REVOKE).status_code == 405


# -- the log ---------------------------------------------------------------------------------


def test_the_log_says_what_happened_and_never_holds_the_token(client, user, password, caplog):
    pair = signed_in(user, password)
    caplog.set_level(logging.INFO, logger="cocart_jwt")

    revoke_form(client, "no-such-token")
    revoke_form(client, pair["refresh_token"])
    revoke_form(client, pair["access_token"])

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Revocation")]
    assert lines[0].startswith("Revocation request: unknown token (not an access token: ")
    assert lines[0].endswith("not a refresh token), nothing revoked")
    assert (
        lines[1] == f"Revocation request: refresh token of session {pair['sid']}: session revoked"
    )
    assert lines[2] == (
        f"Revocation request: access token of session {pair['sid']}: session already revoked"
    )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert pair["refresh_token"] not in logged
    assert pair["access_token"] not in logged
    assert "no-such-token" not in logged


# -- cached mode -------------------------------------------------------------------------------


def test_in_cached_mode_the_revocation_tombstones_the_sessions_entry(client, user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}
    caches["default"].clear()
    issued = personal_token(user)
    assert me(issued.access_token) == 200
    assert isinstance(caches["default"].get(cached.session_key(issued.session.pk)), tuple)

    assert_empty_200(revoke_form(client, issued.access_token))

    assert cached.lookup(issued.session.pk).revoked
    assert me(issued.access_token) == 401
    caches["default"].clear()


# -- the rate limit -----------------------------------------------------------------------------


@pytest.mark.rate_limits
def test_over_the_rate_limit_is_a_429_that_revokes_nothing(client, user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": {"revoke": "2/min"}}
    pair = signed_in(user, password)

    answers = [revoke_form(client, "unknown") for _ in range(2)]
    refused = revoke_form(client, pair["access_token"])

    for answer in answers:
        assert_empty_200(answer)
        assert answer["X-RateLimit-Limit"] == "2"
    assert [answer["X-RateLimit-Remaining"] for answer in answers] == ["1", "0"]
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert refused["X-RateLimit-Remaining"] == "0"
    assert refused.json()["code"] == "rate_limited"
    assert refused["Cache-Control"] == "no-store"
    assert me(pair["access_token"]) == 200
    # Per client IP: another client is not refused.
    assert_empty_200(revoke_form(client, pair["access_token"], REMOTE_ADDR="198.51.100.9"))
    assert me(pair["access_token"]) == 401


def test_the_revoke_limit_is_on_by_default(settings):
    from cocart_jwt import ratelimit

    settings.COCART_JWT = {k: v for k, v in settings.COCART_JWT.items() if k != "RATE_LIMITS"}
    assert ratelimit.rate_for("revoke") == (10, 60)


def test_json_bodies_with_extra_fields_are_fine(client, user, password):
    pair = signed_in(user, password)
    body = json.dumps({"token": pair["refresh_token"], "client_id": "x", "extra": [1]})

    assert_empty_200(post_raw(client, body.encode(), "application/json"))

    assert session(pair["sid"]).is_revoked


def test_the_revoked_event_records_the_client_that_asked(client, user, password):
    pair = signed_in(user, password)

    assert_empty_200(revoke_form(client, pair["refresh_token"], **CLIENT))

    event = TokenEvent.objects.get(sid=pair["sid"], event=Event.REVOKED)
    assert (event.reason, event.ip, event.user_agent) == (
        RevokeReason.REVOCATION_REQUEST,
        "192.0.2.7",
        "Revoker/1.0",
    )


@pytest.mark.parametrize(
    ("body", "content_type", "logged"),
    [
        (b"token=", "application/x-www-form-urlencoded", "no usable token in the body"),
        (b'["a"]', "application/json", "body is not an object"),
        (b"{", "application/json", "body not read (ParseError)"),
    ],
    ids=["blank", "a-list", "bad-json"],
)
def test_the_log_says_why_there_was_nothing_to_revoke(client, body, content_type, logged, caplog):
    assert_empty_200(post_raw(client, body, content_type))

    assert caplog.messages[-1].startswith(f"Revocation request: {logged}")


def test_the_log_says_what_an_unknown_or_orphan_token_was(client, user, password, caplog):
    assert_empty_200(revoke_form(client, "no-such-token"))
    assert caplog.messages[-1].startswith("Revocation request: unknown token (not an access token:")
    assert caplog.messages[-1].endswith("; not a refresh token), nothing revoked")
    # The hint orders the lookups.
    assert_empty_200(revoke_form(client, "no-such-token", hint="refresh_token"))
    assert caplog.messages[-1].startswith(
        "Revocation request: unknown token (not a refresh token; not an access token:"
    )

    pair = signed_in(user, password)
    Token.objects.filter(pk=pair["sid"]).delete()
    assert_empty_200(revoke_form(client, pair["access_token"]))
    assert caplog.messages[-1] == (
        f"Revocation request: access token of no session ({pair['sid']}), nothing revoked"
    )
