"""One client address for axes, the DRF throttles, the account limits and /metrics (issue 13, M3).

X-Forwarded-For is believed only from a peer in TRUSTED_PROXY_IPS. The probe reached gunicorn
directly and wrote a new header on every request: 12 wrong passwords without a lock-out, and 70
requests over the anonymous API limit in one minute.
"""

import pytest
from django.core.checks import run_checks
from django.urls import reverse
from rest_framework.throttling import SimpleRateThrottle

from skinsite.client_ip import client_ip

pytestmark = pytest.mark.django_db

PROXY = "127.0.0.1"  # nginx on the same host
OUTSIDE = "198.51.100.7"  # a client that reached gunicorn without the proxy


@pytest.fixture(autouse=True)
def behind_one_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 1


@pytest.mark.parametrize("peer,forwarded,expected", [
    (PROXY, "203.0.113.9", "203.0.113.9"),  # through nginx: the client it saw
    ("172.18.0.3", "203.0.113.9", "203.0.113.9"),  # nginx in the compose network
    (OUTSIDE, "203.0.113.9", OUTSIDE),  # straight to gunicorn: the header is the client's own words
    (OUTSIDE, "127.0.0.1", OUTSIDE),
    ("not an address", "203.0.113.9", "not an address"),
])
def test_the_header_counts_only_from_a_trusted_proxy(rf, peer, forwarded, expected):
    assert client_ip(rf.get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)) == expected


def test_a_forged_header_on_every_try_does_not_escape_the_lock_out(settings, client, user, password):
    for i in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": user.username, "password": "wrong"},
                    REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
    response = client.post(reverse("login"), {"username": user.username, "password": password},
                           REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_FOR="203.0.113.200")
    assert response.status_code == 429  # locked out although the password is right
    # the real owner, coming through the proxy from elsewhere, still gets in
    response = client.post(reverse("login"), {"username": user.username, "password": password},
                           REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.77")
    assert response.status_code == 302


@pytest.fixture
def anon_rate(monkeypatch):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "anon", "3/minute")


def _token_attempts(client, headers):
    url = reverse("api:auth-token")
    return [client.post(url, {"username": "nobody", "password": "x"}, content_type="application/json",
                        **h).status_code for h in headers]


def test_a_new_header_on_every_request_does_not_escape_the_anonymous_throttle(anon_rate, client):
    codes = _token_attempts(client, [{"REMOTE_ADDR": OUTSIDE, "HTTP_X_FORWARDED_FOR": f"203.0.113.{i}"}
                                     for i in range(5)])
    assert codes[:3] == [400, 400, 400] and codes[3:] == [429, 429]


def test_behind_the_proxy_each_client_has_its_own_throttle(anon_rate, client):
    first = _token_attempts(client, [{"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "203.0.113.1"}] * 4)
    other = _token_attempts(client, [{"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "203.0.113.2"}])
    assert first == [400, 400, 400, 429] and other == [400]


def test_every_drf_throttle_of_the_project_uses_the_one_address():
    from rest_framework.settings import api_settings

    from diagnosis.throttles import UploadRateThrottle
    from skinsite.throttling import ClientAddressMixin

    for throttle in [*api_settings.DEFAULT_THROTTLE_CLASSES, UploadRateThrottle]:
        assert issubclass(throttle, ClientAddressMixin), throttle


def test_metrics_refuse_a_peer_outside_the_proxies_that_claims_loopback(client):
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403


def _deploy_warnings():
    return {m.id for m in run_checks(include_deployment_checks=True) if m.id.startswith("skinsite.")}


def test_check_deploy_warns_when_a_proxy_count_is_set_but_no_proxy_header_is_expected(settings):
    settings.SECURE_PROXY_SSL_HEADER = None
    assert "skinsite.W002" in _deploy_warnings()
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert "skinsite.W002" not in _deploy_warnings()
    settings.TRUSTED_PROXY_COUNT = 0
    settings.SECURE_PROXY_SSL_HEADER = None
    assert "skinsite.W002" not in _deploy_warnings()


def test_check_deploy_warns_when_every_address_is_a_trusted_proxy(settings):
    from ipaddress import ip_network

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.TRUSTED_PROXY_NETWORKS = [ip_network("0.0.0.0/0")]
    assert "skinsite.W003" in _deploy_warnings()
