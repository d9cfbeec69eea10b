"""Personal access tokens through ``tokens/``: made by a login session of a recent login, shown
once, listed and deleted by their user; what they may not do (the kind guards).

HasScope, which decides what they may do on a site's views, is in tests/test_scopes.py.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.urls import reverse
from rest_framework.test import APIClient

from cocart_jwt.choices import Event, Kind
from cocart_jwt.models import RevokeReason, Token, TokenEvent
from cocart_jwt.tokens import verify_access_token
from tests.factories import bearer, login, signed_in

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOKENS = reverse("cocart_jwt:tokens")
ME = "/api/me/"
SCOPES = {
    "orders:read": "See your orders",
    "cart:write": "Change your cart",
    "products:read": "See the catalogue",
}
FIELDS = {"id", "name", "scopes", "created_at", "last_used_at", "expires_at"}
NOT_A_LOGIN = {
    "detail": "This session was not started by a login: sign in instead.",
    "code": "not_a_login_session",
}


@pytest.fixture(autouse=True)
def scopes(settings: Any) -> None:
    settings.COCART_JWT = {**settings.COCART_JWT, "SCOPES": SCOPES}


def token_url(token_id: str) -> str:
    return reverse("cocart_jwt:token", kwargs={"token_id": token_id})


def make(access: str, client: Any = None, **body: Any) -> Any:
    body = {"name": "CI deploys", "scopes": ["orders:read"], **body}
    return (client or APIClient()).post(TOKENS, body, format="json", **bearer(access))


def made(access: str, **body: Any) -> dict[str, Any]:
    response = make(access, **body)
    assert response.status_code == 201, response.content
    return dict(response.json())


def listed(access: str, **params: Any) -> Any:
    return APIClient().get(TOKENS, params, **bearer(access))


def me(token: str) -> int:
    return int(APIClient().get(ME, **bearer(token)).status_code)


@pytest.fixture
def session(user: Any, password: str) -> dict[str, Any]:
    """A fresh login's token pair: a login session of a recent login."""
    return signed_in(user, password)


@pytest.fixture
def access(session: dict[str, Any]) -> str:
    return str(session["access_token"])


# -- making one -------------------------------------------------------------------------------


def test_a_login_session_makes_a_personal_token_shown_once(access, user):
    response = make(access, name="CI deploys", scopes=["orders:read", "cart:write"])

    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == FIELDS | {"token"}
    assert body["name"] == "CI deploys"
    assert body["scopes"] == ["cart:write", "orders:read"]
    assert body["last_used_at"] is None
    assert me(body["token"]) == 200
    row = Token.objects.get(pk=body["id"])
    assert (row.user, row.kind, row.description, row.refreshable) == (
        user,
        Kind.PERSONAL,
        "CI deploys",
        False,
    )
    # Never again: not in the list, not in the registry.
    page = listed(access).json()
    assert [item["id"] for item in page["results"]] == [body["id"]]
    assert set(page["results"][0]) == FIELDS
    assert body["token"] not in str(page)
    assert body["token"] not in str(Token.objects.filter(pk=body["id"]).values().get())


def test_its_access_token_says_what_it_may_do_and_lives_as_long_as_it(settings, user, password):
    settings.COCART_JWT = {**settings.COCART_JWT, "CLIENT_ID": "shop"}
    with time_machine.travel(T0, tick=False):
        access = signed_in(user, password)["access_token"]
        body = made(access, scopes=["orders:read", "cart:write"], expires_in=3600)

    with time_machine.travel(T0 + timedelta(minutes=30), tick=False):
        claims = verify_access_token(body["token"])

    assert claims["scope"] == "cart:write orders:read"
    assert claims["client_id"] == "shop"
    assert claims["sid"] == body["id"]
    assert "auth_time" not in claims
    assert claims["exp"] == int((T0 + timedelta(hours=1)).timestamp())
    assert body["expires_at"] == "2026-03-01T13:00:00Z"
    assert "refresh_token" not in body


def test_it_may_outlive_a_login_session_up_to_pat_max_lifetime(access):
    body = made(access, expires_in=200 * 24 * 3600)  # SESSION_MAX_LIFETIME is 90 days

    assert me(body["token"]) == 200


