"""Download my data, delete a photo, a lesion, the account (files too), and the retention command."""

import io
import json
import os
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Consent
from diagnosis import analysis, services
from diagnosis.models import Lesion, Prediction, Submission

pytestmark = pytest.mark.django_db

JPEG_MAGIC = b"\xff\xd8\xff"


def stored_files():
    root = Path(settings.MEDIA_ROOT)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def analysed(submission_factory, use_tiny_model):
    submission = submission_factory(age=40, symptoms=["itching"])
    analysis.analyse_submission(submission.pk)
    return Submission.objects.get(pk=submission.pk)


# --- export -------------------------------------------------------------------------------------


def _zip(response):
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Cache-Control"] == "private, no-store"
    return zipfile.ZipFile(io.BytesIO(response.content))


def test_download_my_data_has_decrypted_photos_and_json(owner_client, user, analysed, submission_factory,
                                                        other_user):
    submission_factory(owner=other_user)  # must not appear
    archive = _zip(owner_client.post(reverse("export-data")))
    names = archive.namelist()
    assert names == ["data.json", f"photos/{analysed.uuid}.jpg", f"heatmaps/{analysed.uuid}.png"]
    assert archive.read(names[1]).startswith(JPEG_MAGIC)
    assert archive.read(names[2]).startswith(b"\x89PNG")  # decrypted, like the photo
    data = json.loads(archive.read("data.json"))
    assert data["account"]["username"] == user.username
    assert [c["version"] for c in data["consents"]] == [settings.CONSENT_VERSION]
    assert [lesion["uuid"] for lesion in data["lesions"]] == [str(analysed.lesion.uuid)]
    (item,) = data["submissions"]
    assert item["uuid"] == str(analysed.uuid) and item["age"] == 40 and item["symptoms"] == ["itching"]
    assert item["heatmap"] == f"heatmaps/{analysed.uuid}.png"
    assert [p["rank"] for p in item["predictions"]] == list(range(1, 13))
    entry = LogEntry.objects.get(additional_data__event="data_export")
    assert entry.actor == user and entry.additional_data["photos"] == 1


def test_export_includes_the_symptom_assistant_conversation(owner_client, analysed):
    from guidance.services import assistant_turn

    assistant_turn(analysed, "yes")  # answers the first question (asymmetry)
    data = json.loads(_zip(owner_client.post(reverse("export-data"))).read("data.json"))
    (item,) = data["submissions"]
    messages = item["assistant"]["messages"]
    assert [m["role"] for m in messages][-2:] == ["person", "assistant"] and messages[-2]["text"] == "yes"
    assert item["assistant"]["answers"]


def test_export_without_a_conversation_says_none(owner_client, analysed):
    data = json.loads(_zip(owner_client.post(reverse("export-data"))).read("data.json"))
    assert data["submissions"][0]["assistant"] is None


def test_export_through_the_api(owner_client, analysed):
    archive = _zip(owner_client.get(reverse("api:export"), HTTP_ACCEPT="application/zip"))
    assert f"photos/{analysed.uuid}.jpg" in archive.namelist()


def test_export_is_post_only_on_the_web(owner_client):
    assert owner_client.get(reverse("export-data")).status_code == 405


# --- deleting a photo and a lesion --------------------------------------------------------------


def test_delete_photo_asks_then_removes_rows_and_file(owner_client, analysed, django_capture_on_commit_callbacks):
    url = reverse("diagnosis:submission-delete", args=[analysed.uuid])
    page = owner_client.get(url)
    assert page.status_code == 200 and b"cannot be undone" in page.content
    assert Submission.objects.filter(pk=analysed.pk).exists()  # GET deletes nothing
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(url)
    assert response.status_code == 302
    assert response["Location"] == reverse("diagnosis:lesion-detail", args=[analysed.lesion.uuid])
    assert not Submission.objects.filter(pk=analysed.pk).exists()
    assert not Prediction.objects.exists()
    assert stored_files() == []
    assert LogEntry.objects.filter(action=LogEntry.Action.DELETE, object_pk=str(analysed.pk)).exists()


def test_delete_lesion_removes_all_its_photos(owner_client, user, submission_factory,
                                              django_capture_on_commit_callbacks):
    first = submission_factory()
    submission_factory(lesion=first.lesion)
    keep = submission_factory()
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("diagnosis:lesion-delete", args=[first.lesion.uuid]))
    assert response.status_code == 302
    assert not Lesion.objects.filter(pk=first.lesion.pk).exists()
    assert list(Submission.objects.values_list("pk", flat=True)) == [keep.pk]
    assert stored_files() == [keep.image.name]


def test_delete_through_the_api(owner_client, submission_factory, django_capture_on_commit_callbacks):
    one, two = submission_factory(), submission_factory()
    with django_capture_on_commit_callbacks(execute=True):
        assert owner_client.delete(reverse("api:submission-detail", args=[one.uuid])).status_code == 204
        assert owner_client.delete(reverse("api:lesion-detail", args=[two.lesion.uuid])).status_code == 204
    assert not Submission.objects.exists() and stored_files() == []
    assert Lesion.objects.filter(pk=one.lesion.pk).exists()  # deleting a photo keeps its lesion


def test_files_stay_when_the_transaction_rolls_back(submission_factory):
    from django.db import transaction

    submission = submission_factory()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.delete_submission(submission)
        raise RuntimeError("boom")
    assert Submission.objects.filter(pk=submission.pk).exists()
    assert stored_files() == [submission.image.name]


