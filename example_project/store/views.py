"""The store API: public products; a cart and orders that need a cocart_jwt access token.

Authentication is the site's default (``cocart_jwt.authentication.JWTAuthentication``): a
request without a token is anonymous, and one with a bad, expired or revoked token is 401.
Permissions too (settings.py): ``IsAuthenticated`` and ``HasScope``, so each view names the
scopes a personal access token needs (``required_scopes``); a login session's token passes.
Every cart and order query is filtered by ``request.user``: another user's cart line or
order is a 404, never a 403, so ids reveal nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import transaction
from django.db.models import F, QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status, viewsets
from rest_framework.exceptions import (
    APIException,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cocart_jwt.permissions import HasScope, RecentLogin
from cocart_jwt.schema import (
    INSUFFICIENT_SCOPE,
    RECENT_LOGIN_REQUIRED,
    error_headers,
    error_responses,
)
from cocart_jwt.views import exception_handler as cocart_exception_handler

from .models import Cart, CartItem, Order, OrderLine, Product
from .serializers import (
    MAX_QUANTITY,
    CartItemSerializer,
    CartSerializer,
    OrderSerializer,
    ProductSerializer,
    QuantitySerializer,
)


class CartEmpty(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Your cart is empty."
    default_code = "cart_empty"


class OutOfStock(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Not enough stock."
    default_code = "out_of_stock"


def locked_cart(user: AbstractBaseUser) -> Cart:
    """The user's cart, made on first use, locked until the transaction ends.

    The lock serialises every change to one user's cart (two tabs adding the same product,
    a checkout racing an add), so quantities add up and a checkout sees a settled cart.
    """
    cart, _ = Cart.objects.get_or_create(user=user)
    return Cart.objects.select_for_update().get(pk=cart.pk)


# Every view authenticates with the site's default, JWTAuthentication: a bad token is a 401
# with a Bearer challenge everywhere, the public product list included.
# A personal access token without the view's scope: 403 insufficient_scope (RFC 6750).
NO_SCOPE = {403: INSUFFICIENT_SCOPE}
UNAUTHORIZED = error_responses(401, 403, descriptions=NO_SCOPE)
CHALLENGE = error_headers(401)
NOT_YOURS = {404: "Unknown id, or anyone else's.", **NO_SCOPE}
NO_SUCH_PAGE = {404: "No such page."}
REFUSED_CHANGE = {400: "Malformed request, an unknown product, or more than the stock."}


def check_stock(product: Product, quantity: int) -> None:
    if quantity > MAX_QUANTITY:
        raise ValidationError({"quantity": [f"At most {MAX_QUANTITY} of one product."]})
    if quantity > product.stock:
        raise ValidationError({"quantity": [f"Only {product.stock} of {product.slug} left."]})


@extend_schema_view(
    list=extend_schema(
        responses={
            200: ProductSerializer(many=True),
            **error_responses(401, 404, descriptions=NO_SUCH_PAGE),
        },
        parameters=CHALLENGE,
    ),
    retrieve=extend_schema(
        responses={200: ProductSerializer, **error_responses(401, 404)}, parameters=CHALLENGE
    ),
)
class ProductViewSet(viewsets.ReadOnlyModelViewSet):
    """``GET /api/products/`` and ``GET /api/products/<slug>/``: public."""

    queryset = Product.objects.filter(is_active=True)
    serializer_class = ProductSerializer
    permission_classes = [AllowAny]
    lookup_field = "slug"
    lookup_value_converter = "slug"


class CartView(APIView):
    """``GET /api/cart/``: the caller's cart, with line totals and the total."""

    required_scopes = ["cart:read"]

    @extend_schema(responses={200: CartSerializer, **UNAUTHORIZED}, parameters=CHALLENGE)
    def get(self, request: Request) -> Response:
        items = list(CartItem.objects.filter(cart__user=request.user).select_related("product"))
        return Response(CartSerializer.of(items))


class CartItemListView(APIView):
    """``POST /api/cart/items/`` ``{"product": slug, "quantity": n}``: add to the cart.

    Adding a product already in the cart adds to its quantity (200); a new line is 201.
    """

    required_scopes = ["cart:write"]

    @extend_schema(
        request=CartItemSerializer,
        responses={
            200: CartItemSerializer,
            201: CartItemSerializer,
            **error_responses(400, 401, 403, descriptions={**REFUSED_CHANGE, **NO_SCOPE}),
        },
        parameters=CHALLENGE,
    )
    def post(self, request: Request) -> Response:
        serializer = CartItemSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product: Product = serializer.validated_data["product"]
        quantity: int = serializer.validated_data["quantity"]
        with transaction.atomic():
            cart = locked_cart(request.user)
            item = CartItem.objects.filter(cart=cart, product=product).first()
            check_stock(product, quantity + (item.quantity if item else 0))
            if item is None:
                item = CartItem.objects.create(cart=cart, product=product, quantity=quantity)
                code = status.HTTP_201_CREATED
            else:
                item.quantity += quantity
                item.save(update_fields=["quantity"])
                code = status.HTTP_200_OK
            cart.save(update_fields=["updated_at"])
        return Response(CartItemSerializer(item).data, status=code)


