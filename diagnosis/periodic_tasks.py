"""Celery beat's periodic jobs: re-photograph reminders and the two sweepers that keep analyses moving.

Registered by ``skinsite/celery.py`` (``autodiscover_tasks(related_name="periodic_tasks")``) and
scheduled in ``settings.CELERY_BEAT_SCHEDULE``. Each is idempotent: two beats at once, or a command
next to beat, do the work once (see reminders.py and recovery.py).
"""

from celery import shared_task

from . import recovery, reminders


@shared_task(name="diagnosis.send_due_reminders")
def send_due_reminders() -> int:
    """Periodic (Celery beat): e-mail the re-photograph reminders that fell due; idempotent."""
    return len(reminders.send_due_reminders())


@shared_task(name="diagnosis.dispatch_pending")
def dispatch_pending() -> int:
    """Periodic (Celery beat): send queued analyses the broker never accepted, or lost (the outbox)."""
    return len(recovery.dispatch_pending().sent)


@shared_task(name="diagnosis.requeue_stuck")
def requeue_stuck() -> int:
    """Periodic (Celery beat): re-queue analyses stuck in 'processing', failing them after too many starts."""
    sweep = recovery.requeue_stuck()
    return len(sweep.sent) + len(sweep.failed)
