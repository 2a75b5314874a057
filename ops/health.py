"""What /healthz checks, each a function that returns details or raises with a short reason.

- database: a ``SELECT 1`` on the default connection.
- broker: a connection to the Celery broker (Redis answers a PING when the channel opens),
  which also gives the length of the queues the site sends to.
- model: at least one worker process consuming the inference queue reported, within
  ``HEALTH_WORKER_MAX_AGE`` seconds, that it holds a loaded model (ops.heartbeat). Loading verifies the artifact's checksums in the worker;
  the web process never loads the model nor hashes it on each probe.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from kombu.exceptions import ChannelError

from .models import WorkerHeartbeat

BROKER_TIMEOUT = 2.0  # seconds: a probe must answer well within the orchestrator's timeout


class CheckFailed(Exception):
    """A check's short, non-secret reason for failing."""


def monitored_queues() -> list[str]:
    """The queues this site sends tasks to: inference first, then Celery's default queue."""
    from skinsite.celery import app

    return list(dict.fromkeys([settings.CELERY_INFERENCE_QUEUE, app.conf.task_default_queue]))


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        raise CheckFailed(f"database unavailable ({exc.__class__.__name__})") from exc
    return {}


def queue_lengths() -> dict[str, int]:
    """Messages waiting in each monitored queue (raises CheckFailed when the broker is unreachable)."""
    from skinsite.celery import app

    options = {"socket_connect_timeout": BROKER_TIMEOUT, "socket_timeout": BROKER_TIMEOUT}
    try:
        with app.connection_for_write(connect_timeout=BROKER_TIMEOUT, transport_options=options) as conn:
            conn.connect()
            channel = conn.default_channel
            lengths = {}
            for queue in monitored_queues():
                try:
                    lengths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except ChannelError:  # Redis drops an empty queue's list: nothing waiting
                    lengths[queue] = 0
            return lengths
    except Exception as exc:  # noqa: BLE001
        raise CheckFailed(f"broker unavailable ({exc.__class__.__name__})") from exc


def check_broker() -> dict:
    return {"queues": queue_lengths()}


def ready_workers() -> list[WorkerHeartbeat]:
    """Fresh heartbeats of processes that hold the model and consume the inference queue.

    A worker for the default queue only (periodic jobs) loads the model too, but does not count.
    """
    queue = settings.CELERY_INFERENCE_QUEUE
    return [row for row in WorkerHeartbeat.objects.fresh(settings.HEALTH_WORKER_MAX_AGE).ready()
            if queue in row.queues.split(",")]


def check_model() -> dict:
    try:
        ready = ready_workers()
    except Exception as exc:  # noqa: BLE001 - the database check reports the cause
        raise CheckFailed(f"worker status unreadable ({exc.__class__.__name__})") from exc
    workers, versions = len(ready), sorted({row.model_version for row in ready})
    if not workers:
        broken = WorkerHeartbeat.objects.fresh(settings.HEALTH_WORKER_MAX_AGE).filter(model_loaded=False)
        if broken.exists():
            raise CheckFailed("workers are running but none could load the model")
        raise CheckFailed(f"no worker reported a loaded model in the last {settings.HEALTH_WORKER_MAX_AGE} s")
    return {"workers": workers, "model_versions": versions}


CHECKS = {"database": check_database, "broker": check_broker, "model": check_model}


def run_checks() -> tuple[bool, dict]:
    """Run every check; ``(all passed, report)`` with "ok" or the reason for each."""
    report, healthy = {}, True
    for name, check in CHECKS.items():
        try:
            details = check()
        except CheckFailed as exc:
            healthy = False
            report[name] = {"status": "failed", "reason": str(exc)}
        else:
            report[name] = {"status": "ok", **details}
    return healthy, report
