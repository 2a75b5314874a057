from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations endpoints: /healthz, /metrics, and the workers' readiness heartbeat."""

    name = "ops"
    verbose_name = "Operations"

    def ready(self):
        from . import heartbeat  # noqa: F401 - connects the worker signals that report readiness
