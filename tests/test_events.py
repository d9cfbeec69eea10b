"""Security events: written on each moment of a session's life (never per authenticated
request), read back by their user at ``events/``, pruned by ``jwt cleanup`` after
``EVENT_RETENTION``.

On PostgreSQL the events of a login and of a refresh are part of their one statement
(``cocart_jwt.postgres``); elsewhere the ORM writes them. These tests hold on both.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from cocart_jwt import events, login_links
from cocart_jwt.checks import check_settings
from cocart_jwt.models import Event, RevokeReason, Token, TokenEvent
from cocart_jwt.utils import now
from tests.factories import bearer, login, refresh

pytestmark = pytest.mark.django_db

ME = "/api/me/"
EVENTS = reverse("cocart_jwt:events")
CLIENT = {"REMOTE_ADDR": "192.0.2.7", "HTTP_USER_AGENT": "Shop/2.0"}


def logged(user: Any) -> list[tuple[str, str, str]]:
    """``user``'s events, oldest first: (event, sid, reason)."""
    rows = TokenEvent.objects.filter(user=user).order_by("at", "id")
    return list(rows.values_list("event", "sid", "reason"))


def pair(user: Any, password: str, **client: Any) -> dict[str, Any]:
    response = login(APIClient(), user.username, password, **client)
    assert response.status_code == 200, response.content
    return response.json()


def listed(client: Any, access_token: str, **params: Any) -> Any:
    response = client.get(EVENTS, params, **bearer(access_token))
    assert response.status_code == 200, response.content
    return response.json()


# -- what is written ------------------------------------------------------------------------


def test_a_login_records_issued_with_its_client(user, password):
    tokens = pair(user, password, **CLIENT)

    event = TokenEvent.objects.get(user=user)
    assert (event.event, event.sid, event.reason) == (Event.ISSUED, tokens["sid"], "")
    assert (event.ip, event.user_agent) == ("192.0.2.7", "Shop/2.0")
    assert event.at == Token.objects.get(pk=tokens["sid"]).created_at


def test_a_token_issued_without_a_request_records_no_client(user):
    session = Token.objects.issue(user).session  # the CLI, the admin for someone else

    event = TokenEvent.objects.get(sid=session.pk)
    assert (event.event, event.ip, event.user_agent) == (Event.ISSUED, None, "")


def test_a_refresh_records_refreshed_with_its_client(user, password):
    tokens = pair(user, password)

    response = APIClient().post(
        reverse("cocart_jwt:refresh"), {"refresh_token": tokens["refresh_token"]}, **CLIENT
    )

    assert response.status_code == 200
    assert logged(user) == [(Event.ISSUED, tokens["sid"], ""), (Event.REFRESHED, tokens["sid"], "")]
    assert TokenEvent.objects.get(event=Event.REFRESHED).ip == "192.0.2.7"


def test_a_refresh_without_rotation_records_refreshed(settings, user, password):
    settings.COCART_JWT = {**settings.COCART_JWT, "ROTATE_REFRESH_TOKENS": False}
    tokens = pair(user, password)

    assert refresh(APIClient(), tokens["refresh_token"]).status_code == 200
    assert [event for event, _, _ in logged(user)] == [Event.ISSUED, Event.REFRESHED]


def test_a_refused_refresh_records_nothing(django_user_model, user, password):
    tokens = pair(user, password)
    django_user_model.objects.filter(pk=user.pk).update(is_active=False)  # bypasses save()

    assert refresh(APIClient(), tokens["refresh_token"]).status_code == 401
    assert refresh(APIClient(), "not-a-refresh-token").status_code == 401
    assert logged(user) == [(Event.ISSUED, tokens["sid"], "")]


def test_a_reused_refresh_token_records_reused_then_revoked(user, password):
    tokens = pair(user, password)
    assert refresh(APIClient(), tokens["refresh_token"]).status_code == 200

    response = APIClient().post(
        reverse("cocart_jwt:refresh"), {"refresh_token": tokens["refresh_token"]}, **CLIENT
    )

    assert response.status_code == 401
    sid = tokens["sid"]
    assert logged(user)[2:] == [
        (Event.REUSED, sid, ""),
        (Event.REVOKED, sid, RevokeReason.REFRESH_TOKEN_REUSED),
    ]
    latest = TokenEvent.objects.filter(sid=sid, event__in=[Event.REUSED, Event.REVOKED])
    assert set(latest.values_list("ip", "user_agent")) == {("192.0.2.7", "Shop/2.0")}


