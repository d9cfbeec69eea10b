"""The admin's create form: user, lifetime, refreshable, additional claims (JSON), description."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from django import forms
from django.utils.dateparse import parse_duration
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .models import Token
from .settings import jwt_settings
from .tokens import RESERVED_CLAIMS

# The claims as they go into the token (compact JSON, non-ASCII escaped), at most this long:
# the access token then stays far below the 8 KiB the verifier accepts.
MAX_CLAIMS_LENGTH = 4096
# Input longer than this is refused before it is parsed.
MAX_CLAIMS_INPUT = 4 * MAX_CLAIMS_LENGTH

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SIMPLE_DURATION = re.compile(r"^(\d{1,9})\s*([smhdw]?)$", re.IGNORECASE)


def format_lifetime(value: timedelta) -> str:
    """``timedelta(hours=24)`` -> ``"24h"``, ``timedelta(days=7)`` -> ``"7d"``."""
    total = value.total_seconds()
    if total <= 0 or total != int(total):
        return str(value)
    seconds = int(total)
    for unit in ("d", "h", "m"):
        if seconds % UNITS[unit] == 0 and (unit != "d" or seconds >= 2 * UNITS["d"]):
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


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


class LifetimeField(forms.Field):
    """A duration written ``90m``, ``24h``, ``7d``, ``2w``, seconds, or Django's/ISO 8601 form."""

    default_error_messages = {
        "invalid": _("Enter a duration such as 30m, 24h, 7d or 2w."),
        "positive": _("The lifetime must be longer than zero."),
        "too_long": _("The lifetime can be at most %(max)s (SESSION_MAX_LIFETIME)."),
    }

    def prepare_value(self, value: Any) -> Any:
        return format_lifetime(value) if isinstance(value, timedelta) else value

    def to_python(self, value: Any) -> timedelta | None:
        if value in self.empty_values:
            return None
        if isinstance(value, timedelta):
            return value
        text = str(value).strip()
        match = SIMPLE_DURATION.match(text)
        try:
            if match:
                result: timedelta | None = timedelta(
                    seconds=int(match.group(1)) * UNITS[(match.group(2) or "s").lower()]
                )
            else:
                result = parse_duration(text)
        except (ValueError, OverflowError):
            result = None
        if result is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return result

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value is None:
            return
        if value <= timedelta(0):
            raise forms.ValidationError(self.error_messages["positive"], code="positive")
        maximum = jwt_settings.SESSION_MAX_LIFETIME
        if value > maximum:
            raise forms.ValidationError(
                self.error_messages["too_long"],
                code="too_long",
                params={"max": format_lifetime(maximum)},
            )


def object_kind(value: Any) -> Any:
    if isinstance(value, list):
        return _("a list")
    if isinstance(value, str):
        return _("a string")
    return _("a single value")


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class ClaimsField(forms.CharField):
    """Additional claims: a JSON object, without the claims cocart_jwt sets, size-limited."""

    widget = forms.Textarea(
        attrs={"rows": 4, "cols": 60, "spellcheck": "false", "placeholder": '{"scope": "read"}'}
    )
    default_error_messages = {
        "too_long": _("The claims are too long: at most %(max)d characters of JSON."),
        "invalid": _("This is not valid JSON: %(error)s"),
        "not_object": _('Enter a JSON object, such as {"scope": "read"}, not %(kind)s.'),
        "nul": _("The claims cannot contain the NUL character (\\u0000)."),
    }

    def to_python(self, value: Any) -> dict[str, Any]:  # type: ignore[override]
        text = super().to_python(value)
        if not text:
            return {}
        if len(text) > MAX_CLAIMS_INPUT:
            raise self.too_long()
        try:
            claims = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise self.too_long() from None
        except ValueError as exc:
            raise forms.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"error": exc}
            ) from None
        if not isinstance(claims, dict):
            kind = object_kind(claims)
            raise forms.ValidationError(
                self.error_messages["not_object"], code="not_object", params={"kind": kind}
            )
        return claims

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return json.dumps(value, indent=2, ensure_ascii=False) if value else ""
        return value

    def validate(self, value: Any) -> None:
        super().validate(value)
        if has_nul(value):
            raise forms.ValidationError(self.error_messages["nul"], code="nul")
        reserved = sorted(set(value) & RESERVED_CLAIMS)
        if reserved:
            raise forms.ValidationError(
                ngettext(
                    "%(names)s is set by cocart_jwt on every token and cannot be given here.",
                    "%(names)s are set by cocart_jwt on every token and cannot be given here.",
                    len(reserved),
                )
                % {"names": ", ".join(f'"{name}"' for name in reserved)},
                code="reserved",
            )
        if len(json.dumps(value, separators=(",", ":"))) > MAX_CLAIMS_LENGTH:
            raise self.too_long()

    def too_long(self) -> forms.ValidationError:
        return forms.ValidationError(
            self.error_messages["too_long"], code="too_long", params={"max": MAX_CLAIMS_LENGTH}
        )


class TokenCreateForm(forms.ModelForm):
    """The admin's add form. It saves nothing itself: the admin issues through
    ``Token.objects.issue`` with the cleaned data.
    """

    lifetime = LifetimeField(
        label=_("Lifetime"),
        help_text=_(
            "How long the token works: 30m, 24h, 7d, 2w (or seconds). "
            "The default is ADMIN_TOKEN_LIFETIME."
        ),
    )
    claims = ClaimsField(
        label=_("Additional claims"),
        required=False,
        help_text=_(
            'A JSON object added to the token, such as {"scope": "read"}. '
            "The registered claims (iss, sub, aud, iat, nbf, exp, jti, sid) cannot be set."
        ),
    )

    class Meta:
        model = Token
        fields = ["user", "lifetime", "refreshable", "claims", "description"]
        help_texts = {
            "refreshable": _(
                "Also issue a refresh token; the access token then lives "
                "ACCESS_TOKEN_LIFETIME and is renewed with it. Without, the access token "
                "lives as long as the session."
            ),
            "description": _("What the token is for, to recognise it in this list."),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["lifetime"].initial = jwt_settings.ADMIN_TOKEN_LIFETIME
        self.fields["refreshable"].initial = False

    def clean_user(self) -> Any:
        user = self.cleaned_data.get("user")
        if user is not None and not getattr(user, "is_active", True):
            raise forms.ValidationError(
                _("This user is inactive: a token of theirs would be refused."), code="inactive"
            )
        return user