def test_it_lives_90_days_unless_told(user, password):
    with time_machine.travel(T0, tick=False):
        access = signed_in(user, password)["access_token"]
        body = made(access)

    assert Token.objects.get(pk=body["id"]).expires_at == T0 + timedelta(days=90)


def test_expires_in_goes_up_to_pat_max_lifetime_and_no_further(settings, user, password):
    settings.COCART_JWT = {**settings.COCART_JWT, "PAT_MAX_LIFETIME": timedelta(days=30)}
    longest = 30 * 24 * 3600

    with time_machine.travel(T0, tick=False):
        access = signed_in(user, password)["access_token"]
        at_most = make(access, expires_in=longest)
        beyond = make(access, expires_in=longest + 1)

    assert at_most.status_code == 201, at_most.content
    assert Token.objects.get(pk=at_most.json()["id"]).expires_at == T0 + timedelta(days=30)
    assert beyond.status_code == 400
    assert beyond.json()["errors"] == {
        "expires_in": [f"At most {longest} seconds (PAT_MAX_LIFETIME)."]
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": "line\nbreak"}, "name"),
        ({"name": "bell\x07"}, "name"),
        ({"name": "nul\x00"}, "name"),
        ({"name": ["CI"]}, "name"),
        ({"name": 12}, "name"),
        ({"name": True}, "name"),
        ({"scopes": None}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"scopes": "orders:read"}, "scopes"),
        ({"scopes": [["orders:read"]]}, "scopes"),
        ({"scopes": [{"name": "orders:read"}]}, "scopes"),
        ({"scopes": ["x" * 65]}, "scopes"),
        ({"scopes": [1]}, "scopes"),
        ({"scopes": ["orders:read"] * 257}, "scopes"),
        ({"expires_in": 0}, "expires_in"),
        ({"expires_in": -60}, "expires_in"),
        ({"expires_in": 1.5}, "expires_in"),
        ({"expires_in": True}, "expires_in"),
        ({"expires_in": "soon"}, "expires_in"),
        ({"expires_in": "600"}, "expires_in"),
        ({"expires_in": 600.0}, "expires_in"),
        ({"expires_in": None}, "expires_in"),
        ({"expires_in": 10**400}, "expires_in"),
    ],
)
def test_a_malformed_request_is_a_400_naming_the_field_and_makes_nothing(access, body, field):
    response = make(access, **body)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_request"
    assert set(response.json()["errors"]) == {field}
    assert not Token.objects.filter(kind=Kind.PERSONAL).exists()


@pytest.mark.parametrize("name", ["\ud800", "CI \udfff"])
def test_a_name_with_a_lone_surrogate_is_a_400(access, name):
    response = APIClient().post(
        TOKENS,
        json.dumps({"name": name, "scopes": ["orders:read"]}),
        content_type="application/json",
        **bearer(access),
    )

    assert response.status_code == 400, response.content
    assert set(response.json()["errors"]) == {"name"}


def test_a_missing_name_or_scopes_is_a_400(access):
    response = APIClient().post(TOKENS, {}, format="json", **bearer(access))

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"name", "scopes"}


def test_unknown_scopes_are_a_400_naming_them_sorted(access):
    several = make(access, scopes=["zeta", "orders:read", "admin:all", "zeta"])
    one = make(access, scopes=["orders:write"])

    assert several.status_code == one.status_code == 400
    assert several.json()["errors"] == {"scopes": ["Unknown scopes: admin:all, zeta."]}
    assert one.json()["errors"] == {"scopes": ["Unknown scope: orders:write."]}
    assert not Token.objects.filter(kind=Kind.PERSONAL).exists()


def test_a_site_without_scopes_makes_no_personal_token(access, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "SCOPES": {}}

    response = make(access)

    assert response.status_code == 400
    assert response.json()["errors"] == {"scopes": ["Unknown scope: orders:read."]}


def test_repeated_scopes_count_once(access):
    body = made(access, scopes=["orders:read", "orders:read", "cart:write"])

    assert body["scopes"] == ["cart:write", "orders:read"]


