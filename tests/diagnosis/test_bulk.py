"""Bulk classification: the batch service, chunked analysis, the classify_images command, the batches API."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.throttling import SimpleRateThrottle

from diagnosis import analysis, bulk, tasks
from diagnosis.models import Lesion, Prediction, Submission
from ml.classes import CLASS_LABELS
from tests.conftest import image_bytes, upload_file
from tests.integration.realworker import celery_worker, wait_for_final_status  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db

LIST_URL = reverse("api:batch-list")


def detail_url(batch_id):
    return reverse("api:batch-detail", kwargs={"uuid": batch_id})


def stored_files(settings):
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def good(name="spot.jpg", fmt="JPEG", color=(200, 150, 120)):
    return upload_file(image_bytes(fmt, color=color), name=name)


def bad(name="notes.txt", content=b"this is not a photo"):
    return upload_file(content, name=name, content_type="text/plain")


@pytest.fixture
def sent_batches(monkeypatch):
    """Record the analyse_batch tasks sent (instead of running them)."""
    calls = []
    monkeypatch.setattr(tasks.analyse_batch, "delay", lambda ids, heatmaps=False: calls.append(list(ids)))
    return calls


def make_batch(owner, count, **kwargs):
    return bulk.create_batch(owner, [good(f"p{i}.jpg", color=(100 + 20 * i, 120, 90)) for i in range(count)],
                             enqueue=False, **kwargs)


# --- create_batch ---------------------------------------------------------------------------------


def test_mixed_files_store_only_the_good_ones_and_queue_one_task(
        user, settings, sent_batches, django_capture_on_commit_callbacks):
    files = [good("a.jpg"), bad("notes.txt"), good("b.png", "PNG"), bad("empty.jpg", b"")]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        outcome = bulk.create_batch(user, files)

    assert [f.accepted for f in outcome.files] == [True, False, True, False]
    assert "not an image" in outcome.files[1].error and "empty" in outcome.files[3].error
    submissions = list(Submission.objects.order_by("pk"))
    assert [s.pk for s in submissions] == outcome.submission_ids
    assert {s.batch for s in submissions} == {outcome.batch} and outcome.batch is not None
    assert all(s.owner == user and s.status == Submission.Status.QUEUED for s in submissions)
    # One lesion per photo by default; nothing at all for the refused files.
    assert Lesion.objects.count() == 2 and len({s.lesion_id for s in submissions}) == 2
    assert len(stored_files(settings)) == 2
    # One task for the whole batch, sent after commit, and the outbox marker set once it was sent.
    assert len(callbacks) == 1 and sent_batches == [outcome.submission_ids]
    assert all(s.enqueued_at for s in Submission.objects.all())


def test_nothing_is_queued_before_commit_or_when_everything_is_refused(
        user, settings, sent_batches, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = bulk.create_batch(user, [bad(), bad("x.gif", b"GIF89a")])
    assert outcome.batch is None and len(outcome.rejected) == 2
    assert callbacks == [] and sent_batches == []
    assert not Submission.objects.exists() and not Lesion.objects.exists() and stored_files(settings) == []


def test_one_given_lesion_or_one_name_per_file(user, other_user, submission_factory):
    lesion = submission_factory().lesion
    outcome = make_batch(user, 3, lesion=lesion)
    assert {f.submission.lesion_id for f in outcome.accepted} == {lesion.pk}

    outcome = make_batch(user, 2, lesion_names=["left arm", ""])
    names = [f.submission.lesion.name for f in outcome.accepted]
    assert names[0] == "left arm" and names[1].startswith("Spot photographed")

    with pytest.raises(PermissionError):
        make_batch(other_user, 1, lesion=lesion)


def test_a_failed_store_leaves_no_file_and_keeps_the_photos_before_it(user, settings, monkeypatch, sent_batches,
                                                                    django_capture_on_commit_callbacks):
    real_save = Submission.save
    saved = []

    def save_once(self, *args, **kwargs):
        if saved:
            raise RuntimeError("database went away")
        saved.append(self)
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Submission, "save", save_once)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        bulk.create_batch(user, [good("a.jpg"), good("b.jpg"), good("c.jpg")])
    [kept] = Submission.objects.all()
    assert len(stored_files(settings)) == 1 and Lesion.objects.count() == 1
    assert sent_batches == [[kept.pk]]  # the complete photo is still analysed


# --- analyse_batch --------------------------------------------------------------------------------


@pytest.fixture
def chunk_sizes(monkeypatch, use_tiny_model):
    """The number of photos in each model call."""
    from diagnosis.classifier import get_classifier

    classifier = get_classifier()
    real_predict = classifier.predict
    sizes = []

    def predict(images):
        sizes.append(len(images))
        return real_predict(images)

    monkeypatch.setattr(classifier, "predict", predict)
    return sizes


def test_analyse_batch_in_chunks_stores_one_ranked_set_each_and_is_idempotent(user, chunk_sizes):
    ids = make_batch(user, 5).submission_ids
    outcomes = analysis.analyse_batch(ids, batch_size=2)

    assert chunk_sizes == [2, 2, 1]
    assert outcomes == {pk: Submission.Status.DONE for pk in ids}
    for submission in Submission.objects.filter(pk__in=ids):
        assert submission.status == Submission.Status.DONE and submission.model_version == "tiny-test-1"
        predictions = list(submission.predictions.order_by("rank"))
        assert [p.code for p in predictions] and {p.code for p in predictions} == set(CLASS_LABELS)
        assert [p.rank for p in predictions] == list(range(1, len(CLASS_LABELS) + 1))
        assert sum(p.probability for p in predictions) == pytest.approx(1.0, abs=1e-4)

    count = Prediction.objects.count()
    assert count == 5 * len(CLASS_LABELS)
    assert analysis.analyse_batch(ids, batch_size=2) == {pk: "skipped" for pk in ids}  # a redelivered task
    assert Prediction.objects.count() == count and chunk_sizes == [2, 2, 1]


def test_the_default_chunk_is_ml_batch_size(user, chunk_sizes, settings):
    settings.ML_BATCH_SIZE = 3
    analysis.analyse_batch(make_batch(user, 4).submission_ids)
    assert chunk_sizes == [3, 1]


def test_an_unreadable_photo_fails_alone_and_a_final_one_is_skipped(user, chunk_sizes):
    ids = make_batch(user, 4).submission_ids
    broken = Submission.objects.get(pk=ids[1])
    storage, name = broken.image.storage, broken.image.name
    storage.delete(name)
    storage.save(name, ContentFile(b"not a jpeg any more"))  # stored (encrypted) fine, decodes to nothing
    Submission.objects.filter(pk=ids[3]).update(status=Submission.Status.DONE)

    outcomes = analysis.analyse_batch(ids, batch_size=2)

    assert outcomes == {ids[0]: "done", ids[1]: "failed", ids[2]: "done", ids[3]: "skipped"}
    broken.refresh_from_db()
    assert broken.status == Submission.Status.FAILED and "could not be analysed" in broken.failure_reason
    assert not broken.predictions.exists() and not Prediction.objects.filter(submission_id=ids[3]).exists()
    assert chunk_sizes == [1, 1]


def test_a_photo_finished_elsewhere_meanwhile_keeps_that_result(user, chunk_sizes, monkeypatch):
    from diagnosis.classifier import get_classifier

    ids = make_batch(user, 2).submission_ids
    classifier = get_classifier()
    predict = classifier.predict

    def predict_while_another_worker_finishes(images):
        # A duplicate delivery stored ids[0] while this run was computing.
        Submission.objects.filter(pk=ids[0]).update(status=Submission.Status.DONE, model_version="other-run")
        return predict(images)

    monkeypatch.setattr(classifier, "predict", predict_while_another_worker_finishes)
    assert analysis.analyse_batch(ids) == {ids[0]: "skipped", ids[1]: "done"}
    first = Submission.objects.get(pk=ids[0])
    assert first.model_version == "other-run" and not first.predictions.exists()


def test_photos_of_an_interrupted_run_go_one_at_a_time_and_give_up_after_the_last_attempt(user, chunk_sizes,
                                                                                           settings):
    settings.ANALYSIS_MAX_ATTEMPTS = 3
    ids = make_batch(user, 5).submission_ids
    # A worker died in the middle of the first chunk: two photos claimed, one of them for the third time.
    Submission.objects.filter(pk=ids[0]).update(status=Submission.Status.PROCESSING, attempts=1)
    Submission.objects.filter(pk=ids[1]).update(status=Submission.Status.PROCESSING, attempts=3)

    outcomes = analysis.analyse_batch(ids, batch_size=2)

    assert chunk_sizes == [1, 2, 1]  # ids[0] alone, then the untouched photos in chunks
    assert outcomes[ids[1]] == "failed" and all(outcomes[pk] == "done" for pk in ids if pk != ids[1])
    assert "interrupted" in Submission.objects.get(pk=ids[1]).failure_reason


def test_embeddings_are_stored_and_heatmaps_only_when_asked(user, use_tiny_model, settings):
    settings.ML_HEATMAPS = True
    plain, explained = make_batch(user, 2).submission_ids
    analysis.analyse_batch([plain])
    analysis.analyse_batch([explained], heatmaps=True)
    plain, explained = Submission.objects.get(pk=plain), Submission.objects.get(pk=explained)
    assert plain.embedding and explained.embedding  # the lesion timeline compares these
    assert not plain.heatmap and explained.heatmap


def test_a_missing_model_fails_the_photos_with_a_reason(user, settings, tmp_path):
    from diagnosis.classifier import reset_classifier

    settings.ML_MODEL_DIR = tmp_path / "no-such-model"
    reset_classifier()
    ids = make_batch(user, 2).submission_ids
    try:
        assert analysis.analyse_batch(ids) == {pk: "failed" for pk in ids}
    finally:
        reset_classifier()
    assert all("classifier is unavailable" in s.failure_reason for s in Submission.objects.all())


def test_the_task_runs_the_batch(user, use_tiny_model):
    ids = make_batch(user, 3).submission_ids
    assert tasks.analyse_batch.delay(ids).get() == {"done": 3}
    assert tasks.analyse_batch.delay(ids).get() == {"skipped": 3}


# --- the classify_images command -------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    photos = tmp_path / "import"
    (photos / "sub").mkdir(parents=True)
    (photos / "arm.jpg").write_bytes(image_bytes())
    (photos / "back.png").write_bytes(image_bytes("PNG", color=(90, 60, 50)))
    (photos / "notes.txt").write_text("patient list")
    (photos / ".DS_Store").write_bytes(b"\0\0")
    (photos / "sub" / "leg.jpg").write_bytes(image_bytes(color=(150, 100, 80)))
    return photos


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("classify_images", *map(str, args), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_inline_classifies_and_prints_a_summary(user, folder, use_tiny_model):
    out, err = run("--user", "OWNER@example.com", folder, "--recursive", "--inline", "--batch-size", "2")

    submissions = Submission.objects.filter(owner=user)
    assert submissions.count() == 3 and {s.status for s in submissions} == {"done"}
    assert len({s.batch for s in submissions}) == 1
    assert sorted(Lesion.objects.values_list("name", flat=True)) == ["arm", "back", "leg"]
    assert "refused" in err and "notes.txt" in err and ".DS_Store" not in out + err
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("file"))
    assert header.split() == ["file", "status", "top", "class", "probability"]
    for name in ("arm.jpg", "back.png", "leg.jpg"):
        row = next(line for line in lines if name in line)
        submission = submissions.with_top_prediction().get(lesion__name=Path(name).stem)
        assert "done" in row and submission.top_label in row and f"{submission.top_probability:.1%}" in row
    assert "Summary: 3 done" in out


def test_command_queues_one_task_without_inline(user, folder, sent_batches, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run("--user", user.email, folder / "arm.jpg", folder / "back.png", "--lesion", "Mole on the back")
    submissions = Submission.objects.filter(owner=user)
    assert sent_batches == [sorted(submissions.values_list("pk", flat=True))]
    assert {s.lesion.name for s in submissions} == {"Mole on the back"} and Lesion.objects.count() == 1
    assert f"Batch {submissions.first().batch}" in out and "Queued" in out


def test_command_dry_run_stores_nothing(user, folder, settings, sent_batches):
    out, err = run("--user", user.email, folder, "--dry-run")
    assert "Would import 2 photo(s); 1 file(s) refused." in out and "notes.txt" in err
    assert not Submission.objects.exists() and not Lesion.objects.exists() and stored_files(settings) == []
    assert sent_batches == []


@pytest.mark.parametrize("who,message", [("nobody@example.com", "No user"), ("newcomer@example.com", "consent")])
def test_command_refuses_unknown_users_and_users_without_consent(new_user, folder, who, message):
    with pytest.raises(CommandError, match=message):
        run("--user", who, folder)
    assert not Submission.objects.exists()


# --- the API ----------------------------------------------------------------------------------------


def test_anonymous_is_refused(client, settings):
    assert client.post(LIST_URL, {"images": [good()]}).status_code == 401
    assert not Submission.objects.exists() and stored_files(settings) == []
    assert client.get(detail_url(make_batch_for_api())).status_code == 401


def make_batch_for_api():
    from django.contrib.auth import get_user_model

    from tests.conftest import consenting

    someone = consenting(get_user_model().objects.create_user("someone", "someone@example.com", "x-Passw0rd-x"))
    return make_batch(someone, 1).batch


def test_owner_uploads_a_batch_and_follows_it(owner_client, user, settings, use_tiny_model,
                                               django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = owner_client.post(LIST_URL, {"images": [good("a.jpg"), bad("b.txt"), good("c.png", "PNG")],
                                                "lesion_names": ["left arm", "x", ""]})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["accepted"] == 2 and body["rejected"] == 1 and len(callbacks) == 1
    assert [(f["name"], f["accepted"]) for f in body["files"]] == [("a.jpg", True), ("b.txt", False), ("c.png", True)]
    assert "not an image" in body["files"][1]["error"] and body["files"][1]["submission"] is None
    assert response["Location"] == body["url"]
    assert Submission.objects.get(uuid=body["files"][0]["submission"]).lesion.name == "left arm"

    status = owner_client.get(detail_url(body["uuid"])).json()
    assert status["total"] == 2 and status["counts"]["queued"] == 2 and status["is_final"] is False

    callbacks[0]()  # the commit: the (eager) batch task classifies both photos
    status = owner_client.get(detail_url(body["uuid"])).json()
    assert status["is_final"] is True and status["counts"] == {"queued": 0, "processing": 0, "done": 2,
                                                                 "failed": 0, "rejected": 0}
    assert [s["uuid"] for s in status["submissions"]] == [body["files"][0]["submission"],
                                                          body["files"][2]["submission"]]
    for item in status["submissions"]:
        assert item["model_version"] == "tiny-test-1" and len(item["predictions"]) == len(CLASS_LABELS)
        assert [p["rank"] for p in item["predictions"]] == list(range(1, len(CLASS_LABELS) + 1))


def test_outsider_cannot_see_a_batch(outsider_client, user):
    batch = make_batch(user, 1).batch
    assert outsider_client.get(detail_url(batch)).status_code == 404


def test_unknown_batch_is_404(owner_client):
    import uuid

    assert owner_client.get(detail_url(uuid.uuid4())).status_code == 404


def test_all_refused_is_400_and_stores_nothing(owner_client, settings):
    response = owner_client.post(LIST_URL, {"images": [bad("a.txt"), bad("b.txt")]})
    assert response.status_code == 400
    messages = response.json()["images"]
    assert len(messages) == 2 and messages[0].startswith("a.txt: ")
    assert not Submission.objects.exists() and stored_files(settings) == []


@pytest.mark.parametrize("parser_limit", [False, True])
def test_too_many_files_is_400(owner_client, settings, parser_limit):
    settings.BULK_MAX_FILES = 2
    if parser_limit:  # Django's own cap on file parts, met while the body is parsed
        settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    response = owner_client.post(LIST_URL, {"images": [good("a.jpg"), good("b.jpg"), good("c.jpg")]})
    assert response.status_code == 400
    assert "at most 2 photos" in response.json()["images"][0]
    assert not Submission.objects.exists() and stored_files(settings) == []


def test_another_users_lesion_is_refused(owner_client, other_user, settings):
    theirs = Lesion.objects.create(owner=other_user, name="theirs")
    response = owner_client.post(LIST_URL, {"images": [good()], "lesion": str(theirs.uuid)})
    assert response.status_code == 400 and "lesion" in response.json()
    assert not Submission.objects.exists()


def test_lesion_names_must_match_the_photos(owner_client):
    response = owner_client.post(LIST_URL, {"images": [good(), good("b.jpg")], "lesion_names": ["only one"]})
    assert response.status_code == 400 and "lesion_names" in response.json()


def test_upload_needs_the_current_consent(new_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(new_user)
    assert client.post(LIST_URL, {"images": [good()]}, format="multipart").status_code == 403
    assert not Submission.objects.exists()


def test_each_photo_counts_in_the_batch_photo_rate(owner_client, monkeypatch):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "batch_photos", "3/hour")
    first = owner_client.post(LIST_URL, {"images": [good("a.jpg"), good("b.jpg")]})
    second = owner_client.post(LIST_URL, {"images": [good("c.jpg"), good("d.jpg")]})
    assert first.status_code == 202 and second.status_code == 429 and "Retry-After" in second
    assert Submission.objects.count() == 2


def test_the_batch_routes_are_in_the_schema(client):
    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert "post" in schema["paths"]["/api/v1/batches/"]
    assert "get" in schema["paths"]["/api/v1/batches/{uuid}/"]
    body = schema["paths"]["/api/v1/batches/"]["post"]["requestBody"]["content"]
    assert list(body) == ["multipart/form-data"]


@pytest.mark.django_db(transaction=True)
def test_command_wait_follows_the_queued_task(user, folder, use_tiny_model):
    # Committed for real, so the (eager) task runs when the import commits, as a worker would.
    out, _ = run("--user", user.email, folder / "arm.jpg", "--wait")
    submission = Submission.objects.get(owner=user)
    assert submission.status == Submission.Status.DONE and submission.enqueued_at
    assert "Summary: 1 done" in out and "arm.jpg" in out


def test_staff_find_a_batch_in_the_admin(admin_client, user, submission_factory):
    single = submission_factory()
    batch = make_batch(user, 2)
    response = admin_client.get(reverse("admin:diagnosis_submission_changelist"), {"q": str(batch.batch)})
    assert response.status_code == 200
    shown = {s.pk for s in response.context["cl"].result_list}
    assert shown == set(batch.submission_ids) and single.pk not in shown


def test_the_batch_task_goes_to_the_inference_queue_with_the_analysis(settings):
    from skinsite.celery import app

    router = app.amqp.Router()
    queues = {name: router.route({}, name)["queue"].name for name in ("diagnosis.analyse_submission",
                                                                       "diagnosis.analyse_batch")}
    assert queues == {"diagnosis.analyse_submission": settings.CELERY_INFERENCE_QUEUE,
                      "diagnosis.analyse_batch": settings.CELERY_INFERENCE_QUEUE}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_batch_posted_to_the_api_is_classified_by_a_real_worker(use_tiny_model, celery_worker, owner_client):
    response = owner_client.post(LIST_URL, {"images": [good(f"p{i}.jpg", color=(90 + 30 * i, 120, 90))
                                                       for i in range(3)]})
    assert response.status_code == 202
    ids = list(Submission.objects.order_by("pk").values_list("pk", flat=True))
    assert [wait_for_final_status(pk) for pk in ids] == ["done"] * 3
    assert Prediction.objects.count() == 3 * len(CLASS_LABELS)
    status = owner_client.get(detail_url(response.json()["uuid"])).json()
    assert status["is_final"] and status["counts"]["done"] == 3
