"""Migration 0008 (cocart_jwt/migrations/0008_personal_tokens.py): each older row's ``kind``.

A session whose user presented credentials (``authenticated_at``) is a login ``session``; one
issued without its holder's request (``bind_on_first_use``: the CLI, the admin for another
user), not refreshable (logins always are) or with a login link (only the admin makes them) is
``admin``; a login from before 0006 (none of these) stays ``session``. No row becomes
``personal``, and no row gets scopes.

The database is migrated back to 0007 with Django's ``MigrationExecutor``, rows are made with
the historical models, then it is migrated to 0008 and the rows are read back; the schema is
left at the latest migration whatever happens. Schema changes cannot run inside a test's
transaction on SQLite, hence ``transaction=True``. Under ``--nomigrations`` (the mutation run)
the tables come from the models and there is nothing to migrate: skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from cocart_jwt.utils import now

pytestmark = pytest.mark.django_db(transaction=True)

APP = "cocart_jwt"
BEFORE = (APP, "0007_refresh_reuse_grace")
AFTER = (APP, "0008_personal_tokens")


def migrate(target: tuple[str, str] | list[tuple[str, str]]) -> Apps:
    """Migrate ``cocart_jwt`` to ``target``; the historical models of that state."""
    targets = target if isinstance(target, list) else [target]
    executor = MigrationExecutor(connection)  # a fresh loader: what is applied now
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def before_0008() -> Iterator[Apps]:
    """The database at 0007 for the test, at the latest migration again afterwards."""
    executor = MigrationExecutor(connection)
    if APP not in executor.loader.migrated_apps:
        pytest.skip("migrations are disabled (--nomigrations): the tables come from the models")
    latest = executor.loader.graph.leaf_nodes(APP)
    try:
        yield migrate(BEFORE)
    finally:
        migrate(latest)


def make_row(apps: Apps, user: Any, **fields: Any) -> str:
    """A registry row as a release before 0008 wrote it; its id."""
    at = now()
    token = apps.get_model(APP, "Token").objects.create(
        user_id=user.pk, created_at=at, expires_at=at + timedelta(days=1), **fields
    )
    return str(token.pk)


def test_0008_classifies_each_existing_row_by_who_made_it(before_0008, user):
    apps = before_0008
    at = now()
    rows = {
        # A login since 0006: its user presented credentials.
        "login": make_row(apps, user, authenticated_at=at, refreshable=True),
        # A login from before 0006: no authenticated_at, refreshable, no first-use binding.
        "login before 0006": make_row(apps, user, refreshable=True),
        # The CLI (or the admin for another user): issued without its holder's request.
        "cli": make_row(apps, user, refreshable=True, bind_on_first_use=True),
        # Not refreshable: never a login.
        "not refreshable": make_row(apps, user, refreshable=False),
        # With a login link: only the admin makes them.
        "with a login link": make_row(apps, user, refreshable=True),
        # Revoked or not, a row is classified by how it was made.
        "revoked cli": make_row(
            apps, user, refreshable=False, bind_on_first_use=True, revoked_at=at
        ),
    }
    apps.get_model(APP, "LoginLink").objects.create(
        session_id=rows["with a login link"],
        token_hash="0" * 64,
        created_by_id=user.pk,
        expires_at=at + timedelta(minutes=10),
    )

    after = migrate(AFTER)

    stored = {
        pk: (kind, scopes)
        for pk, kind, scopes in after.get_model(APP, "Token").objects.values_list(
            "pk", "kind", "scopes"
        )
    }
    assert {name: stored[pk] for name, pk in rows.items()} == {
        "login": ("session", []),
        "login before 0006": ("session", []),
        "cli": ("admin", []),
        "not refreshable": ("admin", []),
        "with a login link": ("admin", []),
        "revoked cli": ("admin", []),
    }
