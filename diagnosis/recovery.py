"""Getting every photo analysed despite lost messages: the outbox dispatcher and the stuck sweeper.

A submission is the outbox row: ``enqueued_at`` empty means the broker never accepted its task
(Redis down at upload). Three things can strand a photo, and each has a sweeper here, run from
Celery beat (settings.CELERY_BEAT_SCHEDULE) and as a management command of the same name:

- never sent, or sent to a broker that lost it (Redis restarted without persistence):
  ``dispatch_pending`` sends queued rows again;
- started by a worker that vanished (killed, machine lost) without the broker redelivering it:
  ``requeue_stuck`` puts 'processing' rows older than ANALYSIS_STUCK_AFTER back in the queue, and
  marks them failed with the reason after ANALYSIS_MAX_ATTEMPTS starts;
- failed because the model was broken: ``requeue_failed`` after the fix.

Every row is taken with a conditional UPDATE on the values just read, so two sweepers at once (a
command next to beat) never handle one row twice, and a row a worker claimed meanwhile is left
alone. Sending a task twice is harmless anyway: analysis claims the row and stores one result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import services
from .audit import log_requeued
from .models import Submission
from .publish import send_analysis

logger = logging.getLogger(__name__)

Status = Submission.Status


@dataclass
class Sweep:
    """What one run did: ids sent to the broker, marked failed, or left for the next run."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    unsent: list[int] = field(default_factory=list)  # the broker refused; still queued, retried next run


def pending_dispatch(now: datetime | None = None, older_than: timedelta | None = None,
                     redispatch_after: timedelta | None = None):
    """Queued submissions to (re)send: never accepted by the broker, or accepted long ago and never started.

    ``older_than`` (ANALYSIS_DISPATCH_GRACE) leaves alone uploads whose own after-commit send may
    still be under way; ``redispatch_after`` (ANALYSIS_REDISPATCH_AFTER) is how long an accepted
    task may wait in the broker before we presume it lost.
    """
    now = now or timezone.now()
    grace = settings.ANALYSIS_DISPATCH_GRACE if older_than is None else older_than
    stale = settings.ANALYSIS_REDISPATCH_AFTER if redispatch_after is None else redispatch_after
    return Submission.objects.filter(status=Status.QUEUED).filter(
        Q(enqueued_at__isnull=True, created_at__lt=now - grace) | Q(enqueued_at__lt=now - stale)
    ).order_by("created_at")


def dispatch_pending(older_than: timedelta | None = None, redispatch_after: timedelta | None = None,
                     *, dry_run: bool = False, limit: int = 500) -> Sweep:
    """Send the analysis of every pending queued submission (see ``pending_dispatch``).

    Stops at the first refusal: with the broker down, each further try would only wait for the
    same timeout, and the rows stay queued for the next run.
    """
    now = timezone.now()
    sweep = Sweep()
    rows = list(pending_dispatch(now, older_than, redispatch_after).values_list("pk", "enqueued_at")[:limit])
    if dry_run:
        sweep.sent = [pk for pk, _ in rows]
        return sweep
    for index, (pk, seen) in enumerate(rows):
        # Claim: only the sweeper whose UPDATE matches the value it read sends this row.
        if not Submission.objects.filter(pk=pk, status=Status.QUEUED, enqueued_at=seen).update(enqueued_at=now):
            continue
        if send_analysis(pk, probe=True):  # the sweeper is what finds the broker back
            sweep.sent.append(pk)
            continue
        Submission.objects.filter(pk=pk, enqueued_at=now).update(enqueued_at=seen)  # not accepted after all
        sweep.unsent = [pk for pk, _ in rows[index:]]
        break
    if sweep.sent or sweep.unsent:
        logger.info("dispatch_pending: sent %d queued submission(s), %d left for the next run",
                    len(sweep.sent), len(sweep.unsent))
    return sweep


def stuck_reason(attempts: int, limit: timedelta) -> str:
    minutes = max(1, round(limit.total_seconds() / 60))
    return (f"The analysis did not finish after {attempts} attempt(s) (each stopped for more than "
            f"{minutes} minute(s)). The photo is kept and can be re-analysed.")


def requeue_stuck(limit: timedelta | None = None, max_attempts: int | None = None, *,
                  dry_run: bool = False) -> Sweep:
    """Re-queue submissions 'processing' for longer than ``limit``; fail them after ``max_attempts`` starts.

    A worker killed outright (not just its pool child) leaves its row 'processing' until the broker's
    visibility timeout redelivers the task, and never if the broker lost it: this is the net under both.
    A re-queued row may still be running somewhere (a very slow task): the second run is harmless,
    since the result is stored once under a row lock.
    """
    limit = settings.ANALYSIS_STUCK_AFTER if limit is None else limit
    max_attempts = settings.ANALYSIS_MAX_ATTEMPTS if max_attempts is None else max_attempts
    now = timezone.now()
    sweep = Sweep()
    stuck = Submission.objects.filter(status=Status.PROCESSING).filter(
        Q(started_at__lt=now - limit) | Q(started_at__isnull=True, updated_at__lt=now - limit))
    for pk, started, attempts in stuck.order_by("pk").values_list("pk", "started_at", "attempts"):
        give_up = attempts >= max_attempts
        if dry_run:
            (sweep.failed if give_up else sweep.sent).append(pk)
            continue
        same_run = Submission.objects.filter(pk=pk, status=Status.PROCESSING, started_at=started)
        if give_up:
            if same_run.update(status=Status.FAILED, finished_at=now, failure_reason=stuck_reason(attempts, limit)):
                logger.warning("submission %s failed: stuck in processing after %d attempt(s)", pk, attempts)
                sweep.failed.append(pk)
            continue
        if not same_run.update(status=Status.QUEUED, started_at=None, enqueued_at=now):
            continue
        # The first row probes the broker (the sweeper is what finds it back); after a refusal the
        # breaker skips the rest at once, instead of each waiting out the publish timeout.
        if send_analysis(pk, probe=not sweep.unsent):
            sweep.sent.append(pk)
        else:  # queued again, with the outbox marker empty: dispatch_pending sends it later
            Submission.objects.filter(pk=pk, enqueued_at=now).update(enqueued_at=None)
            sweep.unsent.append(pk)
    if sweep.sent or sweep.failed or sweep.unsent:
        logger.info("requeue_stuck: re-queued %d, failed %d, %d waiting for the broker",
                    len(sweep.sent), len(sweep.failed), len(sweep.unsent))
    return sweep


def failed_submissions(since: datetime | None = None, reason: str = ""):
    """Failed submissions (not photos rejected as 'not skin'), optionally failed since a time or for a reason."""
    failed = Submission.objects.filter(status=Status.FAILED)
    if since is not None:
        failed = failed.filter(Q(finished_at__gte=since) | Q(finished_at__isnull=True, updated_at__gte=since))
    if reason:
        failed = failed.filter(failure_reason__icontains=reason)
    return failed.order_by("created_at")


def requeue_failed(since: datetime | None = None, reason: str = "", *, dry_run: bool = False) -> Sweep:
    """Put failed submissions back in the queue (after the model artifact was fixed, say); audited.

    The worker picks up a fixed artifact by itself: a failed load is not cached (diagnosis.classifier).
    """
    sweep = Sweep()
    for submission in failed_submissions(since, reason):
        if dry_run:
            sweep.sent.append(submission.pk)
            continue
        with transaction.atomic():  # the task is sent after this commits
            if services.requeue_submission(submission):
                log_requeued(submission)
                sweep.sent.append(submission.pk)
    return sweep
