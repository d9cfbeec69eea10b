"""The admin screens of the token registry, through Django's test client.

List (columns, filters, search, a constant number of queries), create (claims validated,
tokens shown once), view and mint, revoke one / selected / all of a user's, permissions.
"""

from __future__ import annotations

import html
import json
import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import path, reverse
from django.utils import timezone

from cocart_jwt.choices import Kind, Refusal
from cocart_jwt.models import LoginLink, RefreshToken, RevokeReason, Token
from cocart_jwt.parsing import DURATION_EXAMPLES
from cocart_jwt.signals import token_issued
from cocart_jwt.tokens import verify_access_token
from cocart_jwt.utils import sha256_hex
from tests.factories import bearer, refresh

pytestmark = pytest.mark.django_db

ME = "/api/me/"
CHANGELIST = "/admin/cocart_jwt/token/"
ADD = "/admin/cocart_jwt/token/add/"
ACCESS_TOKEN = re.compile(r'<textarea id="cocart-jwt-access-token"[^>]*>([^<]*)</textarea>')
REFRESH_TOKEN = re.compile(r'id="cocart-jwt-refresh-token"[^>]*value="([^"]*)"')
LOGIN_LINK = re.compile(r'id="cocart-jwt-login-link"[^>]*value="([^"]*)"')


def change_url(session: Token) -> str:
    return reverse("admin:cocart_jwt_token_change", args=[quote(session.pk)])


def mint_url(session: Token) -> str:
    return reverse("admin:cocart_jwt_token_mint", args=[quote(session.pk)])


def revoke_url(session: Token) -> str:
    return reverse("admin:cocart_jwt_token_revoke", args=[quote(session.pk)])


def history_url(session: Token) -> str:
    return reverse("admin:cocart_jwt_token_history", args=[quote(session.pk)])


def revoke_user_url(user: Any) -> str:
    return reverse("admin:cocart_jwt_token_revoke_user", args=[user.pk])


def found(pattern: re.Pattern[str], page: str) -> str | None:
    match = pattern.search(page)
    return html.unescape(match.group(1)) if match else None


def create(client: Client, user: Any, **fields: Any) -> Any:
    data = {"user": user.pk, "lifetime": "24h", "claims": "", "description": "", **fields}
    return client.post(ADD, data)


def issue(user: Any, **kwargs: Any) -> Token:
    return Token.objects.issue(user, **kwargs).session


def staff_client(django_user_model: Any, *codenames: str, username: str = "staff") -> Client:
    staff = django_user_model.objects.create_user(username=username, password="x", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(content_type__app_label="cocart_jwt", codename__in=codenames)
    )
    client = Client()
    client.force_login(staff)
    return client


# -- the list ---------------------------------------------------------------------------


def test_changelist_shows_each_session_with_its_status(admin_client, user, other_user):
    valid = issue(user, description="CI deploy key")
    expired = issue(other_user, description="old laptop", lifetime=timedelta(seconds=1))
    Token.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    revoked = issue(user, description="lost phone")
    admin_client.post(revoke_url(revoked))

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    page = response.content.decode()
    for session in (valid, expired, revoked):
        assert session.pk[:8] in page
    assert "CI deploy key" in page and "old laptop" in page and "lost phone" in page
    assert "alice" in page and "bob" in page
    rows = {row.description: row for row in response.context["cl"].result_list}
    assert rows["CI deploy key"].status == "valid"
    assert rows["old laptop"].status == "expired"
    assert rows["lost phone"].status == "revoked"
    assert "icon-yes.svg" in page and "icon-clock.svg" in page and "icon-no.svg" in page
    # Who revoked it, and why.
    assert "Revoked by an administrator (admin)" in page


@pytest.mark.parametrize(
    ("status", "expected"),
    [("valid", {"live"}), ("expired", {"expired"}), ("revoked", {"revoked"})],
)
def test_changelist_filters_by_status(admin_client, user, status, expected):
    issue(user, description="live")
    expired = issue(user, description="expired")
    Token.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    issue(user, description="revoked").revoke(RevokeReason.LOGOUT)

    response = admin_client.get(CHANGELIST, {"status": status})

    assert {row.description for row in response.context["cl"].result_list} == expected


def test_changelist_filters_by_user(admin_client, user, other_user):
    issue(user, description="alice's")
    issue(other_user, description="bob's")

    response = admin_client.get(CHANGELIST, {"user__id__exact": other_user.pk})

    assert [row.description for row in response.context["cl"].result_list] == ["bob's"]


@pytest.mark.parametrize("query", ["alice", "ALICE@example.com", "nightly", "<sid>"])
def test_changelist_searches_username_email_description_and_session_id(
    admin_client, user, other_user, query
):
    mine = issue(user, description="nightly export")
    issue(other_user, description="something else")

    response = admin_client.get(CHANGELIST, {"q": mine.pk if query == "<sid>" else query})

    assert [row.pk for row in response.context["cl"].result_list] == [mine.pk]


def test_changelist_makes_the_same_number_of_queries_for_1_and_50_sessions(
    admin_client, django_user_model
):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(CHANGELIST)
        assert response.status_code == 200
        return len(queries)

    first = django_user_model.objects.create_user(username="user0")
    admin_client.post(revoke_url(issue(first)))  # the page's one query for "revoked by"
    admin_client.get(CHANGELIST)  # warm caches (content types) before counting
    with_one = count_queries()
    for number in range(1, 50):
        session = issue(django_user_model.objects.create_user(username=f"user{number}"))
        if number % 3 == 0:
            admin_client.post(revoke_url(session))  # revoked rows show who revoked them
    assert Token.objects.count() == 50

    with_fifty = count_queries()

    assert with_fifty == with_one
    assert with_one <= 12, with_one


# -- permissions ------------------------------------------------------------------------


def test_staff_without_token_permissions_gets_403_everywhere(django_user_model, user):
    session = issue(user)
    client = staff_client(django_user_model)

    assert client.get(CHANGELIST).status_code == 403
    assert client.get(ADD).status_code == 403
    assert create(client, user).status_code == 403
    assert client.get(change_url(session)).status_code == 403
    assert client.post(mint_url(session)).status_code == 403
    assert client.get(revoke_url(session)).status_code == 403
    assert client.post(revoke_url(session)).status_code == 403
    assert client.post(revoke_user_url(user)).status_code == 403
    assert Token.objects.count() == 1
    assert Token.objects.get().revoked_at is None


def test_non_staff_users_are_sent_to_the_admin_login(user, password):
    client = Client()
    client.login(username="alice", password=password)

    response = client.get(CHANGELIST)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_view_permission_shows_but_cannot_create_mint_or_revoke(django_user_model, user):
    session = issue(user, description="watched")
    client = staff_client(django_user_model, "view_token")

    assert client.get(CHANGELIST).status_code == 200
    page = client.get(change_url(session))
    assert page.status_code == 200
    assert b"watched" in page.content
    assert mint_url(session).encode() not in page.content
    assert revoke_url(session).encode() not in page.content
    assert client.get(ADD).status_code == 403
    assert client.post(mint_url(session)).status_code == 403
    assert client.post(revoke_url(session)).status_code == 403
    response = client.post(
        CHANGELIST, {"action": "revoke_selected", "_selected_action": [session.pk], "post": "yes"}
    )
    assert response.status_code in (200, 302)
    session.refresh_from_db()
    assert session.revoked_at is None


def test_add_permission_alone_creates_for_oneself(django_user_model):
    # For another user it also takes issue_for_others: tests/test_impersonation.py.
    client = staff_client(django_user_model, "add_token")
    staff = django_user_model.objects.get(username="staff")

    response = create(client, staff)

    assert response.status_code == 200
    assert found(ACCESS_TOKEN, response.content.decode())
    assert Token.objects.filter(user=staff).count() == 1


def test_change_permission_mints_and_delete_permission_revokes(django_user_model):
    minter = staff_client(django_user_model, "view_token", "change_token", username="minter")
    revoker = staff_client(django_user_model, "view_token", "delete_token", username="revoker")
    # Minting a session of another user also takes issue_for_others (test_impersonation.py).
    session = issue(django_user_model.objects.get(username="minter"))

    assert minter.post(mint_url(session)).status_code == 200
    assert minter.post(revoke_url(session)).status_code == 403
    assert revoker.post(mint_url(session)).status_code == 403
    assert revoker.post(revoke_url(session)).status_code == 302
    session.refresh_from_db()
    assert session.revoke_reason == RevokeReason.ADMIN


# -- create -----------------------------------------------------------------------------


def test_add_form_defaults_to_admin_token_lifetime_and_not_refreshable(admin_client, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "ADMIN_TOKEN_LIFETIME": timedelta(hours=48)}

    response = admin_client.get(ADD)

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form["lifetime"].value() in ("2d", timedelta(hours=48))
    assert 'value="2d"' in response.content.decode()
    assert form["refreshable"].value() is False
    assert "no-store" in response["Cache-Control"]


def test_create_shows_a_working_access_token_and_login_link_once(admin_client, user, api_client):
    claims = {"region": "eu-west", "tenant": {"id": 7}}

    response = create(admin_client, user, claims=json.dumps(claims), description="warehouse robot")

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    access_token = found(ACCESS_TOKEN, page)
    link = found(LOGIN_LINK, page)
    assert access_token and link
    assert found(REFRESH_TOKEN, page) is None  # not refreshable
    assert link.startswith("http://testserver/api/auth/login-link/?token=")
    session = Token.objects.get(user=user)
    assert session.description == "warehouse robot"
    assert session.claims == claims
    assert session.refreshable is False
    assert abs(session.expires_at - (session.created_at + timedelta(hours=24))) < timedelta(
        seconds=1
    )
    me = api_client.get(ME, **bearer(access_token))
    assert me.status_code == 200
    assert me.json()["sid"] == session.pk
    assert "&quot;region&quot;: &quot;eu-west&quot;" in page  # the decoded claims
    assert LoginLink.objects.get(session=session).used_at is None


def test_create_refreshable_shows_a_refresh_token_that_refreshes(admin_client, user, api_client):
    response = create(admin_client, user, refreshable="on", lifetime="7d")

    refresh_token = found(REFRESH_TOKEN, response.content.decode())
    assert refresh_token
    session = Token.objects.get(user=user)
    assert session.refreshable
    assert abs(session.expires_at - (session.created_at + timedelta(days=7))) < timedelta(seconds=1)
    assert refresh(api_client, refresh_token).status_code == 200