def test_a_login_over_the_cap_records_the_evicted_sessions_revocation(settings, user, password):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": 2}
    oldest, kept = Token.objects.issue(user).session, Token.objects.issue(user).session

    newest = pair(user, password, **CLIENT)["sid"]

    revoked = TokenEvent.objects.get(event=Event.REVOKED)
    assert (revoked.sid, revoked.reason) == (oldest.pk, RevokeReason.MAX_TOKENS)
    assert (revoked.ip, revoked.user_agent) == ("192.0.2.7", "Shop/2.0")  # the login's client
    assert revoked.at == Token.objects.get(pk=oldest.pk).revoked_at
    assert not TokenEvent.objects.filter(sid=kept.pk, event=Event.REVOKED).exists()
    assert TokenEvent.objects.filter(sid=newest, event=Event.ISSUED).count() == 1


def test_a_login_with_no_cap_records_issued_only(settings, user, password):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": None}
    for _ in range(3):
        pair(user, password)

    assert [event for event, _, _ in logged(user)] == [Event.ISSUED] * 3


def test_a_login_carrying_its_bearer_records_refreshed(user, password):
    tokens = pair(user, password)

    response = login(APIClient(), user.username, password, **bearer(tokens["access_token"]))

    assert response.json()["sid"] == tokens["sid"]
    assert logged(user) == [(Event.ISSUED, tokens["sid"], ""), (Event.REFRESHED, tokens["sid"], "")]


def test_each_revocation_records_one_event_per_session_with_its_reason(api_client, user, password):
    first, second, third = (pair(user, password) for _ in range(3))
    url = reverse("cocart_jwt:session", args=[second["sid"]])

    assert api_client.delete(url, **bearer(first["access_token"]), **CLIENT).status_code == 204
    logout = reverse("cocart_jwt:logout")
    assert api_client.post(logout, **bearer(first["access_token"])).status_code == 204
    Token.objects.get(pk=first["sid"]).revoke(RevokeReason.ADMIN)  # already revoked: nothing

    revoked = TokenEvent.objects.filter(event=Event.REVOKED).order_by("at", "id")
    assert [(e.sid, e.reason, e.ip) for e in revoked] == [
        (second["sid"], RevokeReason.SESSION_DELETED, "192.0.2.7"),
        (first["sid"], RevokeReason.LOGOUT, "127.0.0.1"),
    ]
    assert not TokenEvent.objects.filter(sid=third["sid"], event=Event.REVOKED).exists()


def test_logout_everywhere_records_a_revoked_event_per_live_session(api_client, user, password):
    sessions = [pair(user, password) for _ in range(3)]

    logout_all = reverse("cocart_jwt:logout-all")
    assert api_client.post(logout_all, **bearer(sessions[0]["access_token"])).status_code == 204

    revoked = TokenEvent.objects.filter(event=Event.REVOKED)
    assert sorted(revoked.values_list("sid", flat=True)) == sorted(s["sid"] for s in sessions)
    assert set(revoked.values_list("reason", flat=True)) == {RevokeReason.LOGOUT_ALL}


def test_a_password_change_records_the_revocation_of_every_session(user, password):
    sid = pair(user, password)["sid"]

    user.set_password("another password entirely")
    user.save()

    assert logged(user)[-1] == (Event.REVOKED, sid, RevokeReason.PASSWORD_CHANGE)


def test_a_used_login_link_records_login_link_used_once(user):
    session = Token.objects.issue(user, refreshable=False).session
    token = login_links.issue(session).token
    link = reverse("cocart_jwt:login-link")

    first = Client(**CLIENT).post(link, {"token": token})
    second = Client().post(link, {"token": token})

    assert first.status_code == 302 and second.status_code == 410
    used = TokenEvent.objects.get(event=Event.LOGIN_LINK_USED)
    assert (used.sid, used.ip, used.user_agent) == (session.pk, "192.0.2.7", "Shop/2.0")


@pytest.mark.parametrize("event", [Event.REUSE_GRACE, Event.REAUTHENTICATED])
def test_record_writes_the_events_of_the_grace_and_of_reauthentication(rf, user, event):
    session = Token.objects.issue(user).session
    request = rf.post("/", REMOTE_ADDR="2001:db8::1", HTTP_USER_AGENT="App/1")

    written = events.record(event, session, request=request)

    stored = TokenEvent.objects.get(pk=written.pk)
    assert (stored.user_id, stored.sid, stored.event) == (user.pk, session.pk, event)
    assert (stored.ip, stored.user_agent, stored.reason) == ("2001:db8::1", "App/1", "")


