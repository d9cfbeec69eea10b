"""Security events in the admin: a read-only list with filters and search, and the newest
events of a session on its token page."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cocart_jwt import events
from cocart_jwt.admin.changelist import EstimatedCountPaginator
from cocart_jwt.admin.events import SESSION_EVENTS_SHOWN
from cocart_jwt.models import Event, RevokeReason, Token, TokenEvent
from cocart_jwt.utils import now

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:cocart_jwt_tokenevent_changelist")


def listed(response: Any) -> list[int]:
    assert response.status_code == 200
    return [row.pk for row in response.context["cl"].result_list]


def viewer(django_user_model: Any, *codenames: str) -> Client:
    staff = django_user_model.objects.create_user(username="auditor", password="x", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(content_type__app_label="cocart_jwt", codename__in=codenames)
    )
    client = Client()
    client.force_login(staff)
    return client


def test_the_list_shows_events_newest_first_and_offers_no_add(admin_client, user):
    session = Token.objects.issue(user).session
    session.revoke(RevokeReason.ADMIN)

    response = admin_client.get(CHANGELIST)

    rows = TokenEvent.objects.filter(sid=session.pk)
    assert listed(response) == list(rows.order_by("-at", "-id").values_list("pk", flat=True))
    page = response.content.decode()
    assert "Session revoked" in page and "Revoked by an administrator" in page
    assert reverse("admin:cocart_jwt_tokenevent_add") not in page
    assert reverse("admin:cocart_jwt_token_change", args=[quote(session.pk)]) in page


def test_events_cannot_be_added_changed_or_deleted_even_by_a_superuser(admin_client, user):
    event = TokenEvent.objects.get(sid=Token.objects.issue(user).session.pk)
    change = reverse("admin:cocart_jwt_tokenevent_change", args=[event.pk])
    delete = reverse("admin:cocart_jwt_tokenevent_delete", args=[event.pk])

    assert admin_client.get(reverse("admin:cocart_jwt_tokenevent_add")).status_code == 403
    view = admin_client.get(change)
    assert view.status_code == 200 and 'name="_save"' not in view.content.decode()
    assert admin_client.post(change, {"event": "revoked"}).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    admin_client.post(CHANGELIST, bulk)
    assert TokenEvent.objects.get(pk=event.pk).event == Event.ISSUED


def test_view_permission_is_enough_to_read_and_needed(django_user_model, user):
    Token.objects.issue(user)

    assert viewer(django_user_model, "view_tokenevent").get(CHANGELIST).status_code == 200
    django_user_model.objects.filter(username="auditor").delete()
    assert viewer(django_user_model, "view_token").get(CHANGELIST).status_code == 403


def test_the_list_filters_by_event_and_by_date(admin_client, user):
    session = Token.objects.issue(user).session
    session.revoke(RevokeReason.LOGOUT)
    old = events.record(Event.REFRESHED, session, at=now() - timedelta(days=40))

    revoked = admin_client.get(CHANGELIST, {"event__exact": "revoked"})
    recent = admin_client.get(CHANGELIST, {"at__gte": str(now() - timedelta(days=7))})

    assert listed(revoked) == [TokenEvent.objects.get(event=Event.REVOKED).pk]
    assert old.pk not in listed(recent) and len(listed(recent)) == 2


def test_the_search_finds_a_users_events_and_a_whole_sid(admin_client, user, other_user):
    mine = Token.objects.issue(user).session
    theirs = Token.objects.issue(other_user).session

    by_name = admin_client.get(CHANGELIST, {"q": "alice"})
    by_sid = admin_client.get(CHANGELIST, {"q": theirs.pk})
    by_part = admin_client.get(CHANGELIST, {"q": theirs.pk[:10]})
    nul = admin_client.get(CHANGELIST, {"q": "ali\x00ce"}, follow=True)

    assert listed(by_name) == [TokenEvent.objects.get(sid=mine.pk).pk]
    assert listed(by_sid) == [TokenEvent.objects.get(sid=theirs.pk).pk]
    assert listed(by_part) == []  # a session id matches whole only
    assert nul.status_code == 200  # refused with a message, not a 500
    assert "Null characters are not allowed." in nul.content.decode()


@pytest.mark.postgres
def test_the_unfiltered_list_on_postgresql_is_counted_from_statistics(
    admin_client, user, monkeypatch
):
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_above", 1)
    session = Token.objects.issue(user).session
    for _ in range(20):
        events.record(Event.REFRESHED, session)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE cocart_jwt_tokenevent")

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST)

    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert [sql for sql in counts if "cocart_jwt_tokenevent" in sql] == []
    assert re.search(r"about 21\s+security events", response.content.decode())


def test_the_list_costs_the_same_queries_for_one_row_and_for_many(admin_client, user, other_user):
    Token.objects.issue(user)
    with CaptureQueriesContext(connection) as one:
        admin_client.get(CHANGELIST)
    for _ in range(10):
        Token.objects.issue(other_user).session.revoke(RevokeReason.ADMIN)

    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(CHANGELIST)

    assert len(listed(response)) == 21
    assert len(many) == len(one)  # users come with their events (list_select_related)


def test_the_token_page_shows_its_sessions_newest_events_bounded(admin_client, user):
    session = Token.objects.issue(user).session
    other = Token.objects.issue(user).session
    start = now() - timedelta(hours=1)
    TokenEvent.objects.filter(sid=session.pk).update(at=start - timedelta(hours=1))  # issued
    for minute in range(SESSION_EVENTS_SHOWN + 5):
        events.record(Event.REFRESHED, session, at=start + timedelta(minutes=minute))
    session.revoke(RevokeReason.ADMIN)

    response = admin_client.get(reverse("admin:cocart_jwt_token_change", args=[quote(session.pk)]))

    page = response.content.decode()
    table = re.search(r"<table><thead><tr><th>at</th>.*?</table>", page, re.S)
    assert table is not None, "the session's events, on its page"
    block = table.group(0)
    rows = re.findall(r"<tr><td>", block)
    assert len(rows) == SESSION_EVENTS_SHOWN
    assert block.index("Session revoked") < block.index("Tokens refreshed")  # newest first
    assert "Session started" not in block  # the oldest, beyond the bound
    assert other.pk not in block
    assert f"{CHANGELIST}?q={session.pk}" in page
