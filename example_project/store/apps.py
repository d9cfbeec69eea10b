from django.apps import AppConfig


class StoreConfig(AppConfig):
    name = "example_project.store"
    label = "store"
    verbose_name = "Store"
    default_auto_field = "django.db.models.BigAutoField"
