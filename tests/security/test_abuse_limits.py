"""Abuse limits: DRF throttling (anonymous, user, uploads) on the shared cache, login lock-out (axes)."""

import subprocess
import sys

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.urls import reverse
from rest_framework.throttling import SimpleRateThrottle

from diagnosis.models import Submission
from tests.conftest import image_bytes, upload_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(monkeypatch):
    """Lower a throttle rate for one test (DRF reads the rates once, into this class attribute)."""
    def set_rate(scope, rate):
        monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, scope, rate)
    return set_rate


def test_uploads_have_their_own_limit(rates, owner_client):
    rates("uploads", "2/hour")
    url = reverse("api:submission-list")
    for _ in range(2):
        assert owner_client.post(url, {"image": upload_file(image_bytes())}).status_code == 201
    response = owner_client.post(url, {"image": upload_file(image_bytes())})
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert Submission.objects.count() == 2
    # Reading is not an upload: still allowed.
    assert owner_client.get(url).status_code == 200


def test_upload_limit_is_per_user(rates, owner_client, outsider_client):
    rates("uploads", "1/hour")
    url = reverse("api:submission-list")
    assert owner_client.post(url, {"image": upload_file(image_bytes())}).status_code == 201
    assert owner_client.post(url, {"image": upload_file(image_bytes())}).status_code == 429
    assert outsider_client.post(url, {"image": upload_file(image_bytes())}).status_code == 201


def test_authenticated_requests_are_limited(rates, owner_client):
    rates("user", "3/minute")
    url = reverse("api:lesion-list")
    assert [owner_client.get(url).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_anonymous_requests_are_limited(rates, client):
    rates("anon", "3/minute")
    url = reverse("api:auth-token")
    codes = [client.post(url, {"username": "nobody", "password": "x"}, content_type="application/json").status_code
             for _ in range(4)]
    assert codes == [400, 400, 400, 429]


def test_the_cache_is_redis_when_redis_url_is_set():
    code = ("import django; django.setup(); from django.conf import settings;"
            "print(settings.CACHES['default']['BACKEND'])")
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "skinsite.settings"}
    with_redis = subprocess.run([sys.executable, "-c", code], env={**base, "REDIS_URL": "redis://127.0.0.1:6379/0"},
                                capture_output=True, text=True, cwd=settings.BASE_DIR, timeout=120)
    # Django's RedisCache, failing open when Redis is down (skinsite/cache.py).
    assert with_redis.stdout.strip() == "skinsite.cache.FailOpenRedisCache", with_redis.stderr[-1000:]
    without = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True,
                             cwd=settings.BASE_DIR, timeout=120)
    assert without.stdout.strip() == "django.core.cache.backends.locmem.LocMemCache", without.stderr[-1000:]


def test_the_configured_cache_works():
    """With REDIS_URL set (CI), this round-trips through the real Redis the throttles use."""
    from django.core.cache import cache

    cache.set("security-test", "ok", 10)
    assert cache.get("security-test") == "ok"


# --- log-in lock-out ----------------------------------------------------------------------------


def _login(client, username, password, address="10.0.0.1"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_login_locks_out_after_repeated_failures(client, user, password):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, user.username, "wrong").status_code == 200
    locked = _login(client, user.username, "wrong")
    assert locked.status_code == 429
    page = locked.content.decode()
    # The site's own page (issue 13 review: axes' bare line had no layout, no wait, no way out).
    assert "Log-in paused" in page and "about 30 minutes" in page and reverse("password_reset") in page
    # Issue 13: the lock-out says when to come back (at most the cool-off).
    assert locked["Retry-After"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    # Even the right password is refused while locked out...
    assert _login(client, user.username, password).status_code == 429
    assert "_auth_user_id" not in client.session
    assert AccessAttempt.objects.filter(username=user.username).exists()


def test_lock_out_is_per_username_and_address(client, user, password):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, user.username, "wrong", address="10.0.0.1")
    # ...but a stranger guessing from elsewhere cannot lock the real person out.
    response = _login(client, user.username, password, address="10.0.0.2")
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(user.pk)


def test_a_successful_login_resets_the_count(client, user, password):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, user.username, "wrong")
    assert _login(client, user.username, password).status_code == 302
    client.post(reverse("logout"))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, user.username, "wrong").status_code == 200
    assert _login(client, user.username, password).status_code == 302


def test_api_token_endpoint_is_locked_out_too(client, user, password):
    url = reverse("api:auth-token")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(url, {"username": user.username, "password": "wrong"}, content_type="application/json",
                    REMOTE_ADDR="10.0.0.9")
    # Locked out: the right password gets no token.
    response = client.post(url, {"username": user.username, "password": password}, content_type="application/json",
                           REMOTE_ADDR="10.0.0.9")
    assert response.status_code == 429 and "token" not in response.json()
    assert "Too many failed log-ins" in response.json()["detail"]
    assert int(response["Retry-After"]) > 0
    response = client.post(url, {"username": user.username, "password": password}, content_type="application/json",
                           REMOTE_ADDR="10.0.0.8")
    assert response.status_code == 200 and response.json()["token"]


