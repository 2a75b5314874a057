import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db

PROFILE = reverse("profile")
TOKEN = reverse("api-token")


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
    assert not Token.objects.filter(user=user).exists()


def test_profile_shows_only_own_token(owner_client, user, other_user):
    own = Token.objects.create(user=user)
    other = Token.objects.create(user=other_user)
    body = owner_client.get(PROFILE).content.decode()
    assert own.key in body
    assert other.key not in body


def test_token_create_and_regenerate(owner_client, user):
    response = owner_client.post(TOKEN)
    assert response.status_code == 302
    assert response.url == PROFILE
    first = Token.objects.get(user=user).key

    owner_client.post(TOKEN)
    second = Token.objects.get(user=user).key
    assert second != first
    assert Token.objects.filter(user=user).count() == 1


def test_regenerated_token_replaces_the_old_one_for_the_api(owner_client, user):
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.exceptions import AuthenticationFailed

    old = Token.objects.create(user=user).key
    owner_client.post(TOKEN)
    new = Token.objects.get(user=user).key

    auth = TokenAuthentication()
    assert auth.authenticate_credentials(new)[0] == user
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_credentials(old)


def test_token_regenerate_refuses_get(owner_client, user):
    Token.objects.create(user=user)
    before = Token.objects.get(user=user).key
    response = owner_client.get(TOKEN)
    assert response.status_code == 405
    assert Token.objects.get(user=user).key == before


def test_token_regenerate_requires_csrf(user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    Token.objects.create(user=user)
    before = Token.objects.get(user=user).key
    response = client.post(TOKEN)
    assert response.status_code == 403
    assert Token.objects.get(user=user).key == before


def test_token_regenerate_requires_login(client):
    response = client.post(TOKEN)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert not Token.objects.exists()


def test_outsider_regenerating_leaves_owner_token_alone(outsider_client, user):
    own = Token.objects.create(user=user).key
    outsider_client.post(TOKEN)
    assert Token.objects.get(user=user).key == own


def test_profile_page_title_is_plain_text_and_data_section_appears_once(owner_client):
    html = owner_client.get(PROFILE).content.decode()
    assert "<title>Your account · Skin spot check</title>" in html
    assert html.count('id="your-data"') == 1
