"""The admin's create form: user, lifetime, refreshable, additional claims (JSON), description.

What a lifetime and additional claims may be is decided in ``cocart_jwt.parsing``, for this
form, ``manage.py jwt`` and the API alike; the fields turn its refusals into form errors.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, cast

from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext
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
    """A lifetime in the grammar of ``parsing.parse_duration`` (``90m``, ``24h``, ``7d``...)."""

    default_error_messages = {
        "invalid": _("Enter a duration such as 30m, 24h, 7d or 2w."),
        "positive": _("The lifetime must be longer than zero."),
        "too_long": _("The lifetime can be at most %(max)s (SESSION_MAX_LIFETIME)."),
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
        maximum = jwt_settings.SESSION_MAX_LIFETIME
        if value > maximum:
            raise forms.ValidationError(
                self.error_messages["too_long"],
                code="too_long",
                params={"max": format_duration(maximum)},
            )


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
        if not user_is_active(user):
            raise forms.ValidationError(
                _("This user is inactive: a token of theirs would be refused."), code="inactive"
            )
        # The last word on the user, whatever the choices let through.
        if self.actor is None or refused_attempt(self.actor, user, CREATE):
            raise forms.ValidationError(NOT_PERMITTED, code="not_permitted")
        return user