@pytest.mark.parametrize("count,forwarded,remote,expected", [
    (0, "203.0.113.9", "198.51.100.1", "198.51.100.1"),  # no proxy: the header is the client's own
    (1, "203.0.113.9", "127.0.0.1", "203.0.113.9"),  # nginx overwrote it with the client's address
    (1, "6.6.6.6, 203.0.113.9", "127.0.0.1", "203.0.113.9"),  # a forged entry on the left is ignored
    (2, "203.0.113.9, 10.0.0.2", "127.0.0.1", "203.0.113.9"),
    (1, "", "127.0.0.1", "127.0.0.1"),
])
def test_client_address_behind_proxies(settings, rf, count, forwarded, remote, expected):
    from skinsite.client_ip import client_ip

    settings.TRUSTED_PROXY_COUNT = count
    request = rf.get("/", HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR=remote)
    assert client_ip(request) == expected


def test_lock_out_behind_the_proxy_is_per_client_address(settings, client, user, password):
    settings.TRUSTED_PROXY_COUNT = 1
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": user.username, "password": "wrong"},
                    REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.66")
    response = client.post(reverse("login"), {"username": user.username, "password": password},
                           REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert response.status_code == 302


def test_web_and_api_uploads_share_one_limit(rates, owner_client):
    rates("uploads", "2/hour")
    assert owner_client.post(reverse("diagnosis:upload"), {"image": upload_file(image_bytes())}).status_code == 302
    assert owner_client.post(reverse("api:submission-list"), {"image": upload_file(image_bytes())}).status_code == 201
    response = owner_client.post(reverse("diagnosis:upload"), {"image": upload_file(image_bytes())})
    assert response.status_code == 429 and "Too many uploads" in response.content.decode()
    assert int(response["Retry-After"]) > 0
    assert owner_client.post(reverse("api:submission-list"), {"image": upload_file(image_bytes())}).status_code == 429
    assert Submission.objects.count() == 2
    assert owner_client.get(reverse("diagnosis:upload")).status_code == 200  # the page itself still opens


# --- issue 13: JSON bodies are held to DATA_UPLOAD_MAX_MEMORY_SIZE ----------------------------------

def test_a_json_body_over_the_form_limit_is_refused_with_413(settings, owner_client):
    import json as _json

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    url = reverse("api:consent")
    big = _json.dumps({"accept": True, "padding": "x" * 20_000})
    response = owner_client.post(url, big, content_type="application/json")
    assert response.status_code == 413 and "too large" in response.json()["detail"]
    small = owner_client.post(url, _json.dumps({"accept": True}), content_type="application/json")
    assert small.status_code in (200, 201), small.content


def test_a_json_body_without_a_length_is_cut_at_the_limit(settings, rf):
    import io

    from rest_framework.exceptions import APIException

    from skinsite.parsers import BoundedJSONParser

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    request = rf.post("/api/v1/consent/", data=b"", content_type="application/json")
    request.META.pop("CONTENT_LENGTH", None)
    stream = io.BytesIO(b'{"a": "' + b"x" * 5_000 + b'"}')
    with pytest.raises(APIException) as refused:
        BoundedJSONParser().parse(stream, "application/json", {"request": request})
    assert refused.value.status_code == 413
    assert BoundedJSONParser().parse(io.BytesIO(b'{"a": 1}'), "application/json", {"request": request}) == {"a": 1}


# --- issue 13: per-address limits on log-in, password reset and sign-up (accounts/limits.py) -------

FORM = "application/x-www-form-urlencoded"


def _form(client, url, data, address):
    from urllib.parse import urlencode

    return client.post(url, urlencode(data), content_type=FORM, REMOTE_ADDR=address)


def _spray(client, users, tries_each, address="203.0.113.50"):
    """Wrong passwords over many usernames from one address, few enough per user for axes to stay quiet."""
    return [_login(client, user.username, f"Guess-{attempt}-x", address=address).status_code
            for attempt in range(tries_each) for user in users]


@pytest.fixture
def twelve_users(django_user_model):
    return [django_user_model.objects.create_user(f"member{i}", f"member{i}@example.com", "x-Long-secret-1")
            for i in range(12)]


def test_password_spraying_from_one_address_is_refused(rates, client, twelve_users, django_user_model):
    rates("login_failures", "20/hour")
    codes = _spray(client, twelve_users, 4)  # 48 tries, 4 per user (axes locks out at 5 per user+address)
    assert codes.count(200) == 20 and codes.count(429) == 28
    # Even the right password of an account nobody tried yet is refused from that address, for now.
    django_user_model.objects.create_user("untried", "untried@example.com", "x-Long-secret-1")
    refused = _login(client, "untried", "x-Long-secret-1", address="203.0.113.50")
    assert refused.status_code == 429 and "_auth_user_id" not in client.session
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert "Too many failed log-ins from your network" in refused.content.decode()


def test_the_spraying_limit_is_per_address(rates, client, twelve_users):
    rates("login_failures", "5/hour")
    _spray(client, twelve_users[:5], 1, address="203.0.113.50")
    assert _login(client, "member6", "wrong", address="203.0.113.50").status_code == 429
    # Someone else, elsewhere, signs in (and fails) as usual.
    assert _login(client, "member6", "wrong", address="198.51.100.7").status_code == 200
    response = _login(client, "member6", "x-Long-secret-1", address="198.51.100.7")
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(twelve_users[6].pk)


def test_successful_log_ins_do_not_count(rates, client, user, password):
    rates("login_failures", "2/hour")
    for _ in range(4):
        assert _login(client, user.username, password).status_code == 302
        client.post(reverse("logout"))


def test_the_api_token_endpoint_shares_the_spraying_limit(rates, client, twelve_users):
    rates("login_failures", "3/hour")
    url = reverse("api:auth-token")
    _spray(client, twelve_users[:3], 1, address="203.0.113.50")  # three failures on the web form
    response = _form(client, url, {"username": "member5", "password": "x-Long-secret-1"}, "203.0.113.50")
    assert response.status_code == 429 and "token" not in response.json()
    assert int(response["Retry-After"]) > 0
    response = _form(client, url, {"username": "member5", "password": "x-Long-secret-1"}, "198.51.100.7")
    assert response.status_code == 200 and response.json()["token"]


def test_the_spraying_limit_follows_the_client_address_behind_the_proxy(settings, rates, client, twelve_users):
    settings.TRUSTED_PROXY_COUNT = 1
    rates("login_failures", "2/hour")
    for user in twelve_users[:2]:
        client.post(reverse("login"), {"username": user.username, "password": "wrong"},
                    REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.66")
    blocked = client.post(reverse("login"), {"username": "member3", "password": "wrong"},
                          REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.66")
    assert blocked.status_code == 429
    other = client.post(reverse("login"), {"username": "member3", "password": "x-Long-secret-1"},
                        REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert other.status_code == 302


def _reset(client, email, address="203.0.113.50"):
    return _form(client, reverse("password_reset"), {"email": email}, address)


def test_password_reset_floods_neither_a_mailbox_nor_from_one_address(rates, client, user, mailoutbox):
    rates("password_reset", "10/hour")
    rates("account_mail", "3/hour")
    codes = [_reset(client, user.email).status_code for _ in range(25)]
    assert codes == [302] * 10 + [429] * 15
    assert len(mailoutbox) == 3
    refused = _reset(client, user.email)
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert "Too many reset requests" in refused.content.decode()


def test_password_reset_from_many_addresses_still_sends_few_mails(rates, client, user, mailoutbox):
    rates("account_mail", "3/hour")
    responses = [_reset(client, user.email, address=f"198.51.100.{i}") for i in range(25)]
    assert {(r.status_code, r.url) for r in responses} == {(302, reverse("password_reset_done"))}
    assert len(mailoutbox) == 3


def test_password_reset_answers_alike_for_known_and_unknown_addresses(client, user, mailoutbox):
    known = _reset(client, user.email)
    unknown = _reset(client, "nobody@example.com")
    assert (known.status_code, known.url) == (unknown.status_code, unknown.url) == (302, reverse("password_reset_done"))
    assert [m.to for m in mailoutbox] == [[user.email]]
    # The "done" page is the same page for both: it says "if an account uses that address".
    assert "If an account uses that address" in client.get(known.url).content.decode()


def _signup(client, email, username="newbie", address="203.0.113.50"):
    return _form(client, reverse("signup"), {"username": username, "email": email}, address)


def test_sign_up_is_limited_per_address(rates, client, mailoutbox):
    rates("signup", "10/hour")
    codes = [_signup(client, f"n{i}@example.com", username=f"n{i}").status_code for i in range(12)]
    assert codes == [302] * 10 + [429] * 2
    refused = _signup(client, "late@example.com")
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert "Too many sign-ups" in refused.content.decode()
    assert len(mailoutbox) == 10
    assert _signup(client, "else@example.com", address="198.51.100.7").status_code == 302


def test_sign_up_and_reset_share_the_mails_to_one_address(rates, client, user, mailoutbox):
    rates("account_mail", "3/hour")
    for i in range(3):
        _signup(client, user.email, address=f"198.51.100.{i}")
    response = _reset(client, user.email, address="198.51.100.9")
    assert response.status_code == 302  # the page answers as usual ...
    assert len(mailoutbox) == 3  # ... and nothing more is sent
    assert _signup(client, "someone@example.com", address="198.51.100.9").status_code == 302
    assert len(mailoutbox) == 4  # another address has its own budget
