"""The audit log (django-auditlog) records who changed the knowledge base and the referral contacts.

The assistant's conversations are registered too, but without their content (the message
text and the answers in ``state``): the log outlives a deleted photo, and must not keep
the health information the person asked us to delete.
"""

from auditlog.registry import auditlog

from .models import AssistantConversation, AssistantMessage, Condition, ReferralContact

auditlog.register(Condition, exclude_fields=["updated_at"])
auditlog.register(ReferralContact, exclude_fields=["updated_at"])
auditlog.register(AssistantConversation, exclude_fields=["state", "updated_at"])
auditlog.register(AssistantMessage, exclude_fields=["text", "tier", "understood"])
