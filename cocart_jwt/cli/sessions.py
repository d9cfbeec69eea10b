"""``manage.py jwt list``, ``create`` and ``destroy``: the session registry from the command line.

Every change goes through the managers (``Token.objects.issue``, ``TokenQuerySet.revoke``), so
the command sends the same signals and writes the same cache tombstones as the API and the
admin. ``create`` makes an administrator's token (kind ``admin``, in no limit), or with
``--scope`` a personal access token (at most ``MAX_PATS_PER_USER`` per user).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.management.base import CommandError
from django.db import transaction

from cocart_jwt.choices import Kind, RevokeReason
from cocart_jwt.issued import IssuedTokens, TooManyPersonalTokens
from cocart_jwt.managers import TokenQuerySet
from cocart_jwt.models import Token, user_is_active
from cocart_jwt.parsing import parse_claims, parse_duration
from cocart_jwt.settings import jwt_settings
from cocart_jwt.tokens import MAX_TOKEN_LENGTH
from cocart_jwt.utils import now

from .arguments import STATUSES
from .output import (
    Console,
    confirm,
    counted,
    describe_duration,
    is_terminal,
    local_time,
    printable,
    session_data,
    summarize_ids,
    table_header,
    table_row,
    to_json,
    token_pair,
)

LIST_CHUNK_SIZE = 2000
DESTROY_BATCH_SIZE = 500
IDS_SHOWN = 20  # ids listed before a destroy at verbosity 1; all of them at 2
MAX_DESCRIPTION = 255


def find_user(value: Any) -> AbstractBaseUser:
    """A user by username, then email, then primary key; ``CommandError`` naming it otherwise."""
    user_model = get_user_model()
    manager = user_model._default_manager
    text = str(value).strip()
    try:
        return manager.get(**{user_model.USERNAME_FIELD: text})
    except user_model.DoesNotExist:
        pass
    except (ValueError, TypeError, ValidationError, user_model.MultipleObjectsReturned):
        pass
    email_field = user_model.get_email_field_name()
    if "@" in text and _is_concrete_field(user_model, email_field):
        matches = list(manager.filter(**{f"{email_field}__iexact": text})[:2])
        if len(matches) > 1:
            raise CommandError(
                f"Several users have the email {text!r}; give the username or the id instead."
            )
        if matches:
            return matches[0]
    try:
        return manager.get(pk=text)
    except (user_model.DoesNotExist, ValueError, TypeError, ValidationError):
        pass
    raise CommandError(f"User {text!r} not found (looked up by username, email and id).")


def _is_concrete_field(model: Any, name: str) -> bool:
    try:
        return model._meta.get_field(name).concrete
    except FieldDoesNotExist:
        return False


# -- list ----------------------------------------------------------------------------------


def run_list(console: Console, options: dict[str, Any]) -> None:
    status = options.get("status") or "all"
    output = options.get("format") or "table"
    if status not in STATUSES:
        raise CommandError(f"--status must be one of {', '.join(STATUSES)}.")
    if output not in ("table", "json"):
        raise CommandError("--format must be table or json.")
    sessions = Token.objects.select_related("user").order_by("-created_at", "pk")
    if options.get("user") is not None:
        sessions = sessions.filter(user=find_user(options["user"]))
    sessions = sessions.with_status(status)
    # On PostgreSQL .iterator() reads through a server-side cursor. Outside a transaction it is
    # a WITH HOLD cursor that outlives its transaction, and behind PgBouncer's transaction
    # pooling the next FETCH may reach another server connection: "cursor does not exist".
    # Inside one it lives and dies within that transaction, on one server connection (Django's
    # "Transaction pooling and server-side cursors"); the listing also reads one snapshot.
    # Keyset pages would need no transaction but re-sort the whole table for every page.
    with transaction.atomic(using=sessions.db):
        rows = sessions.iterator(chunk_size=LIST_CHUNK_SIZE)
        if output == "json":
            list_json(console, rows)
        else:
            list_table(console, rows)


def list_json(console: Console, rows: Iterator[Token]) -> None:
    """A JSON array written row by row: a million sessions never sit in memory."""
    first = True
    console.stdout.write("[", ending="")
    for session in rows:
        line = to_json(session_data(session), indent=None)
        console.stdout.write(("\n" if first else ",\n") + line, ending="")
        first = False
    console.write("]" if first else "\n]")


def list_table(console: Console, rows: Iterator[Token]) -> None:
    count = 0
    for session in rows:
        if count == 0:
            console.write(table_header(), style=console.style.MIGRATE_HEADING)
        console.write(table_row(session))
        count += 1
    if count == 0:
        console.say("No sessions.")
    else:
        console.say(f"{counted(count, 'session')}.", level=2)


# -- create --------------------------------------------------------------------------------


def run_create(console: Console, options: dict[str, Any]) -> None:
    user = find_user(options["user"])
    if not user_is_active(user):
        raise CommandError(f"User {user.get_username()!r} is inactive; it cannot log in.")
    scopes = scopes_option(options.get("scopes"))
    refreshable = bool(options.get("refreshable"))
    if scopes and refreshable:
        raise CommandError(
            "--scope makes a personal access token, which is never refreshable: "
            "drop --refreshable or --scope."
        )
    lifetime = lifetime_option(options.get("ttl"), personal=bool(scopes))
    try:
        claims = parse_claims(options.get("claims"))
    except ValueError as exc:
        raise CommandError(f"--claims: {exc}") from None
    description = options.get("description") or ""
    if len(description) > MAX_DESCRIPTION:
        raise CommandError(f"--description is longer than {MAX_DESCRIPTION} characters.")
    if scopes and not description.strip():
        raise CommandError(
            "--scope makes a personal access token, which needs a name: give --description."
        )
    output = options.get("format") or "text"
    if output not in ("text", "json"):
        raise CommandError("--format must be text or json.")

    issued = issue(user, lifetime, claims, description, refreshable, scopes)
    if output == "json":
        console.write(to_json(token_pair(issued)))
    elif console.verbosity == 0:
        console.write(issued.access_token)
        if issued.refresh_token is not None:
            console.write(issued.refresh_token)
    else:
        print_created(console, issued)
    if not scopes and lifetime > jwt_settings.SESSION_MAX_LIFETIME:
        console.warn(
            f"--ttl is longer than SESSION_MAX_LIFETIME; the session ends "
            f"{local_time(issued.session.expires_at)}."
        )


def scopes_option(values: list[str] | None) -> list[str]:
    """``--scope``: names of the SCOPES setting, once each in the order given; an unknown one
    fails, naming it and the known ones."""
    names = list(dict.fromkeys(values or ()))
    known = jwt_settings.SCOPES if isinstance(jwt_settings.SCOPES, dict) else {}
    unknown = [name for name in names if name not in known]
    if unknown:
        listed = ", ".join(sorted(map(str, known))) or "none: COCART_JWT SCOPES is empty"
        raise CommandError(
            f"Unknown scope{'' if len(unknown) == 1 else 's'}: "
            f"{printable(', '.join(sorted(unknown)))}. Known scopes: {listed}."
        )
    return names


def lifetime_option(value: Any, *, personal: bool = False) -> timedelta:
    """``--ttl``: ADMIN_TOKEN_LIFETIME when not given. Past SESSION_MAX_LIFETIME it is capped
    (with a warning), not refused; a personal token's past PAT_MAX_LIFETIME is refused."""
    longest = jwt_settings.PAT_MAX_LIFETIME
    if value is None:
        default = jwt_settings.ADMIN_TOKEN_LIFETIME
        return min(default, longest) if personal else default
    try:
        lifetime = parse_duration(value)
    except ValueError as exc:
        raise CommandError(f"--ttl: {exc}") from None
    if lifetime <= timedelta(0):
        raise CommandError(f"--ttl must be positive, not {value!r}.")
    if personal and lifetime > longest:
        raise CommandError(
            f"--ttl is longer than PAT_MAX_LIFETIME ({describe_duration(longest)}), the "
            "longest a personal access token (--scope) lives."
        )
    return lifetime


