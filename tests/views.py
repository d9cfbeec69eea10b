from django.http import HttpRequest, HttpResponse
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cocart_jwt.authentication import JWTAuthentication
from cocart_jwt.permissions import HasScope, RecentLogin


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


class RecentLoginView(APIView):
    """A step-up view (``RecentLogin``, max_age from REAUTH_MAX_AGE)."""

    permission_classes = [RecentLogin]

    def post(self, request: Request) -> Response:
        return Response({"sid": request.auth.pk})


class LastMinuteLogin(RecentLogin):
    max_age = 60


class LastMinuteView(RecentLoginView):
    permission_classes = [LastMinuteLogin]


class SessionOrTokenView(RecentLoginView):
    """Django's session first: a signed-in browser is authenticated without any token."""

    authentication_classes = [SessionAuthentication, JWTAuthentication]


recent = RecentLoginView.as_view()
last_minute = LastMinuteView.as_view()
session_or_token = SessionOrTokenView.as_view()


class ScopedView(APIView):
    """``HasScope`` views: what a personal access token needs is in ``required_scopes``."""

    permission_classes = [IsAuthenticated, HasScope]
    required_scopes: list[str] = []

    def get(self, request: Request) -> Response:
        return Response({"sid": request.auth.pk})


class UnnamedScopesView(APIView):
    """``HasScope`` on a view that does not have ``required_scopes`` at all."""

    permission_classes = [IsAuthenticated, HasScope]

    def get(self, request: Request) -> Response:
        return Response({"sid": request.auth.pk})


class OrdersReadView(ScopedView):
    required_scopes = ["orders:read"]


class CartWriteView(ScopedView):
    required_scopes = ["cart:write"]


class BothScopesView(ScopedView):
    required_scopes = ["orders:read", "cart:write"]


class SessionOrScopedView(ScopedView):
    authentication_classes = [SessionAuthentication, JWTAuthentication]
    required_scopes = ["orders:read"]


orders_read = OrdersReadView.as_view()
cart_write = CartWriteView.as_view()
both_scopes = BothScopesView.as_view()
no_scopes = ScopedView.as_view()
unnamed_scopes = UnnamedScopesView.as_view()
session_or_scoped = SessionOrScopedView.as_view()


SPA_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title></head>
<body>
<form id="login"><input name="username"><input name="password" type="password">
<button>Log in</button></form>
<p id="who">anonymous</p>
<script>
let access = null;
async function whoAmI() {
  const me = await fetch("/api/me/", {headers: {Authorization: "Bearer " + access}});
  document.getElementById("who").textContent = me.ok ? (await me.json()).username : "refused";
}
async function resume() {
  const refreshed = await fetch("/api/auth/refresh/", {method: "POST"});
  if (refreshed.ok) { access = (await refreshed.json()).access_token; await whoAmI(); }
  else { document.getElementById("who").textContent = "anonymous"; }
}
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch("/api/auth/login/", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({username: form.get("username"), password: form.get("password")}),
  });
  access = (await response.json()).access_token;
  await whoAmI();
});
resume();
</script>
</body></html>"""


def spa(request: HttpRequest) -> HttpResponse:
    """A browser client of the API that keeps its refresh token only in the HttpOnly cookie."""
    return HttpResponse(SPA_PAGE)
