"""The admin's create form: user, lifetime, refreshable, additional claims (JSON), description."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any, cast

from django import forms
from django.contrib.auth import get_user_model
from django.utils.dateparse import parse_duration
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .impersonation import (
    CREATE,
    issuable_users,
    may_issue_for_anyone,
    may_issue_for_others,
    refused_attempt,
)
from .models import Token
from .settings import jwt_settings
from .tokens import refused_claims

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


def quoted(names: list[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def reserved_claim_errors(claims: dict[str, Any]) -> list[forms.ValidationError]:
    """One error per kind of reserved name in ``claims``, naming them and saying why."""
    set_by_app, authority = refused_claims(claims)
    errors = []
    if set_by_app:
        errors.append(
            forms.ValidationError(
                ngettext(
                    "%(names)s is set by cocart_jwt on every token and cannot be given here.",
                    "%(names)s are set by cocart_jwt on every token and cannot be given here.",
                    len(set_by_app),
                )
                % {"names": quoted(set_by_app)},
                code="reserved",
            )
        )
    if authority:
        errors.append(
            forms.ValidationError(
                ngettext(
                    "%(names)s cannot be given here: resource servers read it as what the "
                    "token may do, which client holds it, how the user signed in or what kind "
                    "of token it is. Additional claims are data and grant nothing.",
                    "%(names)s cannot be given here: resource servers read them as what the "
                    "token may do, which client holds it, how the user signed in or what kind "
                    "of token it is. Additional claims are data and grant nothing.",
                    len(authority),
                )
                % {"names": quoted(authority)},
                code="authority",
            )
        )
    return errors


class ClaimsField(forms.CharField):
    """Additional claims: a JSON object of data, no reserved name (tokens.py), size-limited."""

    widget = forms.Textarea(
        attrs={"rows": 4, "cols": 60, "spellcheck": "false", "placeholder": '{"tenant": "acme"}'}
    )
    default_error_messages = {
        "too_long": _("The claims are too long: at most %(max)d characters of JSON."),
        "invalid": _("This is not valid JSON: %(error)s"),
        "not_object": _('Enter a JSON object, such as {"tenant": "acme"}, not %(kind)s.'),
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
        refused = reserved_claim_errors(value)
        if refused:
            raise forms.ValidationError(refused)
        if len(json.dumps(value, separators=(",", ":"))) > MAX_CLAIMS_LENGTH:
            raise self.too_long()

    def too_long(self) -> forms.ValidationError:
        return forms.ValidationError(
            self.error_messages["too_long"], code="too_long", params={"max": MAX_CLAIMS_LENGTH}
        )


NOT_PERMITTED = _(
    "You may not issue a token for this user. You may issue for yourself; for another user "
    "only with the permission “Can issue tokens and login links for other users”, and only "
    "for a user who is neither staff nor superuser and holds no permission you lack."
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
            'A JSON object added to the token as data, such as {"tenant": "acme"}; it '
            "grants nothing. The claims cocart_jwt sets (iss, sub, aud, iat, nbf, exp, jti, "
            "sid) and those that carry authority or login facts (scope, scp, client_id, azp, "
            "act, may_act, cnf, auth_time, acr, amr, nonce, typ, token_use) cannot be set."
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

    # Who issues: the admin binds the signed-in user (TokenAdmin.get_form); others pass
    # ``actor=``. Without an actor no user can be chosen.
    actor: Any = None

    def __init__(self, *args: Any, actor: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if actor is not None:
            self.actor = actor
        self.fields["lifetime"].initial = jwt_settings.ADMIN_TOKEN_LIFETIME
        self.fields["refreshable"].initial = False
        self.limit_users()

    def limit_users(self) -> None:
        """Offer only the users the actor may issue for; the choices work without JavaScript."""
        field = cast(forms.ModelChoiceField, self.fields["user"])
        if self.actor is None:
            field.queryset = get_user_model()._default_manager.none()
        else:
            field.queryset = issuable_users(self.actor, CREATE)
            if not may_issue_for_others(self.actor, CREATE):
                field.initial = self.actor.pk  # the only choice: chosen already
        if self.actor is None or not may_issue_for_anyone(self.actor, CREATE):
            # A refused user is not among the choices: say why, not "Select a valid choice".
            field.error_messages = {**field.error_messages, "invalid_choice": NOT_PERMITTED}

    def clean_user(self) -> Any:
        user = self.cleaned_data.get("user")
        if user is None:
            return user
        if not getattr(user, "is_active", True):
            raise forms.ValidationError(
                _("This user is inactive: a token of theirs would be refused."), code="inactive"
            )
        # The last word on the user, whatever the choices let through.
        if self.actor is None or refused_attempt(self.actor, user, CREATE):
            raise forms.ValidationError(NOT_PERMITTED, code="not_permitted")
        return user
