"""The single-use passwordless login link (``cocart_jwt:login-link``).

GET confirms without using it; the CSRF-protected POST uses it exactly once (also under a
race), starts a Django session and redirects to a same-host URL without the token. Expired,
used, tampered or revoked links get a 400/410 page; attempts are rate limited; the link
token is no Bearer or refresh token and never reaches a log.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import user_logged_in
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import Client
from django.test.utils import override_script_prefix
from django.urls import include, path, reverse

from cocart_jwt import login_links
from cocart_jwt.models import LoginLink, RevokeReason, Token
from cocart_jwt.utils import now
from tests.factories import bearer, refresh

pytestmark = pytest.mark.django_db

LINK = reverse("cocart_jwt:login-link")
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def new_link(user: Any, **issue_kwargs: Any) -> tuple[Token, str]:
    session = Token.objects.issue(user, refreshable=False, **issue_kwargs).session
    return session, login_links.issue(session).token


def tamper(token: str) -> str:
    """The same token with its last character changed."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def get(client: Client, token: Any, **params: str) -> Any:
    query = {"token": token, **params} if token is not None else params
    return client.get(f"{LINK}?{urlencode(query)}")


def post(client: Client, token: Any, **data: str) -> Any:
    return client.post(LINK, {"token": token, **data} if token is not None else data)


def signed_in_user_id(client: Client) -> str | None:
    return client.session.get("_auth_user_id")


# -- the happy path ---------------------------------------------------------------------


def test_get_shows_a_confirm_page_and_does_not_use_the_link(client, user):
    _, token = new_link(user)

    for _ in range(3):  # a link preview, a mail scanner, the person
        response = get(client, token)
        assert response.status_code == 200

    page = response.content.decode()
    assert "Sign in as alice" in page
    assert 'method="post"' in page and f'value="{token}"' in page
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "same-origin"
    assert LoginLink.objects.get().used_at is None
    assert signed_in_user_id(client) is None


def test_post_signs_in_once_and_redirects_without_the_token(client, user, settings):
    settings.LOGIN_REDIRECT_URL = "/welcome/"
    session, token = new_link(user)

    response = post(client, token)

    assert response.status_code == 302
    assert response["Location"] == "/welcome/"
    assert "token" not in response["Location"]
    assert signed_in_user_id(client) == str(user.pk)
    assert LoginLink.objects.get().used_at is not None
    entry = LogEntry.objects.get(object_id=session.pk, action_flag=CHANGE)
    assert entry.user == user and "login link" in entry.get_change_message()


def test_the_confirm_form_works_with_csrf_enforced(user):
    client = Client(enforce_csrf_checks=True)
    _, token = new_link(user)

    without = client.post(LINK, {"token": token})
    assert without.status_code == 403
    assert LoginLink.objects.get().used_at is None

    page = get(client, token).content.decode()
    csrf = CSRF_INPUT.search(page).group(1)
    response = client.post(LINK, {"token": token, "csrfmiddlewaretoken": csrf})

    assert response.status_code == 302
    assert signed_in_user_id(client) == str(user.pk)


def test_the_confirming_post_runs_behind_sensitive_post_parameters(client, user):
    _, token = new_link(user)
    seen: list[Any] = []

    def capture(sender: Any, request: Any, **kwargs: Any) -> None:
        seen.append(request)

    user_logged_in.connect(capture)
    try:
        post(client, token)
    finally:
        user_logged_in.disconnect(capture)

    assert seen and list(seen[0].sensitive_post_parameters) == ["token"]


def test_link_lives_login_link_lifetime(client, user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "LOGIN_LINK_LIFETIME": timedelta(minutes=3)}
    before = now()
    _, token = new_link(user)

    link = LoginLink.objects.get()
    assert timedelta(minutes=3) <= link.expires_at - before < timedelta(minutes=3, seconds=5)


def test_default_lifetime_is_ten_minutes(client, user):
    _, token = new_link(user)

    with time_machine.travel(now() + timedelta(minutes=9, seconds=50), tick=False):
        assert get(client, token).status_code == 200
    with time_machine.travel(now() + timedelta(minutes=10, seconds=1), tick=False):
        assert get(client, token).status_code == 410
        response = post(client, token)
        assert response.status_code == 410
        assert "expired" in response.content.decode()
    assert signed_in_user_id(client) is None
    assert LoginLink.objects.get().used_at is None


