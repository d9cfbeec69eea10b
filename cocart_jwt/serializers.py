"""Request and response shapes of the endpoints."""

from __future__ import annotations

from typing import Any, cast

from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from rest_framework import serializers
from rest_framework.utils import html

from .issued import IssuedTokens
from .models import RevokeReason, Token, TokenEvent
from .settings import jwt_settings
from .tokens import MAX_TOKEN_LENGTH

# Far above any real credential, far below anything that costs the server.
USERNAME_MAX_LENGTH = 254
PASSWORD_MAX_LENGTH = 4096
REFRESH_TOKEN_MAX_LENGTH = 512

# The request fields below also say what DRF's blank check refuses, so the OpenAPI schema
# does: drf-spectacular maps validators to minLength and pattern whatever the site's
# SPECTACULAR_SETTINGS (it states allow_blank=False only under ENFORCE_NON_BLANK_FIELDS or
# COMPONENT_SPLIT_REQUEST, both off by default). A blank value fails the blank check before
# any validator runs, so clients get the same single error as before.
NOT_BLANK = 1
# refresh_token is trimmed: " " is blank too. The characters str.strip() removes, spelled out:
# JSON Schema's "\s" (ECMA 262) is another set. A search, as a JSON Schema pattern is.
WHITESPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_ONLY_WHITESPACE = RegexValidator(rf"[^{WHITESPACE}]")
# A personal token's name: no control character (it is shown in lists, the admin, the CLI),
# and something besides white space, as one pattern the schema states.
CONTROL = r"\x00-\x1f\x7f-\x9f"
TOKEN_NAME = RegexValidator(
    rf"^[^{CONTROL}]*[^{CONTROL}{WHITESPACE}][^{CONTROL}]*\Z",
    message=_("Enter a name without control characters."),
)
TOKEN_NAME_MAX_LENGTH = 255  # Token.description
SCOPE_NAME_MAX_LENGTH = 64  # as the E019 check allows
SCOPES_MAX_ITEMS = 256


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(
        min_length=NOT_BLANK, max_length=USERNAME_MAX_LENGTH, trim_whitespace=False
    )
    password = serializers.CharField(
        min_length=NOT_BLANK,
        max_length=PASSWORD_MAX_LENGTH,
        trim_whitespace=False,
        style={"input_type": "password"},
    )


class ReauthenticateSerializer(serializers.Serializer):
    password = serializers.CharField(
        min_length=NOT_BLANK,
        max_length=PASSWORD_MAX_LENGTH,
        trim_whitespace=False,
        style={"input_type": "password"},
    )


class RefreshSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(
        min_length=NOT_BLANK,
        max_length=REFRESH_TOKEN_MAX_LENGTH,
        validators=[NOT_ONLY_WHITESPACE],
    )


class TokenRequestSerializer(serializers.Serializer):
    """The body of ``revoke/`` and ``introspect/``; their view reads each field on its own
    (``oauth_views.field_value``)."""

    token = serializers.CharField(max_length=MAX_TOKEN_LENGTH)
    token_type_hint = serializers.CharField(required=False)


class RevocationRequestSerializer(TokenRequestSerializer):
    """RFC 7009 section 2.1."""

    token = serializers.CharField(
        max_length=MAX_TOKEN_LENGTH, help_text=_("The access token or refresh token to revoke.")
    )
    token_type_hint = serializers.CharField(
        required=False,
        help_text=_(
            "`access_token` or `refresh_token`: which kind to look for first (both are "
            "tried); any other value is ignored."
        ),
    )


class IntrospectionRequestSerializer(TokenRequestSerializer):
    """RFC 7662 section 2.1."""

    token = serializers.CharField(
        max_length=MAX_TOKEN_LENGTH,
        help_text=_("The token to introspect; only an access token can be active."),
    )
    token_type_hint = serializers.CharField(
        required=False, help_text=_("Accepted and ignored (RFC 7662 section 2.1).")
    )


class IntrospectionSerializer(serializers.Serializer):
    """RFC 7662 section 2.2: ``active``, and the rest only when it is true."""

    active = serializers.BooleanField()
    sub = serializers.CharField(required=False, help_text=_("The user's primary key."))
    username = serializers.CharField(required=False)
    client_id = serializers.CharField(required=False)
    scope = serializers.CharField(
        required=False, help_text=_("A personal token's scopes, space-separated.")
    )
    token_type = serializers.CharField(required=False, help_text=_("`Bearer` or `DPoP`."))
    exp = serializers.IntegerField(required=False)
    iat = serializers.IntegerField(required=False)
    nbf = serializers.IntegerField(required=False)
    sid = serializers.CharField(required=False, help_text=_("The session of the token."))
    jti = serializers.CharField(required=False)
    iss = serializers.CharField(required=False, help_text=_("When the site sets ISSUER."))
    aud = serializers.JSONField(
        required=False, help_text=_("A string or a list of strings, when the site sets AUDIENCE.")
    )


class UserSerializer(serializers.Serializer):
    id = serializers.SerializerMethodField()
    username = serializers.SerializerMethodField()

    def get_id(self, user: Any) -> Any:
        return user.pk

    def get_username(self, user: Any) -> str:
        return str(user.get_username())


class TokenPairSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField(allow_null=True)
    token_type = serializers.SerializerMethodField()
    expires_in = serializers.IntegerField(help_text=_("Seconds until the access token expires."))
    refresh_expires_in = serializers.IntegerField(
        allow_null=True, help_text=_("Seconds until the refresh token expires.")
    )
    sid = serializers.CharField(source="session.pk")
    user = UserSerializer()

    def get_token_type(self, issued: IssuedTokens) -> str:
        return issued.token_type


class ValidateSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    user = UserSerializer()
    sid = serializers.CharField()
    expires_at = serializers.DateTimeField()


class SessionSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField()

    class Meta:
        model = Token
        fields = [
            "id",
            "description",
            "created_at",
            "last_used_at",
            "expires_at",
            "ip",
            "user_agent",
            "current",
        ]
        read_only_fields = fields

    def get_current(self, session: Token) -> bool:
        current = getattr(self.context.get("request"), "auth", None)
        return current is not None and current.pk == session.pk


class EventSerializer(serializers.ModelSerializer):
    # Declared: a read-only model field would lose allow_blank, and the schema the "".
    reason = serializers.ChoiceField(
        choices=RevokeReason.choices,
        allow_blank=True,
        read_only=True,
        help_text=_("Why the session was revoked, for a `revoked` event; empty otherwise."),
    )

    class Meta:
        model = TokenEvent
        fields = ["id", "event", "sid", "at", "ip", "user_agent", "reason"]
        read_only_fields = fields


class JWKSerializer(serializers.Serializer):
    kty = serializers.CharField()
    kid = serializers.CharField()
    alg = serializers.CharField()
    use = serializers.CharField()


class JWKSSerializer(serializers.Serializer):
    keys = JWKSerializer(many=True, help_text=_("Public keys; empty for HMAC algorithms."))


class ErrorSerializer(serializers.Serializer):
    """DRF's error shape, with the code this app adds (``invalid_token``, ``rate_limited``...)."""

    detail = serializers.CharField()
    code = serializers.CharField()


class StrictCharField(serializers.CharField):
    """Text, and only text: DRF's ``CharField`` turns a JSON number into a string, which the
    schema (``type: string``) does not allow."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (not a string, a float or a boolean, as the schema says ``integer``); in
    a form body, where every value is text, its digits."""

    def to_internal_value(self, data: Any) -> int:
        in_form = html.is_html_input(getattr(self.parent, "initial_data", None))
        if isinstance(data, bool) or not isinstance(data, str if in_form else int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class ScopeNameField(StrictCharField):
    """A scope name of the request; the OpenAPI schema lists those of the ``SCOPES`` setting
    (``cocart_jwt.schema``), read when the schema is made."""

    def __init__(self, **kwargs: Any) -> None:
        # Untrimmed: " orders:read" is no scope name, as the schema's enum says.
        super().__init__(max_length=SCOPE_NAME_MAX_LENGTH, trim_whitespace=False, **kwargs)


class PersonalTokenSerializer(serializers.ModelSerializer):
    """A personal access token as ``tokens/`` lists it: never the token itself."""

    name = serializers.CharField(source="description", read_only=True)
    scopes = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Token
        fields = ["id", "name", "scopes", "created_at", "last_used_at", "expires_at"]
        read_only_fields = fields


class NewPersonalTokenSerializer(PersonalTokenSerializer):
    """A personal access token just made: its fields, and the token itself, this once."""

    token = serializers.CharField(
        read_only=True,
        help_text=_(
            "The access token: send it as `Authorization: Bearer <token>`. Shown this once."
        ),
    )

    class Meta(PersonalTokenSerializer.Meta):
        fields = [*PersonalTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class PersonalTokenRequestSerializer(serializers.Serializer):
    """``POST tokens/``: a name, the scopes (names from the ``SCOPES`` setting), and how long
    the token lives (default 90 days, at most ``PAT_MAX_LIFETIME``)."""

    name = StrictCharField(
        min_length=NOT_BLANK,
        max_length=TOKEN_NAME_MAX_LENGTH,
        validators=[TOKEN_NAME],
        help_text=_("What the token is for, to recognise it in lists."),
    )
    scopes = serializers.ListField(
        child=ScopeNameField(),
        allow_empty=False,
        min_length=1,
        max_length=SCOPES_MAX_ITEMS,
        help_text=_("What the token may do: names from the site's SCOPES, at least one."),
    )
    expires_in = StrictIntegerField(
        required=False,
        min_value=1,
        help_text=_("Seconds the token lives: 90 days unless given, at most PAT_MAX_LIFETIME."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # For the schema's maximum; validate_expires_in refuses beyond it, saying so.
        expires_in = cast(serializers.IntegerField, self.fields["expires_in"])
        expires_in.max_value = self.longest_lifetime()

    def longest_lifetime(self) -> int:
        return int(jwt_settings.PAT_MAX_LIFETIME.total_seconds())

    def validate_scopes(self, value: list[str]) -> list[str]:
        unknown = sorted(set(value).difference(jwt_settings.SCOPES))
        if unknown:
            message = ngettext(
                "Unknown scope: %(names)s.", "Unknown scopes: %(names)s.", len(unknown)
            )
            raise serializers.ValidationError(message % {"names": ", ".join(unknown)})
        return sorted(set(value))

    def validate_expires_in(self, value: int) -> int:
        longest = self.longest_lifetime()
        if value > longest:
            raise serializers.ValidationError(
                _("At most %(seconds)d seconds (PAT_MAX_LIFETIME).") % {"seconds": longest}
            )
        return value
