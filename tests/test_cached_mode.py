"""Cached mode (SESSION_CACHE_TTL > 0): no SQL on a warm entry, and every revocation holds."""

from __future__ import annotations

import logging
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIRequestFactory

from cocart_jwt.authentication import JWTAuthentication
from cocart_jwt.models import RevokeReason, Token
from cocart_jwt.store import cached
from cocart_jwt.store.live import fill, restore
from cocart_jwt.utils import now
from tests.factories import bearer, login, refresh

pytestmark = pytest.mark.django_db

ME = "/api/me/"


@pytest.fixture(autouse=True)
def cached_mode(settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300}
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def tokens(api_client, user, password):
    return login(api_client, "alice", password).json()


def warm(api_client, tokens):
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    assert isinstance(caches["default"].get(cached.session_key(tokens["sid"])), tuple)


def status_and_queries(api_client, access_token):
    with CaptureQueriesContext(connection) as queries:
        status = api_client.get(ME, **bearer(access_token)).status_code
    return status, len(queries)


def test_a_warm_entry_costs_no_sql_query(api_client, tokens):
    warm(api_client, tokens)
    assert status_and_queries(api_client, tokens["access_token"]) == (200, 0)


def test_a_cold_entry_costs_the_strict_query_once(api_client, tokens):
    status, queries = status_and_queries(api_client, tokens["access_token"])
    assert status == 200
    assert queries == 2  # the session + user query, and the first last_used_at write
    assert status_and_queries(api_client, tokens["access_token"]) == (200, 0)


def test_the_cache_entry_holds_no_password_hash(api_client, tokens, user):
    warm(api_client, tokens)
    entry = caches["default"].get(cached.session_key(tokens["sid"]))
    assert user.password not in repr(entry)


@pytest.mark.parametrize(
    "revoke",
    [
        pytest.param(
            lambda c, t, u: c.post(reverse("cocart_jwt:logout"), **bearer(t)), id="logout"
        ),
        pytest.param(
            lambda c, t, u: c.post(reverse("cocart_jwt:logout-all"), **bearer(t)), id="logout-all"
        ),
        pytest.param(lambda c, t, u: Token.objects.revoke_all(u, RevokeReason.ADMIN), id="admin"),
        pytest.param(lambda c, t, u: Token.objects.filter(user=u).delete(), id="row-deleted"),
        pytest.param(lambda c, t, u: u.delete(), id="user-deleted"),
    ],
)
def test_a_revocation_holds_on_the_next_request_without_sql(api_client, tokens, user, revoke):
    warm(api_client, tokens)

    revoke(api_client, tokens["access_token"], user)

    assert status_and_queries(api_client, tokens["access_token"]) == (401, 0)


def test_deleting_a_session_through_the_api_holds(api_client, tokens, password):
    other = login(api_client, "alice", password).json()
    warm(api_client, tokens)
    warm(api_client, other)

    url = reverse("cocart_jwt:session", args=[tokens["sid"]])
    api_client.delete(url, **bearer(other["access_token"]))

    assert status_and_queries(api_client, tokens["access_token"]) == (401, 0)


def test_refresh_token_reuse_holds_for_the_winners_access_token(api_client, tokens):
    rotated = refresh(api_client, tokens["refresh_token"]).json()
    warm(api_client, rotated)

    assert refresh(api_client, tokens["refresh_token"]).status_code == 401

    assert status_and_queries(api_client, rotated["access_token"]) == (401, 0)


def test_cap_eviction_holds(api_client, tokens, password, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "MAX_TOKENS_PER_USER": 1}
    warm(api_client, tokens)

    login(api_client, "alice", password)

    assert status_and_queries(api_client, tokens["access_token"]) == (401, 0)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda u: u.set_password("a whole new password"), id="password"),
        pytest.param(lambda u: setattr(u, "email", "alice@new.example"), id="email"),
        pytest.param(lambda u: setattr(u, "is_active", False), id="deactivation"),
    ],
)
def test_user_changes_through_save_hold(api_client, tokens, user, change):
    warm(api_client, tokens)

    change(user)
    user.save()

    assert status_and_queries(api_client, tokens["access_token"]) == (401, 0)


def test_deactivation_outside_revoke_on_still_holds(api_client, tokens, user, settings):
    settings.COCART_JWT = {**settings.COCART_JWT, "REVOKE_ON": []}
    warm(api_client, tokens)

    user.is_active = False
    user.save()

    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401