def test_record_joins_the_callers_transaction(user):
    session = Token.objects.issue(user).session
    with pytest.raises(RuntimeError), transaction.atomic():
        events.record(Event.REAUTHENTICATED, session)
        raise RuntimeError

    assert not TokenEvent.objects.filter(event=Event.REAUTHENTICATED).exists()


# -- never per authenticated request ------------------------------------------------------


@pytest.mark.parametrize(("ttl", "queries"), [(0, 1), (300, 0)], ids=["strict", "cached"])
def test_an_authenticated_request_writes_no_event(settings, user, password, ttl, queries):
    """Strict: its one query, no event; cached: no query at all."""
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": ttl}
    caches["default"].clear()
    tokens = pair(user, password)
    client = APIClient()
    assert client.get(ME, **bearer(tokens["access_token"])).status_code == 200  # touch, fill
    before = TokenEvent.objects.count()

    with CaptureQueriesContext(connection) as captured:
        assert client.get(ME, **bearer(tokens["access_token"])).status_code == 200

    assert len(captured) == queries
    assert TokenEvent.objects.count() == before
    caches["default"].clear()


# -- events/ --------------------------------------------------------------------------------


def test_events_lists_the_callers_own_events_newest_first(user, other_user, password):
    mine = pair(user, password, **CLIENT)
    assert refresh(APIClient(), mine["refresh_token"]).status_code == 200
    theirs = pair(other_user, password)
    Token.objects.get(pk=theirs["sid"]).revoke(RevokeReason.ADMIN)

    body = listed(APIClient(), mine["access_token"])

    assert set(body) == {"next", "previous", "results"}
    assert [row["event"] for row in body["results"]] == [Event.REFRESHED, Event.ISSUED]
    issued = body["results"][1]
    assert set(issued) == {"id", "event", "sid", "at", "ip", "user_agent", "reason"}
    assert (issued["sid"], issued["ip"], issued["user_agent"]) == (
        mine["sid"],
        "192.0.2.7",
        "Shop/2.0",
    )
    assert theirs["sid"] not in {row["sid"] for row in body["results"]}
    again = pair(other_user, password)
    their_rows = listed(APIClient(), again["access_token"])["results"]
    assert {row["sid"] for row in their_rows} == {theirs["sid"], again["sid"]}


def test_events_span_every_session_of_the_user_even_deleted_ones(user, password):
    old = pair(user, password)
    Token.objects.get(pk=old["sid"]).revoke(RevokeReason.ADMIN)
    Token.objects.filter(pk=old["sid"]).delete()  # what jwt cleanup does, later
    current = pair(user, password)

    rows = listed(APIClient(), current["access_token"])["results"]

    assert [(row["event"], row["sid"], row["reason"]) for row in rows] == [
        (Event.ISSUED, current["sid"], ""),
        (Event.REVOKED, old["sid"], RevokeReason.ADMIN),
        (Event.ISSUED, old["sid"], ""),
    ]


