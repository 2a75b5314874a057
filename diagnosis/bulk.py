"""Bulk classification: many photos for one owner, stored as one batch and analysed in chunks.

Why a separate path from ``services.create_submission``: a clinic importing a folder (or an API
client sending a hundred photos) should not cost one task and one model call per photo. Each photo
still becomes an ordinary Submission (sanitised, encrypted, owned, ranked predictions, model
version), so it shows in the owner's history and the admin like any upload; the photos only share
a ``batch`` id, and one task classifies them ``ML_BATCH_SIZE`` at a time.

Each accepted photo is committed on its own (row and stored file together, or neither), so a
long import never holds one write transaction open, and a crash half-way leaves complete,
queued submissions behind, never half a record. A rejected file writes nothing at all.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from . import services
from .images import ImageRejected
from .models import Lesion, Submission

logger = logging.getLogger(__name__)


@dataclass
class FileOutcome:
    """What happened to one file of a batch: a submission, or the reason it was refused."""

    name: str
    submission: Submission | None = None
    error: str = ""

    @property
    def accepted(self) -> bool:
        return not self.error


@dataclass
class BatchOutcome:
    batch: uuid.UUID | None  # None when no file was accepted (nothing was stored)
    files: list[FileOutcome]

    @property
    def accepted(self) -> list[FileOutcome]:
        return [f for f in self.files if f.accepted]

    @property
    def rejected(self) -> list[FileOutcome]:
        return [f for f in self.files if not f.accepted]

    @property
    def submission_ids(self) -> list[int]:
        return [f.submission.pk for f in self.accepted if f.submission is not None]


def _name_of(upload, index: int) -> str:
    return str(getattr(upload, "name", "") or f"file {index + 1}")


def check_files(files: Iterable, *, progress: Callable[[FileOutcome], None] | None = None) -> BatchOutcome:
    """Sanitise each file and report what would be accepted, storing nothing (``--dry-run``)."""
    outcomes = []
    for index, upload in enumerate(files):
        name = _name_of(upload, index)
        try:
            services.clean_upload(upload)
            outcome = FileOutcome(name)
        except ImageRejected as exc:
            outcome = FileOutcome(name, error=str(exc))
        outcomes.append(outcome)
        if progress:
            progress(outcome)
    return BatchOutcome(None, outcomes)


def create_batch(owner, files: Iterable, *, lesion: Lesion | None = None,
                 lesion_names: Sequence[str] | None = None, enqueue: bool = True, heatmaps: bool = False,
                 progress: Callable[[FileOutcome], None] | None = None) -> BatchOutcome:
    """Sanitise and store many photos for ``owner`` under one new batch id; queue one batch task.

    ``files`` are file objects with a ``name`` (uploads, or opened files): read one at a time, so
    an iterator over a large folder keeps memory flat. Every photo goes to ``lesion`` (which must
    belong to ``owner``) when given; otherwise each gets a lesion of its own, named from
    ``lesion_names`` (one per file, "" for the default name). A file the sanitiser refuses is
    reported with the reason and leaves no row and no stored file. With ``enqueue`` (the default)
    one ``analyse_batch`` task for all accepted photos is sent after the surrounding transaction
    commits (``heatmaps``: see ``analyse_batch``); without it the caller analyses them itself.
    """
    if lesion is not None and lesion.owner_id != owner.pk:
        raise PermissionError("lesion belongs to another user")
    if lesion is not None and lesion_names:
        raise ValueError("give either one lesion for every photo or lesion names, not both")
    batch = uuid.uuid4()
    outcomes: list[FileOutcome] = []
    try:
        for index, upload in enumerate(files):
            name = _name_of(upload, index)
            try:
                image = services.clean_upload(upload)
            except ImageRejected as exc:
                outcome = FileOutcome(name, error=str(exc))
            else:
                lesion_name = lesion_names[index] if lesion_names and index < len(lesion_names) else ""
                outcome = FileOutcome(name, _store_photo(owner, image, batch, lesion, lesion_name))
            outcomes.append(outcome)
            if progress:
                progress(outcome)
    finally:
        # Also after an unexpected error half-way: the photos stored so far are complete records.
        ids = [o.submission.pk for o in outcomes if o.submission is not None]
        if ids and enqueue:
            transaction.on_commit(lambda: enqueue_batch(ids, heatmaps=heatmaps))
    return BatchOutcome(batch if ids else None, outcomes)


def _store_photo(owner, image, batch: uuid.UUID, lesion: Lesion | None, lesion_name: str) -> Submission:
    """One photo's lesion (if new), row and encrypted file, committed together or not at all."""
    submission = None
    try:
        with transaction.atomic():
            if lesion is None:
                lesion = Lesion.objects.create(owner=owner, name=(lesion_name.strip()[:100]
                                                                  or services.default_lesion_name()))
            submission = Submission(owner=owner, lesion=lesion, batch=batch, image_sha256=image.sha256,
                                    image_width=image.width, image_height=image.height)
            submission.image.save("upload.jpg", ContentFile(image.content), save=False)
            submission.save()
    except BaseException:
        if submission is not None and submission.image.name:
            submission.image.storage.delete(submission.image.name)
        raise
    return submission


