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


@pytest.mark.parametrize("name,error", [("аdded", "one alphabet"), ("addеd", "one alphabet"),
                                        ("ADDED", "already exists"), ("addıd", None)])
def test_the_admin_holds_new_usernames_to_the_sign_up_rules(admin_client, django_user_model, name, error):
    django_user_model.objects.create_user("added", "first@example.com", "correct-Horse-battery-9")
    django_user_model.objects.create_user("addid", "second@example.com", "correct-Horse-battery-9")
    pw = "correct-Horse-battery-9"
    response = admin_client.post(reverse("admin:accounts_user_add"), {
        "username": name, "email": "third@example.com", "usable_password": "true",
        "password1": pw, "password2": pw,
    })
    assert response.status_code == 200
    errors = str(response.context["adminform"].form.errors["username"])
    # "addıd": PostgreSQL's case-insensitive match (UPPER('ı') is 'I') already finds "addid" in
    # Django's own check; SQLite's does not, and the look-alike check refuses it. Refused either way.
    assert any(e in errors for e in ([error] if error else ["looks the same", "already exists"])), errors
    assert not get_user_model().objects.filter(email="third@example.com").exists()
