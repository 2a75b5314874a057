"""Condition entries are edited by staff: django-auditlog records who changed what."""

from auditlog.registry import auditlog

from .models import Condition

auditlog.register(Condition, exclude_fields=["updated_at"])
