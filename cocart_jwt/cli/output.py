"""How ``manage.py jwt`` talks to the operator: tables, JSON, times, counts and the prompt.

Whatever it prints from a session (descriptions, user agents, claims) came from a client, so
it goes through ``printable`` or ``to_json``: no escape sequence reaches the terminal.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TextIO

from django.core.management.base import OutputWrapper
from django.core.management.color import Style
from django.utils import timezone

from cocart_jwt.models import Kind, Token

# Table columns of ``jwt list``: (title, width). Wider values push the row; ids never shrink.
COLUMNS = (
    ("ID", 22),
    ("USER", 16),
    ("KIND", 8),
    ("SCOPES", 20),
    ("DESCRIPTION", 24),
    ("CREATED", 16),
    ("EXPIRES", 16),
    ("LAST USED", 16),
    ("IP", 15),
    ("STATUS", 7),
)
TRUNCATED_COLUMNS = frozenset({"USER", "SCOPES", "DESCRIPTION"})


@dataclass(frozen=True)
class Console:
    """Where a subcommand writes: the command's stdout and stderr, its styles, its verbosity."""

    stdout: OutputWrapper
    stderr: OutputWrapper
    style: Style
    verbosity: int = 1

    def write(self, message: str, style: Callable[[str], str] | None = None) -> None:
        """A line on stdout, whatever the verbosity: what the subcommand is run for."""
        self.stdout.write(message, style_func=style)

    def say(self, message: str, level: int = 1, style: Callable[[str], str] | None = None) -> None:
        """A line on stdout from verbosity ``level`` on: what the operator may want to know."""
        if self.verbosity >= level:
            self.stdout.write(message, style_func=style)

    def warn(self, message: str) -> None:
        if self.verbosity >= 1:
            self.stderr.write(message, style_func=self.style.WARNING)


def local_minute(value: datetime | None) -> str:
    """A time for the table, in the current time zone, to the minute; "-" for none."""
    if value is None:
        return "-"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")


def local_time(value: datetime | None) -> str:
    """A time for ``view``, in the current time zone, to the second, with its zone."""
    if value is None:
        return "-"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def counted(number: int, noun: str) -> str:
    """``1 session``, ``2 sessions``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def describe_duration(duration: timedelta) -> str:
    """``1 week``, ``2 days``, ``90 seconds``: the largest unit that divides it."""
    seconds = int(duration.total_seconds())
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            return counted(seconds // size, unit)
    return counted(seconds, "second")


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def session_data(session: Token) -> dict[str, Any]:
    """A session as JSON-able data; it holds no token of any kind."""
    return {
        "id": session.pk,
        "user": {"id": session.user.pk, "username": str(session.user.get_username())},
        "kind": session.kind,
        "scopes": session.scopes,
        "description": session.description,
        "status": str(session.status),
        "created_at": iso(session.created_at),
        "expires_at": iso(session.expires_at),
        "last_used_at": iso(session.last_used_at),
        "revoked_at": iso(session.revoked_at),
        "revoke_reason": session.revoke_reason or None,
        "ip": session.ip,
        "user_agent": session.user_agent,
        "refreshable": session.refreshable,
        "claims": session.claims,
    }


def token_pair(issued: Any) -> dict[str, Any]:
    """The login endpoint's token pair, for ``create --format json``; a personal access token's
    with its ``scope`` too, as an OAuth token response has it (RFC 6749 section 5.1)."""
    pair = {
        "access_token": issued.access_token,
        "refresh_token": issued.refresh_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "refresh_expires_in": issued.refresh_expires_in,
        "sid": issued.session.pk,
        "user": {"id": issued.user.pk, "username": str(issued.user.get_username())},
    }
    if issued.session.kind == Kind.PERSONAL:
        pair["scope"] = " ".join(issued.session.scopes)
    return pair


def to_json(value: Any, *, indent: int | None = 2) -> str:
    """JSON with every non-ASCII character escaped: no terminal control sequence gets out."""
    return json.dumps(value, indent=indent, default=str, ensure_ascii=True)


def printable(value: str) -> str:
    """``value`` with control characters escaped, as ``\\x1b``: user agents, descriptions and
    token contents come from clients, and must not drive the operator's terminal."""
    if value.isprintable():
        return value
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in value
    )


def _fit(value: str, width: int, truncate: bool) -> str:
    value = printable(" ".join(value.split()))  # one line per row
    if truncate and len(value) > width:
        value = value[: width - 1] + "…"
    return value.ljust(width)


def table_header() -> str:
    return "  ".join(title.ljust(width) for title, width in COLUMNS).rstrip()


def table_row(session: Token) -> str:
    cells = (
        session.pk,
        str(session.user.get_username()),
        session.kind,
        scope_text(session),
        session.description or "-",
        local_minute(session.created_at),
        local_minute(session.expires_at),
        local_minute(session.last_used_at),
        session.ip or "-",
        str(session.status),
    )
    return "  ".join(
        _fit(cell, width, title in TRUNCATED_COLUMNS)
        for cell, (title, width) in zip(cells, COLUMNS, strict=True)
    ).rstrip()


def scope_text(session: Token) -> str:
    """A personal access token's scopes, space-separated; "-" for other sessions."""
    return " ".join(session.scopes) if session.kind == Kind.PERSONAL and session.scopes else "-"


def summarize_ids(ids: Iterable[str], total: int, limit: int | None) -> str:
    """``a, b, c`` or ``a, b, ... and 998 more`` when there are more than ``limit``."""
    shown = list(ids)
    text = ", ".join(shown)
    if limit is not None and total > len(shown):
        text += f", ... and {total - len(shown)} more"
    return text


def confirm(stdin: TextIO, stdout: OutputWrapper, question: str) -> bool:
    """Ask ``question [y/N]`` on the terminal; only "y" or "yes" is a yes (EOF is a no)."""
    stdout.write(f"{question} [y/N] ", ending="")
    stdout.flush()
    try:
        answer = stdin.readline()
    except KeyboardInterrupt:
        stdout.write("")
        return False
    return answer.strip().lower() in ("y", "yes")


def is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):
        return False


def silence_stdout() -> None:
    """Point stdout at /dev/null so that flushing it at exit raises no second error (after the
    reader went away: ``jwt list | head``)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
