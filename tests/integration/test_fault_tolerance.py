"""Fault tolerance against the real broker and real workers (issue 6 point 1).

A photo must never vanish, be analysed twice into conflicting answers, or wait minutes:

- Redis down (or hung) at upload: the upload is saved and shown as queued, quickly; the outbox
  (``dispatch_pending``) sends it once Redis is back; exactly one set of predictions.
- A worker SIGKILLed mid-task: its pool child (the task is redelivered at once: acks_late +
  reject_on_worker_lost) and the whole worker (the task comes back from Redis after the
  visibility timeout); completed exactly once.
- The same task delivered twice at the same time: one set of predictions.
- A missing model or a wrong checksum: failed with the reason; after the fix ``requeue_failed`` → done.
- Stuck in processing: re-queued by ``requeue_stuck`` and analysed; failed with the reason after N.

With Redis configured (CI), the outage is real for everyone: the worker, the publisher and the
cache all reach Redis through a TCP switch that the test turns off and on. On the embedded
fallback only the publisher loses its broker. The worker-process tests need PostgreSQL (the
subprocess must see the test database) and are skipped on SQLite, saying so.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from diagnosis import recovery
from diagnosis.models import Prediction, Submission
from diagnosis.tasks import analyse_submission
from tests.conftest import build_tiny_artifact
from tests.integration.faults import FAULT_METRICS, TcpSwitch, WorkerProcess, live_database_url, reset_producer_pool
from tests.integration.flow import assert_one_ranked_set, upload
from tests.integration.realworker import (TASK_TIMEOUT, _delete_queue, _rebuild_router, configured_transport,
                                         wait_for_final_status)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

Status = Submission.Status


def _metric(line: str) -> None:
    FAULT_METRICS.append(line)
    print(line)


# --- Redis down at upload -----------------------------------------------------------------------


class Outage:
    """Turns the broker off, hangs it, and turns it back on."""

    def __init__(self, app, settings):
        self.app = app
        self.transport = configured_transport() or "filesystem"
        self.real = self.transport == "redis"
        # Read back, broker_write_url is broker_url unless set: keep the setting itself, not the fallback.
        self._saved = (app.conf.broker_url, app.conf.get("broker_write_url"))
        if self.real:
            # Everyone (worker, publisher, cache) reaches Redis through the switch.
            self.switch = TcpSwitch(app.conf.broker_url)
            self.cache_switch = TcpSwitch(settings.CACHES["default"]["LOCATION"])
            self.switch.up()
            self.cache_switch.up()
            app.conf.broker_url = self.switch.url
            settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": self.cache_switch.url}}
        else:
            # The filesystem broker cannot go down: the publisher is sent to a "Redis" that is not there.
            self.switch = TcpSwitch("redis://127.0.0.1:9/0")
            self.cache_switch = None
        reset_producer_pool(app)

    def _switches(self):
        return [s for s in (self.switch, self.cache_switch) if s is not None]

    def down(self, hung=False):
        for switch in self._switches():
            switch.hang() if hung else switch.down()
        if not self.real:
            self.app.conf.broker_write_url = self.switch.url
            reset_producer_pool(self.app)

    def up(self):
        if self.real:
            for switch in self._switches():
                switch.up()
        else:
            self.switch.down()
            self.app.conf.broker_write_url = None
            reset_producer_pool(self.app)

    def close(self):
        for switch in self._switches():
            switch.down()
        self.app.conf.broker_url, self.app.conf.broker_write_url = self._saved
        reset_producer_pool(self.app)


@pytest.fixture
def broker_outage(settings):
    """Listed before ``celery_worker``, so that the worker connects through the switch."""
    from skinsite.celery import app

    outage = Outage(app, settings)
    yield outage
    outage.close()


def _dispatch_until_done(submission, deadline_s=TASK_TIMEOUT):
    """What beat does every 30 s, done every half second: send what is pending, until the result is in."""
    deadline = time.monotonic() + deadline_s
    sent = False
    while time.monotonic() < deadline:
        submission.refresh_from_db()
        if submission.is_final:
            return submission.status
        if not sent:
            sent = bool(recovery.dispatch_pending(older_than=timedelta(0)).sent)
        time.sleep(0.5)
    raise AssertionError(f"submission {submission.pk} still {submission.status} after {deadline_s}s")


@pytest.mark.parametrize("failure", ["down", "hung"])
def test_upload_while_redis_is_unavailable_is_queued_then_analysed_once_it_is_back(
        failure, use_tiny_model, broker_outage, celery_worker, owner_client, make_upload, make_image):
    assert celery_worker.transport == broker_outage.transport
    if failure == "hung" and not broker_outage.real:
        pytest.skip("a hung broker needs Redis and its socket timeouts (settings); the filesystem broker "
                    "cannot hang, and a Redis publisher without those timeouts would wait forever")
    broker_outage.down(hung=failure == "hung")

    started = time.monotonic()
    submission = upload(owner_client, make_upload, make_image)
    latency = time.monotonic() - started

    # Saved, shown as queued, and not accepted by any broker. (How long it took is reported below, not
    # asserted: a hung broker costs one BROKER_PUBLISH_TIMEOUT and one cache socket timeout, then the
    # breakers skip Redis; issue 13 measured 8.04 s before, 1.05 s after.)
    assert latency < (10 if failure == "hung" else 3), latency
    assert submission.status == Status.QUEUED and submission.enqueued_at is None
    assert submission.image.storage.exists(submission.image.name)
    status = owner_client.get(f"/submissions/{submission.uuid}/status/").json()
    assert status == {"status": "queued", "status_display": "Queued", "is_final": False,
                      "heatmap_pending": False}
    if failure == "down":  # the sweeper finds the broker still down and keeps the row for later
        assert recovery.dispatch_pending(older_than=timedelta(0)).unsent == [submission.pk]
        submission.refresh_from_db()
        assert submission.enqueued_at is None

    broker_outage.up()
    back = time.monotonic()
    assert _dispatch_until_done(submission) == Status.DONE
    recovery_s = time.monotonic() - back

    # A publish still under way when the upload stopped waiting may land once Redis answers again,
    # before or after the sweeper's: the second delivery finds the photo claimed and is skipped.
    runs = celery_worker.wait_for_runs(submission.pk, 1)
    assert runs == ["done"] or (failure == "hung" and sorted(runs) == ["done", "skipped"]), runs
    submission.refresh_from_db()
    assert submission.attempts == 1
    assert submission.enqueued_at is not None or failure == "hung"
    assert_one_ranked_set(submission)
    _metric(f"Redis {failure} ({celery_worker.transport} broker{'' if broker_outage.real else ', publisher only'}): "
            f"upload answered in {latency:.2f}s; Redis back -> result stored in {recovery_s:.1f}s "
            f"(+ up to 30s for beat's dispatch_pending)")


# --- worker processes killed (PostgreSQL: the subprocess must see the test database) -----------


@pytest.fixture
def worker_processes(settings, tiny_model_dir, tmp_path):
    """Start ``celery worker --pool=prefork`` subprocesses on a queue of this test's own."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: a worker subprocess cannot see SQLite's in-memory test database "
                    "(CI runs this against PostgreSQL and Redis)")
    from skinsite.celery import app

    queue = f"test-{uuid.uuid4().hex[:12]}"
    saved = {key: getattr(app.conf, key) for key in ("task_always_eager", "task_default_queue", "task_routes")}
    app.conf.task_always_eager = False
    app.conf.task_default_queue = queue
    app.conf.task_routes = {}  # settings route analysis to the inference queue: send it to ours
    _rebuild_router(app)
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir()
    env = {"DATABASE_URL": live_database_url(connection), "CELERY_BROKER_URL": app.conf.broker_url,
           "ML_MODEL_DIR": str(tiny_model_dir), "MEDIA_ROOT": str(settings.MEDIA_ROOT)}
    if app.conf.broker_url.startswith("filesystem://"):
        env["CELERY_BROKER_DIR"] = str(settings.BROKER_DIR)
    started: list[WorkerProcess] = []

    def start(concurrency=1, **extra_env):
        worker = WorkerProcess(queue=queue, hold_dir=hold_dir, log=tmp_path / f"worker-{len(started)}.log",
                               env={**env, **extra_env}, concurrency=concurrency)
        started.append(worker)
        return worker

    start.hold = lambda: (hold_dir / "hold").touch()
    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
        for key, value in saved.items():
            setattr(app.conf, key, value)
        _rebuild_router(app)
        _delete_queue(app, queue)