def test_create_is_logged_with_the_admin_and_runs_behind_sensitive_post_parameters(
    admin_client, admin_user, user
):
    seen: list[Any] = []

    def capture(sender: Any, request: Any = None, **kwargs: Any) -> None:
        seen.append(request)

    token_issued.connect(capture)
    try:
        response = create(admin_client, user)
    finally:
        token_issued.disconnect(capture)

    assert response.status_code == 200
    assert seen and seen[0].sensitive_post_parameters == "__ALL__"
    session = Token.objects.get(user=user)
    entry = LogEntry.objects.get(object_id=session.pk, action_flag=ADDITION)
    assert entry.user == admin_user
    assert "login link" in entry.get_change_message()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "Issued a token (lifetime 24h, not refreshable) and a login link, shown once."),
        (
            {"lifetime": "7d", "refreshable": "on"},
            "Issued a token (lifetime 7d, refreshable) and a login link, shown once.",
        ),
    ],
)
def test_create_logs_exactly_one_addition_of_the_new_session(
    admin_client, admin_user, user, fields, message
):
    create(admin_client, user, **fields)

    session = Token.objects.get(user=user)
    entry = LogEntry.objects.get()  # nothing else logged: no change, no second addition
    assert entry.action_flag == ADDITION
    assert entry.user == admin_user
    assert entry.content_type.model_class() is Token
    assert entry.object_id == session.pk
    assert entry.object_repr == f"Token {session.pk} of {user.pk}"
    assert entry.get_change_message() == message
    assert entry.get_admin_url() == change_url(session)


def test_issuing_twice_in_one_browser_session_shows_each_token_once(admin_client, user):
    first = create(admin_client, user, description="first").content.decode()
    second = create(admin_client, user, description="second").content.decode()

    tokens = [found(ACCESS_TOKEN, first), found(ACCESS_TOKEN, second)]
    links = [found(LOGIN_LINK, first), found(LOGIN_LINK, second)]
    assert all(tokens) and all(links)
    assert tokens[0] != tokens[1] and links[0] != links[1]
    assert tokens[0] not in second and links[0] not in second
    sessions = {s.description: s.pk for s in Token.objects.filter(user=user)}
    assert f"<code>{sessions['first']}</code>" in first
    assert f"<code>{sessions['second']}</code>" in second
    assert LogEntry.objects.filter(action_flag=ADDITION).count() == 2


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ('["scope"]', "Enter a JSON object"),
        ('"scope"', "Enter a JSON object"),
        ("42", "Enter a JSON object"),
        ('{"scope": ', "This is not valid JSON"),
        ('{"a": NaN}', "This is not valid JSON"),
        ('{"sub": "1"}', "&quot;sub&quot; is set by cocart_jwt"),
        ('{"exp": 1, "sid": "x", "ok": 1}', "&quot;exp&quot;, &quot;sid&quot; are set by"),
        ('{"a": "' + "x" * 5000 + '"}', "The claims are too long"),
        ('{"a": "' + "é" * 1000 + '"}', "The claims are too long"),
        ("[" * 100000, "The claims are too long"),
        ('{"a": "nul \\u0000 byte"}', "NUL character"),
    ],
)
def test_create_refuses_bad_claims_with_a_clear_message(admin_client, user, claims, message):
    response = create(admin_client, user, claims=claims)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["claims"]
    assert message in response.content.decode()
    assert not Token.objects.exists()


@pytest.mark.parametrize(
    ("lifetime", "message"),
    [
        ("soon", "Enter a duration"),
        ("0", "longer than zero"),
        ("91d", "at most 90d"),
        ("", "This field is required"),
    ],
)
def test_create_refuses_bad_lifetimes(admin_client, user, lifetime, message):
    response = create(admin_client, user, lifetime=lifetime)

    assert message in response.content.decode()
    assert not Token.objects.exists()


@pytest.mark.parametrize(
    ("lifetime", "expected"),
    [
        ("1.5h", timedelta(minutes=90)),
        ("3600", timedelta(hours=1)),
        ("90 m", timedelta(minutes=90)),
        ("2W", timedelta(weeks=2)),
        ("01:30:00", timedelta(minutes=90)),
        ("PT15M", timedelta(minutes=15)),
    ],
)
def test_create_accepts_the_lifetimes_of_the_shared_grammar(admin_client, user, lifetime, expected):
    """The grammar of cocart_jwt.parsing, as ``jwt create --ttl`` reads it."""
    create(admin_client, user, lifetime=lifetime)

    session = Token.objects.get(user=user)
    assert abs(session.expires_at - session.created_at - expected) < timedelta(seconds=1)


def test_the_lifetime_help_names_the_accepted_forms(admin_client):
    page = html.unescape(admin_client.get(ADD).content.decode())

    assert DURATION_EXAMPLES in page


def test_create_refuses_an_inactive_user(admin_client, user):
    user.is_active = False
    user.save()

    response = create(admin_client, user)

    assert "inactive" in response.content.decode()
    assert not Token.objects.exists()


