"""Who may issue for whom (docs/security.md): a token or login link for another user
is impersonation.

Through the real admin URLs with Django's test client: the create form (a refused user is a
form error on ``user``), the mint button (403), the user autocomplete (only permitted users),
and the view page's mint button. The attack of the audit end to end: a staff member holding
only ``add_token`` / ``change_token`` cannot sign in as a superuser with a login link.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from cocart_jwt.models import LoginLink, Token
from tests.factories import bearer

pytestmark = pytest.mark.django_db

ADD = "/admin/cocart_jwt/token/add/"
AUTOCOMPLETE = "/admin/cocart_jwt/token/user-autocomplete/"
ME = "/api/me/"
ACCESS_TOKEN = re.compile(r'<textarea id="cocart-jwt-access-token"[^>]*>([^<]*)</textarea>')
LOGIN_LINK = re.compile(r'id="cocart-jwt-login-link"[^>]*value="([^"]*)"')
REFUSED = "You may not issue a token for this user."


def perms(*names: str) -> list[Permission]:
    """``Permission`` rows for ``app_label.codename`` names."""
    rows = []
    for name in names:
        app_label, codename = name.split(".")
        rows.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return rows


def staff(django_user_model: Any, username: str, *names: str) -> tuple[Any, Client]:
    """A staff member holding ``names`` (``app_label.codename``), and a client signed in."""
    user = django_user_model.objects.create_user(username=username, password="x", is_staff=True)
    user.user_permissions.set(perms(*names))
    client = Client()
    client.force_login(user)
    return user, client


@pytest.fixture
def root(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("root", "root@example.com", "x")


@pytest.fixture
def plain(django_user_model: Any) -> Any:
    """A user with no staff status and no permission."""
    return django_user_model.objects.create_user("carol", "carol@example.com", "x")


@pytest.fixture
def targets(django_user_model: Any, root: Any, plain: Any) -> dict[str, Any]:
    other_staff = django_user_model.objects.create_user("dave", "dave@example.com", is_staff=True)
    powerful = django_user_model.objects.create_user("erin", "erin@example.com")
    powerful.user_permissions.set(perms("auth.change_user"))
    via_group = django_user_model.objects.create_user("frank", "frank@example.com")
    group = Group.objects.create(name="user managers")
    group.permissions.set(perms("auth.delete_user"))
    via_group.groups.add(group)
    within = django_user_model.objects.create_user("grace", "grace@example.com")
    within.user_permissions.set(perms("cocart_jwt.view_token"))
    return {
        "superuser": root,
        "staff": other_staff,
        "permission the actor lacks": powerful,
        "group permission the actor lacks": via_group,
        "plain": plain,
        "permissions the actor holds": within,
    }


def create(client: Client, user: Any, **fields: Any) -> Any:
    data = {"user": user.pk, "lifetime": "24h", "claims": "", "description": "", **fields}
    return client.post(ADD, data)


def mint_url(session: Token) -> str:
    return reverse("admin:cocart_jwt_token_mint", args=[quote(session.pk)])


def change_url(session: Token) -> str:
    return reverse("admin:cocart_jwt_token_change", args=[quote(session.pk)])


def found(pattern: re.Pattern[str], page: str) -> str | None:
    match = pattern.search(page)
    return html.unescape(match.group(1)) if match else None


def assert_refused(response: Any) -> None:
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["user"]
    assert REFUSED in html.unescape(response.content.decode())
    assert found(ACCESS_TOKEN, response.content.decode()) is None
    assert not Token.objects.exists()
    assert not LoginLink.objects.exists()


def assert_created_for(response: Any, user: Any) -> None:
    assert response.status_code == 200, response.content.decode()[:2000]
    assert found(ACCESS_TOKEN, response.content.decode())
    assert Token.objects.filter(user=user).count() == 1


def sign_in_with(link: str) -> Client:
    """Open a login link in a fresh browser and confirm it."""
    browser = Client()
    assert browser.get(link.removeprefix("http://testserver")).status_code == 200
    response = browser.post(reverse("cocart_jwt:login-link"), {"token": link.split("=", 1)[1]})
    assert response.status_code == 302
    return browser


# -- the create form --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        "superuser",
        "staff",
        "permission the actor lacks",
        "group permission the actor lacks",
        "plain",
        "permissions the actor holds",
    ],
)
def test_add_token_alone_cannot_create_for_another_user(django_user_model, targets, kind):
    _actor, client = staff(django_user_model, "mallory", "cocart_jwt.add_token")

    assert_refused(create(client, targets[kind]))


def test_add_token_alone_creates_for_oneself(django_user_model):
    actor, client = staff(django_user_model, "mallory", "cocart_jwt.add_token")

    assert_created_for(create(client, actor), actor)


@pytest.mark.parametrize(
    ("kind", "allowed"),
    [
        ("superuser", False),
        ("staff", False),
        ("permission the actor lacks", False),
        ("group permission the actor lacks", False),
        ("plain", True),
        ("permissions the actor holds", True),
    ],
)
def test_issue_for_others_allows_only_users_without_more_power(
    django_user_model, targets, kind, allowed
):
    _actor, client = staff(
        django_user_model,
        "helpdesk",
        "cocart_jwt.add_token",
        "cocart_jwt.view_token",
        "cocart_jwt.issue_for_others",
    )

    response = create(client, targets[kind])

    if allowed:
        assert_created_for(response, targets[kind])
    else:
        assert_refused(response)


@pytest.mark.parametrize("kind", ["superuser", "staff", "permission the actor lacks", "plain"])
def test_a_superuser_creates_for_anyone(admin_client, targets, kind):
    assert_created_for(create(admin_client, targets[kind]), targets[kind])


@pytest.mark.parametrize("kind", ["superuser", "staff", "plain"])
def test_scopes_change_nothing_of_who_may_issue_for_whom(
    django_user_model, targets, settings, kind
):
    """A personal access token for another user is impersonation too, however few its scopes."""
    settings.COCART_JWT = {**settings.COCART_JWT, "SCOPES": {"orders:read": "Read orders"}}
    actor, client = staff(django_user_model, "mallory", "cocart_jwt.add_token")
    personal = {"scopes": ["orders:read"], "description": "read-only"}

    assert_refused(create(client, targets[kind], **personal))
    assert_created_for(create(client, actor, **personal), actor)
    assert Token.objects.get(user=actor).scopes == ["orders:read"]


def test_issue_for_others_without_add_token_creates_nothing(django_user_model, plain):
    _actor, client = staff(django_user_model, "helpdesk", "cocart_jwt.issue_for_others")

    assert create(client, plain).status_code == 403
    assert not Token.objects.exists()


class GrantsChangeUser(BaseBackend):
    """A site's own backend: grants ``auth.change_user`` to carol, where SQL cannot see it."""

    def get_user_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return {"auth.change_user"} if user_obj.get_username() == "carol" else set()


