import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_admin_lists_users(admin_client, user):
    response = admin_client.get(reverse("admin:accounts_user_changelist"))
    assert response.status_code == 200
    assert user.email in response.content.decode()


def test_admin_adds_a_user_with_email(admin_client):
    pw = "correct-Horse-battery-9"
    response = admin_client.post(reverse("admin:accounts_user_add"), {
        "username": "added", "email": "added@example.com", "usable_password": "true",
        "password1": pw, "password2": pw,
    })
    assert response.status_code == 302, response.context["adminform"].form.errors
    added = get_user_model().objects.get(username="added")
    assert added.email == "added@example.com"
    assert added.check_password(pw)
