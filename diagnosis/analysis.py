"""The lifecycle of an analysis, in one place: claim → classify → store the result → finish, or give up.

Every path that classifies stored photos runs through here: the single-upload task, the bulk
import's task (``ML_BATCH_SIZE`` photos per model call) and ``manage.py classify_images``. Uploads
(services.py, bulk.py) only store photos and publish their tasks (publish.py); the sweepers
(recovery.py) only re-send or re-queue rows. What may be claimed, how a result is stored exactly
once and when an analysis is given up are decided here and nowhere else:

- **claim**: a conditional UPDATE moves a row that is not final to 'processing' and counts the
  attempt; a duplicate delivery of a finished photo claims nothing and is skipped;
- **store the result**: the ranked predictions, the embedding, the final status and the heatmap
  (if given) are written in one transaction under a row lock, after re-checking that the row is
  not final, so two runs can never leave two sets;
- **finish**: ``fail`` records why a claimed photo could not be analysed (it stays stored and can
  be re-queued); a finished result schedules its re-photograph reminder after commit;
- **give up**: a photo whose analysis was started ``ANALYSIS_MAX_ATTEMPTS`` times without
  finishing (it keeps killing its worker) is failed instead of being run again.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ml.inference import REASON_NOT_SKIN, STATUS_REJECTED, STATUS_UNCERTAIN
from ml.preprocessing import open_image

from . import classifier as classifier_module
from . import explanations, reminders
from .models import Prediction, Submission

logger = logging.getLogger(__name__)

Status = Submission.Status

NOT_SKIN_REASON = "This does not look like a photo of skin, so it was not assessed."


def unavailable_reason(exc: BaseException) -> str:
    return f"The classifier is unavailable ({exc}). The photo is kept and can be re-analysed."


def unreadable_reason(exc: BaseException) -> str:
    return f"The photo could not be analysed ({exc.__class__.__name__})."


# --- The steps ---------------------------------------------------------------------------------


def claim(submission_id: int) -> bool:
    """Mark a submission as processing unless it already finished (a conditional UPDATE)."""
    return bool(
        Submission.objects.filter(pk=submission_id)
        .exclude(status__in=Submission.FINAL_STATUSES)
        .update(status=Status.PROCESSING, started_at=timezone.now(), attempts=F("attempts") + 1)
    )


def fail(submission_id: int, reason: str) -> None:
    """Finish a claimed submission as failed, with the reason the person (and the admin) sees."""
    Submission.objects.filter(pk=submission_id).update(status=Status.FAILED, finished_at=timezone.now(),
                                                        failure_reason=reason)


def give_up_if_exhausted(submission_id: int, max_attempts: int | None = None) -> bool:
    """Fail a submission whose analysis was started ``max_attempts`` times without finishing.

    Called when a task starts. A photo that kills its worker (out of memory, say) comes back after
    each crash, because a lost worker's task is redelivered: without this cap it would do so forever.
    Only rows still 'processing' from an earlier start count; a freshly re-queued row always gets a run.
    """
    max_attempts = settings.ANALYSIS_MAX_ATTEMPTS if max_attempts is None else max_attempts
    reason = (f"The analysis was interrupted {max_attempts} time(s) before it could finish (the worker "
              f"stopped). The photo is kept and can be re-analysed.")
    return bool(Submission.objects.filter(pk=submission_id, status=Status.PROCESSING, attempts__gte=max_attempts)
                .update(status=Status.FAILED, finished_at=timezone.now(), failure_reason=reason))


def store_result(submission_id: int, result, heatmap: bytes | None = None) -> str:
    """Write the ranked predictions, the embedding, the heatmap PNG (if any) and the final status exactly once."""
    written = None
    try:
        with transaction.atomic():
            locked = Submission.objects.select_for_update().get(pk=submission_id)
            if locked.is_final:
                return "skipped"
            locked.predictions.all().delete()
            Prediction.objects.bulk_create(
                Prediction(submission=locked, model_version=result.model_version, code=p.code,
                           label=p.label, probability=p.probability, rank=rank)
                for rank, p in enumerate(result.predictions, start=1)
            )
            locked.model_version = result.model_version
            locked.uncertain = result.status == STATUS_UNCERTAIN
            locked.photo_kind = getattr(result, "kind", None) or ""
            locked.finished_at = timezone.now()
            if result.status == STATUS_REJECTED and result.reason == REASON_NOT_SKIN:
                locked.status = Status.REJECTED
                locked.failure_reason = NOT_SKIN_REASON
            else:
                locked.status = Status.DONE
                locked.failure_reason = ""
                # The re-photograph reminder follows this result's urgency.
                transaction.on_commit(lambda: reminders.schedule_reminder(submission_id), robust=True)
            written = explanations.attach(locked, result, heatmap)
            locked.save()
    except IntegrityError:
        # A concurrent run stored the same submission first: its result stands.
        explanations.discard(written)
        return "skipped"
    except BaseException:
        explanations.discard(written)
        raise
    return locked.status


def decode(submission_id: int, input_size):
    """The stored photo decoded for the model, and its (width, height) for a heatmap (None if unknown)."""
    submission = Submission.objects.only("image", "image_width", "image_height").get(pk=submission_id)
    with submission.image.open("rb") as fh:
        img = open_image(fh, input_size)
        img.load()
    size = (submission.image_width, submission.image_height) if submission.image_width else None
    return img, size


# --- One photo (an upload) ---------------------------------------------------------------------


def analyse_submission(submission_id: int) -> str:
    """Classify one submission and store one ranked Prediction per class.

    Idempotent: a submission that is already final is left alone, and the
    predictions are written in one transaction after re-checking the status
    under a row lock, so a duplicate delivery cannot add a second set.
    """
    if not claim(submission_id):
        return "skipped"
    try:
        classifier = classifier_module.get_classifier()
    except Exception as exc:  # noqa: BLE001 - a broken model must not lose the photo
        logger.exception("classifier unavailable for submission %s", submission_id)
        fail(submission_id, unavailable_reason(exc))
        return "failed"
    try:
        img, size = decode(submission_id, classifier.input_size)
        result = classifier.predict([img])[0]
    except Exception as exc:  # noqa: BLE001
        logger.exception("analysis failed for submission %s", submission_id)
        fail(submission_id, unreadable_reason(exc))
        return "failed"
    status = store_result(submission_id, result)
    if status == Status.DONE:
        # After the result is stored, so the person sees it without waiting for the overlay (the
        # occlusion heatmap costs ~50 forward passes), and outside its transaction: no row lock held.
        explanations.store_heatmap(submission_id, explanations.heatmap_png(classifier, img, result, size),
                                   result.model_version)
    return status


# --- Many photos (a bulk import) ---------------------------------------------------------------


def analyse_batch(submission_ids: Sequence[int], *, batch_size: int | None = None, heatmaps: bool = False,
                  progress: Callable[[int, str], None] | None = None) -> dict[int, str]:
    """Classify many submissions, ``batch_size`` (default ``ML_BATCH_SIZE``) photos per model call.

    The same guarantees as ``analyse_submission``, per photo: each is claimed with the conditional
    UPDATE (an already-final one is skipped), and its predictions, embedding and final status are
    written by ``store_result``, exactly once. A photo that cannot be decoded is marked failed with
    a reason and the others go on. Claims are taken chunk by chunk, so photos not reached yet stay
    "queued" rather than "analysing". Returns each id's outcome.

    Heatmaps are off by default: the occlusion heatmap costs ~50 forward passes per photo (about a
    second each on a CPU), which would make a bulk import tens of times slower than classifying it.
    ``heatmaps=True`` computes them as a single upload does (when ML_HEATMAPS is on).
    """
    batch_size = max(1, int(batch_size or settings.ML_BATCH_SIZE))
    ids = list(dict.fromkeys(submission_ids))  # a repeated id is analysed once
    outcomes: dict[int, str] = {}

    def report(submission_id, outcome):
        outcomes[submission_id] = outcome
        if progress:
            progress(submission_id, outcome)

    def fail_and_report(submission_id, reason):
        fail(submission_id, reason)
        report(submission_id, Status.FAILED)

    try:
        classifier = classifier_module.get_classifier()
    except Exception as exc:  # noqa: BLE001 - a broken model must not lose the photos
        logger.exception("classifier unavailable for a batch of %d submissions", len(ids))
        for submission_id in ids:
            if claim(submission_id):
                fail_and_report(submission_id, unavailable_reason(exc))
            else:
                report(submission_id, "skipped")
        return outcomes

    for chunk in _chunks(ids, batch_size):
        # The chunk's claims, and below its results, each commit once: a commit per photo (an fsync
        # each) cost more than the model on SQLite. Every photo is still claimed and stored on its
        # own terms (the conditional UPDATE; store_result's row lock and final-status check).
        claimed = []
        with transaction.atomic():
            for submission_id in chunk:
                if give_up_if_exhausted(submission_id):
                    report(submission_id, Status.FAILED)
                elif claim(submission_id):
                    claimed.append(submission_id)
                else:
                    report(submission_id, "skipped")
        decoded = []
        for submission_id in claimed:
            try:
                decoded.append((submission_id, *decode(submission_id, classifier.input_size)))
            except Exception as exc:  # noqa: BLE001 - one unreadable photo must not stop the batch
                logger.exception("could not decode submission %s", submission_id)
                fail_and_report(submission_id, unreadable_reason(exc))
        if not decoded:
            continue
        try:
            results = classifier.predict([img for _, img, _ in decoded])
        except Exception as exc:  # noqa: BLE001
            logger.exception("classification failed for a chunk of %d submissions", len(decoded))
            for submission_id, _, _ in decoded:
                fail_and_report(submission_id, unreadable_reason(exc))
            continue
        # Heatmaps (slow) are computed before the transaction, so it never holds row locks for long.
        pngs = [explanations.heatmap_png(classifier, img, result, size) if heatmaps else None
                for (_, img, size), result in zip(decoded, results)]
        with transaction.atomic():
            for (submission_id, _, _), result, png in zip(decoded, results, pngs):
                report(submission_id, store_result(submission_id, result, heatmap=png))
    return outcomes


def _chunks(ids: list[int], batch_size: int) -> list[list[int]]:
    """Model calls for a batch: interrupted photos alone first, then the rest ``batch_size`` at a time.

    Photos an earlier run claimed and never finished (its worker died and the broker redelivered
    the task) go one per model call: if one of them is what kills the worker, only that photo uses
    up its attempts (``give_up_if_exhausted``), not the whole chunk it was in.
    """
    interrupted = set(Submission.objects.filter(pk__in=ids, status=Status.PROCESSING).values_list("pk", flat=True))
    rest = [pk for pk in ids if pk not in interrupted]
    return ([[pk] for pk in ids if pk in interrupted]
            + [rest[start:start + batch_size] for start in range(0, len(rest), batch_size)])