def test_tokens_are_shown_once_and_stored_nowhere_in_clear(admin_client, user):
    response = create(admin_client, user, refreshable="on")
    page = response.content.decode()
    secrets = [found(ACCESS_TOKEN, page), found(REFRESH_TOKEN, page), found(LOGIN_LINK, page)]
    assert all(secrets)
    link_token = secrets[2].split("token=", 1)[1]
    session = Token.objects.get(user=user)

    # Reloading the add page, or opening the session, the list or its history shows none.
    for url in (ADD, change_url(session), CHANGELIST, history_url(session)):
        later_response = admin_client.get(url)
        assert later_response.status_code == 200, url
        later = later_response.content.decode()
        for secret in (*secrets, link_token):
            assert secret not in later, url
    # Not in the Django session, nor in any row: only hashes are kept.
    stored = " ".join(
        [
            *(str(s.get_decoded()) for s in Session.objects.all()),
            *(str(list(e.__dict__.values())) for e in LogEntry.objects.all()),
            str(list(Token.objects.values_list())),
            str(list(LoginLink.objects.values_list())),
            str(list(RefreshToken.objects.values_list())),
        ]
    )
    for secret in (*secrets, link_token):
        assert secret not in stored
    assert LoginLink.objects.get().token_hash == sha256_hex(link_token)
    assert RefreshToken.objects.get().token_hash == sha256_hex(secrets[1])


# -- view and mint ----------------------------------------------------------------------


def test_view_page_shows_the_session_and_its_claims(admin_client, user):
    session = issue(user, description="reporting", claims={"scope": "reports"})

    response = admin_client.get(change_url(session))

    assert response.status_code == 200
    page = response.content.decode()
    assert session.pk in page
    assert "reporting" in page
    assert "&quot;scope&quot;: &quot;reports&quot;" in page
    assert f"&quot;sid&quot;: &quot;{session.pk}&quot;" in page
    assert mint_url(session) in page
    assert revoke_url(session) in page
    assert revoke_user_url(user) in page
    assert "no-store" in response["Cache-Control"]


def test_mint_shows_a_fresh_access_token_of_the_same_session_and_a_new_link(
    admin_client, admin_user, user, api_client
):
    session = issue(user, refreshable=False, lifetime=timedelta(hours=2))

    response = admin_client.post(mint_url(session))

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    access_token = found(ACCESS_TOKEN, page)
    assert access_token and found(LOGIN_LINK, page)
    assert found(REFRESH_TOKEN, page) is None
    me = api_client.get(ME, **bearer(access_token))
    assert me.status_code == 200 and me.json()["sid"] == session.pk
    assert Token.objects.count() == 1
    assert LoginLink.objects.filter(session=session, created_by=admin_user).count() == 1
    entry = LogEntry.objects.get(object_id=session.pk, action_flag=CHANGE)
    assert entry.user == admin_user and "Minted" in entry.get_change_message()
    # Shown once: the view page does not show it again.
    assert access_token not in admin_client.get(change_url(session)).content.decode()


def test_mint_needs_a_post_and_a_live_session(admin_client, user):
    session = issue(user)

    assert admin_client.get(mint_url(session)).status_code == 302
    assert not LoginLink.objects.exists()
    session.revoke(RevokeReason.LOGOUT)
    response = admin_client.post(mint_url(session), follow=True)
    assert "This session is revoked" in response.content.decode()
    assert not LoginLink.objects.exists()
    assert admin_client.post(mint_url(session)[:-6] + "nope/mint/").status_code == 404


def make_unusable(session: Token, refusal: Refusal) -> None:
    if refusal == Refusal.REVOKED:
        session.revoke(RevokeReason.LOGOUT)
    elif refusal == Refusal.EXPIRED:
        Token.objects.filter(pk=session.pk).update(expires_at=timezone.now())
    else:  # an update, not save(): REVOKE_ON "deactivation" would revoke the session first
        type(session.user)._default_manager.filter(pk=session.user_id).update(is_active=False)


@pytest.mark.parametrize(
    ("refusal", "message"),
    [
        (Refusal.REVOKED, "This session is revoked: a token of it would be refused."),
        (Refusal.EXPIRED, "This session has expired: a token of it would be refused."),
        (
            Refusal.USER_INACTIVE,
            "The user of this session is inactive: a token of it would be refused.",
        ),
    ],
)
def test_mint_refuses_a_session_whose_tokens_would_be_refused(admin_client, user, refusal, message):
    session = issue(user)
    make_unusable(session, refusal)

    response = admin_client.post(mint_url(session), follow=True)

    assert response.redirect_chain == [(change_url(session), 302)]
    assert message in response.content.decode()
    assert not LoginLink.objects.exists()
    assert not LogEntry.objects.filter(action_flag=CHANGE).exists()


# This module is also the URLconf of the next test: the admin without cocart_jwt.urls.
urlpatterns = [path("admin/", admin.site.urls)]
WITHOUT_LOGIN_LINK_PAGE = "No token can be issued here: cocart_jwt.urls is not in"


def test_nothing_is_issued_while_the_login_link_page_is_not_routed(admin_client, user, settings):
    session = issue(user)
    settings.ROOT_URLCONF = __name__

    form = admin_client.get(ADD, follow=True)
    created = create(admin_client, user)
    minted = admin_client.post(mint_url(session), follow=True)

    assert form.redirect_chain == [(CHANGELIST, 302)]
    assert WITHOUT_LOGIN_LINK_PAGE in form.content.decode()
    assert created.status_code == 302 and created["Location"] == CHANGELIST
    assert minted.redirect_chain == [(change_url(session), 302)]
    assert WITHOUT_LOGIN_LINK_PAGE in minted.content.decode()
    assert list(Token.objects.values_list("pk", flat=True)) == [session.pk]
    assert not LoginLink.objects.exists()
    assert not LogEntry.objects.exists()


