from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from rest_framework.exceptions import AuthenticationFailed

from accounts.services import issue_api_token

pytestmark = pytest.mark.django_db

PROFILE = reverse("profile")
TOKEN = reverse("api-token")
REVOKE = reverse("api-token-revoke")


def test_anonymous_is_sent_to_login(client):
    response = client.get(PROFILE)
    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={PROFILE}"


def test_owner_sees_own_details(owner_client, user):
    response = owner_client.get(PROFILE)
    assert response.status_code == 200
    body = response.content.decode()
    assert user.username in body
    assert user.email in body
    assert reverse("password_change") in body
    assert TOKEN in body
    assert "no-store" in response["Cache-Control"]


def _spot_with_photos(owner, photos):
    # Plain rows are enough to count: no image decoding or analysis is involved here.
    from diagnosis.models import Lesion, Submission

    lesion = Lesion.objects.create(owner=owner, name="left arm")
    for i in range(photos):
        Submission.objects.create(owner=owner, lesion=lesion, image=f"submissions/{i}.jpg", image_sha256="0" * 64)
    return lesion


def test_counts_only_the_requesting_users_spots_and_photos(owner_client, outsider_client, user, other_user):
    _spot_with_photos(user, 2)
    _spot_with_photos(user, 1)
    _spot_with_photos(other_user, 4)

    response = owner_client.get(PROFILE)
    assert response.context["lesion_count"] == 2
    assert response.context["submission_count"] == 3
    body = response.content.decode()
    assert '<td id="lesion-count">2</td>' in body
    assert '<td id="submission-count">3</td>' in body

    response = outsider_client.get(PROFILE)
    assert response.context["lesion_count"] == 1
    assert response.context["submission_count"] == 4
    body = response.content.decode()
    assert "owner@example.com" not in body
    assert "outsider@example.com" in body


def test_profile_does_not_create_a_token_on_get(owner_client, user):
    owner_client.get(PROFILE)
    assert not AuthToken.objects.filter(user=user).exists()


def test_profile_lists_only_own_active_tokens_and_never_a_key(owner_client, user, other_user):
    own, own_key = issue_api_token(user)
    other, other_key = issue_api_token(other_user)
    expired, _ = issue_api_token(user)
    AuthToken.objects.filter(pk=expired.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    response = owner_client.get(PROFILE)
    body = response.content.decode()
    assert list(response.context["tokens"]) == [own]
    assert own.digest in body and own_key[:8] in body
    assert own_key not in body  # only a hash is stored: the key is shown once, when created
    assert other.digest not in body and other_key[:8] not in body
    assert expired.digest not in body


def test_token_create_shows_the_key_once(owner_client, user):
    response = owner_client.post(TOKEN)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = response.context["new_key"]
    assert key in response.content.decode()
    assert TokenAuthentication().authenticate_credentials(key.encode())[0] == user
    assert key not in owner_client.get(PROFILE).content.decode()

    # A second one does not end the first: several clients, one token each.
    second = owner_client.post(TOKEN).context["new_key"]
    assert second != key
    assert AuthToken.objects.filter(user=user).count() == 2
    assert TokenAuthentication().authenticate_credentials(key.encode())[0] == user


def test_owner_revokes_one_token(owner_client, user):
    _, keep_key = issue_api_token(user)
    revoke, revoke_key = issue_api_token(user)
    response = owner_client.post(REVOKE, {"digest": revoke.digest})
    assert response.status_code == 302 and response.url == PROFILE
    with pytest.raises(AuthenticationFailed):
        TokenAuthentication().authenticate_credentials(revoke_key.encode())
    assert TokenAuthentication().authenticate_credentials(keep_key.encode())[0] == user


def test_outsider_cannot_revoke_the_owners_token(outsider_client, user):
    token, _ = issue_api_token(user)
    assert outsider_client.post(REVOKE, {"digest": token.digest}).status_code == 404
    assert AuthToken.objects.filter(pk=token.pk).exists()


def test_anonymous_cannot_create_or_revoke(client, user):
    token, _ = issue_api_token(user)
    for url, data in ((TOKEN, {}), (REVOKE, {"digest": token.digest})):
        response = client.post(url, data)
        assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert list(AuthToken.objects.all()) == [token]


def test_token_create_and_revoke_refuse_get(owner_client, user):
    token, _ = issue_api_token(user)
    assert owner_client.get(TOKEN).status_code == 405
    assert owner_client.get(REVOKE, {"digest": token.digest}).status_code == 405
    assert list(AuthToken.objects.all()) == [token]


def test_token_create_and_revoke_require_csrf(user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    token, _ = issue_api_token(user)
    assert client.post(TOKEN).status_code == 403
    assert client.post(REVOKE, {"digest": token.digest}).status_code == 403
    assert list(AuthToken.objects.all()) == [token]


def test_profile_page_title_is_plain_text_and_data_section_appears_once(owner_client):
    html = owner_client.get(PROFILE).content.decode()
    assert "<title>Your account · Skin spot check</title>" in html
    assert html.count('id="your-data"') == 1
