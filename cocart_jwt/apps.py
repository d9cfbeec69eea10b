from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CocartJwtConfig(AppConfig):
    name = "cocart_jwt"
    verbose_name = _("JWT authentication")
    # Pinned so a host's DEFAULT_AUTO_FIELD never makes migrations in this package.
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The checks register on import.
        from . import checks, dpop_checks, idle_checks, receivers, scope_checks  # noqa: F401

        receivers.connect()
        # Registers the OpenAPI extension when drf-spectacular is installed; a no-op otherwise.
        from . import schema  # noqa: F401
