"""Register the health-data models with django-auditlog (changes are recorded automatically)."""

from auditlog.registry import auditlog

from .models import Lesion, Prediction, Submission

auditlog.register(Lesion)
auditlog.register(Submission, exclude_fields=["updated_at"])
auditlog.register(Prediction)
