import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="username"' in body and 'name="password"' in body


def test_login_with_right_password(client, user, password):
    response = client.post(reverse("login"), {"username": user.username, "password": password})
    assert response.status_code == 302
    assert response.url == reverse("diagnosis:lesion-list")
    assert client.session["_auth_user_id"] == str(user.pk)


def test_login_with_wrong_password_fails(client, user):
    response = client.post(reverse("login"), {"username": user.username, "password": "not-the-password"})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert "_auth_user_id" not in client.session


def test_login_follows_safe_next(client, user, password):
    response = client.post(
        reverse("login") + "?next=/accounts/profile/",
        {"username": user.username, "password": password, "next": "/accounts/profile/"},
    )
    assert response.url == "/accounts/profile/"


def test_login_ignores_offsite_next(client, user, password):
    response = client.post(
        reverse("login"), {"username": user.username, "password": password, "next": "https://evil.example/"}
    )
    assert response.url == reverse("diagnosis:lesion-list")


def test_logout_by_post(owner_client):
    response = owner_client.post(reverse("logout"))
    assert response.status_code == 302
    assert response.url == reverse("diagnosis:home")
    assert "_auth_user_id" not in owner_client.session


def test_logout_by_get_is_refused(owner_client, user):
    # A GET must not log out: a link or image on another site could otherwise do it.
    response = owner_client.get(reverse("logout"))
    assert response.status_code == 405
    assert owner_client.session["_auth_user_id"] == str(user.pk)