def test_sigkill_of_the_pool_process_mid_task_redelivers_and_completes_once(use_tiny_model, worker_processes,
                                                                            owner_client, make_upload, make_image):
    worker = worker_processes()
    worker_processes.hold()
    submission = upload(owner_client, make_upload, make_image)
    child = worker.wait_until_held(TASK_TIMEOUT)  # claimed and classified, result not stored yet
    submission.refresh_from_db()
    assert submission.status == Status.PROCESSING and submission.attempts == 1
    assert child != worker.proc.pid

    os.kill(child, signal.SIGKILL)
    killed = time.monotonic()
    assert wait_for_final_status(submission.pk) == Status.DONE, worker.log_tail()
    recovery_s = time.monotonic() - killed

    submission.refresh_from_db()
    assert submission.attempts == 2  # the killed run and the redelivered one
    assert_one_ranked_set(submission)
    assert "WorkerLostError" in worker.log_tail(20000)
    _metric(f"SIGKILL of the pool child mid-task -> redelivered and stored in {recovery_s:.1f}s "
            "(includes a new child loading TensorFlow and the model)")


def test_sigkill_of_the_whole_worker_mid_task_comes_back_after_the_visibility_timeout(
        use_tiny_model, worker_processes, owner_client, make_upload, make_image):
    if configured_transport() != "redis":
        pytest.skip("the filesystem broker removes a message once read: a worker killed outright loses "
                    "it, and requeue_stuck is what recovers the submission (tested below)")
    visibility = 6
    first = worker_processes(BROKER_VISIBILITY_TIMEOUT=str(visibility))
    worker_processes.hold()
    submission = upload(owner_client, make_upload, make_image)
    first.wait_until_held(TASK_TIMEOUT)
    delivered = time.monotonic()

    first.kill_all()  # main process and pool child: nobody is left to reject the task
    killed = time.monotonic()
    first.release()
    submission.refresh_from_db()
    assert submission.status == Status.PROCESSING
    # Redis hands unacknowledged tasks back once the visibility timeout has passed; a worker
    # restores them when it starts polling (and every 100 s after that).
    time.sleep(max(0.0, delivered + visibility + 1 - time.monotonic()))
    second = worker_processes(BROKER_VISIBILITY_TIMEOUT=str(visibility))
    assert wait_for_final_status(submission.pk) == Status.DONE, second.log_tail()
    recovery_s = time.monotonic() - killed

    submission.refresh_from_db()
    assert submission.attempts == 2
    assert_one_ranked_set(submission)
    _metric(f"SIGKILL of the whole worker mid-task -> back from Redis after the visibility timeout "
            f"({visibility}s here, BROKER_VISIBILITY_TIMEOUT=3600 by default; requeue_stuck re-queues "
            f"after ANALYSIS_STUCK_AFTER=600s) and stored {recovery_s:.1f}s after the kill")


