"""The session and user a cached snapshot becomes: real instances of their models, built
without ``Model.__init__`` where nothing can tell, through ``from_db`` where something can
(a site's ``pre_init`` / ``post_init`` receivers)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.db import models
from django.db.models.signals import post_init, pre_init
from django.test.utils import isolate_apps
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from cocart_jwt.authentication import JWTAuthentication
from cocart_jwt.models import Token
from cocart_jwt.store import cached
from cocart_jwt.store.instances import plain
from cocart_jwt.store.live import restore
from tests.factories import bearer, login

pytestmark = pytest.mark.django_db

ME = "/api/me/"


@pytest.fixture(autouse=True)
def cached_mode(settings: Any) -> Iterator[None]:
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 300, "CACHE": "locmem"}
    caches["locmem"].clear()
    yield
    caches["locmem"].clear()


@pytest.fixture
def tokens(api_client: Any, user: Any, password: str) -> dict[str, Any]:
    tokens = login(api_client, "alice", password).json()
    assert api_client.get(ME, **bearer(tokens["access_token"])).status_code == 200  # warm
    return tokens


def authenticate(access_token: str) -> tuple[Any, Token]:
    request = Request(APIRequestFactory().get(ME, **bearer(access_token)))
    result = JWTAuthentication().authenticate(request)
    assert result is not None
    return result


def snapshot(tokens: dict[str, Any]) -> Any:
    entry = caches["locmem"].get(cached.session_key(tokens["sid"]))
    assert isinstance(entry, tuple)
    return entry


@pytest.fixture
def instances_made(monkeypatch: pytest.MonkeyPatch) -> list[type]:
    """The classes of the sessions and users ``Model.__init__`` runs for, from here on."""
    made: list[type] = []
    init = models.Model.__init__

    def counted(self: models.Model, *args: Any, **kwargs: Any) -> None:
        if isinstance(self, (Token, get_user_model())):
            made.append(type(self))
        init(self, *args, **kwargs)

    monkeypatch.setattr(models.Model, "__init__", counted)
    return made


def test_the_request_user_and_auth_are_real_instances_and_behave_so(tokens, user):
    user.user_permissions.add(Permission.objects.get(codename="view_token"))

    cached_user, session = authenticate(tokens["access_token"])

    assert type(cached_user) is get_user_model() and type(session) is Token
    assert (cached_user.pk, cached_user, session.pk) == (user.pk, user, tokens["sid"])
    assert session.user is cached_user
    assert cached_user.has_perm("cocart_jwt.view_token")
    assert not cached_user.has_perm("cocart_jwt.delete_token")
    cached_user.first_name = "Alice"
    cached_user.save(update_fields=["first_name"])
    session.description = "laptop"
    session.save(update_fields=["description"])
    user.refresh_from_db()
    assert (user.first_name, Token.objects.get(pk=session.pk).description) == ("Alice", "laptop")
    type(user).objects.filter(pk=user.pk).update(last_name="Liddell")
    cached_user.refresh_from_db()
    assert cached_user.last_name == "Liddell"


def test_a_snapshot_is_built_without_model_init(tokens, instances_made):
    cached_user, session = authenticate(tokens["access_token"])

    assert instances_made == []
    assert (session._state.adding, session._state.db) == (False, "default")
    assert (cached_user._state.adding, cached_user._state.db) == (False, "default")


def test_the_built_instances_are_those_from_db_makes(tokens, instances_made):
    """A receiver of pre_init sends restore() through from_db: both ways give the same rows."""
    entry = snapshot(tokens)
    built = restore(entry)

    def nothing(**kwargs: Any) -> None:
        pass

    pre_init.connect(nothing, sender=Token)
    pre_init.connect(nothing, sender=get_user_model())
    try:
        from_db = restore(entry)
    finally:
        pre_init.disconnect(nothing, sender=Token)
        pre_init.disconnect(nothing, sender=get_user_model())

    assert instances_made == [Token, get_user_model()]  # the second restore() only
    assert built is not None and from_db is not None
    for fast, slow in ((built, from_db), (built.user, from_db.user)):
        assert {k: v for k, v in vars(fast).items() if k != "_state"} == {
            k: v for k, v in vars(slow).items() if k != "_state"
        }
        assert (fast._state.adding, fast._state.db) == (slow._state.adding, slow._state.db)
        assert fast.get_deferred_fields() == slow.get_deferred_fields()
    assert built.user.get_deferred_fields() == {"password"}


@pytest.mark.parametrize("ttl", [300, 0], ids=["cached", "strict"])
def test_a_sites_post_init_receiver_still_sees_the_request_user(settings, tokens, user, ttl):
    """A site that tracks field changes (the value each instance was loaded with) keeps
    working on request.user, in both modes."""
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": ttl}
    loaded: dict[int, str] = {}

    def remember_loaded_email(sender: Any, instance: Any, **kwargs: Any) -> None:
        loaded[id(instance)] = instance.email

    post_init.connect(remember_loaded_email, sender=get_user_model())
    try:
        request_user, _session = authenticate(tokens["access_token"])
    finally:
        post_init.disconnect(remember_loaded_email, sender=get_user_model())

    assert loaded[id(request_user)] == "alice@example.com"


@isolate_apps("cocart_jwt")
def test_models_are_built_directly_only_when_plain() -> None:
    assert plain(Token) and plain(get_user_model())

    class Plain(models.Model):
        name = models.CharField(max_length=10)

        class Meta:
            app_label = "cocart_jwt"

    class Tracked(models.Model):
        name = models.CharField(max_length=10)

        class Meta:
            app_label = "cocart_jwt"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.loaded_name = self.__dict__.get("name")

    class WithFile(models.Model):
        upload = models.FileField()

        class Meta:
            app_label = "cocart_jwt"

    assert plain(Plain)
    assert not plain(Tracked)
    assert not plain(WithFile)  # its field has its own descriptor


def test_the_strict_query_builds_real_instances_without_model_init(
    settings, tokens, user, instances_made
):
    """Strict mode's rows are built the same way: no Model.__init__ when nothing can tell."""
    settings.COCART_JWT = {**settings.COCART_JWT, "SESSION_CACHE_TTL": 0}

    strict_user, session = authenticate(tokens["access_token"])

    assert instances_made == []
    assert type(strict_user) is get_user_model() and type(session) is Token
    assert (strict_user, session.pk, session.user) == (user, tokens["sid"], strict_user)
    assert (session._state.adding, strict_user._state.db) == (False, "default")
    assert strict_user.get_deferred_fields() == set()  # the strict query reads every column
