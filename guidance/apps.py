from django.apps import AppConfig


class GuidanceConfig(AppConfig):
    name = "guidance"
    verbose_name = "Guidance"

    def ready(self):
        from . import audit  # noqa: F401 - registers Condition with the audit log
