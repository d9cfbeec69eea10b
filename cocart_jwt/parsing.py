"""What people type for a lifetime or for additional claims, read one way everywhere.

The admin's create form, ``manage.py jwt`` and the API take the same lifetimes and the same
claims: one grammar and one check here, so a value one of them accepts none of them refuses.

Only the syntax is decided here. Whether a lifetime may be zero, negative or longer than a
maximum is the caller's business: the form refuses one past SESSION_MAX_LIFETIME, ``jwt create``
caps it with a warning, ``jwt cleanup --older-than 0`` means "no grace period".
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils.dateparse import parse_duration as parse_django_duration
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .tokens import refused_claims

# -- durations ---------------------------------------------------------------------------------

DURATION_EXAMPLES = (
    "3600 (seconds), 90s, 15m, 1.5h, 24h, 7d, 2w, 01:30:00, or ISO 8601 such as P1D or PT15M"
)
# Longer input is refused before any parsing: no lifetime needs more, and the number it holds
# could not overflow anything later.
MAX_DURATION_INPUT = 64
UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# A number of seconds, or a number with a unit; a space may separate them ("15 m").
NUMBER_WITH_UNIT = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)", re.IGNORECASE | re.ASCII)


def parse_duration(value: str | timedelta | int | float) -> timedelta:
    """A lifetime as typed: ``3600``, ``90s``, ``15m``, ``1.5h``, ``24H``, ``7 d``, ``2w``, or
    Django's forms (``01:30:00``, ``1 02:00:00``, ISO 8601 ``P1D``, ``PT15M``).

    Raises ``ValueError`` naming the accepted forms, never another exception, whatever the
    input: a number too large for a ``timedelta`` is refused like a misspelt one.
    """
    if isinstance(value, timedelta):
        return value
    text = duration_text(value)
    try:
        result = parse_number_with_unit(text)
        if result is None:
            result = parse_django_duration(text)
    except (ValueError, OverflowError, ArithmeticError):
        result = None
    if result is None:
        raise ValueError(f"{text!r} is not a duration; use {DURATION_EXAMPLES}.")
    return result


def duration_text(value: Any) -> str:
    """The text of ``value``, refused when it cannot be a lifetime at all."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{value!r} is not a duration; use {DURATION_EXAMPLES}.")
    text = str(value).strip()
    if len(text) > MAX_DURATION_INPUT:
        raise ValueError(
            f"A duration is at most {MAX_DURATION_INPUT} characters; use {DURATION_EXAMPLES}."
        )
    if not text or not text.isascii():
        # Nothing is no lifetime (Django's parser reads it as zero); nor are other digits
        # (Arabic-Indic, full-width) and look-alike letters.
        raise ValueError(f"{text!r} is not a duration; use {DURATION_EXAMPLES}.")
    return text


def parse_number_with_unit(text: str) -> timedelta | None:
    """``90s``, ``1.5h``, ``3600``: exact to the microsecond (decimal, not float, arithmetic)."""
    match = NUMBER_WITH_UNIT.fullmatch(text)
    if match is None:
        return None
    number, unit = match.groups()
    seconds = Decimal(number) * UNIT_SECONDS[unit.lower()]
    return timedelta(microseconds=int((seconds * 1_000_000).to_integral_value()))


def format_duration(value: timedelta) -> str:
    """``timedelta(hours=24)`` -> ``"24h"``, ``timedelta(days=7)`` -> ``"7d"``; what it returns
    ``parse_duration`` reads back to the same value."""
    total = value.total_seconds()
    if total <= 0 or total != int(total):
        return str(value)
    seconds = int(total)
    for unit in ("d", "h", "m"):
        # 24h reads better than 1d for the default ADMIN_TOKEN_LIFETIME.
        if seconds % UNIT_SECONDS[unit] == 0 and (unit != "d" or seconds >= 2 * 86400):
            return f"{seconds // UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


# -- additional claims -------------------------------------------------------------------------

