"""API: uploading photos and reading submissions (owner / outsider / anonymous for every route)."""

import os

import pytest
from django.urls import reverse
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.services import issue_api_token
from diagnosis.models import Lesion, Submission
from ml.classes import CLASS_LABELS

pytestmark = pytest.mark.django_db

LIST_URL = reverse("api:submission-list")


def detail_url(submission):
    return reverse("api:submission-detail", kwargs={"uuid": submission.uuid})


def image_url(submission):
    return reverse("api:submission-image", kwargs={"uuid": submission.uuid})


def media_files(settings):
    found = []
    for root, _dirs, files in os.walk(settings.MEDIA_ROOT):
        found += [os.path.join(root, name) for name in files]
    return found


# --- access: anonymous, outsider, owner -------------------------------------------------------


@pytest.mark.parametrize("route", ["list", "detail", "image"])
def test_anonymous_is_refused(client, submission, route):
    url = {"list": LIST_URL, "detail": detail_url(submission), "image": image_url(submission)}[route]
    assert client.get(url).status_code in (401, 403)


def test_anonymous_cannot_upload(client, make_upload, make_image, settings):
    response = client.post(LIST_URL, {"image": make_upload(make_image())})
    assert response.status_code in (401, 403)
    assert not Submission.objects.exists()
    assert media_files(settings) == []


@pytest.mark.parametrize("route", ["detail", "image"])
def test_outsider_gets_404(outsider_client, submission, route):
    url = detail_url(submission) if route == "detail" else image_url(submission)
    assert outsider_client.get(url).status_code == 404


def test_outsider_list_does_not_show_others_submissions(outsider_client, submission):
    response = outsider_client.get(LIST_URL)
    assert response.status_code == 200
    assert response.json()["count"] == 0


