"""Multi-step writes of the diagnosis app: upload → sanitise → store → enqueue, and analysis.

The business rules live here; views, the API and tasks only call in.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.formats import date_format

from . import explanations
from .images import CleanImage, sanitize_upload
from .models import Lesion, Prediction, Submission

logger = logging.getLogger(__name__)

CONTEXT_FIELDS = ("age", "sex", "anatomic_site", "skin_type", "duration", "symptoms")


def clean_upload(upload) -> CleanImage:
    """Sanitise an uploaded file with the configured limits (raises images.ImageRejected)."""
    return sanitize_upload(
        upload,
        max_bytes=settings.MAX_UPLOAD_BYTES,
        max_pixels=settings.MAX_IMAGE_PIXELS,
        max_side=settings.STORED_IMAGE_MAX_SIDE,
    )


def default_lesion_name(when=None) -> str:
    return f"Spot photographed {date_format(timezone.localtime(when or timezone.now()), 'j M Y')}"


def create_submission(owner, image: CleanImage, *, lesion: Lesion | None = None, lesion_name: str = "",
                      **context) -> Submission:
    """Store a sanitised photo as a new submission and queue its analysis after commit.

    ``lesion`` must already belong to ``owner`` (callers fetch it through a
    selector). Without one, a new lesion is created for the photo. If anything
    fails, neither the rows nor the stored file are left behind.
    """
    unknown = set(context) - set(CONTEXT_FIELDS)
    if unknown:
        raise TypeError(f"unknown submission fields: {sorted(unknown)}")
    if lesion is not None and lesion.owner_id != owner.pk:
        raise PermissionError("lesion belongs to another user")
    submission = None
    try:
        with transaction.atomic():
            if lesion is None:
                lesion = Lesion.objects.create(
                    owner=owner,
                    name=lesion_name.strip() or default_lesion_name(),
                    body_site=context.get("anatomic_site") or "",
                )
            submission = Submission(
                owner=owner,
                lesion=lesion,
                image_sha256=image.sha256,
                image_width=image.width,
                image_height=image.height,
                **{key: value for key, value in context.items() if value not in (None, "")},
            )
            submission.image.save("upload.jpg", ContentFile(image.content), save=False)
            submission.save()
            transaction.on_commit(lambda: enqueue_analysis(submission))
    except BaseException:
        if submission is not None and submission.image.name:
            submission.image.storage.delete(submission.image.name)
        raise
    return submission


def enqueue_analysis(submission: Submission) -> bool:
    """Send the analysis task (id only); on success mark the row as accepted by the broker.

    A broker outage leaves the submission queued with ``enqueued_at`` empty, not lost: the outbox
    sweeper (``recovery.dispatch_pending``, every 30 s from beat) sends it once the broker is back.
    Publishing gives up after one quick retry (CELERY_TASK_PUBLISH_RETRY_POLICY and the Redis socket
    timeouts in settings), so an upload does not hang on a dead broker.
    """
    from .tasks import analyse_submission

    try:
        analyse_submission.delay(submission.pk)
    except Exception as exc:  # noqa: BLE001 - the photo is saved; the outbox sends it later
        logger.warning("could not enqueue submission %s (%s: %s); it stays queued for dispatch_pending",
                       submission.pk, exc.__class__.__name__, exc)
        return False
    Submission.objects.filter(pk=submission.pk).update(enqueued_at=timezone.now())
    return True


def _claim(submission_id: int) -> bool:
    """Mark a submission as processing unless it already finished (a conditional UPDATE)."""
    return bool(
        Submission.objects.filter(pk=submission_id)
        .exclude(status__in=Submission.FINAL_STATUSES)
        .update(status=Submission.Status.PROCESSING, started_at=timezone.now(), attempts=F("attempts") + 1)
    )


def _finish(submission_id: int, **fields) -> None:
    Submission.objects.filter(pk=submission_id).update(finished_at=timezone.now(), **fields)


def analyse_submission(submission_id: int) -> str:
    """Classify one submission and store one ranked Prediction per class.

    Idempotent: a submission that is already final is left alone, and the
    predictions are written in one transaction after re-checking the status
    under a row lock, so a duplicate delivery cannot add a second set.
    """
    if not _claim(submission_id):
        return "skipped"
    submission = Submission.objects.get(pk=submission_id)
    try:
        from .classifier import get_classifier

        classifier = get_classifier()
    except Exception as exc:  # noqa: BLE001 - a broken model must not lose the photo
        logger.exception("classifier unavailable for submission %s", submission_id)
        _finish(submission_id, status=Submission.Status.FAILED,
                failure_reason=f"The classifier is unavailable ({exc}). The photo is kept and can be re-analysed.")
        return "failed"
    try:
        from ml.preprocessing import open_image

        with submission.image.open("rb") as fh:
            img = open_image(fh, classifier.input_size)
            img.load()
        result = classifier.predict([img])[0]
    except Exception as exc:  # noqa: BLE001
        logger.exception("analysis failed for submission %s", submission_id)
        _finish(submission_id, status=Submission.Status.FAILED,
                failure_reason=f"The photo could not be analysed ({exc.__class__.__name__}).")
        return "failed"
    status = store_result(submission_id, result)
    if status == Submission.Status.DONE:
        # After the result is stored, so the person sees it without waiting for the overlay (the
        # occlusion heatmap costs ~50 forward passes), and outside its transaction: no row lock held.
        size = (submission.image_width, submission.image_height) if submission.image_width else None
        explanations.store_heatmap(submission_id, explanations.heatmap_png(classifier, img, result, size),
                                   result.model_version)
    return status


def store_result(submission_id: int, result, heatmap: bytes | None = None) -> str:
    """Write the ranked predictions, the embedding, the heatmap PNG (if any) and the final status exactly once."""
    from ml.inference import REASON_NOT_SKIN, STATUS_REJECTED, STATUS_UNCERTAIN

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
            locked.finished_at = timezone.now()
            if result.status == STATUS_REJECTED and result.reason == REASON_NOT_SKIN:
                locked.status = Submission.Status.REJECTED
                locked.failure_reason = "This does not look like a photo of skin, so it was not assessed."
            else:
                locked.status = Submission.Status.DONE
                locked.failure_reason = ""
                from .reminders import schedule_reminder  # re-photograph reminder from this result's urgency

                transaction.on_commit(lambda: schedule_reminder(submission_id), robust=True)
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


def requeue_submission(submission: Submission) -> bool:
    """Put a failed submission back in the queue (after the model was fixed, say)."""
    updated = Submission.objects.filter(pk=submission.pk, status=Submission.Status.FAILED).update(
        status=Submission.Status.QUEUED, failure_reason="", started_at=None, finished_at=None, enqueued_at=None
    )
    if updated:
        transaction.on_commit(lambda: enqueue_analysis(submission))
    return bool(updated)


# --- Deletion and retention -------------------------------------------------------------------
# Rows go first, files after the transaction commits: a rollback must never leave rows whose
# photo is gone. A file whose deletion fails is logged by name (never content) and is caught
# by the next run of `manage.py purge_expired --orphans`.


def _delete_files_on_commit(names):
    from .storage import photo_storage

    names = [name for name in names if name]

    def delete():
        storage = photo_storage()
        for name in names:
            try:
                storage.delete(name)
            except Exception:  # noqa: BLE001 - the row is gone; an orphan file is retried later
                logger.exception("could not delete stored photo %s", name)

    transaction.on_commit(delete)


def delete_submissions(queryset) -> int:
    """Delete submissions (with their predictions) and their stored photos. Returns how many."""
    from .audit import redact_deleted

    with transaction.atomic():
        names = [name for pair in queryset.values_list("image", "heatmap") for name in pair]
        prediction_pks = list(Prediction.objects.filter(submission__in=queryset).values_list("pk", flat=True))
        # Per object, not one bulk DELETE, so auditlog records each deletion.
        deleted = []
        for submission in queryset.select_for_update():
            deleted.append(submission.pk)
            submission.delete()
        redact_deleted(Submission, deleted)
        redact_deleted(Prediction, prediction_pks)
        _delete_files_on_commit(names)
    return len(deleted)


def delete_submission(submission: Submission) -> None:
    """Delete one photo. The lesion stays (with its other photos), even if this was its last."""
    delete_submissions(Submission.objects.filter(pk=submission.pk))


def delete_lesion(lesion: Lesion) -> int:
    """Delete a lesion and every photo of it; returns how many photos went."""
    from .audit import redact_deleted

    with transaction.atomic():
        count = delete_submissions(Submission.objects.filter(lesion=lesion))
        lesion_pk = lesion.pk
        lesion.delete()
        redact_deleted(Lesion, [lesion_pk])
    return count


def expired_submissions(days: int, now=None):
    """Submissions older than the retention period (``days`` > 0)."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    return Submission.objects.filter(created_at__lt=cutoff)


def empty_expired_lesions(days: int, now=None):
    """Lesions older than the retention period with no photo younger than it (empty once those go)."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    return Lesion.objects.filter(created_at__lt=cutoff).exclude(submissions__created_at__gte=cutoff)
