"""Worker processes load the model at start only when they consume the analysis queue."""

import pytest
from celery import current_app

from diagnosis import tasks


@pytest.fixture
def consumed_queues():
    """Select the queues this process's worker 'consumes', and restore the selection afterwards."""
    queues = current_app.amqp.queues
    before = queues._consume_from  # None: every declared queue (Celery's own default)
    yield queues.select
    queues._consume_from = before


@pytest.mark.parametrize("names, loads", [
    (["inference"], True),
    (["inference", "celery"], True),
    (["celery"], False),
])
def test_model_is_preloaded_only_where_analyses_arrive(monkeypatch, consumed_queues, names, loads):
    calls = []
    monkeypatch.setattr("diagnosis.classifier.get_classifier", lambda: calls.append(1))
    consumed_queues(names)
    tasks.load_model_in_worker_child()
    assert bool(calls) is loads


def test_preload_follows_the_analysis_route(monkeypatch, consumed_queues, settings):
    """Tests re-route analyses to a queue of their own; the worker consuming it still preloads."""
    calls = []
    monkeypatch.setattr("diagnosis.classifier.get_classifier", lambda: calls.append(1))
    monkeypatch.setattr(current_app.amqp.router, "route",
                        lambda options, name, args=(), kwargs=None: {"queue": "test-queue-1"})
    consumed_queues(["test-queue-1"])
    tasks.load_model_in_worker_child()
    assert calls == [1]