def issue(
    user: AbstractBaseUser,
    lifetime: timedelta,
    claims: dict[str, Any],
    description: str,
    refreshable: bool,
    scopes: list[str],
) -> IssuedTokens:
    try:
        with transaction.atomic():
            issued = Token.objects.issue(
                user,
                refreshable=refreshable,
                lifetime=lifetime,
                description=description,
                claims=claims,
                # Scopes make a personal access token; without, an administrator's, in no limit.
                kind=Kind.PERSONAL if scopes else Kind.ADMIN,
                scopes=scopes,
            )
            if len(issued.access_token) > MAX_TOKEN_LENGTH:
                # Rolled back: a token this long would be refused on every request.
                raise CommandError(
                    f"The access token would be {len(issued.access_token)} bytes, over the "
                    f"{MAX_TOKEN_LENGTH} the API accepts; use fewer or shorter claims."
                )
    except TooManyPersonalTokens as refused:
        name = printable(str(user.get_username()))
        raise CommandError(
            f"{name} already holds {counted(refused.limit, 'live personal access token')}, "
            f"the most MAX_PATS_PER_USER allows; revoke one first "
            f"(jwt destroy {name} --id ID). Nothing was created."
        ) from None
    return issued


def print_created(console: Console, issued: IssuedTokens) -> None:
    session = issued.session
    what = f"session {session.pk}"
    if session.kind == Kind.PERSONAL:
        what = f"personal access token {session.pk} (scopes: {' '.join(session.scopes)})"
    console.write(
        f"Created {what} for {issued.user.get_username()}; it expires "
        f"{local_time(session.expires_at)}.",
        style=console.style.SUCCESS,
    )
    console.write(
        f"Access token (expires {local_time(issued.access_expires_at)}, in {issued.expires_in} s):"
    )
    console.write(issued.access_token)
    if issued.refresh_token is not None:
        console.write("Refresh token:")
        console.write(issued.refresh_token)
    console.write(
        "Copy now: tokens are shown only once and cannot be retrieved later.",
        style=console.style.WARNING,
    )


