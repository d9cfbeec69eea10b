"""Login and refresh on PostgreSQL in fewer round trips.

The managers call these when the database is PostgreSQL reached through psycopg 3; elsewhere
they keep the portable ORM path, with the same guarantees.

**Issue** (login, admin, CLI): two statements sent together in one round trip (psycopg's
pipeline mode), inside the caller's transaction:

1. lock the user's row: ``UPDATE user SET last_login`` for a login, ``SELECT ... FOR UPDATE``
   otherwise;
2. one data-modifying statement: revoke the user's live sessions beyond the newest
   ``cap - 1``, insert the session and its first refresh token, and the security events
   (``issued``, a ``revoked`` one per session evicted); it returns the revoked rows.

The lock cannot be part of the second statement. Under READ COMMITTED a statement reads one
snapshot, taken when it starts: a statement that waited for a parallel login's lock would not
see the session that login inserted, and both would keep it, one over the cap. A second
statement starts after the lock is granted, so it sees every session committed before.
With BEGIN and COMMIT, a login is 3 round trips after the user lookup.

**Refresh**: one statement locks the session's row, claims the presented refresh token
(``used_at IS NULL``: of parallel uses one wins), slides the session, inserts the next token (its
``parent`` the presented one) and the ``refreshed`` event (only if the session slid), and
returns the session and its user as they were, for the checks only Python can make (the
password fingerprint, the user's ``is_active``). A check that fails rolls the transaction back.
With BEGIN and COMMIT, 3 round trips. The session is locked before the token, as every other
writer of a session's refresh tokens does (the ORM path, renewals, a retry within the reuse
grace): no two of them wait for each other's lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import connections, models

from .choices import Event, Kind

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

    from .models import Token


def supported(using: str) -> bool:
    """Whether ``using`` is PostgreSQL through psycopg 3, with pipeline mode."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    if not is_psycopg3:
        return False
    import psycopg

    return bool(psycopg.Pipeline.is_supported())


def quote(using: str, name: str | None) -> str:
    return str(connections[using].ops.quote_name(str(name)))


class Columns:
    """A model's concrete columns in a SELECT or RETURNING list, and the instance built back
    from them with Django's own converters (as a queryset would)."""

    def __init__(self, model: type[models.Model], alias: str, using: str) -> None:
        connection = connections[using]
        self.model, self.using = model, using
        fields = model._meta.concrete_fields
        self.attnames = [field.attname for field in fields]
        self.sql = ", ".join(f"{alias}.{quote(using, field.column)}" for field in fields)
        self.converters: list[list[Callable[..., Any]]] = []
        self.expressions = []
        for field in fields:
            column = field.get_col(alias)
            self.expressions.append(column)
            self.converters.append(
                [
                    *connection.ops.get_db_converters(column),
                    *column.get_db_converters(connection),
                ]
            )

    def __len__(self) -> int:
        return len(self.attnames)

    def build(self, values: tuple[Any, ...] | list[Any]) -> Any:
        connection = connections[self.using]
        converted = []
        for value, converters, expression in zip(
            values, self.converters, self.expressions, strict=True
        ):
            for converter in converters:
                value = converter(value, expression, connection)
            converted.append(value)
        return self.model.from_db(self.using, self.attnames, converted)


@cache
def columns(model: type[models.Model], alias: str, using: str) -> Columns:
    """``Columns`` of ``model`` under ``alias``, built once per process: the field list and
    their converters do not change from one login or refresh to the next."""
    return Columns(model, alias, using)