def test_a_link_made_at_a_given_time_is_dated_then(user):
    session = Token.objects.issue(user, refreshable=False).session
    at = now() - timedelta(minutes=1)

    login_links.issue(session, at=at)

    link = LoginLink.objects.get()
    assert link.created_at == at
    assert link.expires_at == at + timedelta(minutes=10)


def test_a_link_records_who_made_it_when_someone_signed_in_did(user, other_user):
    session = Token.objects.issue(user, refreshable=False).session

    login_links.issue(session, created_by=other_user)
    login_links.issue(session, created_by=AnonymousUser())  # a view nobody signed in to
    login_links.issue(session)

    creators = LoginLink.objects.order_by("pk").values_list("created_by", flat=True)
    assert list(creators) == [other_user.pk, None, None]


def test_a_link_never_outlives_its_session(client, user):
    session, token = new_link(user, lifetime=timedelta(minutes=2))

    # Its own expiry, not only its session's: the page says the link expired.
    assert LoginLink.objects.get().expires_at == session.expires_at
    with time_machine.travel(session.expires_at, tick=False):
        response = post(client, token)

    assert response.status_code == 410
    assert "This login link has expired" in response.content.decode()
    assert signed_in_user_id(client) is None


# -- single use -------------------------------------------------------------------------


def test_a_used_link_is_gone(client, user):
    _, token = new_link(user)
    assert post(client, token).status_code == 302

    other = Client()
    again = post(other, token)
    assert again.status_code == 410
    assert "already been used" in again.content.decode()
    assert get(other, token).status_code == 410
    assert signed_in_user_id(other) is None


def test_using_a_link_leaves_every_other_link_unused(client, user, other_user):
    _, alices = new_link(user)
    _, bobs = new_link(other_user)

    assert post(client, alices).status_code == 302

    assert LoginLink.objects.get(session__user=other_user).used_at is None
    bobs_browser = Client()
    assert post(bobs_browser, bobs).status_code == 302
    assert signed_in_user_id(bobs_browser) == str(other_user.pk)


def test_consume_returns_the_link_marked_used_with_its_session_and_user(user):
    session, token = new_link(user)

    link = login_links.consume(token)

    assert link.used_at is not None
    assert link.used_at == LoginLink.objects.get().used_at
    assert link.session == session and link.session.user == user


def test_a_link_is_read_with_its_session_and_user_in_one_query(user, django_assert_num_queries):
    _, token = new_link(user)

    with django_assert_num_queries(1):
        link = login_links.inspect(token)
        assert link.session.user.get_username() == "alice"