@extend_schema_view(
    get=extend_schema(
        responses={
            200: CartItemSerializer,
            **error_responses(401, 403, 404, descriptions=NOT_YOURS),
        },
        parameters=CHALLENGE,
    ),
    patch=extend_schema(
        request=QuantitySerializer,
        responses={
            200: CartItemSerializer,
            **error_responses(400, 401, 403, 404, descriptions={**NOT_YOURS, **REFUSED_CHANGE}),
        },
        parameters=CHALLENGE,
    ),
    delete=extend_schema(
        responses={204: None, **error_responses(401, 403, 404, descriptions=NOT_YOURS)},
        parameters=CHALLENGE,
    ),
)
class CartItemDetailView(generics.RetrieveUpdateDestroyAPIView):
    """``GET``, ``PATCH {"quantity": n}``, ``DELETE /api/cart/items/<id>/``: one of your lines."""

    serializer_class = CartItemSerializer
    http_method_names = ["get", "patch", "delete", "head", "options"]

    @property
    def required_scopes(self) -> list[str]:
        return ["cart:read"] if self.request.method in SAFE_METHODS else ["cart:write"]

    def get_queryset(self) -> QuerySet[CartItem]:
        return CartItem.objects.filter(cart__user=self.request.user).select_related("product")

    def patch(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        change = QuantitySerializer(data=request.data)
        change.is_valid(raise_exception=True)
        with transaction.atomic():
            locked_cart(request.user)
            item = self.get_object()
            check_stock(item.product, change.validated_data["quantity"])
            item.quantity = change.validated_data["quantity"]
            item.save(update_fields=["quantity"])
        return Response(CartItemSerializer(item).data)

    def delete(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with transaction.atomic():
            locked_cart(request.user)
            self.get_object().delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    get=extend_schema(
        responses={
            200: OrderSerializer(many=True),
            **error_responses(401, 403, 404, descriptions={**NO_SUCH_PAGE, **NO_SCOPE}),
        },
        parameters=CHALLENGE,
    ),
    post=extend_schema(
        request=None,
        responses={
            201: OrderSerializer,
            **error_responses(
                400,
                401,
                403,
                409,
                descriptions={
                    400: "The cart is empty.",
                    401: RECENT_LOGIN_REQUIRED,
                    403: INSUFFICIENT_SCOPE,
                    409: "Not enough stock of a product in the cart; the cart is kept.",
                },
            ),
        },
        parameters=error_headers(401, step_up=True),
    ),
)
class OrderListView(generics.ListAPIView):
    """``GET /api/orders/``: your orders, newest first. ``POST``: check out the cart, which
    takes a recent login (``RecentLogin``: ``REAUTH_MAX_AGE``, 5 minutes by default); an
    older one gets the RFC 9470 challenge, and the client reauthenticates.

    ``HasScope`` before ``RecentLogin``: a personal token without ``orders:write`` is a 403
    ``insufficient_scope``, not a step-up challenge. One with it still meets the challenge
    (a personal token has no login to be recent): only a person signed in checks out."""

    serializer_class = OrderSerializer

    @property
    def required_scopes(self) -> list[str]:
        return ["orders:write"] if self.request.method == "POST" else ["orders:read"]

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [IsAuthenticated(), HasScope(), RecentLogin()]
        return super().get_permissions()

    def get_queryset(self) -> QuerySet[Order]:
        return Order.objects.filter(user=self.request.user).prefetch_related("lines")

    def post(self, request: Request) -> Response:
        """Turn the cart into an order: prices are fixed, stock taken, the cart emptied."""
        with transaction.atomic():
            cart = locked_cart(request.user)
            items = list(cart.items.all())  # in the order they were added
            if not items:
                raise CartEmpty()
            # Locked in one order (by pk) in every checkout: two checkouts cannot deadlock.
            products = {
                product.pk: product
                for product in Product.objects.select_for_update()
                .filter(pk__in=[item.product_id for item in items])
                .order_by("pk")
            }
            short = [
                products[item.product_id].slug
                for item in items
                if not products[item.product_id].is_active
                or products[item.product_id].stock < item.quantity
            ]
            if short:
                raise OutOfStock(f"Not enough stock of: {', '.join(short)}.")
            total = sum(
                (products[item.product_id].price * item.quantity for item in items),
                start=Decimal("0.00"),
            )
            order = Order.objects.create(user=request.user, total=total)
            OrderLine.objects.bulk_create(
                OrderLine(
                    order=order,
                    product=products[item.product_id],
                    product_slug=products[item.product_id].slug,
                    product_name=products[item.product_id].name,
                    unit_price=products[item.product_id].price,
                    quantity=item.quantity,
                )
                for item in items
            )
            for item in items:
                Product.objects.filter(pk=item.product_id).update(stock=F("stock") - item.quantity)
            cart.items.all().delete()
        order = self.get_queryset().get(pk=order.pk)
        return Response(OrderSerializer(order).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(
        responses={200: OrderSerializer, **error_responses(401, 403, 404, descriptions=NOT_YOURS)},
        parameters=CHALLENGE,
    )
)
class OrderDetailView(generics.RetrieveAPIView):
    """``GET /api/orders/<id>/``: one of your orders; anyone else's is 404."""

    required_scopes = ["orders:read"]
    serializer_class = OrderSerializer

    def get_queryset(self) -> QuerySet[Order]:
        return Order.objects.filter(user=self.request.user).prefetch_related("lines")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """cocart_jwt's handler ({"detail", "code"} on every error), with Django's Http404 and
    PermissionDenied turned into DRF's first, so a 404 says ``"code": "not_found"`` too."""
    if isinstance(exc, Http404):
        exc = NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = PermissionDenied()
    return cocart_exception_handler(exc, context)
