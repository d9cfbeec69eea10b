"""``manage.py jwt``: the session registry from the command line (CoCart's WP-CLI commands).

Subcommands: ``list``, ``view``, ``create``, ``destroy``, ``cleanup``, ``keygen``.
See docs/commands.md for examples.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from cocart_jwt.keys import ALGORITHMS, KNOWN_ALGORITHMS
from cocart_jwt.models import RefreshToken, RevokeReason, Token
from cocart_jwt.settings import jwt_settings
from cocart_jwt.tokens import MAX_TOKEN_LENGTH, InvalidToken, read_header, verify_access_token
from cocart_jwt.utils import now, sha256_hex

from . import _jwt_cleanup, _jwt_keygen
from ._jwt_arguments import STATUSES, add_subcommands
from ._jwt_support import (
    confirm,
    counted,
    describe_duration,
    find_user,
    is_terminal,
    local_time,
    parse_claims,
    parse_duration_option,
    printable,
    session_data,
    summarize_ids,
    table_header,
    table_row,
    to_json,
    token_pair,
)
from ._jwt_view import (
    expiry_status,
    session_refusal,
    signature_status,
    timestamp,
    unverified_claims,
)

LIST_CHUNK_SIZE = 2000
DESTROY_BATCH_SIZE = 500
IDS_SHOWN = 20  # ids listed before a destroy at verbosity 1; all of them at 2
DEFAULT_GRACE = timedelta(days=7)
MAX_DESCRIPTION = 255


class Command(BaseCommand):
    help = (
        "Manage JWT sessions: list, view, create, destroy, cleanup, keygen. "
        "Run 'manage.py jwt <subcommand> --help' for each one."
    )
    # keygen must work while the keys are still missing or wrong; the subcommands that
    # need keys report a bad configuration themselves, as a CommandError.
    requires_system_checks: list[str] = []
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        add_subcommands(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = int(options.get("verbosity", 1))
        handler = getattr(self, f"handle_{options['subcommand']}")
        try:
            handler(**options)
        except ImproperlyConfigured as exc:
            raise CommandError(f"COCART_JWT is misconfigured: {exc}") from exc
        except BrokenPipeError:
            # The reader went away (``jwt list | head``): stop quietly, as Unix tools do.
            _silence_stdout()

    # -- output ----------------------------------------------------------------------------

    def say(self, message: str, level: int = 1, style: Any = None) -> None:
        if self.verbosity >= level:
            self.stdout.write(message, style_func=style)

    def warn(self, message: str) -> None:
        if self.verbosity >= 1:
            self.stderr.write(message, style_func=self.style.WARNING)

    # -- list ------------------------------------------------------------------------------

    def handle_list(self, **options: Any) -> None:
        status = options.get("status") or "all"
        output = options.get("format") or "table"
        if status not in STATUSES:
            raise CommandError(f"--status must be one of {', '.join(STATUSES)}.")
        if output not in ("table", "json"):
            raise CommandError("--format must be table or json.")
        sessions = Token.objects.select_related("user").order_by("-created_at", "pk")
        if options.get("user") is not None:
            sessions = sessions.filter(user=find_user(options["user"]))
        at = now()
        if status == "valid":
            sessions = sessions.live(at)
        elif status == "expired":
            sessions = sessions.filter(revoked_at__isnull=True, expires_at__lte=at)
        elif status == "revoked":
            sessions = sessions.filter(revoked_at__isnull=False)
        rows = sessions.iterator(chunk_size=LIST_CHUNK_SIZE)
        if output == "json":
            self._list_json(rows)
        else:
            self._list_table(rows)

    def _list_json(self, rows: Any) -> None:
        first = True
        self.stdout.write("[", ending="")
        for session in rows:
            self.stdout.write(
                ("\n" if first else ",\n") + to_json(session_data(session), indent=None), ending=""
            )
            first = False
        self.stdout.write("]" if first else "\n]")

    def _list_table(self, rows: Any) -> None:
        count = 0
        for session in rows:
            if count == 0:
                self.stdout.write(table_header(), style_func=self.style.MIGRATE_HEADING)
            self.stdout.write(table_row(session))
            count += 1
        if count == 0:
            self.say("No sessions.")
        else:
            self.say(f"{counted(count, 'session')}.", level=2)

    # -- view ------------------------------------------------------------------------------

    def handle_view(self, **options: Any) -> None:
        value = str(options["token_or_id"]).strip()
        if value[:7].lower() == "bearer ":
            value = value[7:].strip()
        if value.count(".") == 2:
            self._view_token(value)
            return
        session = Token.objects.select_related("user").filter(pk=value).first()
        if session is None:
            if RefreshToken.objects.filter(token_hash=sha256_hex(value)).exists():
                raise CommandError(
                    "That is a refresh token, which this command never shows; give the "
                    "session id or an access token."
                )
            raise CommandError("No session with this id (nor is it an access token).")
        self._show_session(session)

    def _view_token(self, token: str) -> None:
        try:
            header = read_header(token)
        except InvalidToken as exc:
            raise CommandError(f"Not a JWT: {exc}.") from None
        problem: str | None = None
        claims: dict[str, Any] | None
        try:
            claims = verify_access_token(token)
        except InvalidToken as exc:
            problem = str(exc)
            claims = unverified_claims(token)
        good, bad = self.style.SUCCESS, self.style.ERROR
        if problem is None:
            self.stdout.write("Access token: VERIFIED", style_func=good)
            label = ""
        else:
            self.stdout.write(f"Access token: UNVERIFIED ({printable(problem)})", style_func=bad)
            label = " (UNVERIFIED)"
        signature_ok, signature = signature_status(token, header)
        self.stdout.write(f"Signature: {signature}", style_func=good if signature_ok else bad)
        expiry_ok, expiry = expiry_status(claims)
        self.stdout.write(f"Expiry:    {expiry}", style_func=good if expiry_ok else bad)
        self.stdout.write(f"Header{label}:")
        self.stdout.write(to_json(header))
        self.stdout.write(f"Claims{label}:")
        self.stdout.write(to_json(claims) if claims is not None else "(undecodable)")
        for name in ("iat", "nbf", "exp"):
            moment = timestamp((claims or {}).get(name))
            if moment is not None:
                self.say(f"  {name}: {local_time(moment)}")
        sid = (claims or {}).get("sid")
        session = (
            Token.objects.select_related("user").filter(pk=sid).first()
            if isinstance(sid, str) and len(sid) <= 64
            else None
        )
        refusal: str | None
        if session is None:
            refusal = problem or "its session does not exist"
            self.stdout.write("Session: none found." if sid else "Session: no sid claim.")
        else:
            self.stdout.write("")
            self._show_session(session)
            refusal = problem or session_refusal(session, claims or {})
        if refusal is not None:
            raise CommandError(f"This access token would be refused: {printable(refusal)}.")
        self.say("This access token is accepted.", style=good)

    def _show_session(self, session: Token) -> None:
        family = RefreshToken.objects.filter(session=session)
        issued = family.count()
        spent = family.filter(used_at__isnull=False).count()
        revoked = "-"
        if session.revoked_at is not None:
            reason = session.get_revoke_reason_display() if session.revoke_reason else "-"
            revoked = f"{local_time(session.revoked_at)} ({reason})"
        user = session.user
        fields = [
            ("Session", session.pk),
            ("User", f"{user.get_username()} (id {user.pk})"),
            ("Status", str(session.status)),
            ("Description", session.description or "-"),
            ("Created", local_time(session.created_at)),
            ("Expires", local_time(session.expires_at)),
            ("Last used", local_time(session.last_used_at) if session.last_used_at else "never"),
            ("Revoked", revoked),
            ("IP", session.ip or "-"),
            ("User agent", session.user_agent or "-"),
            ("Refreshable", "yes" if session.refreshable else "no"),
            ("Refresh tokens", f"{issued} issued, {spent} spent (never shown)"),
            ("Claims", to_json(session.claims, indent=None)),
        ]
        status_style = {
            "valid": self.style.SUCCESS,
            "expired": self.style.WARNING,
            "revoked": self.style.ERROR,
        }
        for name, value in fields:
            style = status_style.get(value) if name == "Status" else None
            self.stdout.write(f"{name + ':':<16}{printable(value)}", style_func=style)

    # -- create ----------------------------------------------------------------------------

    def handle_create(self, **options: Any) -> None:
        user = find_user(options["user"])
        if not getattr(user, "is_active", True):
            raise CommandError(f"User {user.get_username()!r} is inactive; it cannot log in.")
        ttl = options.get("ttl")
        if ttl is None:
            lifetime = jwt_settings.ADMIN_TOKEN_LIFETIME
        else:
            lifetime = parse_duration_option(ttl, "--ttl")
        if lifetime <= timedelta(0):
            raise CommandError(f"--ttl must be positive, not {ttl!r}.")
        claims = parse_claims(options.get("claims"))
        description = options.get("description") or ""
        if len(description) > MAX_DESCRIPTION:
            raise CommandError(f"--description is longer than {MAX_DESCRIPTION} characters.")
        output = options.get("format") or "text"
        if output not in ("text", "json"):
            raise CommandError("--format must be text or json.")

        cap = jwt_settings.MAX_TOKENS_PER_USER
        live_before = Token.objects.filter(user=user).live().count() if cap else 0
        with transaction.atomic():
            issued = Token.objects.issue(
                user,
                refreshable=bool(options.get("refreshable")),
                lifetime=lifetime,
                description=description,
                claims=claims,
            )
            if len(issued.access_token) > MAX_TOKEN_LENGTH:
                # Rolled back: a token this long would be refused on every request.
                raise CommandError(
                    f"The access token would be {len(issued.access_token)} bytes, over the "
                    f"{MAX_TOKEN_LENGTH} the API accepts; use fewer or shorter claims."
                )
        session = issued.session
        if output == "json":
            self.stdout.write(to_json(token_pair(issued)))
        elif self.verbosity == 0:
            self.stdout.write(issued.access_token)
            if issued.refresh_token is not None:
                self.stdout.write(issued.refresh_token)
        else:
            self._print_created(issued)
        if lifetime > jwt_settings.SESSION_MAX_LIFETIME:
            self.warn(
                f"--ttl is longer than SESSION_MAX_LIFETIME; the session ends "
                f"{local_time(session.expires_at)}."
            )
        if cap and live_before >= cap:
            evicted = live_before - cap + 1
            self.warn(
                f"{user.get_username()} had {live_before} live sessions (MAX_TOKENS_PER_USER "
                f"is {cap}): the oldest {evicted} {'was' if evicted == 1 else 'were'} revoked."
            )

    def _print_created(self, issued: Any) -> None:
        session = issued.session
        self.stdout.write(
            f"Created session {session.pk} for {issued.user.get_username()}; it expires "
            f"{local_time(session.expires_at)}.",
            style_func=self.style.SUCCESS,
        )
        self.stdout.write(
            f"Access token (expires {local_time(issued.access_expires_at)}, "
            f"in {issued.expires_in} s):"
        )
        self.stdout.write(issued.access_token)
        if issued.refresh_token is not None:
            self.stdout.write("Refresh token:")
            self.stdout.write(issued.refresh_token)
        self.stdout.write(
            "Copy now: tokens are shown only once and cannot be retrieved later.",
            style_func=self.style.WARNING,
        )

    # -- destroy ---------------------------------------------------------------------------

    def handle_destroy(self, **options: Any) -> None:
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
        selection = owned.live()
        owner = "every user" if user is None else printable(str(user.get_username()))
        if ids:
            found = set(selection.filter(pk__in=ids).values_list("pk", flat=True))
            missing = [pk for pk in ids if pk not in found]
            if missing:
                raise CommandError(
                    f"Not a live session of {owner}: {printable(', '.join(missing))}. "
                    "Nothing was revoked."
                )
            selection = selection.filter(pk__in=ids)

        total = selection.count()
        if total == 0:
            if not ids:
                self._repair(owned)
            self.say(f"No live sessions of {owner}; nothing to revoke.")
            return
        limit = None if self.verbosity >= 2 else IDS_SHOWN
        shown = selection.order_by("created_at", "pk").values_list("pk", flat=True)
        ids_text = summarize_ids(shown if limit is None else shown[:limit], total, limit)
        if interactive:
            self.stdout.write(
                f"This will revoke {counted(total, 'live session')} of {owner}: {ids_text}"
            )
            if not confirm(stdin, self.stdout, "Are you sure?"):
                self.stdout.write("Cancelled; nothing was revoked.")
                return
        revoked = self._revoke(selection)
        if not ids:
            self._repair(owned)
        message = f"Revoked {counted(revoked, 'session')} of {owner}"
        self.say(
            f"{message}." if interactive else f"{message}: {ids_text}",
            style=self.style.SUCCESS,
        )

    def _revoke(self, selection: Any) -> int:
        """Revoke in batches (``token_revoked`` is sent for each session, as everywhere)."""
        revoked = 0
        while True:
            batch = list(
                selection.order_by("created_at", "pk").values_list("pk", flat=True)[
                    :DESTROY_BATCH_SIZE
                ]
            )
            if not batch:
                return revoked
            revoked += len(Token.objects.filter(pk__in=batch).revoke(RevokeReason.COMMAND))

    def _repair(self, owned: Any) -> None:
        """Sessions revoked behind the app's back (a raw UPDATE) and not expired: ``revoke()``
        revokes nothing there, but tombstones them in the cache and ends the browser sessions
        their login links started. In batches, by primary key."""
        dead = owned.filter(revoked_at__isnull=False, expires_at__gt=now()).order_by("pk")
        last = ""
        while batch := list(
            dead.filter(pk__gt=last).values_list("pk", flat=True)[:DESTROY_BATCH_SIZE]
        ):
            Token.objects.filter(pk__in=batch).revoke(RevokeReason.COMMAND)
            last = batch[-1]

    # -- cleanup ---------------------------------------------------------------------------

    def handle_cleanup(self, **options: Any) -> None:
        batch_size = options.get("batch_size")
        if batch_size is None:
            batch_size = _jwt_cleanup.DEFAULT_BATCH_SIZE
        try:
            batch_size = int(batch_size)
        except (TypeError, ValueError):
            raise CommandError(
                f"--batch-size must be a whole number, not {batch_size!r}."
            ) from None
        if not 1 <= batch_size <= _jwt_cleanup.MAX_BATCH_SIZE:
            raise CommandError(
                f"--batch-size must be between 1 and {_jwt_cleanup.MAX_BATCH_SIZE}, "
                f"not {batch_size}."
            )
        older_than = options.get("older_than")
        grace = (
            DEFAULT_GRACE
            if older_than is None
            else parse_duration_option(older_than, "--older-than")
        )
        if grace < timedelta(0):
            raise CommandError(f"--older-than must not be negative, not {older_than!r}.")
        cutoff = now() - grace
        age = (
            f"expired or revoked more than {describe_duration(grace)} ago"
            if grace
            else "expired or revoked (no grace period)"
        )

        if options.get("dry_run"):
            sessions, refresh = _jwt_cleanup.count(cutoff)
            self.say(
                f"Would delete {counted(sessions, 'session')} "
                f"({counted(refresh, 'refresh token')}) {age}. Dry run: nothing was deleted."
            )
            return

        to_stdout = self.verbosity >= 2
        show_progress = to_stdout or (self.verbosity >= 1 and is_terminal(self.stderr))
        expected = _jwt_cleanup.count(cutoff)[0] if show_progress else 0

        def progress(batch: _jwt_cleanup.Batch) -> None:
            done = f"{batch.total_sessions}/{expected}" if expected else str(batch.total_sessions)
            line = (
                f"Batch {batch.number}: deleted {counted(batch.sessions, 'session')}, "
                f"{counted(batch.refresh_tokens, 'refresh token')} in {batch.seconds:.2f} s "
                f"({done})"
            )
            if to_stdout:
                self.stdout.write(line)
            else:
                self.stderr.write(line, style_func=lambda text: text)

        result = _jwt_cleanup.cleanup(cutoff, batch_size, progress if show_progress else None)
        self.say(
            f"Deleted {counted(result.sessions, 'session')} "
            f"({counted(result.refresh_tokens, 'refresh token')}) {age}.",
            style=self.style.SUCCESS,
        )
        if result.login_links:
            self.say(f"Deleted {counted(result.login_links, 'login link')} {age}.")

    # -- keygen ----------------------------------------------------------------------------

    def handle_keygen(self, **options: Any) -> None:
        algorithm = options.get("algorithm") or jwt_settings.ALGORITHM
        if algorithm not in ALGORITHMS:
            raise CommandError(f"Unknown algorithm {algorithm!r}; use one of {KNOWN_ALGORITHMS}.")
        material = _jwt_keygen.generate(algorithm, options.get("bits"))
        written = None
        if options.get("out"):
            written = _jwt_keygen.write_files(
                material, Path(options["out"]), force=bool(options.get("force"))
            )
        elif options.get("force"):
            raise CommandError("--force only applies with --out.")
        text = _jwt_keygen.render(material, verbosity=self.verbosity, written=written)
        if text:
            self.stdout.write(text)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that flushing it at exit raises no second error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
