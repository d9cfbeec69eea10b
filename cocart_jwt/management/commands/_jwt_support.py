"""Helpers of ``manage.py jwt``: durations, user lookup, how sessions are shown, the prompt.

Django does not load modules of ``management/commands`` whose name starts with ``_`` as
commands, so this one only serves ``jwt.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_duration

from cocart_jwt.tokens import refused_claims

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

    from cocart_jwt.models import Token

MAX_CLAIMS_JSON = 4096
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SIMPLE_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")
DURATION_HELP = "3600 (seconds), 90s, 15m, 24h, 7d, 2w, or ISO 8601 such as P1D or PT15M"

# Table columns of ``jwt list``: (title, width). Wider values push the row; ids never shrink.
COLUMNS = (
    ("ID", 22),
    ("USER", 16),
    ("DESCRIPTION", 24),
    ("CREATED", 16),
    ("EXPIRES", 16),
    ("LAST USED", 16),
    ("IP", 15),
    ("STATUS", 7),
)
TRUNCATED_COLUMNS = frozenset({"USER", "DESCRIPTION"})


def parse_duration_option(value: Any, option: str) -> timedelta:
    """A duration given to ``option``, or a ``CommandError`` naming the option."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    text = str(value).strip()
    result: timedelta | None = None
    try:
        match = SIMPLE_DURATION.match(text)
        if match:
            seconds = float(match.group(1)) * DURATION_UNITS[match.group(2)]
            result = timedelta(seconds=seconds)
        elif text:
            result = parse_duration(text)
    except (ValueError, OverflowError):
        result = None
    if result is None:
        raise CommandError(f"{option}: {value!r} is not a duration; use {DURATION_HELP}.")
    return result


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


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def session_data(session: Token) -> dict[str, Any]:
    """A session as JSON-able data; it holds no token of any kind."""
    return {
        "id": session.pk,
        "user": {"id": session.user.pk, "username": str(session.user.get_username())},
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


def summarize_ids(ids: Iterable[str], total: int, limit: int | None) -> str:
    """``a, b, c`` or ``a, b, ... and 998 more`` when there are more than ``limit``."""
    shown = list(ids)
    text = ", ".join(shown)
    if limit is not None and total > len(shown):
        text += f", ... and {total - len(shown)} more"
    return text


def confirm(stdin: TextIO, stdout: Any, question: str) -> bool:
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


def parse_claims(raw: Any) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        claims = raw
    else:
        if len(str(raw)) > MAX_CLAIMS_JSON:
            raise CommandError(f"--claims is longer than {MAX_CLAIMS_JSON} characters.")
        try:
            claims = json.loads(str(raw))
        except (ValueError, RecursionError) as exc:
            raise CommandError(f"--claims is not valid JSON: {exc}.") from None
    if not isinstance(claims, dict):
        raise CommandError('--claims must be a JSON object, such as \'{"tenant": "acme"}\'.')
    problems = reserved_claim_problems(claims)
    if problems:
        raise CommandError(" ".join(problems))
    return claims


def reserved_claim_problems(claims: dict[str, Any]) -> list[str]:
    """What is wrong with the reserved names in ``claims``, one sentence per kind."""
    set_by_app, authority = refused_claims(claims)
    problems = []
    if set_by_app:
        problems.append(
            f"--claims cannot set the registered claim{'s' if len(set_by_app) > 1 else ''} "
            f"{', '.join(set_by_app)}: cocart_jwt sets {'them' if len(set_by_app) > 1 else 'it'}"
            " on every token."
        )
    if authority:
        problems.append(
            f"--claims cannot set {', '.join(authority)}: resource servers read "
            f"{'them' if len(authority) > 1 else 'it'} as what the token may do, which client "
            "holds it, how the user signed in or what kind of token it is. Additional claims "
            "are data and grant nothing."
        )
    return problems


def token_pair(issued: Any) -> dict[str, Any]:
    """The login endpoint's token pair, for ``create --format json``."""
    return {
        "access_token": issued.access_token,
        "refresh_token": issued.refresh_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "refresh_expires_in": issued.refresh_expires_in,
        "sid": issued.session.pk,
        "user": {"id": issued.user.pk, "username": str(issued.user.get_username())},
    }


def describe_duration(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            amount = seconds // size
            return counted(amount, unit)
    return counted(seconds, "second")
