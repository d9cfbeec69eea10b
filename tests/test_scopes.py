"""``cocart_jwt.permissions.HasScope``: a personal access token may do what a view's
``required_scopes`` name and its ``scope`` claim holds; other tokens act for their user.

The test views (tests/views.py): ``/api/scoped/orders-read/`` needs ``orders:read``,
``cart-write/`` ``cart:write``, ``both/`` the two, ``none/`` names none.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from cocart_jwt.choices import Kind
from cocart_jwt.models import Token
from cocart_jwt.permissions import InsufficientScope, required_scopes
from tests.factories import bearer, signed_in

pytestmark = pytest.mark.django_db

ORDERS_READ = "/api/scoped/orders-read/"
CART_WRITE = "/api/scoped/cart-write/"
BOTH = "/api/scoped/both/"
NONE = "/api/scoped/none/"
SESSION_OR_TOKEN = "/api/scoped/session-or-token/"
UNNAMED = "/api/scoped/unnamed/"  # a HasScope view with no required_scopes attribute at all
SCOPES = {"orders:read": "See your orders", "cart:write": "Change your cart"}
HANDLERS = [None, "cocart_jwt.views.exception_handler"]


@pytest.fixture(autouse=True)
def scopes(settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "SCOPES": SCOPES}


def personal_token(user: Any, *scopes: str) -> str:
    return Token.objects.issue(user, kind=Kind.PERSONAL, scopes=list(scopes)).access_token


def get(path: str, token: str) -> Any:
    return APIClient().get(path, **bearer(token))


def challenge(scope: str | None) -> str:
    header = 'Bearer realm="api", error="insufficient_scope"'
    return header if scope is None else f'{header}, scope="{scope}"'


def assert_insufficient_scope(response: Any, scope: str | None) -> None:
    assert response.status_code == 403, response.content
    assert response.json() == {
        "detail": "This token does not grant what this request needs.",
        "code": "insufficient_scope",
    }
    assert response["WWW-Authenticate"] == challenge(scope)


@pytest.mark.parametrize("ttl", [0, 300], ids=["strict", "cached"])
def test_a_token_with_orders_read_reads_orders_and_cannot_write_the_cart(user, settings, ttl):
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": ttl}
    token = personal_token(user, "orders:read")

    for _ in range(2):  # in cached mode, the second from the cache
        assert get(ORDERS_READ, token).status_code == 200
        assert_insufficient_scope(get(CART_WRITE, token), "cart:write")


@pytest.mark.parametrize("handler", HANDLERS, ids=["drf-handler", "our-handler"])
def test_the_rfc_6750_challenge_comes_with_any_exception_handler(user, settings, handler):
    if handler:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "EXCEPTION_HANDLER": handler}

    assert_insufficient_scope(get(CART_WRITE, personal_token(user, "orders:read")), "cart:write")


def test_every_required_scope_is_needed_and_the_challenge_names_them_all(user):
    assert get(BOTH, personal_token(user, "orders:read", "cart:write")).status_code == 200
    for token in (personal_token(user, "orders:read"), personal_token(user, "cart:write")):
        assert_insufficient_scope(get(BOTH, token), "orders:read cart:write")


def test_a_personal_token_without_scopes_is_refused_where_any_is_needed(user):
    token = personal_token(user)  # the Python API allows it; tokens/ does not

    assert_insufficient_scope(get(ORDERS_READ, token), "orders:read")


def test_a_view_that_names_no_scope_refuses_every_personal_token_and_says_why(user, caplog):
    token = personal_token(user, "orders:read", "cart:write")
    caplog.set_level(logging.INFO, logger="cocart_jwt")

    assert_insufficient_scope(get(NONE, token), None)
    assert any("ScopedView names no required_scopes" in message for message in caplog.messages)


@pytest.mark.parametrize(
    ("named", "needed"),
    [("orders:read cart:write", ["orders:read", "cart:write"]), ((), []), (None, [])],
)
def test_required_scopes_as_a_string_are_space_separated_names(named, needed):
    class View:
        required_scopes = named

    assert required_scopes(View()) == needed


@pytest.mark.parametrize("path", [ORDERS_READ, CART_WRITE, BOTH, NONE])
def test_a_login_sessions_token_passes_every_scope_check(user, password, path):
    pair = signed_in(user, password)

    assert get(path, pair["access_token"]).status_code == 200


@pytest.mark.parametrize("path", [ORDERS_READ, NONE])
def test_an_admin_made_token_passes_every_scope_check(user, path):
    token = Token.objects.issue(user, kind=Kind.ADMIN).access_token

    assert get(path, token).status_code == 200


def test_the_scopes_come_from_the_token_the_view_reads_no_query(user, django_assert_num_queries):
    token = personal_token(user, "orders:read")
    get(ORDERS_READ, token)  # the first use's touch is done

    with django_assert_num_queries(1):  # strict mode's one query, as for any view
        assert get(ORDERS_READ, token).status_code == 200


def test_a_request_without_a_token_gets_drfs_usual_refusal(user):
    anonymous = APIClient().get(ORDERS_READ)

    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="api"'
    browser = Client()
    browser.force_login(user)
    signed_in_browser = browser.get(SESSION_OR_TOKEN)
    assert signed_in_browser.status_code == 403  # authenticated, but not by an access token
    assert "WWW-Authenticate" not in signed_in_browser


def test_a_refused_token_is_logged_with_what_it_lacks_never_the_token(user, caplog):
    token = personal_token(user, "orders:read")
    caplog.set_level(logging.INFO, logger="cocart_jwt")

    get(BOTH, token)

    assert any(
        "refused by BothScopesView: it lacks cart:write" in message for message in caplog.messages
    )
    assert not [message for message in caplog.messages if token in message]


def test_the_challenge_quotes_only_what_a_scope_name_can_be():
    """A view's list is not checked as SCOPES is (E019): a quote, a backslash or a line break
    in it never reaches the header."""
    refused = InsufficientScope(['say "hi"', "back\\slash", "line\nbreak", "orders:read"])

    assert refused.auth_header == challenge("orders:read")


def test_the_log_says_which_scoped_token_was_refused_and_why(user, caplog):
    caplog.set_level(logging.INFO, logger="cocart_jwt")
    issued = Token.objects.issue(user, kind=Kind.PERSONAL, scopes=["orders:read"])

    get(BOTH, issued.access_token)
    get(NONE, issued.access_token)
    neither = Token.objects.issue(user, kind=Kind.PERSONAL, scopes=[])
    get(BOTH, neither.access_token)

    sid = issued.session.pk
    assert f"Scoped token of session {sid} refused by BothScopesView: it lacks cart:write" in (
        caplog.messages
    )
    assert f"Scoped token of session {sid} refused: ScopedView names no required_scopes" in (
        caplog.messages
    )
    lacks_both = "it lacks cart:write orders:read"
    assert (
        f"Scoped token of session {neither.session.pk} refused by BothScopesView: {lacks_both}"
        in caplog.messages
    )


def test_a_view_without_the_attribute_refuses_personal_tokens_too(user, password):
    token = personal_token(user, "orders:read", "cart:write")

    assert_insufficient_scope(get(UNNAMED, token), None)
    assert get(UNNAMED, signed_in(user, password)["access_token"]).status_code == 200


def scoped_logins(payload: dict[str, Any], user: Any) -> dict[str, Any]:
    """A PAYLOAD_HOOK of a site that scopes its own login tokens too."""
    return {**payload, "scope": "orders:read"}


def test_a_login_token_that_carries_a_scope_is_held_to_it(user, password, settings):
    settings.COCART_JWT = {
        **settings.COCART_JWT,
        "PAYLOAD_HOOK": "tests.test_scopes.scoped_logins",
    }
    token = signed_in(user, password)["access_token"]

    assert get(ORDERS_READ, token).status_code == 200
    assert_insufficient_scope(get(CART_WRITE, token), "cart:write")