def test_unknown_uuid_is_404(owner_client):
    assert owner_client.get("/api/v1/submissions/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert owner_client.get("/api/v1/submissions/123/").status_code == 404  # integer ids do not route


def test_owner_lists_own_submissions_newest_first(owner_client, submission_factory, other_user):
    first = submission_factory()
    second = submission_factory()
    submission_factory(owner=other_user)
    response = owner_client.get(LIST_URL)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [item["uuid"] for item in body["results"]] == [str(second.uuid), str(first.uuid)]
    assert {"next", "previous"} <= set(body)


def test_owner_reads_a_queued_submission(owner_client, submission):
    response = owner_client.get(detail_url(submission))
    assert response.status_code == 200
    body = response.json()
    assert body["uuid"] == str(submission.uuid)
    assert body["lesion"] == str(submission.lesion.uuid)
    assert body["status"] == "queued"
    assert body["is_final"] is False
    assert body["predictions"] == [] and body["top_predictions"] == []
    assert body["image_url"].endswith(image_url(submission))
    assert body["url"].endswith(detail_url(submission))
    assert "id" not in body and "pk" not in body and "owner" not in body


def test_owner_reads_ranked_predictions(owner_client, analysed):
    body = owner_client.get(detail_url(analysed)).json()
    assert body["status"] == "done"
    assert body["model_version"] == "tiny-test-1"
    predictions = body["predictions"]
    assert len(predictions) == len(CLASS_LABELS) == 12
    assert [p["rank"] for p in predictions] == list(range(1, 13))
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    assert {p["code"] for p in predictions} == set(CLASS_LABELS)
    assert all(p["label"] == CLASS_LABELS[p["code"]] for p in predictions)
    assert body["top_predictions"] == predictions[:4]
    assert body["finished_at"] is not None


def test_owner_gets_the_photo_privately(owner_client, submission):
    response = owner_client.get(image_url(submission))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    body = b"".join(response.streaming_content)
    assert body[:3] == b"\xff\xd8\xff"
    with submission.image.open("rb") as fh:
        assert body == fh.read()


def test_photo_honours_accept_image_jpeg(owner_client, outsider_client, submission):
    assert owner_client.get(image_url(submission), HTTP_ACCEPT="image/jpeg").status_code == 200
    assert outsider_client.get(image_url(submission), HTTP_ACCEPT="image/jpeg").status_code == 404


# --- token authentication ----------------------------------------------------------------------


def test_token_is_issued_and_accepted(user, password, submission):
    api = APIClient()
    response = api.post(reverse("api:auth-token"), {"username": user.username, "password": password})
    assert response.status_code == 200
    token = response.json()["token"]
    assert AuthToken.objects.get(user=user).token_key == token[:15]  # knox keeps a hash and a prefix only

    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = api.get(detail_url(submission))
    assert response.status_code == 200
    assert response.json()["uuid"] == str(submission.uuid)


def test_token_is_refused_for_a_wrong_password(user):
    response = APIClient().post(reverse("api:auth-token"), {"username": user.username, "password": "wrong"})
    assert response.status_code == 400
    assert not AuthToken.objects.exists()


def test_bad_token_is_refused(submission):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = api.get(LIST_URL)
    # 403 rather than 401: session authentication comes first and sends no WWW-Authenticate challenge.
    assert response.status_code in (401, 403)
    assert response.json()["detail"] == "Invalid token."


def test_token_of_an_outsider_gets_404(other_user, submission):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {issue_api_token(other_user)[1]}")
    assert api.get(detail_url(submission)).status_code == 404
    assert api.get(image_url(submission)).status_code == 404


def test_token_upload_needs_no_csrf(user, make_upload, make_image):
    api = APIClient(enforce_csrf_checks=True)
    api.credentials(HTTP_AUTHORIZATION=f"Token {issue_api_token(user)[1]}")
    response = api.post(LIST_URL, {"image": make_upload(make_image())}, format="multipart")
    assert response.status_code == 201


def test_session_upload_without_csrf_token_is_refused(user, make_upload, make_image):
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(user)
    response = api.post(LIST_URL, {"image": make_upload(make_image())}, format="multipart")
    assert response.status_code == 403
    assert not Submission.objects.exists()


# --- upload -------------------------------------------------------------------------------------


def test_upload_creates_a_submission_and_a_new_lesion(owner_client, user, make_upload, make_image):
    response = owner_client.post(LIST_URL, {
        "image": make_upload(make_image()),
        "lesion_name": "mole on left shoulder",
        "age": "42",
        "sex": "female",
        "anatomic_site": "back",
        "skin_type": "II",
        "duration": "months",
        "symptoms": ["itching", "growing"],
    })
    assert response.status_code == 201, response.content
    body = response.json()
    submission = Submission.objects.get(uuid=body["uuid"])
    assert submission.owner == user
    assert submission.lesion.name == "mole on left shoulder"
    assert body["lesion"] == str(submission.lesion.uuid)
    assert response["Location"] == body["url"]
    assert body["url"].endswith(detail_url(submission))
    assert (body["age"], body["sex"], body["anatomic_site"], body["skin_type"], body["duration"]) == (
        42, "female", "back", "II", "months")
    assert sorted(body["symptoms"]) == ["growing", "itching"]
    assert body["status"] == "queued"  # analysis runs after commit


def test_upload_is_analysed_to_a_ranked_result(owner_client, use_tiny_model, make_upload, make_image,
                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = owner_client.post(LIST_URL, {"image": make_upload(make_image(size=(80, 60)), "spot.jpeg")})
    assert response.status_code == 201, response.content
    # One analysis enqueued after the upload's commit; running it schedules the spot's reminder.
    assert [c.__qualname__.split(".")[0] for c in callbacks] == ["create_submission", "store_result"]

    body = owner_client.get(response["Location"]).json()
    assert body["status"] == "done"
    assert body["is_final"] is True
    assert len(body["predictions"]) == 12
    assert [p["rank"] for p in body["predictions"]] == list(range(1, 13))
    assert sum(p["probability"] for p in body["predictions"]) == pytest.approx(1.0, abs=1e-4)
    assert len(body["top_predictions"]) == 4


def test_upload_of_png_is_stored_as_jpeg(owner_client, make_upload, make_image):
    response = owner_client.post(LIST_URL, {"image": make_upload(make_image("PNG"), "spot.png", "image/png")})
    assert response.status_code == 201
    photo = owner_client.get(response.json()["image_url"])
    assert b"".join(photo.streaming_content)[:3] == b"\xff\xd8\xff"


def test_upload_to_own_lesion(owner_client, submission, make_upload, make_image):
    lesion = submission.lesion
    response = owner_client.post(LIST_URL, {"image": make_upload(make_image()), "lesion": str(lesion.uuid)})
    assert response.status_code == 201
    assert response.json()["lesion"] == str(lesion.uuid)
    assert lesion.submissions.count() == 2
    assert Lesion.objects.count() == 1


def test_upload_to_another_users_lesion_is_refused(outsider_client, submission, make_upload, make_image,
                                                   settings):
    files_before = media_files(settings)
    response = outsider_client.post(
        LIST_URL, {"image": make_upload(make_image()), "lesion": str(submission.lesion.uuid)}
    )
    assert response.status_code == 400
    assert "lesion" in response.json()
    assert submission.lesion.submissions.count() == 1
    assert Submission.objects.count() == 1
    assert Lesion.objects.count() == 1
    assert media_files(settings) == files_before


def test_upload_to_unknown_lesion_is_refused(owner_client, make_upload, make_image):
    response = owner_client.post(
        LIST_URL, {"image": make_upload(make_image()), "lesion": "00000000-0000-0000-0000-000000000000"}
    )
    assert response.status_code == 400
    assert "lesion" in response.json()
    assert not Submission.objects.exists()


def test_upload_without_image_is_400(owner_client):
    response = owner_client.post(LIST_URL, {"lesion_name": "no photo"})
    assert response.status_code == 400
    assert "image" in response.json()
    assert not Lesion.objects.exists()


def test_upload_with_invalid_context_is_400(owner_client, make_upload, make_image, settings):
    response = owner_client.post(LIST_URL, {"image": make_upload(make_image()), "sex": "robot", "age": "300"})
    assert response.status_code == 400
    assert {"sex", "age"} <= set(response.json())
    assert not Submission.objects.exists()
    assert media_files(settings) == []


@pytest.mark.parametrize("name, content, content_type", [
    ("report.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n", "application/pdf"),
    ("photo.jpg", b"this is a text file with a photo's name\n" * 10, "image/jpeg"),
    ("cut.jpg", None, "image/jpeg"),  # truncated JPEG, built below
])
def test_rejected_upload_is_400_and_leaves_nothing(owner_client, settings, name, content, content_type,
                                                   make_upload, make_image, django_capture_on_commit_callbacks):
    if content is None:
        whole = make_image(size=(256, 256))
        content = whole[: len(whole) // 2]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = owner_client.post(LIST_URL, {"image": make_upload(content, name, content_type)})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["image"]
    assert isinstance(body["image"], list) and len(body["image"]) == 1
    assert body["image"][0]  # a message meant for the person
    assert not Submission.objects.exists()
    assert not Lesion.objects.exists()
    assert callbacks == []
    assert media_files(settings) == []


def test_listing_is_paginated(owner_client, submission_factory, monkeypatch):
    from rest_framework.pagination import PageNumberPagination

    monkeypatch.setattr(PageNumberPagination, "page_size", 2)
    for _ in range(3):
        submission_factory()
    first = owner_client.get(LIST_URL).json()
    assert first["count"] == 3 and len(first["results"]) == 2 and first["next"]
    second = owner_client.get(first["next"]).json()
    assert len(second["results"]) == 1 and second["next"] is None


def test_method_not_allowed_for_changes(owner_client, submission):
    # DELETE is allowed (tests/security/test_data_rights.py); a submission is never edited.
    assert owner_client.patch(detail_url(submission), {}, content_type="application/json").status_code in (405, 415)
    assert owner_client.put(detail_url(submission), {}, content_type="application/json").status_code in (405, 415)


def test_browsable_api_offers_the_upload_form(owner_client, submission):
    response = owner_client.get(LIST_URL, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="image"' in html and 'enctype="multipart/form-data"' in html
    assert owner_client.get(detail_url(submission), HTTP_ACCEPT="text/html").status_code == 200
