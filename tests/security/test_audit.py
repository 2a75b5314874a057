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
    owner_client.post(reverse("api-token"))
    owner_client.post(reverse("export-data"))
    from rest_framework.authtoken.models import Token

    secrets = [password, "Wrong-Secret-987", Token.objects.get(user=user).key, settings.SECRET_KEY,
               *settings.MEDIA_ENCRYPTION_KEYS]
    logged = caplog.text
    audit = json.dumps([[e.changes, e.additional_data, e.object_repr] for e in LogEntry.objects.all()], default=str)
    for secret in secrets:
        assert secret not in logged and secret not in audit
    assert "\\xff\\xd8" not in logged and "JFIF" not in logged and "JFIF" not in audit