@pytest.mark.parametrize("encoding", ["form", "multipart"])
def test_the_body_may_be_a_form_with_scopes_repeated(access, encoding):
    client = APIClient()
    data = {"name": "Reports", "scopes": ["orders:read", "products:read"], "expires_in": "600"}
    if encoding == "form":
        response = client.post(
            TOKENS,
            "name=Reports&scopes=orders%3Aread&scopes=products%3Aread&expires_in=600",
            content_type="application/x-www-form-urlencoded",
            **bearer(access),
        )
    else:
        response = client.post(TOKENS, data, format="multipart", **bearer(access))

    assert response.status_code == 201, response.content
    assert response.json()["scopes"] == ["orders:read", "products:read"]
    assert response.json()["name"] == "Reports"


def test_making_one_takes_a_recent_login(user, password):
    with time_machine.travel(T0, tick=False) as clock:
        pair = signed_in(user, password)
        clock.shift(timedelta(minutes=5, seconds=1))

        stale = make(pair["access_token"])
        still_listed = listed(pair["access_token"])
        stepped = APIClient().post(
            reverse("cocart_jwt:reauthenticate"),
            {"password": password},
            format="json",
            **bearer(pair["access_token"]),
        )
        fresh = make(stepped.json()["access_token"])

    assert stale.status_code == 401
    assert stale.json()["code"] == "reauthentication_required"
    assert stale["WWW-Authenticate"] == (
        'Bearer realm="api", error="insufficient_user_authentication", max_age=300'
    )
    assert still_listed.status_code == 200
    assert fresh.status_code == 201, fresh.content
    assert Token.objects.filter(kind=Kind.PERSONAL).count() == 1


def test_no_token_no_tokens(db):
    client = APIClient()

    assert client.get(TOKENS).status_code == 401
    refused = client.post(TOKENS, {"name": "x", "scopes": ["orders:read"]}, format="json")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == 'Bearer realm="api"'


# -- the limit --------------------------------------------------------------------------------


