"""/healthz: 200 when the database, the broker and a worker with a loaded model answer; 503 naming what failed."""

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from ops import heartbeat
from ops.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture
def ready_worker(use_tiny_model):
    """A worker process's heartbeat, written the way the worker writes it (the tiny model really loads)."""
    heartbeat.beat(hostname="celery@test-host", queues="inference")
    return WorkerHeartbeat.objects.get()


@pytest.fixture
def broker_down():
    """Point the Celery app at a port where nothing listens (connection refused at once)."""
    from skinsite.celery import app

    saved = app.conf.broker_url, app.conf.broker_transport_options
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    app.conf.broker_transport_options = {}
    yield
    app.conf.broker_url, app.conf.broker_transport_options = saved


def test_healthy_when_database_broker_and_a_ready_worker_answer(client, ready_worker):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok", "broker": "ok", "model": "ok"}
    assert body["checks"]["model"] == {"status": "ok", "workers": 1, "model_versions": ["tiny-test-1"]}
    assert set(body["checks"]["broker"]["queues"]) == {"inference", "celery"}
    assert response["Cache-Control"] == "no-store"


def test_the_heartbeat_records_the_loaded_model(ready_worker):
    assert ready_worker.model_loaded and ready_worker.model_version == "tiny-test-1"
    assert ready_worker.runtime and not ready_worker.error
    assert ready_worker.queues == "inference"


def test_no_worker_means_503_on_model(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["status"] == checks["broker"]["status"] == "ok"
    assert checks["model"]["status"] == "failed"
    assert "no worker reported a loaded model" in checks["model"]["reason"]


def test_a_worker_for_the_default_queue_only_does_not_count(client, use_tiny_model):
    """The periodic-jobs worker loads the model too, but analyses nothing."""
    heartbeat.beat(hostname="celery@maintenance", queues="celery")
    assert WorkerHeartbeat.objects.get().model_loaded
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "no worker reported a loaded model" in response.json()["checks"]["model"]["reason"]


def test_a_stale_heartbeat_does_not_count(client, ready_worker, settings):
    WorkerHeartbeat.objects.update(seen_at=timezone.now() - timedelta(seconds=settings.HEALTH_WORKER_MAX_AGE + 1))
    assert client.get("/healthz").status_code == 503


def test_a_worker_that_could_not_load_the_model_is_reported(client, settings, tmp_path):
    from diagnosis.classifier import reset_classifier

    settings.ML_MODEL_DIR = tmp_path / "no-model-here"
    reset_classifier()
    heartbeat.beat(hostname="celery@broken")
    row = WorkerHeartbeat.objects.get()
    assert not row.model_loaded and "no model artifact" in row.error
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["model"]["reason"] == "workers are running but none could load the model"


def test_database_down_means_503_on_database(client, ready_worker, monkeypatch):
    from ops import health

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(health.connection, "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    database = response.json()["checks"]["database"]
    assert database == {"status": "failed", "reason": "database unavailable (OperationalError)"}


def test_broker_down_means_503_on_broker(client, ready_worker, broker_down):
    response = client.get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"]["status"] == "failed"
    assert checks["broker"]["reason"].startswith("broker unavailable")
    assert checks["database"]["status"] == checks["model"]["status"] == "ok"


def test_probes_by_internal_address_are_answered_without_https_redirect(client, ready_worker, settings):
    """Orchestrators call http://<container ip>:8000/healthz: no ALLOWED_HOSTS 400, no HTTPS 301."""
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz", HTTP_HOST="10.0.3.7:8000").status_code == 200
    # The rest of the site still refuses that host.
    assert client.get("/conditions/", HTTP_HOST="10.0.3.7:8000").status_code == 400


def test_only_get_and_head(client, ready_worker):
    assert client.post("/healthz").status_code == 405
    assert client.head("/healthz").status_code == 200


def test_rows_older_than_a_day_are_removed_on_the_next_beat(use_tiny_model):
    WorkerHeartbeat.objects.create(hostname="celery@gone", pid=1, seen_at=timezone.now() - timedelta(days=2))
    heartbeat.beat(hostname="celery@test-host")
    assert list(WorkerHeartbeat.objects.values_list("hostname", flat=True)) == ["celery@test-host"]


@pytest.mark.django_db(transaction=True)
def test_worker_signals_start_refresh_and_remove_the_heartbeat(use_tiny_model, settings):
    """worker_process_init starts a thread that keeps the row fresh; a clean shutdown removes it."""
    import time

    settings.HEALTH_HEARTBEAT_SECONDS = 0.05
    rows = WorkerHeartbeat.objects.filter(hostname="celery@signal-test")
    heartbeat.start(sender="celery@signal-test")
    try:
        deadline = time.monotonic() + 10
        while not rows.exists():
            assert time.monotonic() < deadline, "the heartbeat thread never wrote the row"
            time.sleep(0.02)
        first = rows.get().seen_at
        assert rows.get().model_loaded
        while rows.get().seen_at == first:
            assert time.monotonic() < deadline, "the heartbeat thread never refreshed the row"
            time.sleep(0.02)
    finally:
        heartbeat.stop()
    assert not WorkerHeartbeat.objects.filter(hostname="celery@signal-test").exists()
