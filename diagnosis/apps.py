from django.apps import AppConfig


class DiagnosisConfig(AppConfig):
    name = "diagnosis"

    def ready(self):
        from . import audit  # noqa: F401 - registers models with the audit log
        from . import checks  # noqa: F401 - deployment checks (encrypted photos, shared cache)