def test_beyond_max_pats_per_user_is_a_400_never_an_eviction(access, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_PATS_PER_USER": 2}
    kept = [made(access, name=f"token {n}")["token"] for n in range(2)]

    refused = make(access, name="one too many")

    assert refused.status_code == 400
    assert refused.json() == {
        "detail": "You already have 2 personal access tokens, the most allowed: delete one "
        "before making another.",
        "code": "too_many_personal_tokens",
    }
    assert [me(token) for token in kept] == [200, 200]
    assert me(access) == 200
    deleted = verify_access_token(kept[0])["sid"]
    assert APIClient().delete(token_url(deleted), **bearer(access)).status_code == 204
    assert make(access, name="now there is room").status_code == 201


def test_personal_tokens_and_logins_count_apart(user, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": 2, "MAX_PATS_PER_USER": 2}
    first = signed_in(user, password)
    tokens = [made(first["access_token"], name=f"token {n}")["token"] for n in range(2)]

    logins = [signed_in(user, password) for _ in range(3)]  # the cap evicts logins only

    assert [me(token) for token in tokens] == [200, 200]
    assert me(first["access_token"]) == 401
    assert [me(pair["access_token"]) for pair in logins] == [401, 200, 200]
    assert make(logins[-1]["access_token"]).status_code == 400  # still two personal tokens


# -- listing ----------------------------------------------------------------------------------


def test_the_list_holds_only_the_callers_live_personal_tokens_newest_first(
    user, other_user, password
):
    with time_machine.travel(T0, tick=False) as clock:
        access = signed_in(user, password)["access_token"]
        older = made(access, name="older")
        clock.shift(timedelta(minutes=1))
        newer = made(access, name="newer", expires_in=3600)
        clock.shift(timedelta(minutes=1))
        revoked = made(access, name="revoked")
        Token.objects.get(pk=revoked["id"]).revoke(RevokeReason.ADMIN)
        expiring = made(access, name="expiring", expires_in=60)
        Token.objects.issue(other_user, kind=Kind.PERSONAL, scopes=["orders:read"])
        Token.objects.issue(user, kind=Kind.ADMIN)
        clock.shift(timedelta(minutes=2))

        page = listed(access)

    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    assert page.json()["next"] is None and page.json()["previous"] is None
    assert [item["name"] for item in page.json()["results"]] == ["newer", "older"]
    assert [item["id"] for item in page.json()["results"]] == [newer["id"], older["id"]]
    assert expiring["id"] not in str(page.json())
    assert page.json()["results"][0] == {key: newer[key] for key in FIELDS}


def test_the_list_pages_with_a_cursor(user, password):
    with time_machine.travel(T0, tick=False) as clock:
        access = signed_in(user, password)["access_token"]
        for n in range(3):
            made(access, name=f"token {n}")
            clock.shift(timedelta(seconds=1))

        first = listed(access, page_size=2).json()
        second = APIClient().get(first["next"], **bearer(access)).json()
        zero = listed(access, page_size=0)
        unknown_cursor = listed(access, cursor="not-a-cursor")

    assert [item["name"] for item in first["results"]] == ["token 2", "token 1"]
    assert [item["name"] for item in second["results"]] == ["token 0"]
    assert second["next"] is None
    assert zero.status_code == 400
    assert unknown_cursor.status_code == 404


def test_a_token_shows_when_it_was_last_used(access):
    body = made(access)

    assert me(body["token"]) == 200

    assert listed(access).json()["results"][0]["last_used_at"] is not None


# -- deleting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [0, 300], ids=["strict", "cached"])
def test_a_deleted_token_is_refused_on_its_next_request(access, settings, ttl):
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": ttl}
    body = made(access)
    assert me(body["token"]) == 200  # in cached mode, now in the cache

    response = APIClient().delete(token_url(body["id"]), **bearer(access))

    assert response.status_code == 204
    assert me(body["token"]) == 401
    assert listed(access).json()["results"] == []
    row = Token.objects.get(pk=body["id"])
    assert row.revoke_reason == RevokeReason.TOKEN_DELETED
    assert me(access) == 200


def test_only_the_callers_live_personal_tokens_can_be_deleted(
    access, session, user, other_user, password
):
    bobs = Token.objects.issue(other_user, kind=Kind.PERSONAL, scopes=["orders:read"])
    other_login = signed_in(user, password)
    admin_made = Token.objects.issue(user, kind=Kind.ADMIN)
    client = APIClient()

    for token_id in (
        bobs.session.pk,
        other_login["sid"],
        session["sid"],
        admin_made.session.pk,
        "no-such-token",
    ):
        response = client.delete(token_url(token_id), **bearer(access))
        assert response.status_code == 404, token_id
        assert response.json() == {"detail": "Not found.", "code": "not_found"}

    assert me(bobs.access_token) == 200
    assert me(other_login["access_token"]) == 200
    assert me(admin_made.access_token) == 200
    assert me(access) == 200


@pytest.mark.parametrize("token_id", ["%C2%84", "%00", "a%2Fb", "a/b", "%0A", "x" * 65, "%20"])
def test_deleting_an_id_no_token_can_have_is_a_json_404(access, token_id):
    response = APIClient().delete(f"{TOKENS}{token_id}/", **bearer(access))

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_deleting_needs_a_token(access):
    body = made(access)

    for url in (token_url(body["id"]), f"{TOKENS}%00/"):
        response = APIClient().delete(url)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer ")
    assert me(body["token"]) == 200


def test_the_security_log_records_the_making_and_the_deleting(access):
    body = made(access)
    APIClient().delete(token_url(body["id"]), REMOTE_ADDR="203.0.113.9", **bearer(access))

    events = TokenEvent.objects.filter(sid=body["id"]).order_by("at", "id")
    assert [(event.event, event.reason) for event in events] == [
        (Event.ISSUED, ""),
        (Event.REVOKED, RevokeReason.TOKEN_DELETED),
    ]
    assert [event.ip for event in events] == ["127.0.0.1", "203.0.113.9"]
    listed_events = APIClient().get(reverse("cocart_jwt:events"), **bearer(access)).json()
    assert {(item["sid"], item["event"]) for item in listed_events["results"]} >= {
        (body["id"], "issued"),
        (body["id"], "revoked"),
    }


def test_the_log_never_holds_the_token(access, caplog):
    caplog.set_level(logging.DEBUG)
    body = made(access)
    APIClient().get("/api/scoped/cart-write/", **bearer(body["token"]))
    APIClient().delete(token_url(body["id"]), **bearer(access))

    assert caplog.messages
    assert not [message for message in caplog.messages if body["token"] in message]
    assert not [message for message in caplog.messages if access in message]


# -- binding ----------------------------------------------------------------------------------


def test_under_bind_to_ip_it_binds_to_its_first_use_not_to_the_browser_that_made_it(
    access, settings
):
    settings.COCART_JWT = {**settings.COCART_JWT, "BIND_TO_IP": True}
    body = made(access)  # from 127.0.0.1
    client = APIClient()

    first_use = client.get(ME, REMOTE_ADDR="198.51.100.7", **bearer(body["token"]))
    elsewhere = client.get(ME, REMOTE_ADDR="127.0.0.1", **bearer(body["token"]))

    assert first_use.status_code == 200
    assert elsewhere.status_code == 401
    assert client.get(ME, REMOTE_ADDR="198.51.100.7", **bearer(body["token"])).status_code == 200


# -- what a personal token may not do ---------------------------------------------------------


@pytest.fixture
def personal(access: str) -> dict[str, Any]:
    return made(access, scopes=["orders:read", "cart:write", "products:read"])


@pytest.fixture
def admin_made(user: Any) -> Any:
    return Token.objects.issue(user, kind=Kind.ADMIN)


def assert_not_a_login(response: Any) -> None:
    assert response.status_code == 403, response.content
    assert response.json() == NOT_A_LOGIN
    assert "WWW-Authenticate" not in response


@pytest.mark.parametrize("maker", ["personal", "admin_made"])
def test_a_personal_or_admin_made_token_cannot_list_make_or_delete_tokens(
    request, access, maker, password
):
    other = made(access, name="other")
    made_by = request.getfixturevalue(maker)
    token = made_by["token"] if maker == "personal" else made_by.access_token
    live = set(Token.objects.filter(kind=Kind.PERSONAL).live().values_list("pk", flat=True))
    client = APIClient()

    assert_not_a_login(client.get(TOKENS, **bearer(token)))
    # 403 and not RecentLogin's 401 (neither has an auth_time): the guard comes first.
    assert_not_a_login(make(token))
    assert_not_a_login(client.delete(token_url(other["id"]), **bearer(token)))
    assert_not_a_login(client.delete(f"{TOKENS}%00/", **bearer(token)))
    assert me(other["token"]) == 200
    assert set(Token.objects.filter(kind=Kind.PERSONAL).live().values_list("pk", flat=True)) == live


def test_the_guard_reads_the_kind_from_the_cache_in_cached_mode(access, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}
    token = made(access)["token"]
    assert me(token) == 200  # its snapshot is cached now

    assert_not_a_login(APIClient().get(TOKENS, **bearer(token)))
    assert listed(access).status_code == 200


@pytest.mark.parametrize("maker", ["personal", "admin_made"])
def test_a_personal_or_admin_made_token_cannot_reauthenticate(request, maker, password, caplog):
    made_by = request.getfixturevalue(maker)
    token = made_by["token"] if maker == "personal" else made_by.access_token
    caplog.set_level(logging.INFO, logger="cocart_jwt")

    response = APIClient().post(
        reverse("cocart_jwt:reauthenticate"), {"password": password}, format="json", **bearer(token)
    )

    assert_not_a_login(response)
    sid = made_by["id"] if maker == "personal" else made_by.session.pk
    kind = "personal" if maker == "personal" else "admin"
    assert f"ReauthenticateView refused: session {sid} is of kind {kind}" in caplog.messages


def test_an_admin_made_session_renewed_by_a_login_still_cannot_reauthenticate(
    user, password, caplog
):
    made_by = Token.objects.issue(user, kind=Kind.ADMIN)  # refreshable
    renewed = login(APIClient(), user.username, password, **bearer(made_by.access_token)).json()
    assert renewed["sid"] == made_by.session.pk
    assert "auth_time" in verify_access_token(renewed["access_token"])

    response = APIClient().post(
        reverse("cocart_jwt:reauthenticate"),
        {"password": password},
        format="json",
        **bearer(renewed["access_token"]),
    )

    assert_not_a_login(response)  # its kind, not its auth_time, says who made it


@pytest.mark.parametrize("name", ["cocart_jwt:logout-others", "cocart_jwt:logout-all"])
def test_a_personal_token_cannot_log_out_the_other_sessions(personal, session, name):
    response = APIClient().post(reverse(name), **bearer(personal["token"]))

    assert_not_a_login(response)
    assert me(session["access_token"]) == 200
    assert me(personal["token"]) == 200


def test_a_personal_token_cannot_see_or_end_the_accounts_sessions_or_read_its_security_log(
    personal, session
):
    client = APIClient()
    token = personal["token"]

    assert_not_a_login(client.get(reverse("cocart_jwt:sessions"), **bearer(token)))
    one_login = reverse("cocart_jwt:session", kwargs={"session_id": session["sid"]})
    assert_not_a_login(client.delete(one_login, **bearer(token)))  # logging another out
    assert_not_a_login(client.get(reverse("cocart_jwt:events"), **bearer(token)))
    assert me(session["access_token"]) == 200
    # A login session still may.
    events = client.get(reverse("cocart_jwt:events"), **bearer(session["access_token"]))
    assert events.status_code == 200


def test_an_admin_made_token_may_still_log_out_the_others(admin_made, personal, session):
    response = APIClient().post(
        reverse("cocart_jwt:logout-others"), **bearer(admin_made.access_token)
    )

    assert response.status_code == 204
    assert me(session["access_token"]) == 401
    assert me(personal["token"]) == 401  # personal tokens are sessions of the user too
    assert me(admin_made.access_token) == 200


def test_a_personal_token_may_still_log_itself_out(personal, session):
    response = APIClient().post(reverse("cocart_jwt:logout"), **bearer(personal["token"]))

    assert response.status_code == 204
    assert me(personal["token"]) == 401
    assert me(session["access_token"]) == 200


def test_a_login_without_auth_time_may_list_but_needs_a_recent_login_to_make(user):
    issued = Token.objects.issue(user)  # a session-kind token from Python code

    assert listed(issued.access_token).status_code == 200
    assert make(issued.access_token).json()["code"] == "reauthentication_required"


# -- sessions/ and the panic buttons ----------------------------------------------------------


def test_sessions_neither_lists_nor_deletes_personal_tokens(access, session, personal):
    client = APIClient()

    sessions = client.get(reverse("cocart_jwt:sessions"), **bearer(access)).json()
    deleted = client.delete(
        reverse("cocart_jwt:session", kwargs={"session_id": personal["id"]}), **bearer(access)
    )

    assert [item["id"] for item in sessions] == [session["sid"]]
    assert deleted.status_code == 404
    assert me(personal["token"]) == 200


def test_logout_all_revokes_personal_tokens_too(access, personal):
    response = APIClient().post(reverse("cocart_jwt:logout-all"), **bearer(access))

    assert response.status_code == 204
    assert me(personal["token"]) == 401
    assert Token.objects.get(pk=personal["id"]).revoke_reason == RevokeReason.LOGOUT_ALL


def test_a_password_change_revokes_personal_tokens_too(user, personal):
    user.set_password("a brand new password")
    user.save()

    assert me(personal["token"]) == 401
    assert Token.objects.get(pk=personal["id"]).revoke_reason == RevokeReason.PASSWORD_CHANGE


def test_a_login_carrying_a_personal_token_starts_its_own_session(personal, password):
    again = login(APIClient(), "alice", password, **bearer(personal["token"]))

    assert again.status_code == 200
    assert again.json()["sid"] != personal["id"]  # a login of its own, not the token's
    assert me(personal["token"]) == 200
