"""The admin's create form: user, lifetime, refreshable, scopes, additional claims (JSON),
description.

What a lifetime and additional claims may be is decided in ``cocart_jwt.parsing``, for this
form, ``manage.py jwt`` and the API alike; the fields turn its refusals into form errors.
Choosing scopes makes a personal access token (named by its description, never refreshable,
at most ``PAT_MAX_LIFETIME``); without, the token is an administrator's (kind ``admin``).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, cast

from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..impersonation import (
    CREATE,
    issuable_users,
    may_issue_for_anyone,
    may_issue_for_others,
    refused_attempt,
)
from ..models import Token, user_is_active
from ..parsing import (
    DURATION_EXAMPLES,
    InvalidClaims,
    format_duration,
    parse_claims,
    parse_duration,
)
from ..settings import jwt_settings


class LifetimeField(forms.Field):
    """A lifetime in the grammar of ``parsing.parse_duration`` (``90m``, ``24h``, ``7d``...).

    Its longest depends on the token's kind, which the scopes decide: the form checks it."""

    default_error_messages = {
        "invalid": _("Enter a duration such as 30m, 24h, 7d or 2w."),
        "positive": _("The lifetime must be longer than zero."),
    }

    def prepare_value(self, value: Any) -> Any:
        return format_duration(value) if isinstance(value, timedelta) else value

    def to_python(self, value: Any) -> timedelta | None:
        if value in self.empty_values:
            return None
        try:
            return parse_duration(value)
        except ValueError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value is None:
            return
        if value <= timedelta(0):
            raise forms.ValidationError(self.error_messages["positive"], code="positive")


class ClaimsField(forms.CharField):
    """Additional claims: a JSON object of data, no reserved name, size-limited
    (``parsing.parse_claims``). Its refusals, translated, are this field's errors."""

    widget = forms.Textarea(
        attrs={"rows": 4, "cols": 60, "spellcheck": "false", "placeholder": '{"tenant": "acme"}'}
    )

    def to_python(self, value: Any) -> dict[str, Any]:  # type: ignore[override]
        try:
            return parse_claims(super().to_python(value))
        except InvalidClaims as refused:
            raise forms.ValidationError(
                [forms.ValidationError(message, code=refused.code) for message in refused.messages]
            ) from None

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return json.dumps(value, indent=2, ensure_ascii=False) if value else ""
        return value


TOO_LONG = _("The lifetime can be at most %(max)s (SESSION_MAX_LIFETIME).")
TOO_LONG_PERSONAL = _(
    "A personal access token (a token with scopes) lives at most %(max)s (PAT_MAX_LIFETIME)."
)
PERSONAL_REFRESHABLE = _(
    "A personal access token (a token with scopes) is never refreshable: clear one of the two."
)
PERSONAL_UNNAMED = _(
    "A personal access token (a token with scopes) needs a name: its user sees it by this "
    "description."
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

    lifetime = LifetimeField(label=_("Lifetime"))
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"), required=False, widget=forms.CheckboxSelectMultiple
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
        fields = ["user", "lifetime", "refreshable", "scopes", "claims", "description"]
        help_texts = {
            "refreshable": _(
                "Also issue a refresh token; the access token then lives "
                "ACCESS_TOKEN_LIFETIME and is renewed with it. Without, the access token "
                "lives as long as the session."
            ),
            "description": _("What the token is for, to recognise it in this list."),
        }

    def __init__(self, *args: Any, actor: Any = None, **kwargs: Any) -> None:
        """``actor`` is who issues (the admin passes the signed-in user): without one, no
        user can be chosen."""
        super().__init__(*args, **kwargs)
        self.actor = actor
        lifetime = self.fields["lifetime"]
        lifetime.initial = jwt_settings.ADMIN_TOKEN_LIFETIME
        lifetime.help_text = gettext(
            "How long the token works: %(examples)s. The default is ADMIN_TOKEN_LIFETIME."
        ) % {"examples": DURATION_EXAMPLES}
        self.fields["refreshable"].initial = False
        self.offer_scopes()
        self.limit_users()

    def offer_scopes(self) -> None:
        """The scopes of the SCOPES setting, each with its description; the field is disabled,
        saying why, when there are none."""
        field = cast(forms.MultipleChoiceField, self.fields["scopes"])
        scopes = configured_scopes()
        field.choices = [(name, f"{name}: {about}") for name, about in scopes.items()]
        if not scopes:
            field.disabled = True
            field.help_text = gettext(
                "No scopes are configured (COCART_JWT SCOPES is empty): this form makes "
                "administrators' tokens, without scopes."
            )
            return
        field.help_text = gettext(
            "Any scope makes a personal access token: its access token carries the scopes "
            "chosen and nothing else, its description is its name, it is never refreshable "
            "and lives at most %(max)s (PAT_MAX_LIFETIME). Without scopes it is an "
            "administrator's token, with all of the user's rights."
        ) % {"max": format_duration(jwt_settings.PAT_MAX_LIFETIME)}

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
        if not user_is_active(user):
            raise forms.ValidationError(
                _("This user is inactive: a token of theirs would be refused."), code="inactive"
            )
        # The last word on the user, whatever the choices let through.
        if self.actor is None or refused_attempt(self.actor, user, CREATE):
            raise forms.ValidationError(NOT_PERMITTED, code="not_permitted")
        return user

    def clean_scopes(self) -> list[str]:
        """The chosen scopes once each, in the order of SCOPES."""
        chosen = set(self.cleaned_data.get("scopes") or ())
        return [name for name in configured_scopes() if name in chosen]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        personal = bool(data.get("scopes"))
        if personal:
            self.check_personal(data)
        lifetime = data.get("lifetime")
        longest = jwt_settings.PAT_MAX_LIFETIME if personal else jwt_settings.SESSION_MAX_LIFETIME
        if lifetime is not None and lifetime > longest:
            message = TOO_LONG_PERSONAL if personal else TOO_LONG
            params = {"max": format_duration(longest)}
            self.add_error("lifetime", forms.ValidationError(message, "too_long", params))
        return data

    def check_personal(self, data: dict[str, Any]) -> None:
        """A personal access token is named and never refreshable."""
        if data.get("refreshable"):
            error = forms.ValidationError(PERSONAL_REFRESHABLE, "refreshable")
            self.add_error("refreshable", error)
        if "description" in data and not str(data["description"]).strip():
            self.add_error("description", forms.ValidationError(PERSONAL_UNNAMED, "unnamed"))

    def personal_limit_reached(self, limit: int) -> None:
        """The user holds MAX_PATS_PER_USER live personal tokens (``TooManyPersonalTokens``
        from ``Token.objects.issue``): an error on ``user``, naming the limit."""
        message = ngettext(
            "This user already holds %(limit)d live personal access token, the most "
            "MAX_PATS_PER_USER allows: revoke it first.",
            "This user already holds %(limit)d live personal access tokens, the most "
            "MAX_PATS_PER_USER allows: revoke one first.",
            limit,
        ) % {"limit": limit}
        self.add_error("user", forms.ValidationError(message, code="too_many_personal_tokens"))


def configured_scopes() -> dict[str, str]:
    """The SCOPES setting (``{name: description}``; check E019 refuses anything else)."""
    scopes = jwt_settings.SCOPES
    return scopes if isinstance(scopes, dict) else {}