# -- revoke -----------------------------------------------------------------------------


def test_revoke_one_asks_then_revokes_and_logs_who(admin_client, admin_user, user, api_client):
    issued = Token.objects.issue(user)
    session = issued.session

    confirm = admin_client.get(revoke_url(session))
    assert confirm.status_code == 200
    assert "Yes, revoke" in confirm.content.decode()
    session.refresh_from_db()
    assert session.revoked_at is None

    response = admin_client.post(revoke_url(session))

    assert response.status_code == 302
    assert response["Location"] == change_url(session)
    session.refresh_from_db()
    assert session.revoked_at is not None
    assert session.revoke_reason == RevokeReason.ADMIN
    assert api_client.get(ME, **bearer(issued.access_token)).status_code == 401
    entry = LogEntry.objects.get(object_id=session.pk, action_flag=CHANGE)
    assert entry.user == admin_user
    assert entry.get_change_message() == "Revoked: Revoked by an administrator."
    view = admin_client.get(change_url(session)).content.decode()
    assert "Revoked by an administrator (admin)" in view
    assert mint_url(session) not in view


def test_revoke_selected_confirms_then_revokes_only_those(admin_client, user, other_user):
    first, second, kept = issue(user), issue(other_user), issue(user)
    data = {"action": "revoke_selected", "_selected_action": [first.pk, second.pk]}

    confirm = admin_client.post(CHANGELIST, data)

    assert confirm.status_code == 200
    assert "2 live sessions will be revoked" in confirm.content.decode()
    assert Token.objects.live().count() == 3
    response = admin_client.post(CHANGELIST, {**data, "post": "yes"})
    assert response.status_code == 302
    assert set(Token.objects.live().values_list("pk", flat=True)) == {kept.pk}
    assert (
        LogEntry.objects.filter(action_flag=CHANGE, object_id__in=[first.pk, second.pk]).count()
        == 2
    )
    listed = admin_client.get(CHANGELIST, {"status": "revoked"})
    assert {row.pk for row in listed.context["cl"].result_list} == {first.pk, second.pk}


def test_revoke_all_of_the_selected_users_sessions(admin_client, user, other_user):
    selected = issue(user)
    issue(user)
    issue(user)
    untouched = issue(other_user)
    data = {"action": "revoke_all_of_users", "_selected_action": [selected.pk]}

    confirm = admin_client.post(CHANGELIST, data)
    assert "3 live sessions will be revoked" in confirm.content.decode()
    admin_client.post(CHANGELIST, {**data, "post": "yes"})

    assert not Token.objects.live().filter(user=user).exists()
    assert list(Token.objects.live().values_list("pk", flat=True)) == [untouched.pk]
    assert set(Token.objects.filter(user=user).values_list("revoke_reason", flat=True)) == {
        RevokeReason.ADMIN
    }


def test_revoke_every_session_of_a_user_from_the_view_page(admin_client, user, other_user):
    issue(user)
    issue(user)
    untouched = issue(other_user)

    confirm = admin_client.get(revoke_user_url(user))
    assert "Revoke every session of alice?" in confirm.content.decode()
    response = admin_client.post(revoke_user_url(user))

    assert response.status_code == 302
    assert f"user__id__exact={user.pk}" in response["Location"]
    assert not Token.objects.live().filter(user=user).exists()
    assert list(Token.objects.live().values_list("pk", flat=True)) == [untouched.pk]
    assert (
        admin_client.get(reverse("admin:cocart_jwt_token_revoke_user", args=[999])).status_code
        == 404
    )


