from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from example_project.views import MeView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/", include("cocart_jwt.urls")),
    path("api/me/", MeView.as_view(), name="me"),
    path("api/", include("example_project.store.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
