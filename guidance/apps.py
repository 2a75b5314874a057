from django.apps import AppConfig


class GuidanceConfig(AppConfig):
    name = "guidance"
    verbose_name = "Guidance"

    def ready(self):
        from . import audit  # noqa: F401 - registers the guidance models with the audit log
