"""What a finished analysis keeps besides its predictions: the image embedding and a heatmap.

* The embedding (float16 bytes) lets the lesion timeline tell how far a spot's look moved
  between two photos (diagnosis/timeline.py reads it back).
* The heatmap is an encrypted PNG overlay, the size and shape of the photo scaled to fit
  ``HEATMAP_MAX_SIDE``, showing where hiding part of the photo lowered the top class's
  probability most (ml/explain.py: occlusion sensitivity, which needs only the model's
  forward pass, so it works with the Keras and the LiteRT engine alike).

Only photos that were assessed (status ok or uncertain) get either: a photo rejected as not
skin has no class worth explaining and no place on a lesion's timeline. An explanation is
extra: if it fails, the analysis still finishes, without it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from ml import explain
from ml.inference import STATUS_OK, STATUS_UNCERTAIN

from .models import Submission
from .photos import private_photo_response
from .storage import delete_files, delete_files_on_commit

logger = logging.getLogger(__name__)

#: The worker stores the overlay right after the result (analysis.analyse_submission); a result
#: page waits this long for it before giving up on it (a crash in between leaves none).
HEATMAP_PENDING_FOR = timedelta(minutes=2)

#: The overlay is a handful of values interpolated smoothly, so a 12-megapixel copy would add
#: bytes, not detail; the result page stretches it over the photo (same aspect ratio).
HEATMAP_MAX_SIDE = 1024


def is_explained(result) -> bool:
    return result.status in (STATUS_OK, STATUS_UNCERTAIN) and bool(result.predictions)


def embedding_bytes(result) -> bytes | None:
    """The result's image embedding as float16 bytes (None when the model has none)."""
    if result.embedding is None or not is_explained(result):
        return None
    return np.asarray(result.embedding, dtype=np.float16).ravel().tobytes()


def heatmap_png(classifier, image, result, size: tuple[int, int] | None = None) -> bytes | None:
    """The overlay PNG for the result's top class, for a photo of ``size`` (width, height).

    None when heatmaps are off (``ML_HEATMAPS``), the result is not explained, or computing it
    failed: that is logged and never fails the analysis.
    """
    if not settings.ML_HEATMAPS or not is_explained(result):
        return None
    try:
        codes = [code for code, _label in classifier.classes]
        heat = explain.occlusion_heatmap(classifier, image, codes.index(result.predictions[0].code))
        return explain.overlay_png(size or image.size, heat, max_side=HEATMAP_MAX_SIDE)
    except Exception:  # noqa: BLE001 - an explanation is optional; the prediction is not
        logger.exception("heatmap failed; the analysis is stored without one")
        return None


def attach(submission, result, heatmap: bytes | None) -> str | None:
    """Set the embedding and heatmap on a locked submission; the caller saves the row.

    Writes the heatmap file now and returns its name, so a caller whose transaction rolls back
    can remove it (``discard``). A heatmap from an earlier analysis would explain a result that
    is no longer shown: it is replaced or cleared, and its file deleted once this commits.
    """
    submission.embedding = embedding_bytes(result)
    previous = submission.heatmap.name
    written = None
    if heatmap and is_explained(result):
        submission.heatmap.save("heatmap.png", ContentFile(heatmap), save=False)
        written = submission.heatmap.name
    else:
        submission.heatmap = ""
    if previous and previous != written:
        delete_files_on_commit([previous])
    return written


def store_heatmap(submission_id: int, png: bytes | None, model_version: str) -> bool:
    """Attach an overlay computed after the result was stored, unless the row has moved on since
    (deleted, re-analysed by another model version, or given an overlay by a duplicate run)."""
    if not png:
        return False
    written = None
    try:
        with transaction.atomic():
            locked = Submission.objects.select_for_update().filter(pk=submission_id).first()
            if (locked is None or locked.status != Submission.Status.DONE or locked.heatmap
                    or locked.model_version != model_version):
                return False
            locked.heatmap.save("heatmap.png", ContentFile(png), save=False)
            written = locked.heatmap.name
            locked.save(update_fields=["heatmap", "updated_at"])
    except BaseException:
        discard(written)
        raise
    return True


def heatmap_pending(submission) -> bool:
    """A finished result whose overlay the worker is still computing, so the page should wait for it."""
    return bool(
        settings.ML_HEATMAPS and submission.status == Submission.Status.DONE and not submission.heatmap
        and submission.embedding is not None and submission.finished_at
        and timezone.now() - submission.finished_at < HEATMAP_PENDING_FOR
    )


def discard(name: str | None) -> None:
    """Remove a heatmap file written for a row that was not saved after all."""
    delete_files([name])


def heatmap_response(submission):
    """The stored overlay as a private PNG response; 404 when the submission has none.

    The caller has fetched ``submission`` through an owner-scoped selector. A result whose ranking is
    not shown (not assessed, guidance/triage.py) shows no heatmap either: it explains the top class.
    """
    if not submission.heatmap or not submission.shows_ranking:
        raise Http404("This photo has no heatmap.")
    response = private_photo_response(submission.heatmap)
    response["Content-Type"] = "image/png"
    return response
