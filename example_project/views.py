from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class MeView(APIView):
    """The authenticated user, as the token names them."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses=inline_serializer(
            "Me", {"id": serializers.CharField(), "username": serializers.CharField()}
        )
    )
    def get(self, request: Request) -> Response:
        user = request.user
        return Response({"id": str(user.pk), "username": user.get_username()})
