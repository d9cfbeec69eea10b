from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cocart_jwt.schema import INSUFFICIENT_SCOPE, error_headers, error_responses


class MeView(APIView):
    """The authenticated user, as the token names them."""

    required_scopes = ["profile:read"]  # for a personal access token (settings.py: HasScope)

    @extend_schema(
        responses={
            200: inline_serializer(
                "Me", {"id": serializers.IntegerField(), "username": serializers.CharField()}
            ),
            **error_responses(401, 403, descriptions={403: INSUFFICIENT_SCOPE}),
        },
        parameters=error_headers(401),
    )
    def get(self, request: Request) -> Response:
        user = request.user
        # The id as the token pair's "user" gives it: the integer primary key.
        return Response({"id": user.pk, "username": user.get_username()})