def insert_sql(
    obj: models.Model, using: str, expressions: dict[str, tuple[str, list[Any]]] | None = None
) -> tuple[str, list[Any]]:
    """``INSERT`` of ``obj`` as save() would write it (each field's pre_save and db_prep_save);
    ``expressions`` replace the value of some columns by SQL (attname -> (sql, params): the
    value of ``obj`` is the SQL's first parameter)."""
    connection = connections[using]
    meta = obj._meta
    fields = [
        field
        for field in meta.local_concrete_fields
        if not (field is meta.auto_field and obj.pk is None)
    ]
    placeholders, params = [], []
    for field in fields:
        value = field.get_db_prep_save(field.pre_save(obj, True), connection)
        sql, extra = (expressions or {}).get(field.attname, ("%s", []))
        placeholders.append(sql)
        params += [value, *extra]
    columns = ", ".join(quote(using, field.column) for field in fields)
    table = quote(using, meta.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES ({', '.join(placeholders)})", params


@dataclass(frozen=True)
class Sql:
    """A column's value as SQL over the SELECT's source (in ``insert_select``)."""

    text: str


def insert_select(
    obj: models.Model, using: str, sources: list[tuple[str, dict[str, Any]]]
) -> tuple[str, list[Any]]:
    """``INSERT`` of one row per row of each source (``FROM`` text): the values of ``obj``, as
    save() would write them, but those a source overrides (attname -> a value, or ``Sql``
    computed over the source). Each value is cast to its column's type: a parameter in a
    ``UNION`` has none of its own."""
    connection = connections[using]
    meta = obj._meta
    fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field]
    selects, params = [], []
    for source, overrides in sources:
        items = []
        for field in fields:
            value = overrides.get(field.attname, field.pre_save(obj, True))
            if isinstance(value, Sql):
                items.append(value.text)
                continue
            items.append(f"CAST(%s AS {field.db_type(connection)})")
            params.append(field.get_db_prep_save(value, connection))
        selects.append(f"SELECT {', '.join(items)} FROM {source}")
    columns = ", ".join(quote(using, field.column) for field in fields)
    table = quote(using, meta.db_table)
    return f"INSERT INTO {table} ({columns}) {' UNION ALL '.join(selects)}", params