def test_the_same_task_delivered_twice_at_once_stores_one_set_of_predictions(
        use_tiny_model, worker_processes, owner_client, make_upload, make_image):
    worker = worker_processes(concurrency=2)
    worker_processes.hold()
    submission = upload(owner_client, make_upload, make_image)
    worker.wait_until_held(TASK_TIMEOUT)  # the first delivery has its result and waits to store it
    analyse_submission.delay(submission.pk)  # the duplicate, run by the other pool process
    assert wait_for_final_status(submission.pk) == Status.DONE, worker.log_tail()
    first_result = list(Prediction.objects.filter(submission=submission).values_list("code", "probability"))

    worker.release()  # now the first delivery tries to store its (identical) answer
    deadline = time.monotonic() + 60
    while "'skipped'" not in worker.log_tail(20000) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "'skipped'" in worker.log_tail(20000), worker.log_tail()

    submission.refresh_from_db()
    assert submission.status == Status.DONE and submission.attempts == 2
    assert_one_ranked_set(submission)
    assert list(Prediction.objects.filter(submission=submission).values_list("code", "probability")) == first_result


# --- a broken model, fixed; stuck analyses (real worker thread, any broker) --------------------


@pytest.fixture(params=["wrong checksum", "missing"])
def broken_model(request, settings, tmp_path):
    """The worker's model artifact, broken before the worker starts; calling the result repairs it.

    Nothing resets the classifier cache after the repair: the worker must notice by itself.
    """
    from diagnosis.classifier import reset_classifier

    directory = tmp_path / "model"
    build_tiny_artifact(directory)
    weights = directory / "model.keras"
    good = weights.read_bytes()
    if request.param == "missing":
        weights.unlink()
    else:
        weights.write_bytes(good[:-100] + bytes(100))
    settings.ML_MODEL_DIR = directory
    reset_classifier()

    def repair():
        weights.write_bytes(good)

    repair.fault = request.param
    yield repair
    reset_classifier()


