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

import uuid
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from django.db import transaction
from django.db.models import Count

from . import services
from .images import ImageRejected
from .models import Lesion, Submission
from .publish import enqueue_batch


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
    commits (``heatmaps``: see ``analysis.analyse_batch``); without it the caller analyses them itself.
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
                # Committed on its own (row and file together), so a crash later keeps it whole.
                outcome = FileOutcome(name, services.store_photo(owner, image, lesion=lesion,
                                                                 lesion_name=lesion_name, batch=batch))
            outcomes.append(outcome)
            if progress:
                progress(outcome)
    finally:
        # Also after an unexpected error half-way: the photos stored so far are complete records.
        ids = [o.submission.pk for o in outcomes if o.submission is not None]
        if ids and enqueue:
            transaction.on_commit(lambda: enqueue_batch(ids, heatmaps=heatmaps))
    return BatchOutcome(batch if ids else None, outcomes)


# --- Reads --------------------------------------------------------------------------------------


def batch_submissions(owner, batch_id):
    """The owner's submissions of one batch (empty for anyone else: their batch does not exist)."""
    return Submission.objects.for_owner(owner).filter(batch=batch_id)


def batch_counts(submissions) -> dict[str, int]:
    """How many photos of the batch are in each status (every status present, zeros included)."""
    counts = {value: 0 for value in Submission.Status.values}
    for row in submissions.order_by().values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts
