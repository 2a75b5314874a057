"""Creating submissions and analysing them: rows, files, idempotency, failures."""

from pathlib import Path

import pytest

from diagnosis import analysis, services
from diagnosis.models import Lesion, Prediction, Submission
from ml.classes import CLASS_LABELS
from tests.conftest import build_tiny_artifact, image_bytes, upload_file

pytestmark = pytest.mark.django_db


def stored_files(settings):
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def clean(fmt="JPEG"):
    return services.clean_upload(upload_file(image_bytes(fmt)))


def test_upload_without_lesion_creates_one_and_queues_after_commit(user, settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        submission = services.create_submission(user, clean(), anatomic_site="back", age=40)
    assert len(callbacks) == 1  # analysis is sent only once the transaction commits
    assert submission.status == Submission.Status.QUEUED
    assert submission.lesion.owner == user and submission.lesion.body_site == "back"
    assert submission.lesion.name.startswith("Spot photographed")
    assert submission.age == 40 and len(submission.image_sha256) == 64
    [path] = stored_files(settings)
    assert path.name == Path(submission.image.name).name and path.suffix == ".jpg"
    assert "spot" not in path.name  # random name, not the user's file name


def test_upload_to_existing_lesion(user, submission_factory):
    first = submission_factory()
    second = submission_factory(lesion=first.lesion)
    assert second.lesion == first.lesion
    assert Lesion.objects.count() == 1


def test_another_users_lesion_is_refused(user, other_user, submission_factory, settings):
    theirs = submission_factory(owner=other_user)
    before = len(stored_files(settings))
    with pytest.raises(PermissionError):
        services.create_submission(user, clean(), lesion=theirs.lesion)
    assert Submission.objects.filter(owner=user).count() == 0
    assert len(stored_files(settings)) == before


def test_a_failing_save_leaves_no_file_and_no_row(user, settings, monkeypatch):
    def broken_save(self, *args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Submission, "save", broken_save)
    with pytest.raises(RuntimeError):
        services.create_submission(user, clean())
    assert stored_files(settings) == []
    assert Lesion.objects.count() == 0 and Submission.objects.count() == 0


def test_analysis_stores_every_class_ranked(submission_factory, use_tiny_model):
    submission = submission_factory()
    assert analysis.analyse_submission(submission.pk) == Submission.Status.DONE
    submission.refresh_from_db()
    assert submission.status == Submission.Status.DONE
    assert submission.model_version == "tiny-test-1" and submission.attempts == 1
    assert submission.started_at and submission.finished_at
    predictions = list(submission.predictions.order_by("rank"))
    assert [p.rank for p in predictions] == list(range(1, len(CLASS_LABELS) + 1))
    assert {p.code for p in predictions} == set(CLASS_LABELS)
    probabilities = [p.probability for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    assert all(p.model_version == "tiny-test-1" for p in predictions)


def test_running_the_task_twice_keeps_one_set_of_predictions(submission_factory, use_tiny_model):
    from diagnosis.tasks import analyse_submission

    submission = submission_factory()
    analyse_submission.delay(submission.pk)
    assert analyse_submission.delay(submission.pk).get() == "skipped"
    assert Prediction.objects.filter(submission=submission).count() == len(CLASS_LABELS)


def test_a_redelivered_task_after_a_crash_mid_processing_completes(submission_factory, use_tiny_model):
    submission = submission_factory()
    Submission.objects.filter(pk=submission.pk).update(status=Submission.Status.PROCESSING, attempts=1)
    assert analysis.analyse_submission(submission.pk) == Submission.Status.DONE
    submission.refresh_from_db()
    assert submission.attempts == 2
    assert submission.predictions.count() == len(CLASS_LABELS)


def test_storing_the_same_result_twice_is_a_no_op(submission_factory, use_tiny_model):
    from diagnosis.classifier import get_classifier
    from ml.preprocessing import open_image

    submission = submission_factory()
    with submission.image.open("rb") as fh:
        result = get_classifier().predict([open_image(fh)])[0]
    analysis.claim(submission.pk)
    assert analysis.store_result(submission.pk, result) == Submission.Status.DONE
    assert analysis.store_result(submission.pk, result) == "skipped"
    assert Prediction.objects.filter(submission=submission).count() == len(CLASS_LABELS)


def test_missing_model_fails_with_a_reason_and_keeps_the_photo(submission_factory, settings, tmp_path):
    from diagnosis.classifier import reset_classifier

    settings.ML_MODEL_DIR = tmp_path / "no-such-model"
    reset_classifier()
    submission = submission_factory()
    assert analysis.analyse_submission(submission.pk) == "failed"
    submission.refresh_from_db()
    assert submission.status == Submission.Status.FAILED
    assert "classifier is unavailable" in submission.failure_reason
    assert Path(submission.image.path).is_file()
    reset_classifier()


def test_tampered_model_is_refused(submission_factory, settings, tmp_path):
    from diagnosis.classifier import reset_classifier

    directory = tmp_path / "tampered"
    build_tiny_artifact(directory)
    with open(directory / "model.keras", "ab") as fh:
        fh.write(b"tampered")
    settings.ML_MODEL_DIR = directory
    reset_classifier()
    submission = submission_factory()
    analysis.analyse_submission(submission.pk)
    submission.refresh_from_db()
    assert submission.status == Submission.Status.FAILED and "sha256" in submission.failure_reason
    reset_classifier()


def test_failed_submission_can_be_requeued_and_then_succeeds(submission_factory, use_tiny_model,
                                                             django_capture_on_commit_callbacks):
    submission = submission_factory()
    Submission.objects.filter(pk=submission.pk).update(status=Submission.Status.FAILED, failure_reason="x")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.requeue_submission(submission)
    submission.refresh_from_db()
    assert submission.status == Submission.Status.DONE and submission.failure_reason == ""
    assert not services.requeue_submission(submission)  # only failed ones


def test_low_confidence_is_marked_uncertain(submission_factory, settings, tmp_path):
    from diagnosis.classifier import reset_classifier

    directory = tmp_path / "strict"
    build_tiny_artifact(directory, version="strict-1", min_confidence=0.99)
    settings.ML_MODEL_DIR = directory
    reset_classifier()
    submission = submission_factory()
    analysis.analyse_submission(submission.pk)
    submission.refresh_from_db()
    assert submission.status == Submission.Status.DONE and submission.uncertain
    reset_classifier()


def test_not_skin_result_is_rejected_with_its_predictions_kept(submission_factory):
    from ml.inference import ClassProbability, Result

    submission = submission_factory()
    ranked = [ClassProbability(code, label, 1 / len(CLASS_LABELS)) for code, label in CLASS_LABELS.items()]
    analysis.claim(submission.pk)
    analysis.store_result(submission.pk, Result("rejected", "not_skin", "gate-1", ranked))
    submission.refresh_from_db()
    assert submission.status == Submission.Status.REJECTED
    assert "does not look like a photo of skin" in submission.failure_reason
    assert submission.predictions.count() == len(CLASS_LABELS)


def test_a_transient_database_error_is_retried(submission_factory, use_tiny_model, monkeypatch):
    from django.db import OperationalError

    from diagnosis.tasks import analyse_submission

    submission = submission_factory()
    real_claim = analysis.claim
    calls = []

    def flaky_claim(submission_id):
        calls.append(submission_id)
        if len(calls) == 1:
            raise OperationalError("database table is locked")
        return real_claim(submission_id)

    monkeypatch.setattr(analysis, "claim", flaky_claim)
    monkeypatch.setattr(analyse_submission, "retry_backoff", 0)
    assert analyse_submission.apply(args=[submission.pk]).get() == Submission.Status.DONE
    assert len(calls) == 2
    assert Prediction.objects.filter(submission=submission).count() == len(CLASS_LABELS)
