"""Security events reach the audit log (auditlog's LogEntry); logs never hold secrets or image bytes.

Admins opening a photo (ACCESS entries) are covered in tests/diagnosis/test_admin.py; exports
and deletions in test_data_rights.py. Here: log-ins, failed log-ins, and what is never logged.
"""

import json
import logging

import pytest
from auditlog.models import LogEntry
from axes.models import AccessAttempt
from django.urls import reverse

from tests.conftest import image_bytes, upload_file

pytestmark = pytest.mark.django_db


def events(name):
    return LogEntry.objects.filter(additional_data__event=name)


def test_login_is_recorded_with_actor_and_address(client, user, password):
    client.post(reverse("login"), {"username": user.username, "password": password}, REMOTE_ADDR="192.0.2.7")
    entry = events("login").get()
    assert entry.actor == user and entry.object_pk == str(user.pk)
    assert entry.remote_addr == "192.0.2.7"
    assert entry.action == LogEntry.Action.ACCESS


def test_failed_login_for_a_known_user_is_recorded_without_the_password(client, user):
    client.post(reverse("login"), {"username": user.username, "password": "Guess-1234-secret"},
                REMOTE_ADDR="192.0.2.8")
    entry = events("login_failed").get()
    assert entry.object_pk == str(user.pk) and entry.actor is None and entry.remote_addr == "192.0.2.8"
    assert "Guess-1234-secret" not in json.dumps(entry.additional_data) + str(entry.changes)


def test_failed_login_for_an_unknown_name_is_only_counted_by_axes(client):
    client.post(reverse("login"), {"username": "my-password-typed-here", "password": "x"})
    assert not events("login_failed").exists()
    assert AccessAttempt.objects.filter(username="my-password-typed-here").exists()


def test_token_login_through_the_api_is_recorded_when_it_fails(client, user):
    client.post(reverse("api:auth-token"), {"username": user.username, "password": "wrong"})
    assert events("login_failed").filter(object_pk=str(user.pk)).exists()


def test_admin_opening_a_photo_is_recorded(admin_client, admin_user, submission_factory):
    submission = submission_factory()
    admin_client.get(reverse("admin:diagnosis_submission_photo", args=[submission.pk]))
    entry = LogEntry.objects.get_for_object(submission).get(action=LogEntry.Action.ACCESS)
    assert entry.actor == admin_user


def test_no_secret_or_image_byte_in_logs_or_audit(client, user, password, settings, caplog, owner_client):
    caplog.set_level(logging.DEBUG)
    photo = image_bytes("JPEG", size=(120, 90))
    client.post(reverse("login"), {"username": user.username, "password": "Wrong-Secret-987"})
    client.post(reverse("login"), {"username": user.username, "password": password})
    client.post(reverse("diagnosis:upload"), {"image": upload_file(photo)})
    token_key = owner_client.post(reverse("api-token")).context["new_key"]
    owner_client.post(reverse("export-data"))

    secrets = [password, "Wrong-Secret-987", token_key, settings.SECRET_KEY,
               *settings.MEDIA_ENCRYPTION_KEYS]
    logged = caplog.text
    audit = json.dumps([[e.changes, e.additional_data, e.object_repr] for e in LogEntry.objects.all()], default=str)
    for secret in secrets:
        assert secret not in logged and secret not in audit
    assert "\\xff\\xd8" not in logged and "JFIF" not in logged and "JFIF" not in audit


# --- issue 12 item 5: the audit log names who did what, and each event ---------------------------------

def _token_client(user):
    from rest_framework.test import APIClient

    from accounts.services import issue_api_token

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {issue_api_token(user)[1]}")
    return api


def test_api_uploads_and_deletions_name_the_token_user_not_system(user):
    from diagnosis.models import Submission

    api = _token_client(user)
    response = api.post(reverse("api:submission-list"), {"image": upload_file(image_bytes())}, format="multipart")
    assert response.status_code == 201
    submission = Submission.objects.get()
    created = LogEntry.objects.get_for_object(submission).get(action=LogEntry.Action.CREATE)
    assert created.actor == user
    assert api.delete(reverse("api:submission-detail", args=[submission.uuid])).status_code == 204
    deleted = LogEntry.objects.filter(object_pk=str(submission.pk), action=LogEntry.Action.DELETE,
                                      content_type__model="submission").get()
    assert deleted.actor == user


def test_an_outsiders_token_writes_nothing_about_the_owners_photo(user, other_user, submission_factory):
    submission = submission_factory()
    before = LogEntry.objects.count()
    assert _token_client(other_user).delete(reverse("api:submission-detail", args=[submission.uuid])).status_code == 404
    assert LogEntry.objects.count() == before


def test_events_are_named_filterable_and_searchable_in_the_admin(client, admin_client, user, password):
    client.post(reverse("login"), {"username": user.username, "password": password})
    client.post(reverse("login"), {"username": user.username, "password": "wrong"})
    changelist = reverse("admin:auditlog_logentry_changelist")
    for query, event in (("login", "login"), ("login", "login_failed")):
        found = admin_client.get(changelist, {"q": query}).context["cl"].result_list
        assert any((e.additional_data or {}).get("event") == event for e in found), (query, event)
    filtered = admin_client.get(changelist, {"event": "login_failed"})
    assert {e.additional_data["event"] for e in filtered.context["cl"].result_list} == {"login_failed"}
    assert "Failed log-in" in filtered.content.decode()


def test_the_audit_log_is_for_staff_only(client, owner_client):
    changelist = reverse("admin:auditlog_logentry_changelist")
    assert client.get(changelist).status_code == 302
    assert owner_client.get(changelist).status_code == 302  # not staff: the admin's log-in page
