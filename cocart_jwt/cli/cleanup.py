"""``manage.py jwt cleanup``: delete dead sessions in small batches, each its own transaction.

The options, the dry run and the progress lines; the deleting is ``cocart_jwt.cleanup``'s.
A session may go once it expired, or was revoked, longer ago than the grace period.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import CommandError

from cocart_jwt.cleanup import (
    DEFAULT_BATCH_SIZE,
    Batch,
    cleanup,
    count,
    count_events,
    events_cutoff,
)
from cocart_jwt.parsing import parse_duration
from cocart_jwt.settings import jwt_settings
from cocart_jwt.utils import now

from .output import Console, counted, describe_duration, is_terminal

MAX_BATCH_SIZE = 10000
DEFAULT_GRACE = timedelta(days=7)


def run_cleanup(console: Console, options: dict[str, Any]) -> None:
    batch_size = batch_size_option(options.get("batch_size"))
    grace = grace_option(options.get("older_than"))
    cutoff = now() - grace
    age = (
        f"expired or revoked more than {describe_duration(grace)} ago"
        if grace
        else "expired or revoked (no grace period)"
    )
    if options.get("dry_run"):
        sessions, refresh = count(cutoff)
        console.say(
            f"Would delete {counted(sessions, 'session')} "
            f"({counted(refresh, 'refresh token')}) {age}. Dry run: nothing was deleted."
        )
        events = count_events(events_cutoff())
        if events:
            console.say(f"Would delete {counted(events, 'security event')} {events_age()}.")
        return
    result = cleanup(cutoff, batch_size, progress_reporter(console, cutoff))
    console.say(
        f"Deleted {counted(result.sessions, 'session')} "
        f"({counted(result.refresh_tokens, 'refresh token')}) {age}.",
        style=console.style.SUCCESS,
    )
    if result.login_links:
        console.say(f"Deleted {counted(result.login_links, 'login link')} {age}.")
    if result.events:
        console.say(f"Deleted {counted(result.events, 'security event')} {events_age()}.")


def events_age() -> str:
    return f"older than {describe_duration(jwt_settings.EVENT_RETENTION)} (EVENT_RETENTION)"


def batch_size_option(value: Any) -> int:
    if value is None:
        return DEFAULT_BATCH_SIZE
    try:
        batch_size = int(value)
    except (TypeError, ValueError):
        raise CommandError(f"--batch-size must be a whole number, not {value!r}.") from None
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise CommandError(
            f"--batch-size must be between 1 and {MAX_BATCH_SIZE}, not {batch_size}."
        )
    return batch_size


def grace_option(value: Any) -> timedelta:
    """``--older-than``: zero is "no grace period"; only a negative one is refused."""
    if value is None:
        return DEFAULT_GRACE
    try:
        grace = parse_duration(value)
    except ValueError as exc:
        raise CommandError(f"--older-than: {exc}") from None
    if grace < timedelta(0):
        raise CommandError(f"--older-than must not be negative, not {value!r}.")
    return grace


def progress_reporter(console: Console, cutoff: datetime) -> Callable[[Batch], None] | None:
    """A line per batch: on stdout at verbosity 2, on stderr when it is a terminal (cron's
    mail then holds only the total), else none."""
    to_stdout = console.verbosity >= 2
    if not (to_stdout or (console.verbosity >= 1 and is_terminal(console.stderr))):
        return None
    expected = count(cutoff)[0]

    def report(batch: Batch) -> None:
        done = f"{batch.total_sessions}/{expected}" if expected else str(batch.total_sessions)
        line = (
            f"Batch {batch.number}: deleted {counted(batch.sessions, 'session')}, "
            f"{counted(batch.refresh_tokens, 'refresh token')} in {batch.seconds:.2f} s "
            f"({done})"
        )
        if to_stdout:
            console.stdout.write(line)
        else:
            console.stderr.write(line, style_func=lambda text: text)

    return report
