"""Uploads analysed by a real Celery worker through the configured broker (Redis on CI).

Nothing runs eagerly here: the upload view commits, the task goes through the
broker, and a worker thread (solo pool) runs it against the same test database.
Fixtures that choose the model come before ``celery_worker`` in the argument
lists, because the worker loads the model as it starts.
"""

import os

import pytest

from diagnosis.models import Submission
from diagnosis.tasks import analyse_submission
from tests.integration.flow import assert_one_ranked_set, upload
from tests.integration.realworker import configured_transport, wait_for_final_status

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_uploaded_photo_is_analysed_by_the_worker(use_tiny_model, celery_worker, owner_client,
                                                  make_upload, make_image):
    # CI sets REDIS_URL: this fails if the worker quietly fell back to the filesystem broker.
    assert celery_worker.transport == (configured_transport() or "filesystem")
    if os.environ.get("REDIS_URL") and not os.environ.get("CELERY_BROKER_URL"):
        assert celery_worker.transport == "redis"
    print(f"real worker broker: {celery_worker.broker}")

    submission = upload(owner_client, make_upload, make_image)

    assert wait_for_final_status(submission.pk) == Submission.Status.DONE
    assert celery_worker.wait_for_runs(submission.pk, 1) == ["done"]
    submission.refresh_from_db()
    assert submission.model_version == "tiny-test-1"
    assert submission.attempts == 1
    assert_one_ranked_set(submission)


def test_task_delivered_twice_stores_one_set_of_predictions(use_tiny_model, celery_worker, owner_client,
                                                             make_upload, make_image):
    submission = upload(owner_client, make_upload, make_image)  # queues the task once, after commit
    analyse_submission.delay(submission.pk)  # a duplicate delivery, queued behind it

    assert sorted(celery_worker.wait_for_runs(submission.pk, 2)) == ["done", "skipped"]
    analyse_submission.delay(submission.pk)  # and once more after it finished
    assert celery_worker.wait_for_runs(submission.pk, 3)[-1] == "skipped"

    submission.refresh_from_db()
    assert submission.status == Submission.Status.DONE
    assert submission.attempts == 1
    assert_one_ranked_set(submission)


@pytest.fixture
def missing_model(settings, tmp_path):
    from diagnosis.classifier import reset_classifier

    settings.ML_MODEL_DIR = tmp_path / "no-model-here"
    reset_classifier()
    yield settings.ML_MODEL_DIR
    reset_classifier()


def test_missing_model_fails_the_submission_with_a_reason(missing_model, celery_worker, owner_client,
                                                          make_upload, make_image):
    submission = upload(owner_client, make_upload, make_image)

    assert wait_for_final_status(submission.pk) == Submission.Status.FAILED
    submission.refresh_from_db()
    assert "classifier is unavailable" in submission.failure_reason
    assert "no-model-here" in submission.failure_reason
    assert not submission.predictions.exists()
    assert submission.image.storage.exists(submission.image.name)  # the photo is kept for a re-run
