"""JWT authentication for Django REST Framework with a per-user session registry."""

__version__ = "0.1.0"