def run_pipelined(using: str, statements: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    """Execute ``statements`` in one round trip; the rows of the last one.

    Errors surface as Django's database exceptions, as from any cursor.
    """
    connection = connections[using]
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursors = [connection.cursor() for _ in statements]
        try:
            with connection.connection.pipeline():
                for cursor, (sql, params) in zip(cursors, statements, strict=True):
                    cursor.execute(sql, params)
            return list(cursors[-1].fetchall())
        finally:
            for cursor in cursors:
                cursor.close()


def lock_user_sql(user: AbstractBaseUser, using: str, last_login: datetime | None) -> tuple:
    """The statement that locks ``user``'s row; it writes ``last_login`` when given one."""
    user_model = get_user_model()
    table = quote(using, user_model._meta.db_table)
    pk = quote(using, user_model._meta.pk.column)
    pk_value = user_model._meta.pk.get_db_prep_value(user.pk, connections[using])
    if last_login is not None:
        column = quote(using, user_model._meta.get_field("last_login").column)
        return (f"UPDATE {table} SET {column} = %s WHERE {pk} = %s", (last_login, pk_value))
    return (f"SELECT 1 FROM {table} WHERE {pk} = %s FOR UPDATE", (pk_value,))


def issue_statement(
    session: Token,
    refresh_token: models.Model | None,
    *,
    keep: int | None,
    reason: str,
    event: models.Model,
    using: str,
) -> tuple[str, tuple[Any, ...], Columns]:
    """Revoke the live login sessions of ``session``'s user beyond the newest ``keep`` (none
    when ``keep`` is None), insert ``session``, ``refresh_token`` and the ``issued`` ``event``, and
    a ``revoked`` event per session evicted (from the same client); select the revoked rows,
    each with whether a login link started a browser session of it."""
    token_model = type(session)
    links = token_model._meta.get_field("login_links").related_model
    q = lambda name: quote(using, name)  # noqa: E731
    table = q(token_model._meta.db_table)
    revoked = columns(token_model, table, using)
    parts, params = [], []
    if keep is not None:
        at = session.created_at
        parts.append(
            f"evicted AS (UPDATE {table} SET {q('revoked_at')} = %s, {q('revoke_reason')} = %s"
            f" WHERE {q('id')} IN (SELECT {q('id')} FROM {table}"
            f" WHERE {q('user_id')} = %s AND {q('kind')} = %s"
            f" AND {q('revoked_at')} IS NULL AND {q('expires_at')} > %s"
            f" ORDER BY {q('created_at')} DESC, {q('id')} DESC OFFSET %s)"
            f" AND {q('revoked_at')} IS NULL"
            f" RETURNING {revoked.sql}, EXISTS (SELECT 1 FROM {q(links._meta.db_table)} link"
            f" WHERE link.{q('session_id')} = {table}.{q('id')}"
            f" AND link.{q('django_session_key')} <> ''))"
        )
        params += [at, reason, session.user_id, Kind.SESSION, at, keep]
    # Never older than a live session of the user: a login that waited for the lock after
    # reading the clock still comes out newest, as the cap orders sessions.
    newest = (
        f"GREATEST(%s, (SELECT max({q('created_at')}) FROM {table}"
        f" WHERE {q('user_id')} = %s AND {q('revoked_at')} IS NULL))"
    )
    sql, session_params = insert_sql(session, using, {"created_at": (newest, [session.user_id])})
    parts.append(f"session AS ({sql} RETURNING {q('created_at')})")
    params += session_params
    if refresh_token is not None:
        sql, token_params = insert_sql(refresh_token, using)
        parts.append(f"first_token AS ({sql})")
        params += token_params
    sql, event_params = events_sql(event, keep is not None, reason, using)
    parts.append(f"events AS ({sql})")
    params += event_params
    # One row per session evicted, or one of NULLs, each with the new session's created_at.
    select = (
        "SELECT session.created_at, evicted.* FROM session LEFT JOIN evicted ON true"
        if keep is not None
        else "SELECT session.created_at FROM session"
    )
    return f"WITH {', '.join(parts)} {select}", tuple(params), revoked


def events_sql(event: Any, evicts: bool, reason: str, using: str) -> tuple[str, list[Any]]:
    """The INSERT of ``event`` (issued), dated as the session, and with ``evicts`` of the
    ``revoked`` events of the evicted sessions, from the same client."""
    q = lambda name: quote(using, name)  # noqa: E731
    sources: list[tuple[str, dict[str, Any]]] = [
        ("session", {"at": Sql(f"session.{q('created_at')}")})
    ]
    if evicts:
        columns = {"user_id": "user_id", "sid": "id", "at": "revoked_at"}
        revoked: dict[str, Any] = {
            name: Sql(f"evicted.{q(column)}") for name, column in columns.items()
        }
        sources.append(("evicted", {**revoked, "event": Event.REVOKED, "reason": reason}))
    return insert_select(event, using, sources)


@dataclass
class Evicted:
    session: Token
    has_browser_session: bool


def issue(
    session: Token,
    refresh_token: models.Model | None,
    *,
    keep: int | None,
    reason: str,
    last_login: datetime | None,
    event: models.Model,
    using: str,
) -> list[Evicted]:
    """Lock the user, evict beyond the cap, insert the session, its refresh token and the
    events: one round trip. Call it inside a transaction."""
    statements: list[tuple[str, tuple[Any, ...]]] = []
    if keep is not None or last_login is not None:
        statements.append(lock_user_sql(session.user, using, last_login))
    sql, params, columns = issue_statement(
        session, refresh_token, keep=keep, reason=reason, event=event, using=using
    )
    statements.append((sql, params))
    rows = run_pipelined(using, statements)
    session.created_at = rows[0][0]
    evicted = []
    for row in rows:
        if len(row) > 1 and row[1] is not None:
            revoked = columns.build(row[1 : len(columns) + 1])
            revoked.user = session.user
            evicted.append(Evicted(revoked, bool(row[len(columns) + 1])))
    return evicted


@dataclass
class Rotation:
    """What the refresh statement saw and did: the session and user as they were before it,
    whether it claimed the presented token, and the session's new expiry (None: not slid)."""

    session: Token
    claimed: bool
    expires_at: datetime | None
    presented_id: int


def rotate(
    token_model: type[Token],
    token_hash: str,
    child_hash: str | None,
    *,
    at: datetime,
    slide_to: datetime,
    max_lifetime: timedelta,
    event: models.Model,
    using: str,
    dpop_jkt: str = "",
) -> Rotation | None:
    """Lock the session of the refresh token of hash ``token_hash`` (in ``token_model``'s
    family), claim the token (unless ``child_hash`` is None: rotation off), slide the session
    (never past ``created_at + max_lifetime``), insert the next token, of hash ``child_hash``
    and parent the claimed one, and ``event`` (refreshed, of the session's user and sid), in
    one statement. None when no refresh token has that hash. Call it inside a transaction: the
    session stays locked until it ends.

    A session bound to a DPoP key other than ``dpop_jkt`` ("" for none) is neither claimed
    nor slid: the caller refuses it, nothing spent. A claim binds the session to ``dpop_jkt``."""
    family = token_model._meta.get_field("refresh_tokens").related_model
    q = lambda name: quote(using, name)  # noqa: E731
    token_table, family_table = q(token_model._meta.db_table), q(family._meta.db_table)
    user_model = get_user_model()
    user_table = q(user_model._meta.db_table)
    sessions, users = columns(token_model, "s", using), columns(user_model, "u", using)
    # Only if the session slid, as the next token.
    slid = {"user_id": Sql("extended.user_id"), "sid": Sql("extended.id")}
    refreshed, event_params = insert_select(event, using, [("extended", slid)])
    params: list[Any] = [dpop_jkt, token_hash]
    if child_hash is None:
        claimed, child = "claimed AS (SELECT session_id FROM presented WHERE key_ok)", ""
    else:
        claimed = (
            f"claimed AS (UPDATE {family_table} SET {q('used_at')} = %s"
            f" WHERE {q('id')} = (SELECT id FROM presented) AND {q('used_at')} IS NULL"
            f" AND (SELECT key_ok FROM presented)"
            f" RETURNING {q('session_id')} AS session_id)"
        )
        params.append(at)
        # The next token exists only if the session slid.
        parent = q("parent_id")
        child = (
            f", child AS (INSERT INTO {family_table}"
            f" ({q('session_id')}, {q('token_hash')}, {q('created_at')}, {q('used_at')}, {parent})"
            f" SELECT id, %s, %s, NULL, (SELECT id FROM presented) FROM extended)"
        )
    sql = (
        f"WITH presented AS (SELECT f.{q('id')} AS id, f.{q('session_id')} AS session_id,"
        f" (t.{q('dpop_jkt')} = '' OR t.{q('dpop_jkt')} = %s) AS key_ok"
        f" FROM {family_table} f JOIN {token_table} t ON t.{q('id')} = f.{q('session_id')}"
        f" WHERE f.{q('token_hash')} = %s FOR NO KEY UPDATE OF t), "
        f"{claimed}, "
        f"extended AS (UPDATE {token_table} SET {q('expires_at')} = LEAST(%s, {q('created_at')}"
        f" + %s), {q('last_used_at')} = %s, {q('dpop_jkt')} = %s FROM claimed"
        f" WHERE {token_table}.{q('id')} = claimed.session_id"
        f" AND {q('revoked_at')} IS NULL AND {q('expires_at')} > %s AND {q('refreshable')}"
        f" RETURNING {token_table}.{q('id')} AS id, {token_table}.{q('expires_at')} AS expires_at,"
        f" {token_table}.{q('user_id')} AS user_id)"
        f"{child}, refreshed AS ({refreshed}) "
        f"SELECT {sessions.sql}, {users.sql}, EXISTS (SELECT 1 FROM claimed),"
        f" (SELECT expires_at FROM extended), (SELECT id FROM presented)"
        f" FROM {token_table} s JOIN {user_table} u"
        f" ON u.{q(user_model._meta.pk.column)} = s.{q('user_id')}"
        f" WHERE s.{q('id')} = (SELECT session_id FROM presented)"
    )
    params += [slide_to, max_lifetime, at, dpop_jkt, at]
    if child_hash is not None:
        params += [child_hash, at]
    params += event_params
    rows = run_pipelined(using, [(sql, tuple(params))])
    if not rows:
        return None
    row = rows[0]
    session = sessions.build(row[: len(sessions)])
    session.user = users.build(row[len(sessions) : len(sessions) + len(users)])
    return Rotation(session, claimed=bool(row[-3]), expires_at=row[-2], presented_id=row[-1])
