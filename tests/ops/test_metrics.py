"""/metrics: Prometheus text format (parsed with prometheus_client's parser), and who may read it."""

from datetime import timedelta
from ipaddress import ip_network

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from diagnosis.models import Submission
from ops import heartbeat

pytestmark = pytest.mark.django_db

OUTSIDE = "203.0.113.5"


def scrape(client, **extra):
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    families = {family.name: family for family in text_string_to_metric_families(response.content.decode())}
    return families


def samples(family, name=None, **labels):
    return [s.value for s in family.samples
            if (name is None or s.name == name) and all(s.labels.get(k) == v for k, v in labels.items())]


def test_pipeline_metrics_follow_the_database(client, use_tiny_model, submission_factory,
                                              django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        done = submission_factory()  # analysed eagerly with the tiny model
    waiting = submission_factory()
    Submission.objects.filter(pk=waiting.pk).update(status=Submission.Status.QUEUED, started_at=None,
                                                    finished_at=None, created_at=timezone.now() - timedelta(minutes=5))
    failed = submission_factory()
    now = timezone.now()
    Submission.objects.filter(pk=failed.pk).update(status=Submission.Status.FAILED, started_at=now - timedelta(seconds=3),
                                                   finished_at=now, created_at=now - timedelta(seconds=7))
    heartbeat.beat(hostname="celery@metrics", queues="celery,inference")
    heartbeat.beat(hostname="celery@maintenance", queues="celery")  # default queue only: not counted
    done.refresh_from_db()
    assert done.status == Submission.Status.DONE

    families = scrape(client)

    status = families["skinsite_submissions"]
    assert samples(status, status="done") == [1]
    assert samples(status, status="failed") == [1]
    assert samples(status, status="queued") == [1]
    assert samples(status, status="rejected") == [0]
    assert 299 <= samples(families["skinsite_oldest_waiting_submission_age_seconds"])[0] < 400

    analysis = families["skinsite_analysis_duration_seconds"]
    assert analysis.type == "histogram"
    assert samples(analysis, "skinsite_analysis_duration_seconds_count") == [2]
    assert samples(analysis, "skinsite_analysis_duration_seconds_bucket", le="+Inf") == [2]
    assert samples(analysis, "skinsite_analysis_duration_seconds_bucket", le="2.0") == [1]  # the 3 s one is above
    assert samples(analysis, "skinsite_analysis_duration_seconds_bucket", le="5.0") == [2]
    assert 3.0 <= samples(analysis, "skinsite_analysis_duration_seconds_sum")[0] < 30
    latency = families["skinsite_result_latency_seconds"]
    assert samples(latency, "skinsite_result_latency_seconds_bucket", le="5.0") == [1]
    assert samples(latency, "skinsite_result_latency_seconds_bucket", le="10.0") == [2]

    assert samples(families["skinsite_broker_up"]) == [1]
    assert set(s.labels["queue"] for s in families["skinsite_queue_messages"].samples) == {"inference", "celery"}
    workers = families["skinsite_workers_ready"]
    assert [(s.labels["model_version"], s.value) for s in workers.samples] == [("tiny-test-1", 1)]


def test_http_metrics_from_django_prometheus(client):
    client.get("/conditions/")
    families = scrape(client)
    assert "django_http_requests_total_by_method" in families
    assert samples(families["django_http_requests_total_by_method"], method="GET")[0] >= 1


def test_queue_length_counts_waiting_messages(client, settings):
    """A task sent while no worker listens is counted in the inference queue (real broker)."""
    from skinsite.celery import app

    queue = f"test-metrics-{timezone.now().timestamp():.0f}"
    settings.CELERY_INFERENCE_QUEUE = queue
    app.conf.task_always_eager = False
    try:
        app.send_task("diagnosis.analyse_submission", args=[0], queue=queue)
        app.send_task("diagnosis.analyse_submission", args=[0], queue=queue)
        families = scrape(client)
        assert samples(families["skinsite_queue_messages"], queue=queue) == [2]
    finally:
        with app.connection_for_write() as conn:
            bound = app.amqp.queues[queue](conn.default_channel)
            bound.declare()
            bound.purge()
            bound.delete()


# --- who may scrape ---------------------------------------------------------------------


def test_loopback_may_scrape(client):
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1


def test_anonymous_from_outside_is_refused(client):
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE)
    assert response.status_code == 403
    assert b"skinsite_" not in response.content


def test_a_logged_in_user_from_outside_is_refused(owner_client):
    assert owner_client.get("/metrics", REMOTE_ADDR=OUTSIDE).status_code == 403


def test_outside_clients_relayed_by_the_proxy_are_refused(client, settings):
    """Behind nginx every request comes from 127.0.0.1: the address that counts is the client's."""
    settings.TRUSTED_PROXY_COUNT = 1
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=OUTSIDE).status_code == 403


def test_a_peer_that_is_not_allowed_cannot_claim_an_allowed_address(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.METRICS_ALLOWED_NETWORKS = [ip_network("10.0.0.5/32"), ip_network("127.0.0.1/32")]
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.99", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5").status_code == 200  # the scraper, directly


def test_allowed_networks(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = [ip_network("10.0.0.0/8")]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_bearer_token(client, settings):
    settings.METRICS_TOKEN = "a-long-scrape-token"
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE,
                      HTTP_AUTHORIZATION="Bearer a-long-scrape-token").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="a-long-scrape-token").status_code == 403


def test_no_token_configured_means_no_token_accepted(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_scrapers_by_internal_address_need_no_allowed_host(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = [ip_network("10.0.0.0/8")]
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/metrics", HTTP_HOST="web:8000", REMOTE_ADDR="10.0.3.9").status_code == 200
