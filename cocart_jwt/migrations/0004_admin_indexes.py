"""Indexes for the admin's token list at a million sessions (docs/admin.md).

- ``cocart_jwt_token_created_idx`` on (created_at, id): the list's order (``-created_at``, then
  the ``-pk`` Django's admin appends), read backwards, so a page reads only its own rows.
- On PostgreSQL with the ``pg_trgm`` extension (created here when the database user may;
  otherwise skipped, and a description search reads the whole table): a trigram index on
  ``UPPER(description)``, what the admin's search by description (``icontains``) compares.

On PostgreSQL both are built ``CONCURRENTLY``, so logins and refreshes keep writing while
they build (hence ``atomic = False``). An interrupted build leaves an INVALID index: drop it
(``DROP INDEX CONCURRENTLY <name>``) and migrate again.
"""

import logging

from django.db import DatabaseError, migrations, models

CREATED_INDEX = models.Index(fields=["created_at", "id"], name="cocart_jwt_token_created_idx")
TRIGRAM_INDEX = "cocart_jwt_token_description_trgm"

logger = logging.getLogger("cocart_jwt")


def add_indexes(apps, schema_editor):
    token = apps.get_model("cocart_jwt", "Token")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.add_index(token, CREATED_INDEX)
        return
    schema_editor.add_index(token, CREATED_INDEX, concurrently=True)
    if trigrams_available(schema_editor):
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {TRIGRAM_INDEX} ON cocart_jwt_token "
            "USING gin ((UPPER(description::text)) gin_trgm_ops)"
        )


def trigrams_available(schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone():
            return True
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except DatabaseError as error:
            logger.warning(
                "No trigram index for the admin's search by description: pg_trgm could not "
                "be created (%s). A superuser can run CREATE EXTENSION pg_trgm; then migrate "
                "cocart_jwt back to 0003 and forward again.",
                str(error).strip().splitlines()[0],
            )
            return False
    return True


def remove_indexes(apps, schema_editor):
    token = apps.get_model("cocart_jwt", "Token")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.remove_index(token, CREATED_INDEX)
        return
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {TRIGRAM_INDEX}")
    schema_editor.remove_index(token, CREATED_INDEX, concurrently=True)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("cocart_jwt", "0003_hardening"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="token", index=CREATED_INDEX)],
            database_operations=[migrations.RunPython(add_indexes, remove_indexes)],
        ),
    ]
