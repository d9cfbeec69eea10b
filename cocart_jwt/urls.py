from django.urls import path, re_path, register_converter

from . import (
    event_views,
    link_views,
    oauth_views,
    session_views,
    step_up_views,
    token_views,
    views,
)
from .tokens import SESSION_ID

app_name = "cocart_jwt"


class SessionIdConverter:
    """A session id is url-safe base64: anything else (a NUL byte, 10 KB) never reaches the
    session view's query (PostgreSQL answers a NUL byte in a parameter with an error)."""

    regex = SESSION_ID.pattern  # the alphabet the verifier accepts in a sid claim

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(SessionIdConverter, "session_id")

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    # Every JWTView is outside ATOMIC_REQUESTS by its own as_view(), however it is mounted.
    path("refresh/", views.RefreshView.as_view(), name="refresh"),
    path("validate/", views.ValidateView.as_view(), name="validate"),
    path("logout/", session_views.LogoutView.as_view(), name="logout"),
    path("logout/all/", session_views.LogoutAllView.as_view(), name="logout-all"),
    path("logout/others/", session_views.LogoutOthersView.as_view(), name="logout-others"),
    path("reauthenticate/", step_up_views.ReauthenticateView.as_view(), name="reauthenticate"),
    path("sessions/", session_views.SessionListView.as_view(), name="sessions"),
    path(
        "sessions/<session_id:session_id>/",
        session_views.SessionDetailView.as_view(),
        name="session",
    ),
    # Anything else there (slashes, line breaks, control characters): the JSON 404.
    re_path(
        r"^sessions/(?P<session_id>[\s\S]*)/\Z",
        session_views.NoSuchSessionView.as_view(),
        name="no-such-session",
    ),
    path("tokens/", token_views.TokenListView.as_view(), name="tokens"),
    path("tokens/<session_id:token_id>/", token_views.TokenDetailView.as_view(), name="token"),
    re_path(
        r"^tokens/(?P<token_id>[\s\S]*)/\Z",
        token_views.NoSuchTokenView.as_view(),
        name="no-such-token",
    ),
    path("jwks.json", views.JWKSView.as_view(), name="jwks"),
    path("events/", event_views.EventListView.as_view(), name="events"),
    path("login-link/", link_views.LoginLinkView.as_view(), name="login-link"),
    path("revoke/", oauth_views.RevokeView.as_view(), name="revoke"),
    path("introspect/", oauth_views.IntrospectView.as_view(), name="introspect"),
]