def run_together(count: int, target: Any) -> list[Any]:
    """Start ``count`` threads at once (each with its own database connection)."""
    barrier = threading.Barrier(count)
    results: list[Any] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            result = target()
        finally:
            connection.close()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_uses_of_one_link_have_exactly_one_winner(user):
    for _ in range(3):
        _, token = new_link(user)

        def use(token: str = token) -> str:
            try:
                login_links.consume(token)
            except login_links.LinkRefused as exc:
                return str(exc.status)
            return "won"

        assert sorted(run_together(8, use)) == ["410"] * 7 + ["won"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_posts_sign_in_exactly_once(user):
    _, token = new_link(user)

    statuses = run_together(8, lambda: post(Client(), token).status_code)

    assert sorted(statuses) == [302] + [410] * 7
    assert LoginLink.objects.get().used_at is not None


def test_consume_has_one_winner_when_the_row_was_taken_meanwhile(user):
    """The conditional UPDATE decides, not the earlier read: a request that read the link
    unused but lost the UPDATE is refused."""
    _, token = new_link(user)
    original_find = login_links.find

    def find_then_lose_the_race(raw: Any) -> LoginLink:
        link = original_find(raw)
        LoginLink.objects.filter(pk=link.pk).update(used_at=now())  # another request won
        return link

    login_links.find = find_then_lose_the_race  # type: ignore[assignment]
    try:
        with pytest.raises(login_links.LinkRefused) as refused:
            login_links.consume(token)
    finally:
        login_links.find = original_find  # type: ignore[assignment]

    assert refused.value.status == 410


def test_a_loser_that_still_reads_the_link_unused_is_told_it_was_used(
    client, user, monkeypatch, caplog
):
    """Under REPEATABLE READ (MySQL's default) in a request's transaction, the request that
    lost the UPDATE reads the row from its snapshot, still unused: the lost UPDATE alone
    refuses it."""
    _, token = new_link(user)
    original_find = login_links.find

    def find_then_lose_the_race(raw: Any) -> LoginLink:
        link = original_find(raw)
        LoginLink.objects.filter(pk=link.pk).update(used_at=now())  # another request won
        return link

    monkeypatch.setattr(login_links, "find", find_then_lose_the_race)
    # The snapshot, taken before the winner committed: a re-read shows nothing new.
    monkeypatch.setattr(LoginLink, "refresh_from_db", lambda self, **kwargs: None)
    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        response = post(client, token)

    assert response.status_code == 410
    assert f"<p>{USED}</p>" in response.content.decode()
    assert refusal_reasons(caplog) == ["Login link refused: used"]
    assert signed_in_user_id(client) is None


# -- refused links ----------------------------------------------------------------------


def test_a_tampered_link_is_a_400(client, user):
    _, token = new_link(user)
    tampered = tamper(token)

    assert get(client, tampered).status_code == 400
    response = post(client, tampered)

    assert response.status_code == 400
    assert "not valid" in response.content.decode()
    assert LoginLink.objects.get().used_at is None
    assert signed_in_user_id(client) is None


@pytest.mark.parametrize(
    "token", [None, "", "short", "x" * 44, "a" * 42 + "!", "é" * 43, "a" * 10000, "../" * 15]
)
def test_malformed_links_are_a_400(client, user, token):
    new_link(user)

    assert get(client, token).status_code == 400
    assert post(client, token).status_code == 400
    assert signed_in_user_id(client) is None


def test_a_link_of_a_revoked_session_is_gone(client, user):
    session, token = new_link(user)
    session.revoke(RevokeReason.ADMIN)

    assert get(client, token).status_code == 410
    response = post(client, token)

    assert response.status_code == 410
    assert "session of this login link has ended" in response.content.decode()
    assert signed_in_user_id(client) is None


def test_a_link_of_an_inactive_user_is_gone(client, user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "REVOKE_ON": []}
    _, token = new_link(user)
    user.is_active = False
    user.save()

    assert get(client, token).status_code == 410
    assert post(client, token).status_code == 410
    assert signed_in_user_id(client) is None


def test_a_link_whose_session_was_deleted_is_a_400(client, user):
    session, token = new_link(user)
    session.delete()

    assert post(client, token).status_code == 400


# -- what a refusal says: the page to the person, the reason to the log -----------------

MALFORMED = "This login link is not valid. Check that it was copied whole, or ask for a new one."
USED = "This login link has already been used. Ask for a new one."
EXPIRED = "This login link has expired. Ask for a new one."
SESSION_ENDED = "The session of this login link has ended. Ask for a new one."
INACTIVE = "This account cannot sign in."
OUTDATED = "This login link can no longer be used. Ask for a new one."


def malformed_link(user: Any, settings: Any) -> str:
    new_link(user)
    return "short"


def unknown_link(user: Any, settings: Any) -> str:
    return tamper(new_link(user)[1])


def used_link(user: Any, settings: Any) -> str:
    _, token = new_link(user)
    assert post(Client(), token).status_code == 302
    return token


def expired_link(user: Any, settings: Any) -> str:
    _, token = new_link(user)
    LoginLink.objects.update(expires_at=now() - timedelta(seconds=1))
    return token


def link_of_a_revoked_session(user: Any, settings: Any) -> str:
    session, token = new_link(user)
    session.revoke(RevokeReason.ADMIN)
    return token


def link_of_an_inactive_user(user: Any, settings: Any) -> str:
    settings.COCART_JWT = {**settings.COCART_JWT, "REVOKE_ON": []}
    _, token = new_link(user)
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    return token


def link_without_a_fingerprint(user: Any, settings: Any) -> str:
    _, token = new_link(user)
    LoginLink.objects.update(password_fingerprint="")
    return token


def link_older_than_the_password(user: Any, settings: Any) -> str:
    _, token = new_link(user)
    type(user).objects.filter(pk=user.pk).update(password=make_password("x"))
    return token


REFUSALS = [
    (malformed_link, 400, MALFORMED, "malformed token"),
    (unknown_link, 400, MALFORMED, "unknown token"),
    (used_link, 410, USED, "used"),
    (expired_link, 410, EXPIRED, "expired"),
    (link_of_a_revoked_session, 410, SESSION_ENDED, "session revoked"),
    (link_of_an_inactive_user, 410, INACTIVE, "user inactive"),
    (
        link_without_a_fingerprint,
        410,
        OUTDATED,
        "no password fingerprint (made before they were kept)",
    ),
    (link_older_than_the_password, 410, OUTDATED, "password changed since the link was made"),
]


def refusal_reasons(caplog: Any) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "cocart_jwt" and record.getMessage().startswith("Login link refused")
    ]