def test_a_broken_model_fails_with_the_reason_and_requeue_failed_after_the_fix_completes(
        broken_model, celery_worker, owner_client, make_upload, make_image, capsys):
    submission = upload(owner_client, make_upload, make_image)
    assert wait_for_final_status(submission.pk) == Status.FAILED
    submission.refresh_from_db()
    assert "classifier is unavailable" in submission.failure_reason
    expected = "model.keras is missing" if broken_model.fault == "missing" else "model.keras fails its sha256 check"
    assert expected in submission.failure_reason
    assert not submission.predictions.exists()

    broken_model()  # the fix; the worker keeps running
    call_command("requeue_failed", "--since", "1h", "--reason", "classifier is unavailable")
    assert "Re-queued 1 failed submission(s)" in capsys.readouterr().out
    assert wait_for_final_status(submission.pk) == Status.DONE
    assert celery_worker.wait_for_runs(submission.pk, 2) == ["failed", "done"]
    submission.refresh_from_db()
    assert submission.failure_reason == "" and submission.attempts == 2
    assert_one_ranked_set(submission)


def test_stuck_processing_is_requeued_to_the_worker_then_failed_after_n_attempts(
        use_tiny_model, celery_worker, submission_factory, settings, monkeypatch):
    from diagnosis import services

    settings.ANALYSIS_MAX_ATTEMPTS = 2
    long_ago = timezone.now() - timedelta(hours=1)
    with monkeypatch.context() as quiet:
        quiet.setattr(services, "enqueue_analysis", lambda submission: None)  # rows only; the worker is running
        stuck = submission_factory()
        hopeless = submission_factory()
    # Both were claimed by a worker that vanished an hour ago; the second had already been re-queued once.
    Submission.objects.filter(pk=stuck.pk).update(status=Status.PROCESSING, attempts=1, started_at=long_ago)
    Submission.objects.filter(pk=hopeless.pk).update(status=Status.PROCESSING, attempts=2, started_at=long_ago)

    sweep = recovery.requeue_stuck(limit=timedelta(minutes=10))

    assert sweep.sent == [stuck.pk] and sweep.failed == [hopeless.pk]
    assert wait_for_final_status(stuck.pk) == Status.DONE
    assert celery_worker.wait_for_runs(stuck.pk, 1) == ["done"]
    stuck.refresh_from_db()
    assert stuck.attempts == 2
    assert_one_ranked_set(stuck)
    hopeless.refresh_from_db()
    assert hopeless.status == Status.FAILED and "after 2 attempt(s)" in hopeless.failure_reason
    assert celery_worker.results_for(hopeless.pk) == []
