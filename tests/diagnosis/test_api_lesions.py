"""API: lesions and their history (owner / outsider / anonymous for every route)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from diagnosis import analysis
from diagnosis.models import Lesion, Submission

pytestmark = pytest.mark.django_db

LIST_URL = reverse("api:lesion-list")


def detail_url(lesion):
    return reverse("api:lesion-detail", kwargs={"uuid": lesion.uuid})


def history_url(lesion):
    return reverse("api:lesion-submissions", kwargs={"uuid": lesion.uuid})


@pytest.fixture
def lesion(user):
    return Lesion.objects.create(owner=user, name="mole on the back", body_site="back")


@pytest.mark.parametrize("route", ["list", "detail", "history"])
def test_anonymous_is_refused(client, lesion, route):
    url = {"list": LIST_URL, "detail": detail_url(lesion), "history": history_url(lesion)}[route]
    assert client.get(url).status_code in (401, 403)


def test_anonymous_cannot_create(client):
    response = client.post(LIST_URL, {"name": "x"}, content_type="application/json")
    assert response.status_code in (401, 403)
    assert not Lesion.objects.exists()


@pytest.mark.parametrize("route", ["detail", "history"])
def test_outsider_gets_404(outsider_client, lesion, route):
    url = detail_url(lesion) if route == "detail" else history_url(lesion)
    assert outsider_client.get(url).status_code == 404


def test_outsider_list_is_empty(outsider_client, lesion):
    response = outsider_client.get(LIST_URL)
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_owner_lists_own_lesions(owner_client, lesion, other_user):
    Lesion.objects.create(owner=other_user, name="not mine")
    body = owner_client.get(LIST_URL).json()
    assert body["count"] == 1
    item = body["results"][0]
    assert item["uuid"] == str(lesion.uuid)
    assert item["name"] == "mole on the back"
    assert item["photo_count"] == 0
    assert item["url"].endswith(detail_url(lesion))
    assert item["submissions_url"].endswith(history_url(lesion))
    assert "id" not in item and "owner" not in item


def test_owner_reads_lesion_with_photo_count(owner_client, lesion, submission_factory):
    submission_factory(lesion=lesion)
    submission_factory(lesion=lesion)
    response = owner_client.get(detail_url(lesion))
    assert response.status_code == 200
    body = response.json()
    assert body["photo_count"] == 2
    assert body["body_site"] == "back"
    assert body["last_photo_at"] is not None


def test_owner_creates_a_lesion(owner_client, user):
    response = owner_client.post(LIST_URL, {"name": "freckle on the nose", "body_site": "face"},
                                 content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    lesion = Lesion.objects.get(uuid=body["uuid"])
    assert lesion.owner == user
    assert (lesion.name, lesion.body_site) == ("freckle on the nose", "face")
    assert body["photo_count"] == 0
    assert response["Location"] == body["url"]


def test_owner_creates_a_lesion_with_token(user, password):
    from rest_framework.test import APIClient

    api = APIClient()
    token = api.post(reverse("api:auth-token"), {"username": user.username, "password": password}).json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = api.post(LIST_URL, {"name": "spot on the arm"}, format="json")
    assert response.status_code == 201
    assert api.get(detail_url(Lesion.objects.get())).status_code == 200


def test_created_lesion_ignores_an_owner_in_the_body(owner_client, user, other_user):
    response = owner_client.post(LIST_URL, {"name": "mine", "owner": other_user.pk},
                                 content_type="application/json")
    assert response.status_code == 201
    assert Lesion.objects.get().owner == user


def test_invalid_lesion_is_400(owner_client):
    response = owner_client.post(LIST_URL, {"name": "", "body_site": "moon"}, content_type="application/json")
    assert response.status_code == 400
    assert {"name", "body_site"} <= set(response.json())
    assert not Lesion.objects.exists()


def test_history_is_oldest_first_with_top_prediction(owner_client, lesion, submission_factory, use_tiny_model):
    newest = submission_factory(lesion=lesion)
    oldest = submission_factory(lesion=lesion)
    middle = submission_factory(lesion=lesion)
    now = timezone.now()
    for offset, submission in ((3, oldest), (2, middle), (1, newest)):
        Submission.objects.filter(pk=submission.pk).update(created_at=now - timedelta(days=offset))
    analysis.analyse_submission(middle.pk)

    response = owner_client.get(history_url(lesion))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    results = body["results"]
    assert [item["uuid"] for item in results] == [str(oldest.uuid), str(middle.uuid), str(newest.uuid)]
    assert results[0]["top_prediction"] is None
    assert results[0]["status"] == "queued"
    top = results[1]["top_prediction"]
    assert results[1]["status"] == "done"
    best = middle.predictions.get(rank=1)
    assert top == {"code": best.code, "label": best.label, "probability": pytest.approx(best.probability)}
    assert results[1]["image_url"].endswith(reverse("api:submission-image", kwargs={"uuid": middle.uuid}))


def test_history_lists_only_that_lesion(owner_client, lesion, submission_factory):
    submission_factory(lesion=lesion)
    submission_factory()  # another lesion of the same owner
    assert owner_client.get(history_url(lesion)).json()["count"] == 1


def test_unknown_lesion_is_404(owner_client):
    url = "/api/v1/lesions/00000000-0000-0000-0000-000000000000/"
    assert owner_client.get(url).status_code == 404
    assert owner_client.get(url + "submissions/").status_code == 404
