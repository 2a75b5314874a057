"""Steps shared by the worker tests: upload through the web form, check the stored result."""

import pytest

from diagnosis.models import Prediction, Submission
from ml.classes import CLASS_LABELS


def upload(client, make_upload, make_image) -> Submission:
    """Upload one photo through the web form (which queues its analysis after commit)."""
    response = client.post("/upload/", {"image": make_upload(make_image(), "spot.jpg")})
    assert response.status_code == 302, response.content[:500]
    return Submission.objects.get(uuid=response.url.rstrip("/").split("/")[-1])


def assert_one_ranked_set(submission, model_version: str = "tiny-test-1") -> None:
    """Exactly one prediction per class, ranked 1..N by falling probability, from one model."""
    predictions = list(Prediction.objects.filter(submission=submission).order_by("rank"))
    assert len(predictions) == len(CLASS_LABELS) == 12
    assert sorted(p.code for p in predictions) == sorted(CLASS_LABELS)
    assert [p.rank for p in predictions] == list(range(1, len(CLASS_LABELS) + 1))
    probabilities = [p.probability for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-3)
    assert {p.model_version for p in predictions} == {model_version}
