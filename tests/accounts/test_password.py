import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

NEW = "another-Long-phrase-77"


def test_password_change_requires_login(client):
    response = client.get(reverse("password_change"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_password_change(owner_client, user, password):
    assert owner_client.get(reverse("password_change")).status_code == 200
    response = owner_client.post(
        reverse("password_change"),
        {"old_password": password, "new_password1": NEW, "new_password2": NEW},
    )
    assert response.status_code == 302
    assert response.url == reverse("password_change_done")
    user.refresh_from_db()
    assert user.check_password(NEW)
    # The session survives the change (update_session_auth_hash).
    assert owner_client.get(reverse("password_change_done")).status_code == 200


def test_password_change_needs_the_old_password(owner_client, user, password):
    response = owner_client.post(
        reverse("password_change"),
        {"old_password": "wrong-old-password", "new_password1": NEW, "new_password2": NEW},
    )
    assert response.status_code == 200
    assert "old_password" in response.context["form"].errors
    user.refresh_from_db()
    assert user.check_password(password)


def test_password_change_rejects_a_weak_password(owner_client, user, password):
    response = owner_client.post(
        reverse("password_change"),
        {"old_password": password, "new_password1": "12345678", "new_password2": "12345678"},
    )
    assert "new_password2" in response.context["form"].errors
    user.refresh_from_db()
    assert user.check_password(password)


def _reset_link(mail):
    match = re.search(r"https?://[^/\s]+(/accounts/reset/\S+)", mail.body)
    assert match, mail.body
    return match.group(1)


def test_password_reset_end_to_end(client, user, password, mailoutbox):
    assert client.get(reverse("password_reset")).status_code == 200
    response = client.post(reverse("password_reset"), {"email": "OWNER@example.com"})
    assert response.status_code == 302
    assert response.url == reverse("password_reset_done")

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == [user.email]
    assert "password" in mail.subject.lower()
    link = _reset_link(mail)

    # Django swaps the token in the URL for one kept in the session, then shows the form.
    response = client.get(link)
    assert response.status_code == 302
    form_url = response.url
    response = client.get(form_url)
    assert response.context["validlink"] is True

    response = client.post(form_url, {"new_password1": NEW, "new_password2": NEW})
    assert response.status_code == 302
    assert response.url == reverse("password_reset_complete")
    assert client.get(response.url).status_code == 200

    user.refresh_from_db()
    assert user.check_password(NEW)
    assert not user.check_password(password)
    # Through the login page: django-axes needs the request that client.login() does not pass.
    response = client.post(reverse("login"), {"username": user.username, "password": NEW})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(user.pk)

    # The link works once only.
    client.logout()
    response = client.get(link, follow=True)
    assert response.context["validlink"] is False
    assert "no longer works" in response.content.decode()


def test_password_reset_for_unknown_email_sends_nothing_but_looks_the_same(client, mailoutbox):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert response.url == reverse("password_reset_done")
    assert mailoutbox == []


def test_password_reset_with_a_forged_token_is_refused(client, user):
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    uid = urlsafe_base64_encode(force_bytes(user.pk))
    url = reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": "abc-0123456789abcdef"})
    response = client.get(url, follow=True)
    assert response.context["validlink"] is False
