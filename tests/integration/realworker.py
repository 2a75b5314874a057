"""A real Celery worker thread against the configured broker (Redis on CI, the filesystem broker locally).

The integration and end-to-end tests share the ``celery_worker`` fixture; their
conftest.py files import it from here. Tasks travel through the real broker and
run in a real ``WorkController`` (solo pool) in a thread of the test process,
so the worker uses the same test database and the same overridden settings.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

ANALYSE_TASK = "diagnosis.analyse_submission"

# The first task imports TensorFlow and loads the model in the worker thread:
# on a busy two-core machine that alone can take half a minute.
TASK_TIMEOUT = 180

# broker URI (no password) -> analysis tasks the real worker finished through it;
# reported at the end of the run so CI's log shows which broker was exercised.
BROKER_USAGE: dict[str, int] = {}


class RealWorker:
    """Handle on the running worker: which broker it uses and which tasks it finished."""

    def __init__(self, app, queue: str):
        self.app = app
        self.queue = queue
        with app.connection_for_write() as conn:
            self.transport = conn.transport.driver_type  # "redis" or "filesystem"
            self.broker = conn.as_uri(mask="")  # any password left out
            if self.transport == "filesystem":
                self.broker = f"filesystem:// (folder {conn.transport_options.get('data_folder_in')})"
        self._runs: list[tuple[int, str]] = []
        self._changed = threading.Condition()

    def _on_task_postrun(self, sender=None, args=None, retval=None, **kwargs):
        # Sent in the worker thread after each task, whatever its outcome.
        if getattr(sender, "name", None) != ANALYSE_TASK or not args:
            return
        with self._changed:
            self._runs.append((int(args[0]), str(retval)))
            BROKER_USAGE[self.broker] = BROKER_USAGE.get(self.broker, 0) + 1
            self._changed.notify_all()

    def results_for(self, submission_id: int) -> list[str]:
        """What the worker's runs of the analysis task returned for this submission, in order."""
        with self._changed:
            return [result for sid, result in self._runs if sid == submission_id]

    def wait_for_runs(self, submission_id: int, count: int, timeout: float = TASK_TIMEOUT) -> list[str]:
        """Block until the worker has run the analysis task ``count`` times for this submission."""
        with self._changed:
            done = self._changed.wait_for(
                lambda: sum(1 for sid, _ in self._runs if sid == submission_id) >= count, timeout
            )
        results = self.results_for(submission_id)
        assert done, f"the worker ran submission {submission_id} {len(results)} of {count} times in {timeout}s"
        return results


def configured_transport() -> str | None:
    """The broker transport the environment asks for, or None for the embedded filesystem default."""
    from django.conf import settings

    url = settings.CELERY_BROKER_URL
    return None if url.startswith("filesystem://") else url.split("://", 1)[0]


@pytest.fixture
def celery_worker(request):
    """Start a real worker thread (solo pool) on a queue of its own; stop it after the test.

    The queue name is unique to this test so that no other worker listening on
    the same broker (someone's ``bin/run`` against the shared Redis, say) can
    take the task and analyse a submission with the same id in *its* database.
    """
    marker = request.node.get_closest_marker("django_db")
    if not (marker and marker.kwargs.get("transaction")) and "transactional_db" not in request.fixturenames:
        pytest.fail("celery_worker needs @pytest.mark.django_db(transaction=True): "
                    "the worker thread only sees committed rows")
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun

    from skinsite.celery import app

    queue = f"test-{uuid.uuid4().hex[:12]}"
    saved = {
        key: getattr(app.conf, key)
        for key in ("task_always_eager", "task_default_queue", "task_routes", "worker_hijack_root_logger")
    }
    # tests/conftest.py makes tasks eager for every test; this one needs the broker.
    app.conf.task_always_eager = False
    app.conf.task_default_queue = queue  # the router reads it on every send
    app.conf.task_routes = {}  # analysis is routed to the inference queue in settings: send it to ours
    _rebuild_router(app)
    app.conf.worker_hijack_root_logger = False  # keep pytest's log capture
    worker = RealWorker(app, queue)
    task_postrun.connect(worker._on_task_postrun, weak=False)
    try:
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False,
                          queues=[queue], shutdown_timeout=30):
            yield worker
    finally:
        task_postrun.disconnect(worker._on_task_postrun)
        for key, value in saved.items():
            setattr(app.conf, key, value)
        _rebuild_router(app)
        # start_worker narrowed the app's consumer queues to ours; undo that for later workers.
        app.amqp.queues._consume_from = None
        _delete_queue(app, queue)


def _rebuild_router(app) -> None:
    """The router keeps the task_routes it was built with; build it again after changing them."""
    app.amqp.flush_routes()
    app.amqp.router = app.amqp.Router()


def _delete_queue(app, queue: str) -> None:
    """Drop the test queue (and anything a failed test left in it) from the broker."""
    try:
        with app.connection_for_write() as conn:
            # kombu's virtual transports only delete bindings this channel has declared,
            # so declare first; otherwise Redis keeps a `_kombu.binding.*` key per test.
            bound = app.amqp.queues[queue](conn.default_channel)
            bound.declare()
            bound.purge()
            bound.delete()
    except Exception:  # noqa: BLE001 - cleanup only; never hide the test's own outcome
        pass


def wait_for_final_status(submission_id: int, timeout: float = TASK_TIMEOUT) -> str:
    """Poll the database until the submission is done, failed or rejected; return that status."""
    from django.db import OperationalError

    from diagnosis.models import Submission

    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        try:
            status = Submission.objects.values_list("status", flat=True).get(pk=submission_id)
        except OperationalError:
            # SQLite's shared in-memory test database reports "table is locked" instead of
            # waiting while the worker thread writes; just read again.
            status = None
        if status in Submission.FINAL_STATUSES:
            return status
        time.sleep(0.25)
    raise AssertionError(f"submission {submission_id} still {status!r} after {timeout}s")


def report_broker_usage(terminalreporter) -> None:
    """Summary lines naming the broker(s) the real worker used (once, however many conftests call it)."""
    if getattr(report_broker_usage, "done", False) or not BROKER_USAGE:
        return
    report_broker_usage.done = True
    terminalreporter.section("real Celery worker")
    for broker, count in BROKER_USAGE.items():
        terminalreporter.write_line(f"{count} analysis task(s) ran in a real worker via broker {broker}")
