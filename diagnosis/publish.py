"""Handing analyses to the broker, with the submission row as the outbox.

``enqueued_at`` is the outbox marker: it is set once the broker accepted the task. A broker outage
leaves a submission queued with ``enqueued_at`` empty, not lost: ``recovery.dispatch_pending``
(every 30 s from beat) sends it once the broker is back. Publishing gives up after one quick retry
(CELERY_TASK_PUBLISH_RETRY_POLICY and the Redis socket timeouts in settings), so an upload does not
hang on a dead broker. Sending twice is harmless: analysis claims each photo (analysis.claim).
"""

from __future__ import annotations

import logging

from django.utils import timezone

from . import tasks
from .models import Submission

logger = logging.getLogger(__name__)


def send(task, *args, what: str, **kwargs) -> bool:
    """Publish ``task``; False (logged, with ``what`` it was for) when the broker does not accept it."""
    try:
        task.delay(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the photos are saved; the outbox sends them later
        logger.warning("the broker refused the analysis of %s (%s: %s); it stays queued for dispatch_pending",
                       what, exc.__class__.__name__, exc)
        return False
    return True


def send_analysis(submission_id: int) -> bool:
    """Publish one submission's analysis task (id only), leaving the outbox marker to the caller."""
    return send(tasks.analyse_submission, submission_id, what=f"submission {submission_id}")


def enqueue_analysis(submission: Submission) -> bool:
    """Send the analysis task (id only); on success mark the row as accepted by the broker."""
    if not send_analysis(submission.pk):
        return False
    Submission.objects.filter(pk=submission.pk).update(enqueued_at=timezone.now())
    return True


def enqueue_batch(submission_ids: list[int], *, heatmaps: bool = False) -> bool:
    """Send one ``analyse_batch`` task for a bulk import's photos; on success mark them accepted.

    Rows left without the marker are sent one by one by ``recovery.dispatch_pending``, which is safe
    because analysis claims each photo, as are rows still queued long after (a lost task, or one
    still working through a very large batch).
    """
    ids = list(submission_ids)
    if not send(tasks.analyse_batch, ids, heatmaps=heatmaps, what=f"a batch of {len(ids)} submissions"):
        return False
    Submission.objects.filter(pk__in=ids, enqueued_at__isnull=True).update(enqueued_at=timezone.now())
    return True