def test_a_fill_that_read_the_database_before_a_revocation_cannot_resurrect_it(api_client, tokens):
    stale = Token.objects.select_related("user").get(pk=tokens["sid"])
    Token.objects.get(pk=tokens["sid"]).revoke(RevokeReason.ADMIN)

    fill(stale, now())

    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401


def test_a_raw_update_that_bypasses_the_app_holds_within_the_ttl(api_client, tokens):
    warm(api_client, tokens)
    Token.objects.filter(pk=tokens["sid"]).update(revoked_at=now())

    # Documented: a change that bypasses the app is seen when the entry expires.
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
    caches["default"].delete(cached.session_key(tokens["sid"]))
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401


def keep_entry(sid):
    """Keep a session's entry past the expiry it was given, as a cache whose clock runs behind
    the web server's would (entries live min(TTL, the session's time left), by the cache's
    clock: time_machine moves the local-memory cache's clock, not Redis's)."""
    cache = caches["default"]
    entry = cache.get(cached.session_key(sid))
    assert isinstance(entry, tuple)
    cache.set(cached.session_key(sid), entry, 3600)


def test_a_warm_snapshot_of_a_session_is_refused_from_exactly_its_expiry(
    api_client, user, password
):
    with time_machine.travel("2026-01-01 00:00:00+00:00", tick=False) as clock:
        tokens = login(api_client, "alice", password).json()
        # The session ends 5 minutes in, before its 15-minute access token: a refusal below
        # is the snapshot's expiry, not the token's.
        ends = now() + timedelta(minutes=5)
        Token.objects.filter(pk=tokens["sid"]).update(expires_at=ends)
        warm(api_client, tokens)
        keep_entry(tokens["sid"])
        clock.shift(timedelta(minutes=5) - timedelta(microseconds=1))
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200
        clock.shift(timedelta(microseconds=1))  # now == expires_at

        assert status_and_queries(api_client, tokens["access_token"]) == (401, 0)


def test_a_snapshot_whose_user_is_inactive_is_refused(api_client, tokens, user):
    """Whatever wrote it (a fill racing a deactivation, another release sharing the cache),
    a snapshot that says the user is inactive is never served."""
    warm(api_client, tokens)
    session = Token.objects.select_related("user").get(pk=tokens["sid"])
    session.user.is_active = False
    caches["default"].delete(cached.session_key(tokens["sid"]))
    fill(session, now())
    assert restore(caches["default"].get(cached.session_key(tokens["sid"])))

    assert status_and_queries(api_client, tokens["access_token"]) == (401, 0)
    # Only the snapshot said so: the user is active in the database.
    assert type(user).objects.get(pk=user.pk).is_active


# Refused by the database behind the app's back (no signal, no tombstone): the refusal is
# remembered, so a client retrying a refused token costs no more queries.
REFUSED_BEHIND_THE_APPS_BACK = {
    "revoked": lambda sid, user: Token.objects.filter(pk=sid).update(revoked_at=now()),
    "expired": lambda sid, user: Token.objects.filter(pk=sid).update(
        expires_at=now() - timedelta(seconds=1)
    ),
    "user-inactive": lambda sid, user: (
        type(user).objects.filter(pk=user.pk).update(is_active=False)
    ),
}


@pytest.fixture(params=[pytest.param("default", marks=pytest.mark.redis, id="redis"), "locmem"])
def cache_alias(request, settings):
    """The session cache on Redis (the default cache when Redis answers), and local memory."""
    settings.COCART_JWT = {**settings.COCART_JWT, "CACHE": request.param}
    caches[request.param].clear()
    yield request.param
    caches[request.param].clear()


@pytest.mark.parametrize("refusal", list(REFUSED_BEHIND_THE_APPS_BACK))
def test_a_session_the_database_refuses_is_remembered_without_a_second_query(
    api_client, tokens, user, cache_alias, refusal
):
    REFUSED_BEHIND_THE_APPS_BACK[refusal](tokens["sid"], user)

    assert status_and_queries(api_client, tokens["access_token"]) == (401, 1)

    entry = caches[cache_alias].get(cached.session_key(tokens["sid"]))
    assert entry == cached.REVOKED
    assert status_and_queries(api_client, tokens["access_token"]) == (401, 0)


