"""Sign-up in two steps: username + e-mail, then the password from the e-mailed link (issue 13).

The page answers the same whether or not the e-mail address or the username exists; the e-mail to
that address says which (an account exists: log in or reset; the name is taken; or the link).
"""

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

pytestmark = pytest.mark.django_db

URL = reverse("signup")
DONE = reverse("signup-done")
STRONG = "correct-Horse-battery-9"


def _data(**overrides):
    return {"username": "newbie", "email": "newbie@example.com", **overrides}


def _confirm_link(mail):
    match = re.search(r"https?://[^/\s]+(/accounts/signup/confirm/\?token=\S+)", mail.body)
    assert match, mail.body
    return match.group(1)


def _sign_up(client, mailoutbox, **overrides):
    response = client.post(URL, _data(**overrides))
    assert response.status_code == 302 and response.url == DONE
    return _confirm_link(mailoutbox[-1])


def test_page_asks_for_username_and_email_only(client):
    response = client.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    for name in ("username", "email"):
        assert f'name="{name}"' in body
    assert 'name="password1"' not in body


def test_signup_mails_a_link_that_creates_the_account_and_logs_in(client, mailoutbox):
    link = _sign_up(client, mailoutbox)
    assert mailoutbox[0].to == ["newbie@example.com"]
    # Nothing is stored until the link is used: nobody can hold a name or an address they do not own.
    assert not get_user_model().objects.exists()
    assert "_auth_user_id" not in client.session

    page = client.get(link, follow=True)
    assert page.status_code == 200 and "newbie" in page.content.decode()
    response = client.post(link, {"password1": STRONG, "password2": STRONG})
    assert response.status_code == 302 and response.url == reverse("diagnosis:lesion-list")
    user = get_user_model().objects.get(username="newbie")
    assert user.email == "newbie@example.com" and user.check_password(STRONG)
    assert client.session["_auth_user_id"] == str(user.pk)


def test_the_link_leaves_the_token_out_of_the_address_of_the_page_and_its_form(client, mailoutbox):
    """Access logs and Referer headers would otherwise carry it (issue 13 review): as with
    Django's password-reset links, the token moves into the session and the page has a clean URL."""
    link = _sign_up(client, mailoutbox)
    response = client.get(link)
    assert response.status_code == 302 and response.url == reverse("signup-confirm")
    page = client.get(response.url)
    token = link.split("token=", 1)[1]
    assert page.status_code == 200 and token not in page.content.decode()
    response = client.post(reverse("signup-confirm"), {"password1": STRONG, "password2": STRONG})
    assert response.status_code == 302 and get_user_model().objects.filter(username="newbie").exists()
    assert "signup_token" not in client.session


def test_a_mail_server_that_fails_still_gets_the_same_answer_and_is_logged(client, monkeypatch, caplog):
    from accounts import services

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(services, "send_mail", refuse)
    response = client.post(URL, _data())
    assert response.status_code == 302 and response.url == DONE
    assert "sign-up mail not sent (ConnectionRefusedError" in caplog.text


def test_the_link_works_once(client, mailoutbox):
    link = _sign_up(client, mailoutbox)
    client.post(link, {"password1": STRONG, "password2": STRONG})
    client.logout()
    response = client.get(link, follow=True)
    assert "exists already" in response.content.decode()
    assert client.post(link, {"password1": STRONG, "password2": STRONG}).status_code == 200
    assert get_user_model().objects.count() == 1


def test_a_forged_or_expired_link_is_refused(client, mailoutbox, settings):
    link = _sign_up(client, mailoutbox)
    forged = link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb")
    assert "does not work" in client.get(forged, follow=True).content.decode()
    assert "does not work" in client.get(reverse("signup-confirm")).content.decode()

    from datetime import timedelta
    from unittest import mock

    from accounts import services

    with mock.patch.object(services, "SIGNUP_LINK_MAX_AGE", timedelta(seconds=-1)):
        assert "does not work" in client.get(link, follow=True).content.decode()
    assert not get_user_model().objects.exists()


def _answer(client, **overrides):
    response = client.post(URL, _data(**overrides))
    return response.status_code, response.get("Location"), response.content


@pytest.mark.parametrize("email", ["owner@example.com", "OWNER@Example.COM"])
def test_existing_email_answers_the_same_and_the_mail_carries_the_news(client, user, mailoutbox, email):
    assert _answer(client, email=email) == _answer(client, email="fresh@example.com", username="fresh")
    taken, fresh = mailoutbox
    assert taken.to == [user.email] and "tried to sign up for Skin spot check with this e-mail address" in taken.body
    assert reverse("password_reset") in taken.body and reverse("login") in taken.body
    assert "/accounts/signup/confirm/" not in taken.body
    assert "/accounts/signup/confirm/" in fresh.body
    assert get_user_model().objects.count() == 1  # the owner only
    assert "_auth_user_id" not in client.session


