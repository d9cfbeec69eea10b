from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.exceptions import NotFound

from example_project.views import MeView


@csrf_exempt  # as the API's views: a PATCH to a wrong URL is a 404, not a CSRF failure
def api_not_found(request: HttpRequest) -> JsonResponse:
    """A URL under /api/ that no pattern takes (a product URL that is no slug, a negative id):
    the API's JSON 404, as its schema says, not Django's HTML page."""
    body = {"detail": str(NotFound.default_detail), "code": NotFound.default_code}
    return JsonResponse(body, status=404)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/", include("cocart_jwt.urls")),
    path("api/me/", MeView.as_view(), name="me"),
    path("api/", include("example_project.store.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # Last. Only URLs ending in a slash: "/api/cart" still redirects to "/api/cart/".
    re_path(r"^api/[\s\S]*/\Z", api_not_found, name="api-not-found"),
]
