"""Register the health-data models with django-auditlog (changes are recorded automatically).

Registration also connects auditlog's ``accessed`` signal for these models, which
the admin sends to record who looked at a record (action ACCESS, see admin.py).
"""

from datetime import timedelta

from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from accounts.audit import ADMIN_ACCESS
from skinsite.client_ip import client_ip

from .models import Lesion, Prediction, Submission

auditlog.register(Lesion)
# The embedding is binary model output (not text auditlog can diff, nor a change anyone made).
auditlog.register(Submission, exclude_fields=["updated_at", "embedding"])
auditlog.register(Prediction)


#: A photo shown inside the change page that was just logged is part of that one view.
SAME_VIEW_WITHIN = timedelta(minutes=1)


def log_admin_access(request, obj, *, part_of_page: bool = False):
    """One ACCESS entry, named ``admin_access``, for an admin looking at a health record.

    ``part_of_page``: the record's photo, which the change page embeds; it is not logged again
    when the same admin's view of the same record was logged within ``SAME_VIEW_WITHIN`` (one
    entry per admin view), but it is when the photo URL is opened on its own.
    """
    if obj is None or obj.pk is None:
        return None
    if part_of_page and _accessed_since(obj, request.user, timezone.now() - SAME_VIEW_WITHIN):
        return None
    return LogEntry.objects.log_create(obj, action=LogEntry.Action.ACCESS, force_log=True, actor=request.user,
                                       remote_addr=client_ip(request), additional_data={"event": ADMIN_ACCESS})


def _accessed_since(obj, actor, since) -> bool:
    return LogEntry.objects.get_for_object(obj).filter(action=LogEntry.Action.ACCESS, actor=actor,
                                                       timestamp__gte=since).exists()


def log_requeued(submission):
    """Record a re-queue as an UPDATE.

    ``services.requeue_submission`` uses a conditional ``UPDATE ... WHERE status='failed'``
    (safe against double clicks) which sends no model signals, so auditlog cannot see it.
    """
    return LogEntry.objects.log_create(
        submission,
        action=LogEntry.Action.UPDATE,
        changes={"status": [Submission.Status.FAILED.value, Submission.Status.QUEUED.value]},
        force_log=True,
    )


REDACTED = "(deleted at the owner's request)"


def redact_deleted(model, pks):
    """Blank the recorded field values of deleted objects, keeping who did what and when.

    auditlog copies every field into its entries (a submission's age, symptoms, the lesion's
    name...). When a person deletes a photo, a lesion or their account, that health
    information must not live on in the audit log; the entries themselves stay as the trail.
    """
    pks = [str(pk) for pk in pks]
    if not pks:
        return 0
    return LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model), object_pk__in=pks).update(
        changes=None, changes_text="", object_repr=REDACTED, serialized_data=None
    )
