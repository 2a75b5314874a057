import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

pytestmark = pytest.mark.django_db

URL = reverse("signup")
STRONG = "correct-Horse-battery-9"


def _data(**overrides):
    data = {"username": "newbie", "email": "newbie@example.com", "password1": STRONG, "password2": STRONG}
    data.update(overrides)
    return data


def test_page_shows_the_form(client):
    response = client.get(URL)
    assert response.status_code == 200
    for name in ("username", "email", "password1", "password2"):
        assert f'name="{name}"' in response.content.decode()


def test_signup_creates_user_and_logs_in(client):
    response = client.post(URL, _data())
    assert response.status_code == 302
    assert response.url == reverse("diagnosis:lesion-list")
    user = get_user_model().objects.get(username="newbie")
    assert user.email == "newbie@example.com"
    assert user.check_password(STRONG)
    assert client.session["_auth_user_id"] == str(user.pk)


def test_duplicate_username_is_rejected_case_insensitively(client, user):
    response = client.post(URL, _data(username=user.username.upper()))
    assert response.status_code == 200
    assert "username" in response.context["form"].errors
    assert not get_user_model().objects.filter(email="newbie@example.com").exists()


@pytest.mark.parametrize("email", ["owner@example.com", "OWNER@Example.COM"])
def test_duplicate_email_is_rejected_case_insensitively(client, user, email):
    response = client.post(URL, _data(email=email))
    assert response.status_code == 200
    assert "email" in response.context["form"].errors
    assert "already exists" in response.content.decode()
    assert not get_user_model().objects.filter(username="newbie").exists()
    assert "_auth_user_id" not in client.session


def test_email_is_required(client):
    response = client.post(URL, _data(email=""))
    assert "email" in response.context["form"].errors
    assert not get_user_model().objects.exists()


@pytest.mark.parametrize("weak", ["12345678", "password", "short1!", "newbie1234"])
def test_weak_password_is_rejected(client, weak):
    response = client.post(URL, _data(password1=weak, password2=weak))
    assert response.status_code == 200
    assert "password2" in response.context["form"].errors
    assert not get_user_model().objects.exists()


def test_mismatched_passwords_are_rejected(client):
    response = client.post(URL, _data(password2=STRONG + "x"))
    assert "password2" in response.context["form"].errors
    assert not get_user_model().objects.exists()


def test_logged_in_user_is_sent_on(owner_client):
    response = owner_client.get(URL)
    assert response.status_code == 302
    assert response.url == reverse("diagnosis:lesion-list")
