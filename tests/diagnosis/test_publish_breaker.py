"""A broker that is down or hung costs an upload at most BROKER_PUBLISH_TIMEOUT, once (issue 13, item 8).

Before: a hung Redis cost every upload about 8 s of socket timeouts. Now a publish that is not
accepted in time counts as refused, and the breaker then skips the broker for a while; the
outbox sweeper always tries (probe) and closes the breaker when the broker is back.
"""

import threading
import time

import pytest

from diagnosis import publish


class HungTask:
    """A task whose publishing never returns, as with a Redis that accepts and never answers."""

    def __init__(self):
        self.calls, self.release = 0, threading.Event()

    def delay(self, *args, **kwargs):
        self.calls += 1
        self.release.wait(10)


class WorkingTask:
    def __init__(self):
        self.calls = 0

    def delay(self, *args, **kwargs):
        self.calls += 1


@pytest.fixture
def real_broker(settings):
    """Publishing as in production (not eager), with a short wait."""
    from skinsite.celery import app

    settings.BROKER_PUBLISH_TIMEOUT = 0.2
    app.conf.task_always_eager = False  # the autouse fixture restores it


def test_a_hung_broker_costs_one_short_wait_then_is_skipped(real_broker):
    hung = HungTask()
    try:
        started = time.monotonic()
        assert publish.send(hung, 1, what="submission 1") is False
        first = time.monotonic() - started
        started = time.monotonic()
        assert publish.send(hung, 2, what="submission 2") is False
        second = time.monotonic() - started
    finally:
        hung.release.set()
    assert first < 5  # it stopped waiting (the publish itself hangs for 10 s)
    assert hung.calls == 1  # the second upload did not touch the broker
    assert second < first
    assert publish.breaker.is_open()


def test_the_sweeper_probes_an_open_breaker_and_closes_it_when_the_broker_answers(real_broker):
    publish.breaker.trip()
    task = WorkingTask()
    assert publish.send(task, 1, what="submission 1") is False and task.calls == 0  # an upload: skipped
    assert publish.send(task, 1, what="submission 1", probe=True) is True and task.calls == 1  # the sweeper
    assert not publish.breaker.is_open()
    assert publish.send(task, 2, what="submission 2") is True and task.calls == 2  # uploads publish again


def test_a_refusing_broker_opens_the_breaker_too(real_broker):
    class Refusing:
        def delay(self, *args, **kwargs):
            raise ConnectionRefusedError(111, "Connection refused")

    assert publish.send(Refusing(), 1, what="submission 1") is False
    assert publish.breaker.is_open()


def test_the_breaker_closes_by_itself_after_its_time(real_broker, monkeypatch):
    monkeypatch.setattr(publish.breaker, "seconds", 0.05)
    publish.breaker.trip()
    time.sleep(0.1)
    task = WorkingTask()
    assert publish.send(task, 1, what="submission 1") is True and task.calls == 1


@pytest.mark.django_db
def test_an_upload_while_the_breaker_is_open_is_saved_as_queued_for_the_sweeper(real_broker, owner_client,
                                                                                 monkeypatch):
    from datetime import timedelta

    from django.urls import reverse

    from diagnosis import recovery, tasks
    from diagnosis.models import Submission
    from tests.conftest import image_bytes, upload_file

    sent = []
    monkeypatch.setattr(tasks.analyse_submission, "delay", lambda pk: sent.append(pk))
    publish.breaker.trip()
    response = owner_client.post(reverse("api:submission-list"), {"image": upload_file(image_bytes())})
    assert response.status_code == 201
    submission = Submission.objects.get()
    assert submission.status == Submission.Status.QUEUED and submission.enqueued_at is None and sent == []
    assert recovery.dispatch_pending(older_than=timedelta(0)).sent == [submission.pk]
    assert sent == [submission.pk]


def test_the_cache_skips_a_hung_redis_after_one_timeout():
    from skinsite import cache as cache_module
    from skinsite.cache import FailOpenRedisCache
    from tests.integration.faults import TcpSwitch

    switch = TcpSwitch("redis://127.0.0.1:6379/0")
    switch.hang()
    try:
        cache = FailOpenRedisCache(switch.url, {"OPTIONS": {"socket_connect_timeout": 0.3, "socket_timeout": 0.3}})
        started = time.monotonic()
        assert cache.get("k", "missed") == "missed"
        first = time.monotonic() - started
        started = time.monotonic()
        cache.set("k", 1)
        assert cache.get("k", "missed") == "missed"
        after = time.monotonic() - started
    finally:
        switch.down()
    assert first < 5 and after < first  # one socket timeout, then Redis is skipped
    assert cache_module.breaker.is_open()


@pytest.mark.django_db
def test_requeue_stuck_probes_the_broker_once_then_leaves_the_rest_to_the_outbox(real_broker, submission_factory,
                                                                                  monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from diagnosis import recovery, tasks
    from diagnosis.models import Submission

    stuck = [submission_factory() for _ in range(3)]
    Submission.objects.filter(pk__in=[s.pk for s in stuck]).update(
        status=Submission.Status.PROCESSING, started_at=timezone.now() - timedelta(hours=2))
    tries = []

    def refuse(pk):
        tries.append(pk)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(tasks.analyse_submission, "delay", refuse)
    sweep = recovery.requeue_stuck(limit=timedelta(minutes=30))
    assert len(tries) == 1 and sorted(sweep.unsent) == sorted(s.pk for s in stuck)
    assert set(Submission.objects.values_list("status", flat=True)) == {Submission.Status.QUEUED}