def test_a_permission_from_another_backend_is_compared_too(django_user_model, plain, settings):
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        f"{__name__}.GrantsChangeUser",
    ]
    _actor, client = staff(
        django_user_model, "helpdesk", "cocart_jwt.add_token", "cocart_jwt.issue_for_others"
    )

    listed = client.get(AUTOCOMPLETE, {"term": "carol"}).json()["results"]
    assert listed == []
    assert_refused(create(client, plain))


def test_the_form_offers_only_the_actor_when_no_one_else_is_permitted(django_user_model, root):
    actor, client = staff(django_user_model, "mallory", "cocart_jwt.add_token")

    page = client.get(ADD).content.decode()

    # Without JavaScript the select is all there is: the actor alone, already chosen.
    select = re.search(r'<select name="user"[^>]*>(.*?)</select>', page, re.S)
    assert select is not None
    options = re.findall(r'<option value="(\d*)"( selected)?>', select.group(1))
    assert [value for value, _selected in options if value] == [str(actor.pk)]
    assert (str(actor.pk), " selected") in options
    assert AUTOCOMPLETE in page  # select2 asks the token admin's own view
    assert "root" not in select.group(1)


# -- the mint button --------------------------------------------------------------------


def test_change_token_alone_cannot_mint_for_a_superuser(django_user_model, root):
    session = Token.objects.issue(root).session
    _actor, client = staff(
        django_user_model, "mallory", "cocart_jwt.view_token", "cocart_jwt.change_token"
    )

    view = client.get(change_url(session))
    response = client.post(mint_url(session))

    assert view.status_code == 200
    assert mint_url(session) not in view.content.decode()  # no mint button
    assert response.status_code == 403
    assert not LoginLink.objects.exists()


@pytest.mark.parametrize("kind", ["staff", "permission the actor lacks", "plain"])
def test_change_token_alone_cannot_mint_for_anyone_else(django_user_model, targets, kind):
    session = Token.objects.issue(targets[kind]).session
    _actor, client = staff(django_user_model, "mallory", "cocart_jwt.change_token")

    assert client.post(mint_url(session)).status_code == 403
    assert not LoginLink.objects.exists()


