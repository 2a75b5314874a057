"""Register the health-data models with django-auditlog (changes are recorded automatically).

Registration also connects auditlog's ``accessed`` signal for these models, which
the admin sends to record who looked at a record (action ACCESS, see admin.py).
"""

from auditlog.models import LogEntry
from auditlog.registry import auditlog

from .models import Lesion, Prediction, Submission

auditlog.register(Lesion)
auditlog.register(Submission, exclude_fields=["updated_at"])
auditlog.register(Prediction)


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