@pytest.mark.parametrize(
    ("make_link", "status", "message", "reason"),
    REFUSALS,
    ids=[make_link.__name__ for make_link, *_ in REFUSALS],
)
def test_each_refusal_shows_its_message_and_logs_its_reason(
    client, user, settings, caplog, make_link, status, message, reason
):
    token = make_link(user, settings)

    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        shown, posted = get(client, token), post(client, token)

    for response in (shown, posted):
        assert response.status_code == status
        assert f"<p>{message}</p>" in response.content.decode()
    assert refusal_reasons(caplog) == [f"Login link refused: {reason}"] * 2
    assert signed_in_user_id(client) is None


def test_a_refusal_is_an_exception_whose_text_is_its_reason(user):
    """What a traceback or an ``except ... as exc: log(exc)`` shows: the reason, not the
    token."""
    _, token = new_link(user)
    login_links.consume(token)

    with pytest.raises(login_links.LinkRefused) as refused:
        login_links.consume(token)

    assert str(refused.value) == "used"
    assert (refused.value.status, refused.value.reason) == (410, "used")


def test_a_link_whose_session_is_deleted_while_it_is_used_is_a_400(
    client, user, monkeypatch, caplog
):
    """Read before its session (and with it the link) is deleted, used after: unknown."""
    session, token = new_link(user)
    original_find = login_links.find

    def find_then_lose_the_session(raw: Any) -> LoginLink:
        link = original_find(raw)
        Token.objects.filter(pk=session.pk).delete()
        return link

    monkeypatch.setattr(login_links, "find", find_then_lose_the_session)
    with caplog.at_level(logging.INFO, logger="cocart_jwt"):
        response = post(client, token)

    assert response.status_code == 400
    assert f"<p>{MALFORMED}</p>" in response.content.decode()
    assert refusal_reasons(caplog) == ["Login link refused: unknown token"]
    assert signed_in_user_id(client) is None


@pytest.mark.parametrize(
    ("offset", "status"),
    [(timedelta(seconds=-1), 200), (timedelta(0), 410), (timedelta(seconds=1), 410)],
    ids=["a second before", "at", "a second after"],
)
def test_a_link_is_refused_from_the_instant_its_session_expires(
    client, api_client, user, settings, offset, status
):
    """A refresh under a shorter REFRESH_TOKEN_LIFETIME brings the session's end before the
    link's own: the session's end counts."""
    settings.COCART_JWT = {**settings.COCART_JWT, "REFRESH_TOKEN_LIFETIME": timedelta(minutes=5)}
    issued = Token.objects.issue(user, lifetime=timedelta(hours=1))
    token = login_links.issue(issued.session).token
    assert refresh(api_client, issued.refresh_token).status_code == 200
    session_end = Token.objects.get(pk=issued.session.pk).expires_at
    assert session_end < LoginLink.objects.get().expires_at

    with time_machine.travel(session_end + offset, tick=False):
        response = get(client, token)

    assert response.status_code == status
    if status == 410:
        assert f"<p>{SESSION_ENDED}</p>" in response.content.decode()


