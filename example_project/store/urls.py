from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import views

app_name = "store"

# path() routes, so a viewset's lookup_value_converter applies: a product's URL takes only
# what a slug can be (Django's "slug" converter); anything else, a NUL byte included, is a 404
# before any query (PostgreSQL answers a NUL byte in a parameter with an error).
router = SimpleRouter(use_regex_path=False)
router.register("products", views.ProductViewSet, basename="product")

urlpatterns = [
    path("", include(router.urls)),
    path("cart/", views.CartView.as_view(), name="cart"),
    path("cart/items/", views.CartItemListView.as_view(), name="cart-items"),
    path("cart/items/<int:pk>/", views.CartItemDetailView.as_view(), name="cart-item"),
    path("orders/", views.OrderListView.as_view(), name="orders"),
    path("orders/<int:pk>/", views.OrderDetailView.as_view(), name="order"),
]
