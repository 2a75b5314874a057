from django.apps import AppConfig


class DiagnosisConfig(AppConfig):
    name = "diagnosis"

    def ready(self):
        from . import audit  # noqa: F401 - registers models with the audit log