def test_change_token_mints_for_ones_own_session(django_user_model, api_client):
    actor, client = staff(
        django_user_model, "mallory", "cocart_jwt.view_token", "cocart_jwt.change_token"
    )
    session = Token.objects.issue(actor).session

    assert mint_url(session) in client.get(change_url(session)).content.decode()
    response = client.post(mint_url(session))

    assert response.status_code == 200
    access_token = found(ACCESS_TOKEN, response.content.decode())
    assert api_client.get(ME, **bearer(access_token)).json()["username"] == "mallory"
    assert LoginLink.objects.filter(session=session).count() == 1


@pytest.mark.parametrize(("kind", "status"), [("plain", 200), ("staff", 403), ("superuser", 403)])
def test_issue_for_others_mints_only_for_users_without_more_power(
    django_user_model, targets, kind, status
):
    session = Token.objects.issue(targets[kind]).session
    _actor, client = staff(
        django_user_model, "helpdesk", "cocart_jwt.change_token", "cocart_jwt.issue_for_others"
    )

    assert client.post(mint_url(session)).status_code == status
    assert LoginLink.objects.exists() is (status == 200)


def test_a_superuser_mints_for_anyone(admin_client, root, targets):
    session = Token.objects.issue(targets["staff"]).session

    assert admin_client.post(mint_url(session)).status_code == 200


# -- the user autocomplete --------------------------------------------------------------


def autocomplete(client: Client, term: str = "") -> list[str]:
    response = client.get(AUTOCOMPLETE, {"term": term})
    assert response.status_code == 200
    return [item["text"] for item in response.json()["results"]]


def test_autocomplete_lists_only_the_actor_without_issue_for_others(django_user_model, targets):
    _actor, client = staff(django_user_model, "mallory", "cocart_jwt.add_token")

    assert autocomplete(client) == ["mallory"]
    assert autocomplete(client, "root") == []


def test_autocomplete_lists_only_users_the_actor_may_issue_for(django_user_model, targets):
    _actor, client = staff(
        django_user_model,
        "helpdesk",
        "cocart_jwt.add_token",
        "cocart_jwt.view_token",
        "cocart_jwt.issue_for_others",
    )

    listed = autocomplete(client)

    assert listed == ["carol", "grace", "helpdesk"]
    assert "root" not in listed
    assert autocomplete(client, "carol@EXAMPLE") == ["carol"]  # email too


def test_autocomplete_lists_everyone_for_a_superuser(admin_client, targets):
    listed = autocomplete(admin_client)

    assert {"root", "dave", "erin", "frank", "carol", "grace", "admin"} == set(listed)


def test_autocomplete_needs_add_or_change_token(django_user_model, targets):
    _actor, client = staff(django_user_model, "watcher", "cocart_jwt.view_token")

    assert client.get(AUTOCOMPLETE, {"term": ""}).status_code == 403


def test_the_generic_admin_autocomplete_is_not_used_by_the_form(admin_client):
    page = admin_client.get(ADD).content.decode()

    assert f'data-ajax--url="{AUTOCOMPLETE}"' in page
    assert 'data-ajax--url="/admin/autocomplete/"' not in page


# -- the attack of the audit, end to end ------------------------------------------------


def test_a_token_admin_cannot_become_superuser(django_user_model, root):
    """Create form and mint button: no token, no link, no admin session as root."""
    _actor, client = staff(
        django_user_model,
        "mallory",
        "cocart_jwt.view_token",
        "cocart_jwt.add_token",
        "cocart_jwt.change_token",
    )

    assert_refused(create(client, root))
    roots_session = Token.objects.issue(root).session
    assert client.post(mint_url(roots_session)).status_code == 403
    assert not LoginLink.objects.exists()
    assert Token.objects.filter(user=root).count() == 1  # only the one made here
    assert client.get("/admin/auth/user/").status_code == 403  # still mallory


def test_a_superuser_issues_a_login_link_that_signs_a_plain_user_in(admin_client, plain):
    response = create(admin_client, plain)

    link = found(LOGIN_LINK, response.content.decode())
    assert link
    browser = sign_in_with(link)
    assert browser.session["_auth_user_id"] == str(plain.pk)


def test_issue_for_others_issues_a_login_link_that_signs_a_plain_user_in(django_user_model, plain):
    _actor, client = staff(
        django_user_model, "helpdesk", "cocart_jwt.add_token", "cocart_jwt.issue_for_others"
    )

    link = found(LOGIN_LINK, create(client, plain).content.decode())

    assert link
    assert sign_in_with(link).session["_auth_user_id"] == str(plain.pk)