def test_events_pages_by_cursor_with_ties_in_order_and_a_capped_page_size(user):
    session = Token.objects.issue(user).session
    at = now() - timedelta(hours=1)
    TokenEvent.objects.bulk_create(
        events.new_event(Event.REFRESHED, session, at=at + timedelta(seconds=n // 2))
        for n in range(6)
    )  # pairs of events at the same moment
    access = Token.objects.renew(session).access_token  # one more, newest
    expected = list(
        TokenEvent.objects.filter(user=user).order_by("-at", "-id").values_list("id", flat=True)
    )

    seen, url, client = [], EVENTS + "?page_size=3", APIClient()
    while url:
        response = client.get(url, **bearer(access))
        assert response.status_code == 200
        page = response.json()
        assert len(page["results"]) <= 3
        seen += [row["id"] for row in page["results"]]
        url = page["next"]

    assert seen == expected
    assert len(listed(client, access, page_size=10_000)["results"]) == len(expected)
    assert listed(client, access, page_size=1)["next"] is not None


def test_the_page_size_is_capped(user):
    session = Token.objects.issue(user).session
    at = now() - timedelta(hours=1)
    TokenEvent.objects.bulk_create(
        events.new_event(Event.REFRESHED, session, at=at + timedelta(seconds=n)) for n in range(205)
    )
    access = Token.objects.renew(session).access_token

    page = listed(APIClient(), access, page_size=10_000)

    assert len(page["results"]) == 200 and page["next"] is not None
    assert len(listed(APIClient(), access)["results"]) == 50


@pytest.mark.parametrize("page_size", ["0", "-3", "ten", "1.5"])
def test_a_page_size_that_is_not_a_whole_number_from_1_is_a_400(user, password, page_size):
    tokens = pair(user, password)

    response = APIClient().get(EVENTS, {"page_size": page_size}, **bearer(tokens["access_token"]))

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert set(response.json()["errors"]) == {"page_size"}


def test_events_is_one_query_after_authentication_never_a_count(user, password):
    tokens = pair(user, password)
    client = APIClient()
    listed(client, tokens["access_token"])  # the session's touch out of the way

    with CaptureQueriesContext(connection) as queries:
        listed(client, tokens["access_token"])

    assert len(queries) == 2  # the session and user; the page
    assert not any("COUNT(" in query["sql"].upper() for query in queries.captured_queries)


def test_events_needs_a_bearer_and_refuses_a_forged_cursor(user, password):
    tokens = pair(user, password)

    assert APIClient().get(EVENTS).status_code == 401
    refused = APIClient().get(EVENTS, {"cursor": "not a cursor"}, **bearer(tokens["access_token"]))
    assert refused.status_code == 404
    assert refused.json()["code"] == "not_found"


def test_events_is_never_stored_by_a_cache(user, password):
    tokens = pair(user, password)

    response = APIClient().get(EVENTS, **bearer(tokens["access_token"]))

    assert "no-store" in response["Cache-Control"]


# -- retention ------------------------------------------------------------------------------


def aged(user: Any, *days: int) -> list[TokenEvent]:
    """Events of a session of ``user``, each ``days`` old."""
    session = Token.objects.issue(user).session
    TokenEvent.objects.filter(sid=session.pk).delete()
    return TokenEvent.objects.bulk_create(
        events.new_event(Event.REFRESHED, session, at=now() - timedelta(days=d)) for d in days
    )


def run_cleanup(*args: str) -> str:
    out = StringIO()
    call_command("jwt", "cleanup", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_cleanup_prunes_events_older_than_the_retention_in_batches(user):
    rows = aged(user, 200, 120, 91, 89, 1)

    with CaptureQueriesContext(connection) as queries:
        out = run_cleanup("--batch-size", "2")

    remaining = set(TokenEvent.objects.values_list("pk", flat=True))
    assert remaining == {rows[3].pk, rows[4].pk}
    assert "Deleted 3 security events older than 90 days (EVENT_RETENTION)." in out
    deletes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("DELETE") and "tokenevent" in q["sql"]
    ]
    assert len(deletes) == 2  # batches of at most 2


def test_cleanup_dry_run_counts_events_and_deletes_none(user):
    aged(user, 100, 95, 10)

    out = run_cleanup("--dry-run")

    assert "Would delete 2 security events older than 90 days (EVENT_RETENTION)." in out
    assert TokenEvent.objects.count() == 3


def test_a_shorter_retention_prunes_more_and_none_keeps_every_event(settings, user):
    aged(user, 400, 20, 5)

    settings.COCART_JWT = {**settings.COCART_JWT, "EVENT_RETENTION": None}
    assert "security event" not in run_cleanup()
    assert TokenEvent.objects.count() == 3

    settings.COCART_JWT = {**settings.COCART_JWT, "EVENT_RETENTION": timedelta(days=7)}
    assert "Deleted 2 security events older than 1 week" in run_cleanup()
    assert TokenEvent.objects.count() == 1


def test_cleanup_of_dead_sessions_keeps_their_events(user):
    session = Token.objects.issue(user).session
    session.revoke(RevokeReason.ADMIN)
    Token.objects.filter(pk=session.pk).update(revoked_at=now() - timedelta(days=30))

    run_cleanup()

    assert not Token.objects.filter(pk=session.pk).exists()
    assert [e for e, _, _ in logged(user)] == [Event.ISSUED, Event.REVOKED]


def test_event_retention_may_be_none_but_not_a_string(settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "EVENT_RETENTION": None}
    assert not [m for m in check_settings() if "EVENT_RETENTION" in m.msg]

    settings.COCART_JWT = {**settings.COCART_JWT, "EVENT_RETENTION": "90 days"}
    assert [m.id for m in check_settings() if "EVENT_RETENTION" in m.msg] == ["cocart_jwt.E005"]

    settings.COCART_JWT = {**settings.COCART_JWT, "EVENT_RETENTION": -1}
    assert [m.id for m in check_settings() if "EVENT_RETENTION" in m.msg] == ["cocart_jwt.E005"]
