"""The token list built to stay fast at a million sessions (bench/scale.py measures it).

"Revoked by" costs one query for the page, whatever its size; the unfiltered list on
PostgreSQL is counted from the planner's statistics, never by a COUNT(*) of the table; far
pages work; the user filter asks the token admin's autocomplete (its permission rules), never
a DISTINCT of every session's user; search looks users up first, then sessions by user id.
"""

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
from django.utils import timezone

from cocart_jwt.admin import changelist
from cocart_jwt.admin.changelist import EstimatedCountPaginator
from cocart_jwt.models import RevokeReason, Token

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/cocart_jwt/token/"
AUTOCOMPLETE = "/admin/cocart_jwt/token/user-autocomplete/"


def revoke_url(session: Token) -> str:
    return reverse("admin:cocart_jwt_token_revoke", args=[quote(session.pk)])


def sessions_of(user: Any, count: int, **fields: Any) -> list[Token]:
    """``count`` sessions of ``user``, created a minute apart (the oldest first)."""
    start = timezone.now() - timedelta(days=1)
    return Token.objects.bulk_create(
        Token(
            user=user,
            created_at=start + timedelta(minutes=number),
            expires_at=timezone.now() + timedelta(days=1),
            description=f"session {number}",
            **fields,
        )
        for number in range(count)
    )


def listed(response: Any) -> list[str]:
    assert response.status_code == 200
    return [row.pk for row in response.context["cl"].result_list]


def token_selects(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if 'FROM "cocart_jwt_token"' in q["sql"]]


def staff_client(django_user_model: Any, username: str, *codenames: str) -> tuple[Any, Client]:
    staff = django_user_model.objects.create_user(username=username, password="x", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(content_type__app_label="cocart_jwt", codename__in=codenames)
    )
    client = Client()
    client.force_login(staff)
    return staff, client


# -- revoked by -------------------------------------------------------------------------


def test_revoked_by_is_named_on_every_row_with_one_query_for_the_page(
    admin_client, django_user_model
):
    def revoked_by_admin(count: int) -> list[Token]:
        revoked = []
        for _ in range(count):
            holders = django_user_model.objects.count()
            user = django_user_model.objects.create_user(username=f"holder{holders}")
            session = Token.objects.issue(user).session
            admin_client.post(revoke_url(session))
            revoked.append(session)
        return revoked

    def page_queries() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(CHANGELIST)
        assert response.status_code == 200
        return len(queries), response.content.decode()

    revoked_by_admin(1)
    page_queries()  # warm caches (content types) before counting
    with_one, _ = page_queries()
    revoked_by_admin(29)
    Token.objects.issue(django_user_model.objects.create_user("lost")).session.revoke(
        RevokeReason.LOGOUT
    )

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST)
    page = response.content.decode()

    assert len(queries) == with_one
    assert page.count("Revoked by an administrator (admin)") == 30
    assert "Logged out" in page and "Logged out (admin)" not in page
    # The sessions' query holds no subquery of the log, run per row.
    assert not [sql for sql in token_selects(queries) if "django_admin_log" in sql]
    logs = [q["sql"] for q in queries.captured_queries if "django_admin_log" in q["sql"]]
    assert len(logs) == 1


def test_revoked_by_is_read_only_for_the_rows_of_the_page(admin_client, user, monkeypatch):
    from cocart_jwt.admin import TokenAdmin

    monkeypatch.setattr(TokenAdmin, "list_per_page", 2)
    sessions = sessions_of(user, 5)
    for session in sessions:
        admin_client.post(revoke_url(session))

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST)

    shown = listed(response)
    assert shown == [sessions[4].pk, sessions[3].pk]
    (log_query,) = [q["sql"] for q in queries.captured_queries if "django_admin_log" in q["sql"]]
    assert all(pk in log_query for pk in shown)
    assert not any(session.pk in log_query for session in sessions[:3])


def test_the_view_page_names_who_revoked(admin_client, user):
    session = Token.objects.issue(user).session
    admin_client.post(revoke_url(session))

    page = admin_client.get(reverse("admin:cocart_jwt_token_change", args=[quote(session.pk)]))

    assert "Revoked by an administrator (admin)" in page.content.decode()


# -- counting and pages -----------------------------------------------------------------


@pytest.mark.postgres
def test_the_unfiltered_list_on_postgresql_is_counted_from_statistics(
    admin_client, user, monkeypatch
):
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_above", 1)
    sessions_of(user, 30)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE cocart_jwt_token")
    sessions_of(user, 5)  # after ANALYZE: the estimate does not know them yet

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    counts = [sql for sql in token_selects(queries) if "COUNT(" in sql]
    assert counts == []
    page = response.content.decode()
    assert re.search(r"about 30\s+tokens", page), "the estimate, said to be one"
    assert len(listed(response)) == 35


