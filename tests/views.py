from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class MeView(APIView):
    """Who the token says the caller is, and which session (``request.auth`` is the Token)."""

    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        user = request.user
        return Response(
            {
                "id": str(user.pk),
                "username": user.get_username(),
                "sid": request.auth.pk,
            }
        )


me = MeView.as_view()
