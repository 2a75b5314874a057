"""Multi-step writes of the diagnosis app: upload → sanitise → store → enqueue, re-queue, delete.

The business rules of a person's photos live here; views, the API and the admin only call in.
Analysing a stored photo is analysis.py's job, handing it to the broker publish.py's.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.formats import date_format

from .audit import redact_deleted
from .images import CleanImage, budget_of, sanitize_upload
from .models import Lesion, Prediction, Submission
from .publish import enqueue_analysis
from .reminders import schedule_reminder
from .storage import delete_files_on_commit

CONTEXT_FIELDS = ("age", "sex", "anatomic_site", "skin_type", "duration", "symptoms")
LESION_NAME_MAX = Lesion._meta.get_field("name").max_length


def clean_upload(upload) -> CleanImage:
    """Sanitise an uploaded file with the configured limits (raises images.ImageRejected)."""
    return sanitize_upload(
        upload,
        max_bytes=settings.MAX_UPLOAD_BYTES,
        max_pixels=settings.MAX_IMAGE_PIXELS,
        max_decode_bytes=settings.MAX_DECODE_MB * 2**20,
        max_side=settings.STORED_IMAGE_MAX_SIDE,
        budget=budget_of(settings.DECODE_BUDGET_MB * 2**20),
        wait_s=settings.DECODE_WAIT_SECONDS,
    )


def default_lesion_name(when=None) -> str:
    return f"Spot photographed {date_format(timezone.localtime(when or timezone.now()), 'j M Y')}"


def store_photo(owner, image: CleanImage, *, lesion: Lesion | None = None, lesion_name: str = "",
                batch=None, **context) -> Submission:
    """Store a sanitised photo as a new, queued submission: its lesion (if new), row and encrypted file.

    They are committed together or not at all: if anything fails, neither the rows nor the stored
    file are left behind. Nothing is sent to the broker (``create_submission`` does that; a bulk
    import sends one task for all its photos). ``lesion`` must already belong to ``owner`` (callers
    fetch it through a selector); without one, a new lesion is created for the photo.
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
                    name=lesion_name.strip()[:LESION_NAME_MAX] or default_lesion_name(),
                    body_site=context.get("anatomic_site") or "",
                )
            submission = Submission(
                owner=owner,
                lesion=lesion,
                batch=batch,
                image_sha256=image.sha256,
                image_width=image.width,
                image_height=image.height,
                **{key: value for key, value in context.items() if value not in (None, "")},
            )
            submission.image.save("upload.jpg", ContentFile(image.content), save=False)
            submission.save()
    except BaseException:
        if submission is not None and submission.image.name:
            submission.image.storage.delete(submission.image.name)
        raise
    return submission


def create_submission(owner, image: CleanImage, *, lesion: Lesion | None = None, lesion_name: str = "",
                      **context) -> Submission:
    """Store a sanitised photo (``store_photo``) and queue its analysis once that commits."""
    with transaction.atomic():
        submission = store_photo(owner, image, lesion=lesion, lesion_name=lesion_name, **context)
        transaction.on_commit(lambda: enqueue_analysis(submission))
    return submission


def requeue_submission(submission: Submission) -> bool:
    """Put a failed submission back in the queue (after the model was fixed, say)."""
    updated = Submission.objects.filter(pk=submission.pk, status=Submission.Status.FAILED).update(
        status=Submission.Status.QUEUED, failure_reason="", started_at=None, finished_at=None, enqueued_at=None
    )
    if updated:
        transaction.on_commit(lambda: enqueue_analysis(submission))
    return bool(updated)


def look_anyway(submission: Submission) -> bool:
    """Show the reading of a photo that was not assessed (not skin, uncertain), at the owner's request.

    A model save, so the audit log records who asked and when. The advice stays at least "soon"
    (guidance/triage.py); the re-photograph reminder follows the new tier. False when there is
    nothing to show (assessed already, failed, not final, or asked before).
    """
    if not submission.can_look_anyway:
        return False
    submission.look_anyway = True
    submission.save(update_fields=["look_anyway", "updated_at"])
    transaction.on_commit(lambda: schedule_reminder(submission.pk), robust=True)
    return True


# --- Deletion and retention -------------------------------------------------------------------
# Rows go first, files after the transaction commits: a rollback must never leave rows whose
# photo is gone. A file whose deletion fails is logged by name (never content) and is caught
# by the next run of `manage.py purge_expired --orphans` (storage.delete_files_on_commit).


def delete_submissions(queryset) -> int:
    """Delete submissions (with their predictions) and their stored photos. Returns how many."""
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
        delete_files_on_commit(names)
    return len(deleted)


def delete_submission(submission: Submission) -> None:
    """Delete one photo. The lesion stays (with its other photos), even if this was its last."""
    delete_submissions(Submission.objects.filter(pk=submission.pk))


def delete_lesion(lesion: Lesion) -> int:
    """Delete a lesion and every photo of it; returns how many photos went."""
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