@pytest.mark.postgres
def test_a_filtered_list_is_counted_exactly(admin_client, user, other_user, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_above", 1)
    sessions_of(user, 30)
    sessions_of(other_user, 3)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE cocart_jwt_token")

    response = admin_client.get(CHANGELIST, {"q": "bob"})

    assert re.search(r"\b3\s+tokens", response.content.decode())
    assert "about" not in response.content.decode().split('class="paginator"')[1][:200]


def test_a_small_table_is_counted_exactly(admin_client, user):
    sessions_of(user, 3)

    response = admin_client.get(CHANGELIST)

    page = response.content.decode()
    assert re.search(r"\b3\s+tokens", page) and not re.search(r"about 3\s+tokens", page)


@pytest.mark.parametrize("estimate_above", [1, 100_000])
def test_a_far_page_lists_the_right_sessions(admin_client, user, monkeypatch, estimate_above):
    from cocart_jwt.admin import TokenAdmin

    monkeypatch.setattr(TokenAdmin, "list_per_page", 2)
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_above", estimate_above)
    sessions = sessions_of(user, 1100)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE cocart_jwt_token")
    newest_first = [session.pk for session in reversed(sessions)]

    response = admin_client.get(CHANGELIST, {"p": 500})

    assert listed(response) == newest_first[998:1000]
    assert 'href="?p=550"' in response.content.decode()  # the last page is linked
    assert listed(admin_client.get(CHANGELIST, {"p": 550})) == newest_first[1098:]


# -- the user filter --------------------------------------------------------------------


def test_the_user_filter_asks_the_token_admins_autocomplete(admin_client, user, other_user):
    sessions_of(user, 2)
    mine = sessions_of(other_user, 2)

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST, {"user__id__exact": other_user.pk})

    assert set(listed(response)) == {session.pk for session in mine}
    page = response.content.decode()
    assert f'data-ajax--url="{AUTOCOMPLETE}"' in page
    assert 'name="user__id__exact"' in page
    assert re.search(rf'<option value="{other_user.pk}" selected>bob</option>', page)
    assert "select2" in page  # the widget's scripts
    assert not [q["sql"] for q in queries.captured_queries if "DISTINCT" in q["sql"]]


def test_the_user_filter_keeps_the_other_filters_and_the_search(admin_client, user):
    page = admin_client.get(CHANGELIST, {"status": "valid", "q": "x", "p": "1"})

    form = page.content.decode().split('class="cocart-jwt-user-filter"')[1].split("</form>")[0]
    assert '<input type="hidden" name="status" value="valid">' in form
    assert '<input type="hidden" name="q" value="x">' in form
    assert 'name="p"' not in form


def test_a_malformed_user_filter_is_the_admins_error_page_not_a_500(admin_client):
    response = admin_client.get(CHANGELIST, {"user__id__exact": "not-a-number"})

    assert response.status_code == 302 and response["Location"].endswith("?e=1")


def test_the_user_filter_offers_only_whom_the_autocomplete_rules_allow(
    django_user_model, user, other_user
):
    helper, client = staff_client(django_user_model, "helper", "view_token", "change_token")
    sessions_of(user, 1)

    page = client.get(CHANGELIST).content.decode()
    found = client.get(AUTOCOMPLETE, {"term": ""}).json()["results"]

    assert f'data-ajax--url="{AUTOCOMPLETE}"' in page
    # Without issue_for_others: only themself, as in the create form.
    assert [item["text"] for item in found] == ["helper"]


def test_viewers_get_no_user_autocomplete_but_may_filter_by_link(
    django_user_model, user, other_user
):
    _viewer, client = staff_client(django_user_model, "viewer", "view_token")
    sessions_of(user, 1)
    bobs = sessions_of(other_user, 1)

    page = client.get(CHANGELIST)
    filtered = client.get(CHANGELIST, {"user__id__exact": other_user.pk})

    assert "cocart-jwt-user-filter" not in page.content.decode()
    assert client.get(AUTOCOMPLETE, {"term": ""}).status_code == 403
    assert listed(filtered) == [bobs[0].pk]
    assert "bob" in filtered.content.decode()


# -- search -----------------------------------------------------------------------------


def test_search_by_username_looks_the_user_up_first(admin_client, user, other_user):
    alices = sessions_of(user, 2)
    sessions_of(other_user, 2)

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST, {"q": "ALI"})

    assert set(listed(response)) == {session.pk for session in alices}
    for sql in token_selects(queries):
        assert '"auth_user"."username"' not in sql.split("WHERE", 1)[-1], sql
        assert f'"user_id" IN ({user.pk})' in sql


def test_a_word_naming_many_users_still_finds_all_their_sessions(
    admin_client, user, other_user, monkeypatch
):
    monkeypatch.setattr(changelist, "MAX_LISTED_USERS", 1)
    both = sessions_of(user, 1) + sessions_of(other_user, 1)

    response = admin_client.get(CHANGELIST, {"q": "example.com"})

    assert set(listed(response)) == {session.pk for session in both}


def test_search_words_all_match_and_quotes_keep_a_phrase(admin_client, user, other_user):
    sessions_of(user, 2)
    Token.objects.filter(description="session 1").update(description="nightly export")
    bobs = sessions_of(other_user, 1)
    Token.objects.filter(pk=bobs[0].pk).update(description="export nightly")

    phrase = admin_client.get(CHANGELIST, {"q": '"nightly export"'})
    words = admin_client.get(CHANGELIST, {"q": "nightly bob"})

    assert [t.description for t in phrase.context["cl"].result_list] == ["nightly export"]
    assert listed(words) == [bobs[0].pk]


def test_a_search_with_a_nul_byte_is_refused_with_a_message_not_a_500(admin_client, user):
    sessions_of(user, 1)

    response = admin_client.get(CHANGELIST, {"q": "ali\x00ce"}, follow=True)

    assert response.status_code == 200
    assert "Null characters are not allowed." in response.content.decode()


@pytest.mark.postgres
def test_the_migration_indexes_the_list_order_and_the_description_search():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "cocart_jwt_token")
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        has_trigrams = cursor.fetchone() is not None

    assert constraints["cocart_jwt_token_created_idx"]["columns"] == ["created_at", "id"]
    assert ("cocart_jwt_token_description_trgm" in constraints) == has_trigrams
