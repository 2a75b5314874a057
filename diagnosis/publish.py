"""Handing analyses to the broker, with the submission row as the outbox.

``enqueued_at`` is the outbox marker: it is set once the broker accepted the task. A broker outage
leaves a submission queued with ``enqueued_at`` empty, not lost: ``recovery.dispatch_pending``
(every 30 s from beat) sends it once the broker is back.

An upload never waits long on a broker that is down or hung (issue 13, item 8): a publish that has
not been accepted within BROKER_PUBLISH_TIMEOUT counts as refused, and after a refusal the breaker
skips publishing for BROKER_BREAKER_SECONDS. The sweeper always tries (``probe``): it is what finds
the broker back. A publish that was still under way when the upload stopped waiting may arrive
later; sending twice is harmless, because analysis claims each photo (analysis.claim).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as PublishTimeout

from celery import current_app
from django.conf import settings
from django.utils import timezone

from skinsite.breaker import CircuitBreaker

from . import tasks
from .models import Submission

logger = logging.getLogger(__name__)

breaker = CircuitBreaker("broker", settings.BROKER_BREAKER_SECONDS)
# Publishing happens here, so that the request can stop waiting (a hung socket cannot be interrupted).
_publisher = ThreadPoolExecutor(max_workers=4, thread_name_prefix="publish")


def _publish(task, args, kwargs) -> None:
    if current_app.conf.task_always_eager:  # runs the task itself, in this thread (tests, development)
        task.delay(*args, **kwargs)
        return
    future = _publisher.submit(task.delay, *args, **kwargs)
    try:
        future.result(timeout=settings.BROKER_PUBLISH_TIMEOUT)
    except PublishTimeout:
        future.cancel()  # still waiting for a free publisher thread: never sent (the outbox will)
        raise


def send(task, *args, what: str, probe: bool = False, **kwargs) -> bool:
    """Publish ``task``; False (logged, with ``what`` it was for) when the broker does not accept it
    in time, or is known to be down (unless ``probe``: then it is tried anyway)."""
    if breaker.is_open() and not probe:
        logger.info("the broker failed less than %.0f s ago: %s stays queued for dispatch_pending",
                    breaker.seconds, what)
        return False
    try:
        _publish(task, args, kwargs)
    except PublishTimeout:
        breaker.trip()
        logger.warning("the broker did not accept the analysis of %s within %.1f s; it stays queued for "
                       "dispatch_pending", what, settings.BROKER_PUBLISH_TIMEOUT)
        return False
    except Exception as exc:  # noqa: BLE001 - the photos are saved; the outbox sends them later
        breaker.trip()
        logger.warning("the broker refused the analysis of %s (%s: %s); it stays queued for dispatch_pending",
                       what, exc.__class__.__name__, exc)
        return False
    breaker.reset()
    return True


def send_analysis(submission_id: int, *, probe: bool = False) -> bool:
    """Publish one submission's analysis task (id only), leaving the outbox marker to the caller."""
    return send(tasks.analyse_submission, submission_id, what=f"submission {submission_id}", probe=probe)


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