def authenticate(access_token):
    request = APIRequestFactory().get(ME, **bearer(access_token))
    from rest_framework.request import Request

    return JWTAuthentication().authenticate(Request(request))


def test_the_user_from_the_cache_behaves_like_the_real_one(api_client, tokens, user):
    user.user_permissions.add(Permission.objects.get(codename="view_token"))
    warm(api_client, tokens)

    cached_user, session = authenticate(tokens["access_token"])

    assert (cached_user.pk, cached_user.get_username()) == (user.pk, "alice")
    assert cached_user.is_authenticated and not cached_user.is_staff
    assert cached_user.email == "alice@example.com"
    assert cached_user.has_perm("cocart_jwt.view_token")
    assert not cached_user.has_perm("cocart_jwt.delete_token")
    assert session.pk == tokens["sid"]


def test_saving_the_cached_user_keeps_its_password(api_client, tokens, user, password):
    warm(api_client, tokens)
    cached_user, _session = authenticate(tokens["access_token"])

    cached_user.first_name = "Alice"
    cached_user.save()

    user.refresh_from_db()
    assert user.first_name == "Alice"
    assert user.check_password(password)


def test_a_user_change_is_seen_on_the_next_request(api_client, tokens, user):
    warm(api_client, tokens)

    user.is_staff = True
    user.save()

    cached_user, _session = authenticate(tokens["access_token"])
    assert cached_user.is_staff is True


def test_last_used_is_written_once_per_touch_interval(api_client, tokens):
    with time_machine.travel(now(), tick=False) as clock:
        warm(api_client, tokens)
        first_use = Token.objects.get(pk=tokens["sid"]).last_used_at
        for _ in range(5):
            assert status_and_queries(api_client, tokens["access_token"]) == (200, 0)
        # The touch key lives in the cache's real time; drop it as its expiry would.
        clock.shift(timedelta(seconds=61))
        caches["default"].delete(cached.touch_key(tokens["sid"]))
        assert status_and_queries(api_client, tokens["access_token"]) == (200, 1)
        assert Token.objects.get(pk=tokens["sid"]).last_used_at > first_use
        assert status_and_queries(api_client, tokens["access_token"]) == (200, 0)


# -- tombstones: every matched session, and only real failures logged -------------------


def cocart_jwt_errors(caplog):
    return [r for r in caplog.records if r.name == "cocart_jwt" and r.levelno >= logging.ERROR]


@pytest.mark.redis
def test_a_revocation_logs_no_error(api_client, tokens, caplog):
    warm(api_client, tokens)

    with caplog.at_level(logging.DEBUG, logger="cocart_jwt"):
        api_client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"]))

    assert status_and_queries(api_client, tokens["access_token"]) == (401, 0)
    assert cocart_jwt_errors(caplog) == []


# What set_many returns when every key was written: django-redis None, Django's RedisCache and
# local memory [], a client that answers per key [True, ...].
WRITTEN = {"none": lambda data: None, "empty": lambda data: [], "per-key": lambda data: [True]}
# ... and when the key was not written: Django's contract (memcached) names it, a client that
# answers per key says False, one that names keys we cannot match still failed.
UNWRITTEN = {
    "named": lambda data: list(data),
    "per-key": lambda data: [False],
    "unmatched": lambda data: ["another:key"],
}


def set_many_answering(monkeypatch, answer):
    """The real set_many (the tombstone is written), answering ``answer`` as a backend would."""
    cache = caches["default"]
    set_many = cache.set_many

    def answering(data, *args, **kwargs):
        set_many(data, *args, **kwargs)
        return answer(data)

    monkeypatch.setattr(cache, "set_many", answering)


@pytest.mark.parametrize("answer", list(WRITTEN))
def test_a_tombstone_the_backend_reports_written_logs_nothing(
    api_client, tokens, user, caplog, monkeypatch, answer
):
    warm(api_client, tokens)
    set_many_answering(monkeypatch, WRITTEN[answer])

    with caplog.at_level(logging.DEBUG, logger="cocart_jwt"):
        Token.objects.revoke_all(user, RevokeReason.ADMIN)

    assert caches["default"].get(cached.session_key(tokens["sid"])) == cached.REVOKED
    assert status_and_queries(api_client, tokens["access_token"]) == (401, 0)
    assert [
        r for r in caplog.records if r.name == "cocart_jwt" and r.levelno >= logging.WARNING
    ] == []