def enqueue_batch(submission_ids: list[int], *, heatmaps: bool = False) -> bool:
    """Send one ``analyse_batch`` task; a broker outage leaves the photos queued, not lost.

    ``enqueued_at`` is the outbox marker (set once the broker took the task): rows left without it
    are sent one by one by ``recovery.dispatch_pending``, which is safe because analysis claims
    each photo, as are rows still queued long after (a lost task, or one still working through a
    very large batch).
    """
    from .tasks import analyse_batch

    try:
        analyse_batch.delay(list(submission_ids), heatmaps=heatmaps)
    except Exception as exc:  # noqa: BLE001 - the photos are saved; the outbox sends them later
        logger.warning("could not enqueue a batch of %d submissions (%s: %s); they stay queued for "
                       "dispatch_pending", len(submission_ids), exc.__class__.__name__, exc)
        return False
    Submission.objects.filter(pk__in=submission_ids, enqueued_at__isnull=True).update(enqueued_at=timezone.now())
    return True


def analyse_batch(submission_ids: Sequence[int], *, batch_size: int | None = None, heatmaps: bool = False,
                  progress: Callable[[int, str], None] | None = None) -> dict[int, str]:
    """Classify many submissions, ``batch_size`` (default ``ML_BATCH_SIZE``) photos per model call.

    The same guarantees as ``services.analyse_submission``, per photo: each is claimed with the
    conditional UPDATE (an already-final one is skipped), and its predictions, embedding and final
    status are written by ``services.store_result``, exactly once. A photo that cannot be decoded
    is marked failed with a reason and the others go on. Claims are taken chunk by chunk, so photos
    not reached yet stay "queued" rather than "analysing". Returns each id's outcome.

    Heatmaps are off by default: the occlusion heatmap costs ~50 forward passes per photo (about a
    second each on a CPU), which would make a bulk import tens of times slower than classifying it.
    ``heatmaps=True`` computes them as a single upload does (when ML_HEATMAPS is on).
    """
    from . import recovery

    batch_size = max(1, int(batch_size or settings.ML_BATCH_SIZE))
    ids = list(dict.fromkeys(submission_ids))  # a repeated id is analysed once
    outcomes: dict[int, str] = {}

    def report(submission_id, outcome):
        outcomes[submission_id] = outcome
        if progress:
            progress(submission_id, outcome)

    def fail(submission_id, reason):
        services._finish(submission_id, status=Submission.Status.FAILED, failure_reason=reason)
        report(submission_id, Submission.Status.FAILED)

    try:
        from .classifier import get_classifier

        classifier = get_classifier()
    except Exception as exc:  # noqa: BLE001 - a broken model must not lose the photos
        logger.exception("classifier unavailable for a batch of %d submissions", len(ids))
        for submission_id in ids:
            if services._claim(submission_id):
                fail(submission_id, f"The classifier is unavailable ({exc}). The photo is kept and can be re-analysed.")
            else:
                report(submission_id, "skipped")
        return outcomes

    # Photos an earlier run claimed and never finished (its worker died and the broker redelivered
    # the task) go first, one per model call: if one of them is what kills the worker, only that
    # photo uses up its attempts (recovery.give_up_if_exhausted), not the whole chunk it was in.
    interrupted = set(Submission.objects.filter(pk__in=ids, status=Submission.Status.PROCESSING)
                      .values_list("pk", flat=True))
    rest = [pk for pk in ids if pk not in interrupted]
    chunks = [[pk] for pk in ids if pk in interrupted]
    chunks += [rest[start:start + batch_size] for start in range(0, len(rest), batch_size)]

    for chunk in chunks:
        # The chunk's claims, and below its results, each commit once: a commit per photo (an fsync
        # each) cost more than the model on SQLite. Every photo is still claimed and stored on its
        # own terms (the conditional UPDATE; store_result's row lock and final-status check).
        claimed = []
        with transaction.atomic():
            for submission_id in chunk:
                if recovery.give_up_if_exhausted(submission_id):
                    report(submission_id, Submission.Status.FAILED)
                elif services._claim(submission_id):
                    claimed.append(submission_id)
                else:
                    report(submission_id, "skipped")
        decoded = []
        for submission_id in claimed:
            try:
                decoded.append((submission_id, *_decode(submission_id, classifier.input_size)))
            except Exception as exc:  # noqa: BLE001 - one unreadable photo must not stop the batch
                logger.exception("could not decode submission %s", submission_id)
                fail(submission_id, f"The photo could not be analysed ({exc.__class__.__name__}).")
        if not decoded:
            continue
        try:
            results = classifier.predict([img for _, img, _ in decoded])
        except Exception as exc:  # noqa: BLE001
            logger.exception("classification failed for a chunk of %d submissions", len(decoded))
            for submission_id, _, _ in decoded:
                fail(submission_id, f"The photo could not be analysed ({exc.__class__.__name__}).")
            continue
        # Heatmaps (slow) are computed before the transaction, so it never holds row locks for long.
        pngs = [_heatmap(classifier, img, result, size) if heatmaps else None
                for (_, img, size), result in zip(decoded, results)]
        with transaction.atomic():
            for (submission_id, _, _), result, png in zip(decoded, results, pngs):
                stored = (services.store_result(submission_id, result, heatmap=png) if png
                          else services.store_result(submission_id, result))
                report(submission_id, stored)
    return outcomes


def _heatmap(classifier, img, result, size):
    from . import explanations

    return explanations.heatmap_png(classifier, img, result, size)


def _decode(submission_id: int, input_size):
    """The photo decoded for the model, and the stored photo's (width, height) for a heatmap."""
    from ml.preprocessing import open_image

    submission = Submission.objects.only("image", "image_width", "image_height").get(pk=submission_id)
    with submission.image.open("rb") as fh:
        img = open_image(fh, input_size)
        img.load()
    size = (submission.image_width, submission.image_height) if submission.image_width else None
    return img, size


# --- Reads --------------------------------------------------------------------------------------


def batch_submissions(owner, batch_id):
    """The owner's submissions of one batch (empty for anyone else: their batch does not exist)."""
    return Submission.objects.for_owner(owner).filter(batch=batch_id)


def batch_counts(submissions) -> dict[str, int]:
    """How many photos of the batch are in each status (every status present, zeros included)."""
    from django.db.models import Count

    counts = {value: 0 for value in Submission.Status.values}
    for row in submissions.order_by().values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts
