"""The analysis tasks: thin wrappers that take ids and call ``analysis``; and the worker's model preload.

Beat's periodic jobs are in ``periodic_tasks`` (they re-send these tasks, so they cannot live here
without an import circle: publish → tasks → recovery → publish).
"""

import logging

from celery import current_app, shared_task
from celery.signals import worker_process_init
from django.db import InterfaceError, OperationalError

from . import analysis
from . import classifier as classifier_module

logger = logging.getLogger(__name__)


@shared_task(
    name="diagnosis.analyse_submission",
    acks_late=True,
    reject_on_worker_lost=True,
    # A database that is briefly unavailable or locked must not strand the photo in the queue:
    # try again with back-off; the service is idempotent, so a repeat is harmless.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=False,
    max_retries=6,
)
def analyse_submission(submission_id: int) -> str:
    """Run the classifier on one submission; safe to run twice (see analysis.analyse_submission)."""
    if analysis.give_up_if_exhausted(submission_id):  # a photo that keeps killing its worker
        return "failed"
    return analysis.analyse_submission(submission_id)


@shared_task(
    name="diagnosis.analyse_batch",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),  # as above; photos already final are skipped
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=False,
    max_retries=6,
)
def analyse_batch(submission_ids: list[int], heatmaps: bool = False) -> dict:
    """Classify a bulk import's photos in chunks of ML_BATCH_SIZE (see analysis.analyse_batch); safe to repeat."""
    outcomes = analysis.analyse_batch(submission_ids, heatmaps=heatmaps)
    return {status: sum(1 for o in outcomes.values() if o == status) for status in set(outcomes.values())}


def _consumes_analysis() -> bool:
    """Whether this worker consumes the queue analysis tasks are routed to (unknown: assume so).

    A worker for the periodic jobs only (``-Q celery``) then skips loading the model, which
    would cost it the memory of an inference worker for nothing; a stray analysis task that
    reaches it still loads the model on first use.
    """
    try:
        consumed = set(current_app.amqp.queues.consume_from)
        queue = current_app.amqp.router.route({}, analyse_submission.name, args=(), kwargs={})["queue"]
    except Exception:  # noqa: BLE001 - better one model too many than a slow first analysis
        return True
    return not consumed or getattr(queue, "name", queue) in consumed


@worker_process_init.connect
def load_model_in_worker_child(**kwargs):
    """Load the model once per worker process, after the fork (TensorFlow is not fork-safe)."""
    if not _consumes_analysis():
        return
    try:
        classifier_module.get_classifier()
    except Exception:  # noqa: BLE001 - tasks report the reason on each submission
        logger.exception("the classifier could not be loaded at worker start")
