"""JSON shapes of the store API. Prices are strings with two decimals ("12.50")."""

from __future__ import annotations

from typing import Any

from django.core.validators import slug_re
from rest_framework import serializers

from .models import CartItem, Order, OrderLine, Product

MAX_QUANTITY = 99


class ProductSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["slug", "name", "description", "price", "stock"]
        read_only_fields = fields


class ProductSlugField(serializers.SlugRelatedField):
    """A product by its slug. A string that cannot be a slug is refused before the query:
    PostgreSQL answers a NUL byte in a parameter with an error (a 500), not with no row."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and not slug_re.match(data):
            self.fail("invalid")  # not "does_not_exist": that would echo the value
        return super().to_internal_value(data)


class CartItemSerializer(serializers.ModelSerializer):
    """A line of the cart. ``product`` is the product's slug."""

    product = ProductSlugField(slug_field="slug", queryset=Product.objects.filter(is_active=True))
    name = serializers.CharField(source="product.name", read_only=True)
    unit_price = serializers.DecimalField(
        source="product.price", max_digits=10, decimal_places=2, read_only=True
    )
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY, default=1)
    line_total = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)

    class Meta:
        model = CartItem
        fields = ["id", "product", "name", "unit_price", "quantity", "line_total"]
        read_only_fields = ["id"]


class QuantitySerializer(serializers.Serializer):
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)


class CartSerializer(serializers.Serializer):
    items = CartItemSerializer(many=True)
    item_count = serializers.IntegerField()
    total = serializers.DecimalField(max_digits=12, decimal_places=2)

    @staticmethod
    def of(items: list[CartItem]) -> dict[str, Any]:
        total = sum((item.line_total for item in items), start=0)
        data = {
            "items": items,
            "item_count": sum(item.quantity for item in items),
            "total": total,
        }
        return CartSerializer(data).data


class OrderLineSerializer(serializers.ModelSerializer):
    product = serializers.CharField(source="product_slug")
    name = serializers.CharField(source="product_name")
    line_total = serializers.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        model = OrderLine
        fields = ["product", "name", "unit_price", "quantity", "line_total"]
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    lines = OrderLineSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = ["id", "status", "created_at", "total", "lines"]
        read_only_fields = fields