def test_sessions_are_revoked_never_deleted_from_the_admin(admin_client, user):
    session = issue(user)

    response = admin_client.get(reverse("admin:cocart_jwt_token_delete", args=[quote(session.pk)]))

    assert response.status_code == 302 and response["Location"] == revoke_url(session)
    assert Token.objects.filter(pk=session.pk).exists()
    changelist = admin_client.get(CHANGELIST)
    actions = [name for name, _ in changelist.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions
    assert {"revoke_selected", "revoke_all_of_users"} <= set(actions)


def test_editing_the_description_cannot_undo_a_revocation(admin_client, user):
    session = issue(user, description="before")
    admin_client.get(change_url(session))
    Token.objects.filter(pk=session.pk).revoke(RevokeReason.LOGOUT)  # meanwhile

    admin_client.post(change_url(session), {"description": "after"})

    session.refresh_from_db()
    assert session.revoked_at is not None


def test_editing_the_description_of_a_live_session(admin_client, user):
    session = issue(user, description="before")

    response = admin_client.post(change_url(session), {"description": "after"})

    assert response.status_code == 302
    session.refresh_from_db()
    assert session.description == "after"
    assert session.revoked_at is None


def test_session_ids_that_look_quoted_work_in_every_admin_url(admin_client, user):
    """The admin escapes "_" in URLs; an id such as "a_41b" must not be read as "aAb"."""
    session = Token.objects.create(
        id="tricky_41_5F_id", user=user, expires_at=timezone.now() + timedelta(hours=1)
    )

    assert admin_client.get(change_url(session)).status_code == 200
    assert admin_client.post(mint_url(session)).status_code == 200
    response = admin_client.post(revoke_url(session))

    assert response.status_code == 302
    assert response["Location"] == change_url(session)
    session.refresh_from_db()
    assert session.revoke_reason == RevokeReason.ADMIN


def test_the_user_field_autocompletes_through_the_token_admin(admin_client, user, other_user):
    url = reverse("admin:cocart_jwt_token_user_autocomplete")
    page = admin_client.get(ADD).content.decode()
    assert "admin-autocomplete" in page and f'data-ajax--url="{url}"' in page

    # What select2 sends; only "term" matters to this view.
    response = admin_client.get(
        url, {"app_label": "cocart_jwt", "model_name": "token", "field_name": "user", "term": "ali"}
    )

    assert response.status_code == 200
    assert [item["text"] for item in response.json()["results"]] == ["alice"]


def test_revoke_user_with_a_malformed_user_id_is_a_404(admin_client):
    url = reverse("admin:cocart_jwt_token_revoke_user", args=["not-a-number"])

    assert admin_client.get(url).status_code == 404


def test_the_history_page_lists_who_created_minted_and_revoked(admin_client, user):
    create(admin_client, user)
    session = Token.objects.get(user=user)
    admin_client.post(mint_url(session))
    admin_client.post(revoke_url(session))

    history = admin_client.get(history_url(session)).content.decode()

    assert "Issued a token (lifetime 24h, not refreshable)" in history
    assert "Minted a new access token and a login link" in history
    assert "Revoked: Revoked by an administrator." in history


def test_the_login_link_of_the_create_page_signs_the_user_in(admin_client, user):
    link = found(LOGIN_LINK, create(admin_client, user).content.decode())
    browser = Client()

    confirm = browser.get(link.removeprefix("http://testserver"))
    assert confirm.status_code == 200
    response = browser.post(reverse("cocart_jwt:login-link"), {"token": link.split("=", 1)[1]})

    assert response.status_code == 302
    assert browser.session["_auth_user_id"] == str(user.pk)


@pytest.mark.parametrize("method, view", [("get", "change"), ("get", "revoke"), ("post", "mint")])
def test_a_session_id_with_a_nul_byte_is_not_found_rather_than_a_500(admin_client, method, view):
    response = getattr(admin_client, method)(f"/admin/cocart_jwt/token/a%00b/{view}/")
    assert response.status_code in (302, 404)  # the change view redirects with a message


# -- secrets never reach a log ----------------------------------------------------------


class CapturedLines(logging.Handler):
    """Every record as a handler writes it: the message and any exception's traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def template_debug_log() -> Any:
    """``django.template`` at DEBUG, as when debugging templates: failed lookups are logged
    with repr() of the whole context."""
    logger = logging.getLogger("django.template")
    handler, level = CapturedLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def assert_logged_none_of(lines: list[str], secrets: list[str]) -> None:
    assert lines, "django.template logged nothing: this test would prove nothing"
    assert all(secrets)
    for line in lines:
        for secret in secrets:
            assert secret not in line


def test_the_create_page_logs_no_token_with_template_debug_logging(
    admin_client, user, template_debug_log
):
    page = create(admin_client, user, refreshable="on").content.decode()
    link = found(LOGIN_LINK, page)

    secrets = [found(ACCESS_TOKEN, page), found(REFRESH_TOKEN, page), link]
    assert_logged_none_of(template_debug_log, [*secrets, (link or "=").split("=", 1)[1]])


def test_the_mint_page_logs_no_token_with_template_debug_logging(
    admin_client, user, template_debug_log
):
    session = issue(user)

    page = admin_client.post(mint_url(session)).content.decode()
    link = found(LOGIN_LINK, page)

    secrets = [found(ACCESS_TOKEN, page), link]
    assert_logged_none_of(template_debug_log, [*secrets, (link or "=").split("=", 1)[1]])


def confirm_page_with_a_failed_lookup(
    client: Client, user: Any, settings: Any, tmp_path: Any, processors: list[str]
) -> str:
    """Render the login link's confirm page under a site base template that names a
    variable nobody sets (the shipped page resolves every variable); return the link token."""
    (tmp_path / "cocart_jwt").mkdir()
    (tmp_path / "cocart_jwt" / "base.html").write_text(
        "<main>{{ site_banner }}{% block content %}{% endblock %}</main>"
    )
    engine = settings.TEMPLATES[0]
    settings.TEMPLATES = [
        {**engine, "DIRS": [tmp_path], "OPTIONS": {"context_processors": processors}}
    ]
    link = found(LOGIN_LINK, create(client, user).content.decode())
    token = (link or "=").split("=", 1)[1]
    confirm = Client().get(reverse("cocart_jwt:login-link"), {"token": token})
    assert confirm.status_code == 200 and token in confirm.content.decode()
    return token


def test_the_login_link_page_logs_no_token_with_template_debug_logging(
    admin_client, user, template_debug_log, settings, tmp_path
):
    processors = ["django.contrib.auth.context_processors.auth"]

    token = confirm_page_with_a_failed_lookup(admin_client, user, settings, tmp_path, processors)

    assert_logged_none_of(template_debug_log, [token])


def test_the_login_link_page_logs_no_token_with_the_request_context_processor(
    admin_client, user, template_debug_log, settings, tmp_path
):
    processors = [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]

    token = confirm_page_with_a_failed_lookup(admin_client, user, settings, tmp_path, processors)

    assert_logged_none_of(template_debug_log, [token])


def test_a_nul_byte_in_the_user_autocomplete_finds_no_one_instead_of_a_500(admin_client, user):
    url = "/admin/cocart_jwt/token/user-autocomplete/"
    found = admin_client.get(url, {"term": "alice"}).json()["results"]

    response = admin_client.get(url, {"term": "alice\x00"})

    assert [entry["text"] for entry in found] == ["alice"]
    assert response.status_code == 200
    assert response.json()["results"] == []


# -- kinds: administrators' tokens and personal access tokens ----------------------------

SCOPES = {"orders:read": "Read your orders", "cart:write": "Change your cart"}


@pytest.fixture
def scopes(settings: Any) -> dict[str, str]:
    settings.COCART_JWT = {**settings.COCART_JWT, "SCOPES": SCOPES}
    return SCOPES


def personal(user: Any, *names: str, **kwargs: Any) -> Token:
    kwargs.setdefault("description", "sync")
    return issue(user, kind=Kind.PERSONAL, scopes=list(names), **kwargs)


def test_create_without_scopes_makes_an_admin_token_that_evicts_no_login_session(
    admin_client, user, settings, scopes
):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": 2}
    logins = [issue(user, kind=Kind.SESSION) for _ in range(2)]

    response = create(admin_client, user, description="support")

    assert found(ACCESS_TOKEN, response.content.decode())
    made = Token.objects.get(description="support")
    assert made.kind == Kind.ADMIN
    assert made.scopes == []
    assert Token.objects.filter(user=user).live().count() == 3  # nothing evicted
    assert "Made by an administrator" in response.content.decode()
    # The next login evicts the oldest login session, never the admin's token.
    issue(user, kind=Kind.SESSION)
    assert Token.objects.get(pk=logins[0].pk).revoke_reason == RevokeReason.MAX_TOKENS
    assert Token.objects.get(pk=made.pk).revoked_at is None


def test_create_with_scopes_makes_a_personal_access_token(
    admin_client, admin_user, user, scopes, api_client
):
    response = create(
        admin_client, user, scopes=["cart:write", "orders:read"], description="invoice sync"
    )

    assert response.status_code == 200
    page = response.content.decode()
    session = Token.objects.get(user=user)
    assert session.kind == Kind.PERSONAL
    assert session.scopes == ["orders:read", "cart:write"]  # in the order of SCOPES
    assert session.description == "invoice sync"
    assert session.refreshable is False
    access_token = found(ACCESS_TOKEN, page)
    claims = verify_access_token(access_token)
    assert claims["scope"] == "orders:read cart:write"
    assert claims["client_id"] == "cocart_jwt"
    assert "auth_time" not in claims
    assert found(REFRESH_TOKEN, page) is None
    # The shown-once page says what it is and what it may do.
    assert "Personal access token" in page
    assert "<code>orders:read</code> <code>cart:write</code>" in page
    # No login link: its browser session would have all the user's rights.
    assert found(LOGIN_LINK, page) is None
    assert "has no login link" in html.unescape(page)
    assert not LoginLink.objects.filter(session=session).exists()
    assert api_client.get(ME, **bearer(access_token)).json()["sid"] == session.pk
    entry = LogEntry.objects.get(object_id=session.pk, action_flag=ADDITION)
    assert entry.user == admin_user
    assert entry.get_change_message() == (
        "Issued a personal access token (scopes orders:read cart:write, lifetime 24h), shown once."
    )


def test_the_scopes_field_offers_each_configured_scope_with_its_description(admin_client, scopes):
    page = html.unescape(admin_client.get(ADD).content.decode())

    assert 'name="scopes" value="orders:read"' in page
    assert "orders:read: Read your orders" in page
    assert "cart:write: Change your cart" in page
    assert "Any scope makes a personal access token" in page
    assert "at most 365d (PAT_MAX_LIFETIME)" in page


def test_the_scopes_field_is_disabled_with_a_note_when_none_are_configured(admin_client, user):
    page = html.unescape(admin_client.get(ADD).content.decode())
    assert "No scopes are configured (COCART_JWT SCOPES is empty)" in page

    create(admin_client, user, scopes=["orders:read"])

    session = Token.objects.get(user=user)  # the posted scope is ignored: an admin token
    assert (session.kind, session.scopes) == (Kind.ADMIN, [])


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"scopes": ["orders:write"]}, "scopes", "Select a valid choice. orders:write is not"),
        (
            {"scopes": ["orders:read"], "refreshable": "on"},
            "refreshable",
            "A personal access token (a token with scopes) is never refreshable",
        ),
        (
            {"scopes": ["orders:read"], "description": "  "},
            "description",
            "A personal access token (a token with scopes) needs a name",
        ),
        (
            {"scopes": ["orders:read"], "lifetime": "366d"},
            "lifetime",
            "A personal access token (a token with scopes) lives at most 365d (PAT_MAX_LIFETIME).",
        ),
        (
            {"lifetime": "91d"},
            "lifetime",
            "The lifetime can be at most 90d (SESSION_MAX_LIFETIME).",
        ),
    ],
)
def test_create_refuses_what_a_personal_access_token_cannot_be(
    admin_client, user, scopes, fields, field, message
):
    response = create(admin_client, user, **{"description": "sync", **fields})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field]
    assert message in html.unescape(response.content.decode())
    assert found(ACCESS_TOKEN, response.content.decode()) is None
    assert not Token.objects.exists()


def test_a_personal_lifetime_is_bounded_by_pat_max_lifetime_not_the_session_maximum(
    admin_client, user, scopes, settings
):
    create(admin_client, user, scopes=["orders:read"], description="a", lifetime="200d")
    first = Token.objects.get(user=user)
    assert first.expires_at - first.created_at == timedelta(days=200)

    settings.COCART_JWT = {**settings.COCART_JWT, "PAT_MAX_LIFETIME": timedelta(days=30)}
    response = create(admin_client, user, scopes=["orders:read"], description="b", lifetime="31d")

    assert "lives at most 30d (PAT_MAX_LIFETIME)" in html.unescape(response.content.decode())
    assert Token.objects.count() == 1


def test_create_at_max_pats_per_user_is_an_error_on_user_naming_the_limit(
    admin_client, user, scopes, settings
):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_PATS_PER_USER": 2}
    held = [personal(user, "orders:read") for _ in range(2)]

    response = create(admin_client, user, scopes=["orders:read"], description="third")

    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["user"]
    assert "already holds 2 live personal access tokens, the most MAX_PATS_PER_USER allows" in (
        html.unescape(response.content.decode())
    )
    assert found(ACCESS_TOKEN, response.content.decode()) is None
    assert Token.objects.count() == 2  # never an eviction
    assert all(Token.objects.get(pk=s.pk).revoked_at is None for s in held)
    assert not LoginLink.objects.exists() and not LogEntry.objects.exists()
    # Without scopes the same user still gets an admin token: it is in no limit.
    create(admin_client, user, description="support")
    assert Token.objects.get(description="support").kind == Kind.ADMIN


def test_changelist_shows_the_kind_and_scopes_and_filters_by_kind(admin_client, user, scopes):
    pat = personal(user, "orders:read", "cart:write", description="the PAT")
    issue(user, kind=Kind.SESSION, description="a login")
    issue(user, kind=Kind.ADMIN, description="support")

    response = admin_client.get(CHANGELIST)

    page = response.content.decode()
    assert "Personal access token" in page and "Login session" in page
    assert "Made by an administrator" in page
    assert "orders:read cart:write" in page
    assert '<td class="field-scope_list">orders:read cart:write</td>' in page
    assert 'class="field-kind"' in page
    assert "?kind__exact=personal" in page  # the filter's choices
    for kind, expected in [
        ("personal", ["the PAT"]),
        ("session", ["a login"]),
        ("admin", ["support"]),
    ]:
        listed = admin_client.get(CHANGELIST, {"kind__exact": kind}).context["cl"].result_list
        assert [row.description for row in listed] == expected
    assert pat.pk[:8] in page


def test_the_view_page_shows_kind_and_scopes_read_only(admin_client, user, scopes):
    pat = personal(user, "orders:read")

    response = admin_client.get(change_url(pat))

    page = html.unescape(response.content.decode())
    assert '<div class="readonly">Personal access token</div>' in page
    assert '<div class="readonly">orders:read</div>' in page
    assert '"scope": "orders:read"' in page  # in the claims its access tokens carry
    form = response.context["adminform"].form
    assert "kind" not in form.fields and "scopes" not in form.fields
    # Posting the view page changes neither.
    admin_client.post(change_url(pat), {"description": "renamed", "kind": "admin"})
    pat.refresh_from_db()
    assert (pat.description, pat.kind, pat.scopes) == ("renamed", Kind.PERSONAL, ["orders:read"])


def test_mint_of_a_personal_token_carries_its_scope(admin_client, user, scopes, api_client):
    pat = personal(user, "orders:read", "cart:write")

    response = admin_client.post(mint_url(pat))

    page = response.content.decode()
    access_token = found(ACCESS_TOKEN, page)
    claims = verify_access_token(access_token)
    assert claims["scope"] == "orders:read cart:write"
    assert claims["sid"] == pat.pk
    assert "auth_time" not in claims
    assert claims["exp"] == int(pat.expires_at.timestamp())
    assert "<code>orders:read</code> <code>cart:write</code>" in page
    assert api_client.get(ME, **bearer(access_token)).status_code == 200
    # A scoped token never comes with a link to an unscoped browser session.
    assert found(LOGIN_LINK, page) is None
    assert not LoginLink.objects.filter(session=pat).exists()
    entry = LogEntry.objects.get(object_id=pat.pk, action_flag=CHANGE)
    assert entry.get_change_message() == "Minted a new access token, shown once."


def test_no_login_link_is_ever_issued_for_a_personal_token(user):
    from cocart_jwt import login_links

    pat = personal(user, "orders:read")

    with pytest.raises(ValueError, match="no login link"):
        login_links.issue(pat)
    assert not LoginLink.objects.filter(session=pat).exists()
