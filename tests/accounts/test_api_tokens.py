"""API tokens (issue 13, M4): knox tokens, hashed at rest, with an expiry, ended by a new password."""

import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.services import issue_api_token

pytestmark = pytest.mark.django_db

TOKEN_URL = reverse("api:auth-token")
LESIONS = reverse("api:lesion-list")
NEW = "another-Long-phrase-77"


def _api(key=None):
    api = APIClient()
    if key:
        api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api


def _works(key):
    return _api(key).get(LESIONS).status_code == 200


def test_the_endpoint_issues_an_expiring_token_stored_only_as_a_hash(user, password, settings):
    response = _api().post(TOKEN_URL, {"username": user.username, "password": password}, format="json")
    assert response.status_code == 200
    key = response.json()["token"]
    expiry = response.json()["expiry"]
    assert _works(key)
    stored = AuthToken.objects.get(user=user)
    assert key not in (stored.digest, stored.token_key) and stored.digest != key
    assert abs(stored.expiry - (timezone.now() + settings.API_TOKEN_TTL)) < timedelta(minutes=1)
    assert expiry.startswith(stored.expiry.strftime("%Y-%m-%dT%H:%M"))


def test_each_log_in_gets_its_own_token(user, password):
    keys = [_api().post(TOKEN_URL, {"username": user.username, "password": password}, format="json").json()["token"]
            for _ in range(2)]
    assert keys[0] != keys[1] and all(_works(key) for key in keys)


def test_the_endpoint_refuses_a_wrong_password_and_an_anonymous_caller_gets_401(user):
    assert _api().post(TOKEN_URL, {"username": user.username, "password": "wrong"}, format="json").status_code == 400
    assert not AuthToken.objects.exists()
    assert _api().get(LESIONS).status_code == 401


def test_an_expired_token_is_refused_and_removed(user):
    token, key = issue_api_token(user)
    AuthToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    response = _api(key).get(LESIONS)
    assert response.status_code == 401 and response.json()["detail"] == "Invalid token."
    assert not AuthToken.objects.exists()


def test_logging_in_again_with_an_expired_token_still_in_the_header_gets_a_new_token(user, password):
    """A client whose token expired logs in again; it may still send the old header (issue 13 review)."""
    token, key = issue_api_token(user)
    AuthToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    response = _api(key).post(reverse("api:auth-token"), {"username": user.username, "password": password},
                              format="json")
    assert response.status_code == 200 and response.json()["token"] != key
    assert _api(response.json()["token"]).get(LESIONS).status_code == 200
    assert response["Cache-Control"] == "private, no-store"  # a secret, whoever asks


def test_a_token_of_an_outsider_opens_only_the_outsiders_data(user, other_user):
    from diagnosis.models import Lesion

    lesion = Lesion.objects.create(owner=user, name="left arm")
    _, outsider_key = issue_api_token(other_user)
    assert _api(outsider_key).get(reverse("api:lesion-detail", args=[lesion.uuid])).status_code == 404
    _, owner_key = issue_api_token(user)
    assert _api(owner_key).get(reverse("api:lesion-detail", args=[lesion.uuid])).status_code == 200


def test_old_drf_keys_are_not_accepted(user):
    from rest_framework.authtoken.models import Token

    assert not _works(Token.objects.create(user=user).key)


def test_a_person_keeps_at_most_the_configured_number_of_tokens(user, settings):
    settings.API_TOKENS_PER_USER = 3
    keys = [issue_api_token(user)[1] for _ in range(5)]
    assert AuthToken.objects.filter(user=user).count() == 3
    assert [_works(key) for key in keys] == [False, False, True, True, True]


# --- a new password ends every token --------------------------------------------------------------


def test_password_change_revokes_the_owners_tokens_only(owner_client, user, other_user, password):
    _, first = issue_api_token(user)
    _, second = issue_api_token(user)
    _, outsiders = issue_api_token(other_user)
    response = owner_client.post(reverse("password_change"),
                                 {"old_password": password, "new_password1": NEW, "new_password2": NEW})
    assert response.status_code == 302
    assert not _works(first) and not _works(second)
    assert _works(outsiders)
    # The person is still signed in (update_session_auth_hash) and can make a new one.
    assert owner_client.post(reverse("api-token")).status_code == 200
    assert AuthToken.objects.filter(user=user).count() == 1


def test_password_reset_revokes_the_tokens(client, user, mailoutbox):
    _, key = issue_api_token(user)
    client.post(reverse("password_reset"), {"email": user.email})
    link = re.search(r"https?://[^/\s]+(/accounts/reset/\S+)", mailoutbox[0].body).group(1)
    form_url = client.get(link).url
    assert _works(key)  # opening the link changes nothing yet
    response = client.post(form_url, {"new_password1": NEW, "new_password2": NEW})
    assert response.url == reverse("password_reset_complete")
    assert not _works(key)


def test_set_password_from_the_admin_or_a_command_revokes_the_tokens(user, monkeypatch):
    _, key = issue_api_token(user)
    user.set_password(NEW)
    user.save()
    assert not _works(key)

    _, key = issue_api_token(user)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": NEW + "x")
    call_command("changepassword", user.username, stdout=io.StringIO())
    assert not _works(key)

    _, key = issue_api_token(user)
    user.set_unusable_password()
    user.save()
    assert not _works(key)


def test_other_saves_and_a_password_rehash_keep_the_tokens(user, password, settings):
    _, key = issue_api_token(user)
    user.first_name = "Olive"
    user.save()
    # A log-in that upgrades the stored hash (new hasher settings) is not a new password.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.ScryptPasswordHasher",
                                 *settings.PASSWORD_HASHERS]
    user = get_user_model().objects.get(pk=user.pk)
    assert user.check_password(password)
    assert get_user_model().objects.get(pk=user.pk).password.startswith("scrypt")
    assert _works(key)


def test_account_deletion_removes_the_tokens(owner_client, user, password):
    issue_api_token(user)
    owner_client.post(reverse("delete-account"), {"password": password})
    assert not AuthToken.objects.exists()


def test_the_export_lists_tokens_without_their_keys(user):
    from accounts.services import export_data

    token, key = issue_api_token(user)
    tokens = export_data(user)["api_tokens"]
    assert tokens == [{"created": token.created.isoformat(), "expiry": token.expiry.isoformat()}]
    assert key not in str(export_data(user))


def test_the_migration_drops_the_old_plain_text_drf_keys(user):
    import importlib

    from django.apps import apps
    from rest_framework.authtoken.models import Token

    migration = importlib.import_module("accounts.migrations.0003_drop_drf_tokens")
    Token.objects.create(user=user)
    migration.drop_drf_tokens(apps, None)
    assert not Token.objects.exists()