# -- redirects --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/path",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https:evil.example",
        "javascript:alert(1)",
        " https://evil.example",
        "http://testserver.evil.example/",
        "http://testserver@evil.example/",
        "http://evil.example\\@testserver/",
    ],
)
def test_next_cannot_redirect_to_another_site(client, user, settings, target):
    settings.LOGIN_REDIRECT_URL = "/home/"
    _, token = new_link(user)

    response = post(client, token, next=target)

    assert response.status_code == 302
    assert response["Location"] == "/home/"


@pytest.mark.parametrize("target", ["/orders/?page=2", "http://testserver/cart/"])
def test_next_on_the_same_site_is_followed(client, user, target):
    _, token = new_link(user)

    response = post(client, token, next=target)

    assert response["Location"] == target


def test_next_from_the_link_is_carried_by_the_confirm_page(client, user):
    _, token = new_link(user)

    page = get(client, token, next="/orders/").content.decode()

    assert 'name="next" value="/orders/"' in page


# -- the link token is nothing else -----------------------------------------------------


def test_the_link_token_is_not_a_bearer_or_refresh_token(api_client, user):
    _, token = new_link(user)

    assert api_client.get("/api/me/", **bearer(token)).status_code == 401
    assert refresh(api_client, token).status_code == 401
    assert LoginLink.objects.get().used_at is None


def test_the_link_token_never_reaches_a_log(client, user, caplog):
    caplog.set_level(logging.DEBUG)
    _, token = new_link(user)
    session, expired = new_link(user)
    LoginLink.objects.filter(session=session).update(expires_at=now() - timedelta(seconds=1))

    get(client, token)
    post(client, token)
    post(client, token)  # used
    post(client, expired)
    post(client, tamper(token))  # unknown

    assert any("Login link" in record.getMessage() for record in caplog.records)
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + str(getattr(record, "request", ""))
        assert token[:-1] not in text and expired[:-1] not in text


@pytest.mark.rate_limits
def test_link_attempts_are_rate_limited_per_ip(client, user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "RATE_LIMITS": {"login_link": "2/min"}}
    _, token = new_link(user)

    assert get(client, token).status_code == 200
    assert post(client, tamper(token)).status_code == 400
    response = post(client, token)

    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert response["X-RateLimit-Limit"] == "2"
    assert "Too many" in response.content.decode()
    assert LoginLink.objects.get().used_at is None
    assert signed_in_user_id(client) is None


# -- where a sign-in lands without a next ---------------------------------------------------

# This module is also the URLconf of one test below: cocart_jwt.urls, no admin.
urlpatterns = [path("api/auth/", include("cocart_jwt.urls"))]


def test_without_login_redirect_url_staff_land_on_the_admin(client, user):
    user.is_staff = True
    user.save()
    _, token = new_link(user)

    response = post(client, token)

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")
    assert client.get(response["Location"]).status_code == 200  # signed in, not a 404


def test_without_login_redirect_url_others_land_on_the_site_root(client, user):
    _, token = new_link(user)

    response = post(client, token)

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_staff_land_on_the_site_root_when_the_admin_is_not_routed(client, user, settings):
    settings.ROOT_URLCONF = "tests.test_login_link"
    user.is_staff = True
    user.save()
    _, token = new_link(user)

    response = post(client, token)

    assert response["Location"] == "/"


def test_under_a_script_prefix_the_root_is_the_sites_own(client, user):
    _, token = new_link(user)

    with override_script_prefix("/shop/"):  # what a WSGI server mounting the site at /shop sets
        response = post(client, token)

    assert response["Location"] == "/shop/"


@pytest.mark.parametrize("redirect_url", ["/accounts/profile/", "/welcome/", "admin:index"])
def test_a_login_redirect_url_the_site_set_wins_even_for_staff(
    client, user, settings, redirect_url
):
    settings.LOGIN_REDIRECT_URL = redirect_url  # set by the site, even to Django's default
    user.is_staff = True
    user.save()
    _, token = new_link(user)

    response = post(client, token)

    expected = reverse(redirect_url) if ":" in redirect_url else redirect_url
    assert response["Location"] == expected


def test_next_still_wins_over_the_default(client, user):
    user.is_staff = True
    user.save()
    _, token = new_link(user)

    assert post(client, token, next="/orders/")["Location"] == "/orders/"
