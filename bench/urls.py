"""One DRF view per authentication scheme, and each library's login and refresh views."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.urls import path
from knox.auth import TokenAuthentication as KnoxAuthentication
from knox.views import LoginView as KnoxLoginView
from rest_framework.authentication import BasicAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from cocart_jwt.authentication import JWTAuthentication
from cocart_jwt.views import LoginView, RefreshView


class Ping(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return Response({"id": getattr(request.user, "pk", None)})


def ping(name: str, authentication: list[Any], permission: list[Any] | None = None) -> Any:
    attrs = {"authentication_classes": authentication}
    if permission is not None:
        attrs["permission_classes"] = permission
    return path(f"ping/{name}/", type(f"Ping_{name}", (Ping,), attrs).as_view(), name=name)


urlpatterns = [
    ping("none", [], [AllowAny]),
    ping("simplejwt", [SimpleJWTAuthentication]),
    ping("knox", [KnoxAuthentication]),
    ping("cocart", [JWTAuthentication]),
    path("simplejwt/login/", TokenObtainPairView.as_view()),
    path("simplejwt/refresh/", TokenRefreshView.as_view()),
    path("knox/login/", KnoxLoginView.as_view(authentication_classes=[BasicAuthentication])),
    path("cocart/login/", LoginView.as_view()),
    path("cocart/refresh/", RefreshView.as_view()),
]

if apps.is_installed("django.contrib.admin"):  # bench/scale_settings.py: the admin measured
    from django.contrib import admin

    urlpatterns.append(path("admin/", admin.site.urls))
