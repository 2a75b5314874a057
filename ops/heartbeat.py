"""Each worker process reports whether it holds a loaded model (read by /healthz and /metrics).

After the fork (``worker_process_init``, also sent by the solo pool) the process loads the
classifier (cached: diagnosis.tasks loads it on the same signal), writes its row, then a daemon
thread refreshes ``seen_at`` every ``HEALTH_HEARTBEAT_SECONDS``. A process that dies stops
refreshing, so its row goes stale and no longer counts; a clean shutdown deletes it. Rows older
than a day are removed by whichever process beats next.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta

from celery.signals import worker_process_init, worker_process_shutdown, worker_shutdown
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

logger = logging.getLogger(__name__)

STALE_ROWS_AFTER = timedelta(days=1)

_thread: threading.Thread | None = None
_hostname: str | None = None  # the worker's node name, as the row was written
_stop = threading.Event()


def _model_state() -> dict:
    """Load (or reuse) this process's classifier and describe it."""
    from diagnosis.classifier import get_classifier

    try:
        classifier = get_classifier()
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the worker still marks uploads failed
        return {"model_loaded": False, "model_version": "", "runtime": "", "error": str(exc)[:1000]}
    runtime = getattr(classifier, "runtime", None)
    name = getattr(runtime, "name", None) or (runtime if isinstance(runtime, str) else "keras")
    return {"model_loaded": True, "model_version": classifier.version, "runtime": name, "error": ""}


def beat(hostname: str | None = None, queues: str = "", state: dict | None = None) -> None:
    """Write this process's row now (creating it on the first beat)."""
    from .models import WorkerHeartbeat

    now = timezone.now()
    fields = {"seen_at": now, "queues": queues[:255], **(state if state is not None else _model_state())}
    WorkerHeartbeat.objects.update_or_create(
        hostname=(hostname or socket.gethostname())[:255], pid=os.getpid(), defaults=fields,
        create_defaults={**fields, "started_at": now},
    )
    WorkerHeartbeat.objects.filter(seen_at__lt=now - STALE_ROWS_AFTER).delete()


def forget(hostname: str | None = None) -> None:
    from .models import WorkerHeartbeat

    WorkerHeartbeat.objects.filter(hostname=(hostname or socket.gethostname())[:255], pid=os.getpid()).delete()


def _run(hostname: str, queues: str, state: dict, interval: float) -> None:
    try:
        while True:
            try:
                close_old_connections()
                beat(hostname, queues, state)
            except Exception:  # noqa: BLE001 - a database hiccup must not end the heartbeat
                logger.warning("worker heartbeat failed", exc_info=True)
            if _stop.wait(interval):
                break
    finally:
        connection.close()  # this thread's own connection


def _worker_identity(sender) -> tuple[str, str]:
    from skinsite.celery import app

    hostname = sender if isinstance(sender, str) and sender else socket.gethostname()
    try:
        queues = ",".join(sorted(app.amqp.queues.consume_from))
    except Exception:  # noqa: BLE001 - the queue list is informative only
        queues = ""
    return hostname, queues


@worker_process_init.connect
def start(sender=None, **kwargs):
    """In the worker process, after the fork: load the model, then report readiness and keep it fresh."""
    global _thread, _hostname
    if _thread is not None:  # a second worker started in this process (tests): one thread only
        stop()
    hostname, queues = _worker_identity(sender)
    state = _model_state()  # the model does not change in a running process: beats repeat it
    # No database access in this thread here: Celery's Django fix-up, on the same signal, closes the
    # connections it finds in the freshly forked child, and a connection opened here before it ran
    # would be cut under the tasks. The beating thread has a connection of its own.
    _hostname = hostname
    _stop.clear()
    _thread = threading.Thread(target=_run, args=(hostname, queues, state, settings.HEALTH_HEARTBEAT_SECONDS),
                               name="worker-heartbeat", daemon=True)
    _thread.start()


@worker_process_shutdown.connect
@worker_shutdown.connect
def stop(sender=None, **kwargs):
    """On a clean shutdown, stop beating and remove the row (a killed process just goes stale)."""
    global _thread
    if _thread is None:
        return
    _stop.set()
    _thread.join(timeout=5)
    _thread = None
    try:
        forget(_hostname)
    except Exception:  # noqa: BLE001
        logger.warning("could not remove the worker heartbeat", exc_info=True)
