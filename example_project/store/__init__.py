"""The example store: products, a cart per user and orders, served by DRF behind cocart_jwt."""