# The claims as they go into the token (compact JSON, non-ASCII escaped), at most this long:
# the access token then stays far below the 8 KiB the verifier accepts.
MAX_CLAIMS_LENGTH = 4096
# Input longer than this is refused before it is parsed.
MAX_CLAIMS_INPUT = 4 * MAX_CLAIMS_LENGTH


class InvalidClaims(ValueError):
    """Refused additional claims: ``messages`` holds one sentence per problem (one per kind of
    reserved name), ``code`` says which check refused them, for a form's ``ValidationError``."""

    def __init__(self, messages: list[str], code: str) -> None:
        super().__init__(" ".join(messages))
        self.messages = messages
        self.code = code


def parse_claims(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    """Additional claims as typed (JSON text) or given (a dict): a JSON object of data.

    Refused, with ``InvalidClaims`` (a ``ValueError``): input over ``MAX_CLAIMS_INPUT``
    characters, anything but a JSON object, NaN and Infinity, a NUL character (PostgreSQL
    refuses it), a reserved name (``reserved_claim_problems``), and claims longer than
    ``MAX_CLAIMS_LENGTH`` as they go into the token. No text at all is no claims.
    """
    if raw is None:
        return {}
    if isinstance(raw, dict):
        claims = raw
    else:
        text = str(raw).strip()
        if not text:
            return {}
        claims = load_claims(text)
    check_claims(claims)
    return claims


def load_claims(text: str) -> dict[str, Any]:
    if len(text) > MAX_CLAIMS_INPUT:
        raise too_long()
    try:
        claims = json.loads(text, parse_constant=refuse_constant)
    except RecursionError:
        raise too_long() from None
    except ValueError as exc:
        raise InvalidClaims(
            [_("This is not valid JSON: %(error)s") % {"error": exc}], "invalid"
        ) from None
    if not isinstance(claims, dict):
        message = _('Enter a JSON object, such as {"tenant": "acme"}, not %(kind)s.')
        raise InvalidClaims([message % {"kind": kind_of(claims)}], "not_object")
    return claims


def check_claims(claims: dict[str, Any]) -> None:
    if has_nul(claims):
        raise InvalidClaims([_("The claims cannot contain the NUL character (\\u0000).")], "nul")
    problems = reserved_claim_problems(claims)
    if problems:
        raise InvalidClaims(problems, "reserved")
    try:
        compact = json.dumps(claims, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        raise too_long() from None
    except (TypeError, ValueError) as exc:
        raise InvalidClaims(
            [_("This is not valid JSON: %(error)s") % {"error": exc}], "invalid"
        ) from None
    if len(compact) > MAX_CLAIMS_LENGTH:
        raise too_long()


def too_long() -> InvalidClaims:
    message = _("The claims are too long: at most %(max)d characters of JSON.")
    return InvalidClaims([message % {"max": MAX_CLAIMS_LENGTH}], "too_long")


def refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def kind_of(value: Any) -> str:
    if isinstance(value, list):
        return _("a list")
    if isinstance(value, str):
        return _("a string")
    return _("a single value")


def has_nul(value: Any) -> bool:
    """Whether a NUL character is in any key or string of parsed JSON (PostgreSQL refuses it)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def reserved_claim_problems(claims: dict[str, Any]) -> list[str]:
    """One sentence per kind of reserved name in ``claims``, naming them and saying why."""
    set_by_app, authority = refused_claims(claims)
    problems = []
    if set_by_app:
        problems.append(
            ngettext(
                "%(names)s is set by cocart_jwt on every token and cannot be given here.",
                "%(names)s are set by cocart_jwt on every token and cannot be given here.",
                len(set_by_app),
            )
            % {"names": quoted(set_by_app)}
        )
    if authority:
        problems.append(
            ngettext(
                "%(names)s cannot be given here: resource servers read it as what the "
                "token may do, which client holds it, how the user signed in or what kind "
                "of token it is. Additional claims are data and grant nothing.",
                "%(names)s cannot be given here: resource servers read them as what the "
                "token may do, which client holds it, how the user signed in or what kind "
                "of token it is. Additional claims are data and grant nothing.",
                len(authority),
            )
            % {"names": quoted(authority)}
        )
    return problems


def quoted(names: list[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)