# --- deleting the account -----------------------------------------------------------------------


def test_delete_account_needs_the_password(owner_client, user, analysed):
    url = reverse("delete-account")
    assert owner_client.get(url).status_code == 200
    response = owner_client.post(url, {"password": "wrong"})
    assert response.status_code == 200 and b"not your password" in response.content
    assert get_user_model().objects.filter(pk=user.pk).exists()


def test_delete_account_removes_everything(owner_client, user, password, analysed, other_user,
                                           submission_factory, django_capture_on_commit_callbacks):
    from axes.models import AccessAttempt

    theirs = submission_factory(owner=other_user)
    owner_client.post(reverse("api-token"))
    Client().post(reverse("login"), {"username": user.username, "password": "wrong"})
    assert AccessAttempt.objects.filter(username=user.username).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("delete-account"), {"password": password})
    assert response.status_code == 302 and response["Location"] == reverse("diagnosis:home")
    assert not get_user_model().objects.filter(pk=user.pk).exists()
    assert not Lesion.objects.filter(owner_id=user.pk).exists()
    assert list(Submission.objects.all()) == [theirs]
    assert not Consent.objects.filter(user_id=user.pk).exists()
    assert stored_files() == [theirs.image.name]
    assert "_auth_user_id" not in owner_client.session
    assert not AccessAttempt.objects.filter(username=user.username).exists()
    entry = LogEntry.objects.get(additional_data__event="account_deleted")
    assert entry.action == LogEntry.Action.DELETE and entry.object_pk == str(user.pk)


def test_pages_link_to_the_data_rights(owner_client, submission_factory):
    submission = submission_factory()
    profile = owner_client.get(reverse("profile")).content.decode()
    assert reverse("export-data") in profile and reverse("delete-account") in profile and reverse("consent") in profile
    detail = owner_client.get(reverse("diagnosis:submission-detail", args=[submission.uuid])).content.decode()
    assert reverse("diagnosis:submission-delete", args=[submission.uuid]) in detail
    lesion = owner_client.get(reverse("diagnosis:lesion-detail", args=[submission.lesion.uuid])).content.decode()
    assert reverse("diagnosis:lesion-delete", args=[submission.lesion.uuid]) in lesion


# --- retention ----------------------------------------------------------------------------------


def _age(submission, days):
    then = timezone.now() - timedelta(days=days)
    Submission.objects.filter(pk=submission.pk).update(created_at=then)
    Lesion.objects.filter(pk=submission.lesion_id).update(created_at=then)


def test_purge_expired_is_off_by_default(submission_factory, capsys):
    _age(submission_factory(), 4000)
    call_command("purge_expired")
    assert "RETENTION_DAYS is 0" in capsys.readouterr().out
    assert Submission.objects.count() == 1


def test_purge_expired_dry_run_then_real(settings, submission_factory, capsys, django_capture_on_commit_callbacks):
    settings.RETENTION_DAYS = 365
    old, recent = submission_factory(), submission_factory()
    _age(old, 400)
    _age(recent, 10)
    call_command("purge_expired", "--dry-run")
    assert "Would delete 1 photo(s) and 1 empty lesion(s)" in capsys.readouterr().out
    assert Submission.objects.count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        call_command("purge_expired")
    assert "Deleted 1 photo(s) and 1 empty lesion(s)" in capsys.readouterr().out
    assert list(Submission.objects.all()) == [recent]
    assert not Lesion.objects.filter(pk=old.lesion_id).exists()
    assert stored_files() == [recent.image.name]


def test_purge_expired_orphans_removes_files_without_rows(submission_factory, capsys):
    keep = submission_factory()
    orphan = Path(settings.MEDIA_ROOT) / "submissions" / "orphan.jpg"
    orphan.write_bytes(b"left behind")
    fresh = orphan.with_name("uploading.jpg")
    fresh.write_bytes(b"an upload still being saved")
    an_hour_ago = (timezone.now() - timedelta(hours=2)).timestamp()
    os.utime(orphan, (an_hour_ago, an_hour_ago))
    os.utime(Path(settings.MEDIA_ROOT) / keep.image.name, (an_hour_ago, an_hour_ago))
    call_command("purge_expired", "--orphans", "--dry-run")
    assert "1 orphan file(s)" in capsys.readouterr().out and orphan.exists()
    call_command("purge_expired", "--orphans")
    assert not orphan.exists() and stored_files() == sorted([keep.image.name, "submissions/uploading.jpg"])


def test_deleting_redacts_health_data_from_the_audit_log(owner_client, analysed, django_capture_on_commit_callbacks):
    from django.contrib.contenttypes.models import ContentType

    lesion = analysed.lesion
    Lesion.objects.filter(pk=lesion.pk).update(name="Mole on left shoulder")
    lesion.refresh_from_db()
    lesion.name = "Mole on left shoulder, itchy"
    lesion.save()  # an UPDATE entry holding the old and the new name
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("diagnosis:lesion-delete", args=[lesion.uuid]))
    entries = LogEntry.objects.filter(content_type__in=ContentType.objects.get_for_models(
        Lesion, Submission, Prediction).values())
    assert entries.filter(action=LogEntry.Action.DELETE).count() == 1 + 1 + 12  # the trail stays
    text = json.dumps([[e.changes, e.changes_text, e.object_repr, e.serialized_data] for e in entries])
    for health_data in ("Mole on left shoulder", "itching", '"40"', "tiny-test-1"):
        assert health_data not in text
