"""Consent before the first upload: versioned, separate model-improvement opt-in, web and API."""

import pytest
from auditlog.models import LogEntry
from django.urls import reverse

from accounts.models import Consent
from diagnosis.models import Submission
from tests.conftest import _logged_in_client, image_bytes, upload_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def new_client(new_user):
    return _logged_in_client(new_user)


def test_upload_page_sends_a_new_user_to_the_consent_page(new_client):
    response = new_client.get(reverse("diagnosis:upload") + "?lesion=x")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("consent"))
    assert "next=%2Fupload%2F%3Flesion%3Dx" in response["Location"]


def test_posting_an_upload_without_consent_stores_nothing(new_client):
    response = new_client.post(reverse("diagnosis:upload"), {"image": upload_file(image_bytes())})
    assert response.status_code == 302 and response["Location"].startswith(reverse("consent"))
    assert not Submission.objects.exists()


def test_consent_must_be_ticked(new_client, new_user):
    response = new_client.post(reverse("consent"), {"improve_model": "on"})
    assert response.status_code == 200
    assert "You need to agree" in response.content.decode()
    assert not Consent.objects.filter(user=new_user).exists()


def test_accepting_records_version_and_opt_in_and_returns_to_next(settings, new_client, new_user):
    settings.CONSENT_VERSION = 3
    response = new_client.post(reverse("consent"), {"agree": "on", "next": "/upload/?lesion=x"})
    assert response.status_code == 302 and response["Location"] == "/upload/?lesion=x"
    consent = Consent.objects.get(user=new_user)
    assert consent.version == 3 and consent.improve_model is False
    assert new_client.get(reverse("diagnosis:upload")).status_code == 200
    entry = LogEntry.objects.get(additional_data__event="consent_accepted")
    assert entry.additional_data == {"event": "consent_accepted", "version": 3, "improve_model": False}


def test_opt_in_is_separate_and_can_be_changed(new_client, new_user):
    new_client.post(reverse("consent"), {"agree": "on", "improve_model": "on"})
    new_client.post(reverse("consent"), {"agree": "on"})
    assert list(Consent.objects.filter(user=new_user).order_by("pk").values_list("improve_model", flat=True)) == [
        True, False]


def test_consent_page_ignores_an_offsite_next(new_client):
    response = new_client.post(reverse("consent"), {"agree": "on", "next": "https://evil.example/"})
    assert response["Location"] == reverse("diagnosis:upload")


def test_a_new_consent_version_asks_again(settings, owner_client):
    assert owner_client.get(reverse("diagnosis:upload")).status_code == 200
    settings.CONSENT_VERSION += 1
    response = owner_client.get(reverse("diagnosis:upload"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("consent"))
    page = owner_client.get(reverse("consent")).content.decode()
    assert "it has changed since you last agreed" in page


def test_api_upload_needs_consent_then_works(new_client, new_user):
    url = reverse("api:submission-list")
    response = new_client.post(url, {"image": upload_file(image_bytes())})
    assert response.status_code == 403
    assert "consent" in response.json()["detail"]
    assert not Submission.objects.exists()
    # Reading is not blocked.
    assert new_client.get(url).status_code == 200

    status = new_client.get(reverse("api:consent")).json()
    assert status["accepted"] is False and status["current_version"] == 1

    assert new_client.post(reverse("api:consent"), {"accept": False}, content_type="application/json"
                           ).status_code == 400
    response = new_client.post(reverse("api:consent"), {"accept": True, "improve_model": True},
                               content_type="application/json")
    assert response.status_code == 201
    assert response.json()["accepted"] is True and response.json()["improve_model"] is True

    assert new_client.post(url, {"image": upload_file(image_bytes())}).status_code == 201


def test_profile_shows_consent_state(owner_client):
    page = owner_client.get(reverse("profile")).content.decode()
    assert "Consent accepted on" in page and "may not</span>" not in page and "may not" in page


def test_only_opted_in_photos_are_allowed_for_training(user, other_user, new_user, submission_factory):
    from accounts.services import accept_consent

    mine, theirs, newcomers = submission_factory(), submission_factory(owner=other_user), None
    accept_consent(user, improve_model=True)
    Consent.objects.create(user=new_user, version=1, improve_model=True)
    newcomers = submission_factory(owner=new_user)
    assert set(Submission.objects.allowed_for_training()) == {mine, newcomers}
    accept_consent(user, improve_model=False)  # withdrawing covers the earlier photos too
    assert set(Submission.objects.allowed_for_training()) == {newcomers}
    assert theirs not in Submission.objects.allowed_for_training()
