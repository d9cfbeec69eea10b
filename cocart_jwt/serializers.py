"""Request and response shapes of the endpoints."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from .issued import IssuedTokens
from .models import RevokeReason, Token, TokenEvent
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
