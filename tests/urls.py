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
    path("api/scoped/orders-read/", views.orders_read, name="scoped-orders-read"),
    path("api/scoped/cart-write/", views.cart_write, name="scoped-cart-write"),
    path("api/scoped/both/", views.both_scopes, name="scoped-both"),
    path("api/scoped/none/", views.no_scopes, name="scoped-none"),
    path("api/scoped/unnamed/", views.unnamed_scopes, name="scoped-unnamed"),
    path("api/scoped/session-or-token/", views.session_or_scoped, name="scoped-session-or-token"),
    path("spa/", views.spa, name="spa"),
]
