from django.contrib import admin
from django.urls import include, path

from tests import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/", include("cocart_jwt.urls")),
    path("api/me/", views.me, name="me"),
    path("api/recent/", views.recent, name="recent"),
    path("api/recent/minute/", views.last_minute, name="recent-minute"),
    path("api/recent/session-or-token/", views.session_or_token, name="recent-session-or-token"),
    path("spa/", views.spa, name="spa"),
]