# -- destroy -------------------------------------------------------------------------------


def run_destroy(console: Console, options: dict[str, Any]) -> None:
    all_users = bool(options.get("all_users"))
    ids = list(dict.fromkeys(options.get("ids") or []))
    interactive = options.get("interactive", True)
    if all_users and options.get("user"):
        raise CommandError("Give a user or --all-users, not both.")
    if not all_users and not options.get("user"):
        raise CommandError("Give the user whose sessions to revoke, or --all-users.")
    user = None if all_users else find_user(options["user"])
    stdin = options.get("stdin") or sys.stdin
    if interactive and not is_terminal(stdin):
        raise CommandError("Refusing to destroy without a terminal; use --noinput.")

    owned = Token.objects.all() if user is None else Token.objects.filter(user=user)
    owner = "every user" if user is None else printable(str(user.get_username()))
    selection = chosen_sessions(owned.live(), ids, owner)
    total = selection.count()
    if total == 0:
        if not ids:
            repair(owned)
        console.say(f"No live sessions of {owner}; nothing to revoke.")
        return
    limit = None if console.verbosity >= 2 else IDS_SHOWN
    shown = selection.order_by("created_at", "pk").values_list("pk", flat=True)
    ids_text = summarize_ids(shown if limit is None else shown[:limit], total, limit)
    if interactive:
        console.write(f"This will revoke {counted(total, 'live session')} of {owner}: {ids_text}")
        if not confirm(stdin, console.stdout, "Are you sure?"):
            console.write("Cancelled; nothing was revoked.")
            return
    revoked = revoke(selection)
    if not ids:
        repair(owned)
    message = f"Revoked {counted(revoked, 'session')} of {owner}"
    console.say(
        f"{message}." if interactive else f"{message}: {ids_text}",
        style=console.style.SUCCESS,
    )


def chosen_sessions(live: TokenQuerySet, ids: list[str], owner: str) -> TokenQuerySet:
    """The live sessions ``--id`` names (all of them without ``--id``); every id must be one."""
    if not ids:
        return live
    found = set(live.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [pk for pk in ids if pk not in found]
    if missing:
        raise CommandError(
            f"Not a live session of {owner}: {printable(', '.join(missing))}. Nothing was revoked."
        )
    return live.filter(pk__in=ids)


def revoke(selection: TokenQuerySet) -> int:
    """Revoke in batches (``token_revoked`` is sent for each session, as everywhere)."""
    revoked = 0
    ordered = selection.order_by("created_at", "pk").values_list("pk", flat=True)
    while batch := list(ordered[:DESTROY_BATCH_SIZE]):
        revoked += len(Token.objects.filter(pk__in=batch).revoke(RevokeReason.COMMAND))
    return revoked


def repair(owned: TokenQuerySet) -> None:
    """Sessions revoked behind the app's back (a raw UPDATE) and not expired: ``revoke()``
    revokes nothing there, but tombstones them in the cache and ends the browser sessions
    their login links started. In batches, by primary key."""
    dead = owned.filter(revoked_at__isnull=False, expires_at__gt=now()).order_by("pk")
    last = ""
    while batch := list(dead.filter(pk__gt=last).values_list("pk", flat=True)[:DESTROY_BATCH_SIZE]):
        Token.objects.filter(pk__in=batch).revoke(RevokeReason.COMMAND)
        last = batch[-1]
