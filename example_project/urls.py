from django.contrib import admin
from django.urls import include, path

from example_project.views import MeView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/", include("cocart_jwt.urls")),
    path("api/me/", MeView.as_view(), name="me"),
    path("api/", include("example_project.store.urls")),
]
