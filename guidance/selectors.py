"""Reads for the condition pages and the guidance shown with a result.

Condition entries are public health information (no personal data). The
guidance for a submission is computed on each read from its stored predictions
and answers, so a changed rule or threshold applies to old results too.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.shortcuts import get_object_or_404

from .models import Condition
from .triage import DEFAULT_MALIGNANCY_THRESHOLD, TriageResult, triage

logger = logging.getLogger(__name__)

TOP_N = 4


def conditions():
    return Condition.objects.all()


def get_condition(code):
    return get_object_or_404(Condition, code=code)


@lru_cache(maxsize=8)
def _threshold_from_metadata(path: str, mtime: float) -> float | None:
    try:
        value = (json.loads(Path(path).read_text()).get("thresholds") or {}).get("malignancy")
    except (OSError, ValueError):
        logger.warning("could not read the model metadata at %s for the malignancy threshold", path)
        return None
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = -1.0
    if not 0.0 < value < 1.0:
        logger.warning("ignoring thresholds.malignancy=%r in %s: not a probability", value, path)
        return None
    return value


def malignancy_threshold() -> float:
    """``thresholds.malignancy`` from the configured model's metadata, else ``settings.MALIGNANCY_THRESHOLD``.

    The metadata value is chosen by the ML lead on validation data (see guidance/triage.py);
    the setting (default ``triage.DEFAULT_MALIGNANCY_THRESHOLD``) covers models without one.
    """
    path = Path(settings.ML_MODEL_DIR) / "metadata.json"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = None
    value = _threshold_from_metadata(str(path), mtime) if mtime is not None else None
    if value is not None:
        return value
    return float(getattr(settings, "MALIGNANCY_THRESHOLD", DEFAULT_MALIGNANCY_THRESHOLD))


def _ranked(submission):
    # Sorted in Python so any prefetch (or none) gives ranks in order.
    return sorted(submission.predictions.all(), key=lambda p: p.rank)


def submission_triage(submission, predictions=None) -> TriageResult | None:
    """The urgency tier and reasons for a finished analysis; None while queued, analysing or failed."""
    if submission.status not in ("done", "rejected"):
        return None
    predictions = _ranked(submission) if predictions is None else predictions
    return triage(
        {p.code: p.probability for p in predictions},
        uncertain=submission.uncertain,
        not_skin=submission.status == "rejected",
        answers={"symptoms": submission.symptoms or [], "age": submission.age, "duration": submission.duration},
        malignancy_threshold=malignancy_threshold(),
    )


def result_guidance(submission, predictions=None) -> dict:
    """Context for templates/guidance/_result_guidance.html: the triage and the top conditions' entries."""
    predictions = _ranked(submission) if predictions is None else list(predictions)
    result = submission_triage(submission, predictions)
    top = predictions[:TOP_N] if submission.status == "done" else []
    entries = {c.code: c for c in Condition.objects.for_codes(p.code for p in top)}
    return {
        "triage": result,
        "conditions": [{"prediction": p, "condition": entries.get(p.code)} for p in top],
    }