def test_existing_username_answers_the_same_and_the_mail_says_it_is_taken(client, user, mailoutbox):
    assert _answer(client, username=user.username.upper()) == _answer(client, username="fresh")
    taken, fresh = mailoutbox
    assert taken.to == ["newbie@example.com"] and "is taken" in taken.body
    assert "/accounts/signup/confirm/" not in taken.body
    assert "/accounts/signup/confirm/" in fresh.body


def test_a_name_taken_after_the_link_was_sent_is_explained(client, mailoutbox, django_user_model):
    link = _sign_up(client, mailoutbox)
    django_user_model.objects.create_user("newbie", "first@example.com", STRONG)
    response = client.post(link, {"password1": STRONG, "password2": STRONG})
    assert response.status_code == 200 and "exists already" in response.content.decode()
    assert not django_user_model.objects.filter(email="newbie@example.com").exists()


def test_email_and_username_are_required(client, mailoutbox):
    response = client.post(URL, _data(email=""))
    assert "email" in response.context["form"].errors
    response = client.post(URL, _data(username=""))
    assert "username" in response.context["form"].errors
    assert mailoutbox == []


@pytest.mark.parametrize("weak", ["12345678", "password", "short1!", "newbie1234"])
def test_weak_password_is_rejected(client, mailoutbox, weak):
    link = _sign_up(client, mailoutbox)
    response = client.post(link, {"password1": weak, "password2": weak})
    assert response.status_code == 200
    assert "password2" in response.context["form"].errors
    assert not get_user_model().objects.exists()


def test_mismatched_passwords_are_rejected(client, mailoutbox):
    link = _sign_up(client, mailoutbox)
    response = client.post(link, {"password1": STRONG, "password2": STRONG + "x"})
    assert "password2" in response.context["form"].errors
    assert not get_user_model().objects.exists()


def test_logged_in_user_is_sent_on(owner_client):
    for url in (URL, reverse("signup-confirm")):
        response = owner_client.get(url)
        assert response.status_code == 302
        assert response.url == reverse("diagnosis:lesion-list")


# --- usernames: NFKC, mixed scripts, look-alikes --------------------------------------------------


def test_username_is_nfkc_normalised(client, mailoutbox):
    link = _sign_up(client, mailoutbox, username="ｎｅｗｂｉｅ")  # full-width letters
    client.post(link, {"password1": STRONG, "password2": STRONG})
    assert get_user_model().objects.get().username == "newbie"


@pytest.mark.parametrize("name", ["аlice", "pаypal", "ϲlaire"])  # Cyrillic а, Greek ϲ among Latin
def test_mixed_script_look_alikes_are_refused(client, mailoutbox, name):
    response = client.post(URL, _data(username=name))
    assert response.status_code == 200
    assert "one alphabet" in str(response.context["form"].errors["username"])
    assert mailoutbox == []


@pytest.mark.parametrize("name", ["alıce", "ALICE", "Alice"])
def test_a_look_alike_of_an_existing_name_counts_as_taken(client, django_user_model, mailoutbox, name):
    django_user_model.objects.create_user("alice", "alice@example.com", STRONG)
    response = client.post(URL, _data(username=name))
    assert response.status_code == 302 and response.url == DONE
    assert "is taken" in mailoutbox[0].body


def test_a_whole_script_look_alike_counts_as_taken(client, django_user_model, mailoutbox):
    django_user_model.objects.create_user("copa", "copa@example.com", STRONG)
    client.post(URL, _data(username="сора"))  # all Cyrillic: one alphabet, but it reads "copa"
    assert "is taken" in mailoutbox[0].body


@pytest.mark.parametrize("name", ["zoë", "José", "Müller", "李雷", "ǅemal_2"])
def test_ordinary_non_ascii_names_still_work(client, mailoutbox, name):
    import unicodedata

    link = _sign_up(client, mailoutbox, username=name)
    client.post(link, {"password1": STRONG, "password2": STRONG})
    assert get_user_model().objects.get().username == unicodedata.normalize("NFKC", name)


def test_a_non_ascii_name_does_not_block_its_ascii_cousin(client, django_user_model, mailoutbox):
    django_user_model.objects.create_user("zoë", "zoe1@example.com", STRONG)
    link = _sign_up(client, mailoutbox, username="zoe")  # a different letter, not a look-alike
    assert client.post(link, {"password1": STRONG, "password2": STRONG}).status_code == 302


def test_the_skeleton_is_kept_on_rename(django_user_model):
    user = django_user_model.objects.create_user("bob", "bob@example.com", STRONG)
    user.username = "Bοb"  # Greek omicron
    user.save(update_fields=["username"])
    user.refresh_from_db()
    assert user.username_skeleton == "bob"


def test_the_migration_fills_the_skeletons_of_existing_users(django_user_model):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("accounts.migrations.0004_user_username_skeleton")
    user = django_user_model.objects.create_user("Alıce", "alice@example.com", STRONG)
    django_user_model.objects.filter(pk=user.pk).update(username_skeleton="")
    migration.fill_skeletons(apps, None)
    user.refresh_from_db()
    assert user.username_skeleton == "alice"
