"""``manage.py seed_store``: the demo catalogue and demo users. Safe to run again.

Products are created when missing and left alone when present (stock sold stays sold;
``--restock`` puts it back). The demo users are created when missing, and their password is
set back to the one printed here if it was changed, so the printed credentials always work.
``--shoppers N`` adds N more users (``shopper0001``...) and ``--stock N`` sets every
product's stock, for load tests.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from example_project.store.models import Product

# slug, name, description, price, stock
PRODUCTS = [
    ("coffee-mug", "Coffee mug", "Stoneware, 350 ml, dishwasher safe.", "12.50", 120),
    ("tote-bag", "Tote bag", "Organic cotton, long handles.", "18.00", 80),
    ("t-shirt", "T-shirt", "Heavy cotton, printed logo.", "24.00", 60),
    ("hoodie", "Hoodie", "Brushed fleece, zip front.", "49.00", 25),
    ("notebook", "Notebook", "A5, dotted, 192 pages.", "9.90", 200),
    ("sticker-pack", "Sticker pack", "Ten vinyl stickers.", "4.99", 500),
    ("water-bottle", "Water bottle", "Steel, 750 ml, keeps cold for a day.", "21.00", 40),
    ("limited-poster", "Limited poster", "Signed print. Sold out.", "35.00", 0),
]

# username, password, email
DEMO_USERS = [
    ("demo", "demo-password-123", "demo@example.com"),
    ("demo2", "demo2-password-123", "demo2@example.com"),
]

SHOPPER_PASSWORD = "shopper-password-123"  # noqa: S105 (demo data, printed)


def shopper_name(number: int) -> str:
    return f"shopper{number:04d}"


class Command(BaseCommand):
    help = "Create the demo products and users of the example store (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--shoppers",
            type=int,
            default=0,
            metavar="N",
            help=f"Also create users shopper0001..N (password {SHOPPER_PASSWORD!r}).",
        )
        parser.add_argument(
            "--restock", action="store_true", help="Set the stock of every seed product back."
        )
        parser.add_argument(
            "--stock",
            type=int,
            metavar="N",
            help="Set the stock of every seed product to N (load tests; implies --restock).",
        )

    @transaction.atomic
    def handle(
        self, *args: Any, shoppers: int, restock: bool, stock: int | None, **options: Any
    ) -> None:
        created = restocked = 0
        restock = restock or stock is not None
        for slug, name, description, price, seed_stock in PRODUCTS:
            if stock is not None:
                seed_stock = stock
            product, was_created = Product.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "description": description,
                    "price": Decimal(price),
                    "stock": seed_stock,
                },
            )
            created += was_created
            if restock and not was_created and product.stock != seed_stock:
                product.stock = seed_stock
                product.save(update_fields=["stock"])
                restocked += 1
        message = f"Products: {len(PRODUCTS)} in the catalogue, {created} created"
        if restock:
            message += f", {restocked} restocked"
        self.stdout.write(message + ".")

        User = get_user_model()
        for username, password, email in DEMO_USERS:
            user = User._default_manager.filter(username=username).first()
            if user is None:
                User._default_manager.create_user(username, email, password)
                state = "created"
            elif not user.check_password(password):
                user.set_password(password)
                user.save(update_fields=["password"])
                state = "password reset"
            else:
                state = "exists"
            self.stdout.write(f"User {username} / {password}: {state}.")

        if shoppers > 0:
            names = [shopper_name(n) for n in range(1, shoppers + 1)]
            existing = set(
                User._default_manager.filter(username__in=names).values_list("username", flat=True)
            )
            # One hash for all: these are load-test accounts, and hashing is slow on purpose.
            password_hash = make_password(SHOPPER_PASSWORD)
            User._default_manager.bulk_create(
                User(username=name, email=f"{name}@example.com", password=password_hash)
                for name in names
                if name not in existing
            )
            self.stdout.write(
                f"Shoppers: {shoppers} ({shoppers - len(existing)} created), "
                f"password {SHOPPER_PASSWORD!r}."
            )
