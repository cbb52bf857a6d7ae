from django.apps import AppConfig


class ContainersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "containers"
    verbose_name = "Berth"

    def ready(self) -> None:
        from . import signin_throttle  # noqa: F401  (connects the audit of throttled sign-ins)
