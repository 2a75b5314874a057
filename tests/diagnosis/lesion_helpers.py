"""Helpers for the lesion timeline, reminder and report tests: finish an analysis with given numbers.

The probabilities go through the real ``analysis.store_result`` (as the worker's would), so the
rows, the final status and the reminder hook are the production ones; only the classifier is
replaced by the numbers a test needs.
"""

from datetime import timedelta

import numpy as np
from django.utils import timezone

from diagnosis import analysis, services
from diagnosis.models import Submission
from ml.classes import ALL_LABELS


def ranked(probabilities: dict[str, float]):
    """Every class, the given ones with their probability and the rest sharing what is left."""
    from ml.inference import ClassProbability

    rest = [code for code in ALL_LABELS if code not in probabilities]
    left = max(0.0, 1.0 - sum(probabilities.values()))
    full = {**probabilities, **{code: left / len(rest) for code in rest}}
    return [ClassProbability(code, ALL_LABELS[code], p) for code, p in sorted(full.items(), key=lambda i: -i[1])]


def finish(submission, probabilities, *, embedding=None, model_version="test-model-1", days_ago=None,
           status="ok", kind=None):
    """Store a result for ``submission`` and optionally its embedding and an earlier upload date."""
    from ml.inference import Result

    if days_ago is not None:
        when = timezone.now() - timedelta(days=days_ago)
        Submission.objects.filter(pk=submission.pk).update(created_at=when)
    analysis.claim(submission.pk)
    reason = "not_skin" if status == "rejected" else None
    analysis.store_result(submission.pk, Result(status, reason, model_version, ranked(probabilities), kind=kind))
    if embedding is not None:
        blob = np.asarray(embedding, dtype=np.float16).tobytes()
        Submission.objects.filter(pk=submission.pk).update(embedding=blob)
    submission.refresh_from_db()
    return submission


def photo_series(submission_factory, specs, lesion=None):
    """Submissions of one lesion, oldest first: ``specs`` are (days_ago, probabilities, embedding or None)."""
    made = []
    for days_ago, probabilities, embedding in specs:
        submission = submission_factory(lesion=lesion)
        lesion = submission.lesion
        made.append(finish(submission, probabilities, embedding=embedding, days_ago=days_ago))
    return made


def photo_submission(owner, lesion=None, color=(200, 150, 120), size=(64, 48), **context):
    """A submission whose photo has its own colour (identical photos are stored once in a PDF)."""
    from django.db import transaction

    from tests.conftest import image_bytes, upload_file

    clean = services.clean_upload(upload_file(image_bytes(size=size, color=color)))
    with transaction.atomic():
        return services.create_submission(owner, clean, lesion=lesion, **context)