@pytest.mark.parametrize("answer", list(UNWRITTEN))
def test_a_tombstone_the_backend_reports_unwritten_is_logged_once_and_its_entry_dropped(
    api_client, tokens, user, caplog, monkeypatch, answer
):
    warm(api_client, tokens)
    cache = caches["default"]
    monkeypatch.setattr(cache, "set_many", lambda data, *args, **kwargs: UNWRITTEN[answer](data))

    with caplog.at_level(logging.ERROR, logger="cocart_jwt"):
        Token.objects.revoke_all(user, RevokeReason.ADMIN)

    # The live snapshot is gone, not served: the database answers, and says revoked.
    assert status_and_queries(api_client, tokens["access_token"]) == (401, 1)
    messages = [r.getMessage() for r in cocart_jwt_errors(caplog)]
    assert messages == [
        "Could not write 1 of 1 revoked marker(s) to the session cache; deleted those entries "
        "instead"
    ]


def test_a_tombstone_that_cannot_be_written_nor_its_entry_deleted_says_the_entry_serves_on(
    api_client, tokens, user, caplog, monkeypatch
):
    """The operator's log line must not claim a clean-up that failed."""
    warm(api_client, tokens)
    cache = caches["default"]
    monkeypatch.setattr(cache, "set_many", lambda data, *args, **kwargs: list(data))

    def refuse(*args, **kwargs):
        raise ConnectionError("the cache went away")

    monkeypatch.setattr(cache, "delete_many", refuse)

    with caplog.at_level(logging.ERROR, logger="cocart_jwt"):
        Token.objects.revoke_all(user, RevokeReason.ADMIN)

    assert [r.getMessage() for r in cocart_jwt_errors(caplog)] == [
        "Could not write 1 of 1 revoked marker(s) to the session cache; they serve until they "
        "expire"
    ]


def test_of_two_tombstones_only_the_one_the_backend_names_as_unwritten_is_dropped(
    api_client, tokens, user, password, caplog, monkeypatch
):
    """A backend that names the keys it could not write (Django's contract): the other
    tombstone stands (the next request costs no query), the named entry is deleted."""
    other = login(api_client, "alice", password).json()
    warm(api_client, tokens)
    warm(api_client, other)
    failing = cached.session_key(other["sid"])
    set_many_answering(monkeypatch, lambda data: [failing])

    with caplog.at_level(logging.ERROR, logger="cocart_jwt"):
        Token.objects.revoke_all(user, RevokeReason.ADMIN)

    assert [r.getMessage() for r in cocart_jwt_errors(caplog)] == [
        "Could not write 1 of 2 revoked marker(s) to the session cache; deleted those entries "
        "instead"
    ]
    assert caches["default"].get(cached.session_key(tokens["sid"])) == cached.REVOKED
    assert caches["default"].get(failing) is None
    assert status_and_queries(api_client, tokens["access_token"]) == (401, 0)
    assert status_and_queries(api_client, other["access_token"]) == (401, 1)


def refuse_writes(monkeypatch):
    """A cache that answers reads but refuses writes, as Redis at maxmemory does."""

    def refuse(*args, **kwargs):
        raise ConnectionError("OOM command not allowed when used memory > 'maxmemory'")

    for name in ("add", "set", "set_many"):
        monkeypatch.setattr(caches["default"], name, refuse)
    for log in (cached.reads, cached.writes, cached.markers):
        monkeypatch.setattr(log, "failing", False)


def test_a_cache_that_refuses_writes_is_logged_once_and_requests_served_from_the_database(
    api_client, tokens, caplog, monkeypatch
):
    """Reads work, writes fail: one line for the outage (not one per request, nor a "back"
    after every read), the requests are answered from the database, and last_used_at is
    still written."""
    refuse_writes(monkeypatch)

    with caplog.at_level(logging.WARNING, logger="cocart_jwt"):
        statuses = [status_and_queries(api_client, tokens["access_token"]) for _ in range(3)]

    assert statuses == [(200, 2), (200, 1), (200, 1)]  # the first one also writes last_used_at
    assert [r.getMessage() for r in caplog.records if r.name == "cocart_jwt"] == [
        "Session cache (writes) unavailable (ConnectionError); sessions are answered by the "
        "database and not cached until it is back"
    ]
    assert Token.objects.get(pk=tokens["sid"]).last_used_at is not None
    assert caches["default"].get(cached.session_key(tokens["sid"])) is None


