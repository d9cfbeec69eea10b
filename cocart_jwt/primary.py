"""Reads that decide acceptance go to the primary database, never to a read replica.

A site whose ``DATABASE_ROUTERS`` send reads to a replica reads a copy that lags behind: a
session revoked a moment ago is still live there, a password changed a moment ago still the
old one. Every read that decides whether something is accepted (the verifier's query, a cache
fill, the cap's list, refresh, login links, the user-change receivers, the credential check of
a login) therefore reads the database the router *writes* the model to. Lists shown to people
may read the replica. docs/security.md, "Read replicas", says which is which.

- ``primary_db(model)`` is that alias, ``on_primary(queryset)`` a queryset read from it: for
  the package's own queries.
- ``primary_reads()`` is for code the package does not write (the site's authentication
  backends: Django's ``ModelBackend`` reads the user through ``db_for_read``). Inside it every
  read goes to the write database of its model. ``PrimaryReadsRouter`` does it, placed first
  in ``django.db.router.routers`` on entry: the site changes nothing in its own routers, and
  when that list is rebuilt (``DATABASE_ROUTERS`` overridden in a test), the next entry puts
  it back. Outside the context it has no opinion.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.db import models, router

_reading_primary: ContextVar[bool] = ContextVar("cocart_jwt_primary_reads", default=False)

QuerySetT = TypeVar("QuerySetT", bound=models.QuerySet[Any])


def primary_db(model: type[models.Model]) -> str:
    """The alias ``model`` is written to: where a read that must not lag goes."""
    return router.db_for_write(model)


def on_primary(queryset: QuerySetT) -> QuerySetT:
    """``queryset``, read from the database its model is written to."""
    return queryset.using(primary_db(queryset.model))


class PrimaryReadsRouter:
    """Inside ``primary_reads()``, a read goes where the other routers write; else no opinion.

    It answers None to every other question (its own ``db_for_write`` among them: the routers
    after it decide), and defines each so that Django's router never raises AttributeError
    on it, which would cost every routed query an exception.
    """

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        if not _reading_primary.get():
            return None
        return router.db_for_write(model, **hints)

    def db_for_write(self, model: type[models.Model], **hints: Any) -> None:
        return None

    def allow_relation(self, obj1: models.Model, obj2: models.Model, **hints: Any) -> None:
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> None:
        return None


ROUTER = PrimaryReadsRouter()


def install_router() -> None:
    """Put ``ROUTER`` first among Django's routers, unless it is there already.

    The list is replaced, never changed in place: another thread may be walking it.
    """
    routers = router.routers
    if routers and routers[0] is ROUTER:
        return
    router.routers = [ROUTER, *(r for r in routers if r is not ROUTER)]


@contextmanager
def primary_reads() -> Iterator[None]:
    """Every read inside, by any code, goes to the write database of its model."""
    install_router()
    token = _reading_primary.set(True)
    try:
        yield
    finally:
        _reading_primary.reset(token)