def test_a_revocation_while_the_cache_refuses_writes_drops_the_live_entry(
    api_client, tokens, user, caplog, monkeypatch
):
    """A warm snapshot would serve a revoked session until it expires: the revocation that
    cannot write its tombstone deletes it (Redis at maxmemory still deletes)."""
    warm(api_client, tokens)
    refuse_writes(monkeypatch)

    with caplog.at_level(logging.ERROR, logger="cocart_jwt"):
        Token.objects.revoke_all(user, RevokeReason.ADMIN)
        assert status_and_queries(api_client, tokens["access_token"]) == (401, 1)

    assert [r.getMessage() for r in cocart_jwt_errors(caplog)] == [
        "Session cache (tombstones) unavailable (ConnectionError); revocations and user changes "
        "meanwhile delete the entries they name instead (their next request asks the "
        "database)",
        "Session cache (writes) unavailable (ConnectionError); sessions are answered by the "
        "database and not cached until it is back",
    ]


def logout_all_of_another_session(api_client, other, admin_client):
    response = api_client.post(reverse("cocart_jwt:logout-all"), **bearer(other["access_token"]))
    assert response.status_code == 204


def admin_revoke_all_of_users(api_client, other, admin_client):
    data = {"action": "revoke_all_of_users", "_selected_action": [other["sid"]], "post": "yes"}
    assert admin_client.post("/admin/cocart_jwt/token/", data).status_code == 302


def jwt_destroy(api_client, other, admin_client):
    call_command("jwt", "destroy", "alice", "--noinput", stdout=StringIO(), stderr=StringIO())


BULK_REVOCATIONS = [logout_all_of_another_session, admin_revoke_all_of_users, jwt_destroy]


@pytest.mark.redis
@pytest.mark.parametrize(
    "revoke_all", BULK_REVOCATIONS, ids=[revoke.__name__ for revoke in BULK_REVOCATIONS]
)
def test_a_bulk_revocation_tombstones_a_session_revoked_behind_the_apps_back(
    api_client, tokens, password, admin_client, revoke_all
):
    other = login(api_client, "alice", password).json()
    warm(api_client, tokens)
    Token.objects.filter(pk=tokens["sid"]).update(revoked_at=now())
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200  # cached

    revoke_all(api_client, other, admin_client)

    assert status_and_queries(api_client, tokens["access_token"]) == (401, 0)
    assert api_client.get(ME, **bearer(other["access_token"])).status_code == 401


class TestCacheDown:
    @pytest.fixture(autouse=True)
    def cache_down(self, settings, unreachable_cache):
        settings.COCART_JWT = {
            **settings.COCART_JWT,
            "SESSION_CACHE_TTL": 300,
            "CACHE": unreachable_cache,
        }
        for log in (cached.reads, cached.writes, cached.markers):
            log.failing = False

    def test_requests_fall_back_to_the_strict_query(self, api_client, tokens, caplog):
        with caplog.at_level(logging.ERROR, logger="cocart_jwt"):
            statuses = [status_and_queries(api_client, tokens["access_token"]) for _ in range(3)]
        assert statuses[0] == (200, 2)
        assert statuses[1:] == [(200, 1), (200, 1)]
        outages = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
        assert outages == [
            "Session cache unavailable (ConnectionError); using the strict query until it is back"
        ]

    def test_revoked_tokens_are_still_refused(self, api_client, tokens):
        api_client.post(reverse("cocart_jwt:logout"), **bearer(tokens["access_token"]))
        assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 401

    def test_a_tombstone_that_cannot_be_written_is_logged(self, tokens, user, caplog):
        with caplog.at_level(logging.ERROR, logger="cocart_jwt"):
            Token.objects.revoke_all(user, RevokeReason.ADMIN)

        messages = [r.getMessage() for r in cocart_jwt_errors(caplog)]
        assert messages == [
            "Session cache (tombstones) unavailable (ConnectionError); revocations meanwhile "
            "write no tombstone, user changes no stale marker: if it comes back with its old "
            "entries, those can serve until they expire"
        ]

    def test_login_and_refresh_still_work(self, api_client, tokens):
        response = refresh(api_client, tokens["refresh_token"])
        assert response.status_code == 200
        assert api_client.get(ME, **bearer(response.json()["access_token"])).status_code == 200
