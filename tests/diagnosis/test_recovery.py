"""Outbox dispatch, the stuck sweeper, re-queueing failures, and their commands (tasks run eagerly here).

The same cases against a real broker and real workers (Redis down, SIGKILL) are in
tests/integration/test_fault_tolerance.py.
"""

from datetime import timedelta
from io import StringIO

import pytest
from auditlog.models import LogEntry
from django.core.management import CommandError, call_command
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from diagnosis import recovery
from diagnosis.models import Prediction, Submission
from diagnosis.tasks import analyse_submission
from ml.classes import CLASS_LABELS
from tests.conftest import build_tiny_artifact

pytestmark = pytest.mark.django_db

Status = Submission.Status
AGO = timedelta(hours=2)


def age(submission, **fields):
    """Move a submission's times into the past (and set other fields) without sending anything."""
    Submission.objects.filter(pk=submission.pk).update(**fields)
    submission.refresh_from_db()
    return submission


def call(name, *args):
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


@pytest.fixture
def sent(monkeypatch):
    """Record the analysis tasks sent instead of running them."""
    ids = []
    monkeypatch.setattr(analyse_submission, "delay", lambda pk: ids.append(pk))
    return ids


@pytest.fixture
def broker_down(monkeypatch):
    """The broker refuses every publish (what kombu raises when Redis does not answer)."""
    tries = []

    def refuse(pk):
        tries.append(pk)
        raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(analyse_submission, "delay", refuse)
    return tries


# --- enqueue at upload: the outbox marker -------------------------------------------------------


def test_an_accepted_task_marks_the_submission_enqueued(use_tiny_model, owner_client, make_upload, make_image,
                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post("/upload/", {"image": make_upload(make_image())})
    assert response.status_code == 302
    submission = Submission.objects.get()
    assert submission.enqueued_at is not None
    assert submission.status == Status.DONE  # eager here: the task ran when it was sent


def test_upload_with_the_broker_down_is_saved_and_queued(broker_down, owner_client, make_upload, make_image,
                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post("/upload/", {"image": make_upload(make_image())})
    assert response.status_code == 302
    submission = Submission.objects.get()
    assert broker_down == [submission.pk]
    assert submission.status == Status.QUEUED and submission.enqueued_at is None
    assert submission.image.storage.exists(submission.image.name)
    page = owner_client.get(f"/submissions/{submission.uuid}/")
    assert page.status_code == 200 and b"Queued" in page.content


# --- dispatch_pending ---------------------------------------------------------------------------


def test_pending_dispatch_selects_unsent_and_long_unstarted_queued_rows(submission_factory, settings):
    settings.ANALYSIS_DISPATCH_GRACE = timedelta(seconds=20)
    settings.ANALYSIS_REDISPATCH_AFTER = timedelta(minutes=5)
    now = timezone.now()
    fresh = submission_factory()  # its own after-commit send may still be under way
    unsent = age(submission_factory(), created_at=now - AGO)
    accepted_recently = age(submission_factory(), created_at=now - AGO, enqueued_at=now - timedelta(minutes=1))
    accepted_long_ago = age(submission_factory(), created_at=now - AGO, enqueued_at=now - timedelta(minutes=10))
    processing = age(submission_factory(), created_at=now - AGO, status=Status.PROCESSING)
    done = age(submission_factory(), created_at=now - AGO, status=Status.DONE)

    pending = set(recovery.pending_dispatch().values_list("pk", flat=True))

    assert pending == {unsent.pk, accepted_long_ago.pk}
    assert not pending & {fresh.pk, accepted_recently.pk, processing.pk, done.pk}


def test_dispatch_sends_each_pending_row_once_and_marks_it(submission_factory, sent):
    first = age(submission_factory(), created_at=timezone.now() - AGO)
    second = age(submission_factory(), created_at=timezone.now() - AGO)

    sweep = recovery.dispatch_pending()
    again = recovery.dispatch_pending()  # a second sweeper right after: nothing left to send

    assert sorted(sweep.sent) == sorted(sent) == sorted([first.pk, second.pk])
    assert again.sent == [] and len(sent) == 2
    first.refresh_from_db()
    assert first.status == Status.QUEUED and first.enqueued_at is not None


def test_dispatch_leaves_a_row_that_another_sweeper_claimed(submission_factory, sent, monkeypatch):
    submission = age(submission_factory(), created_at=timezone.now() - AGO)
    real = recovery.pending_dispatch

    class ReadThenClaimedElsewhere:
        def __init__(self, *args):
            self.rows = list(real(*args).values_list("pk", "enqueued_at"))

        def values_list(self, *fields):
            # Between our read and our claim, another sweeper sends the row.
            Submission.objects.filter(pk=submission.pk).update(enqueued_at=timezone.now())
            return self.rows

    monkeypatch.setattr(recovery, "pending_dispatch", ReadThenClaimedElsewhere)
    assert recovery.dispatch_pending().sent == [] and sent == []


def test_dispatch_with_the_broker_down_keeps_the_rows_unsent_and_stops(submission_factory, broker_down):
    rows = [age(submission_factory(), created_at=timezone.now() - AGO) for _ in range(3)]

    sweep = recovery.dispatch_pending()

    assert len(broker_down) == 1  # no point waiting for the same timeout twice
    assert sorted(sweep.unsent) == sorted(r.pk for r in rows) and sweep.sent == []
    assert set(Submission.objects.values_list("status", "enqueued_at")) == {(Status.QUEUED, None)}


def test_dispatch_runs_the_analysis_once_the_broker_is_back(submission_factory, use_tiny_model):
    submission = age(submission_factory(), created_at=timezone.now() - AGO)
    assert recovery.dispatch_pending().sent == [submission.pk]  # eager: the task runs now
    submission.refresh_from_db()
    assert submission.status == Status.DONE and submission.attempts == 1
    assert Prediction.objects.filter(submission=submission).count() == len(CLASS_LABELS)


def test_dispatch_pending_command(submission_factory, sent):
    submission = age(submission_factory(), created_at=timezone.now() - AGO)
    assert "Would send 1 queued submission(s)" in call("dispatch_pending", "--dry-run")
    assert sent == []
    assert "Sent 1 queued submission(s)" in call("dispatch_pending")
    assert sent == [submission.pk]
    assert "Sent 0" in call("dispatch_pending")


def test_dispatch_pending_command_reports_a_refusing_broker(submission_factory, broker_down):
    age(submission_factory(), created_at=timezone.now() - AGO)
    assert "stay queued for the next run" in call("dispatch_pending")


def test_dispatch_pending_command_older_than(submission_factory, sent):
    submission = submission_factory()  # just uploaded
    call("dispatch_pending")
    assert sent == []
    call("dispatch_pending", "--older-than", "0")
    assert sent == [submission.pk]


# --- requeue_stuck ------------------------------------------------------------------------------


def test_stuck_processing_is_requeued_and_then_completes(submission_factory, use_tiny_model, settings):
    settings.ANALYSIS_STUCK_AFTER = timedelta(minutes=10)
    stuck = age(submission_factory(), status=Status.PROCESSING, attempts=1,
                started_at=timezone.now() - timedelta(minutes=11))
    running = age(submission_factory(), status=Status.PROCESSING, attempts=1,
                  started_at=timezone.now() - timedelta(minutes=1))

    sweep = recovery.requeue_stuck()

    assert sweep.sent == [stuck.pk] and sweep.failed == []
    stuck.refresh_from_db()
    assert stuck.status == Status.DONE and stuck.attempts == 2
    assert Prediction.objects.filter(submission=stuck).count() == len(CLASS_LABELS)
    running.refresh_from_db()
    assert running.status == Status.PROCESSING and running.attempts == 1


def test_stuck_after_the_last_attempt_fails_with_the_reason(submission_factory, sent, settings):
    settings.ANALYSIS_MAX_ATTEMPTS = 3
    stuck = age(submission_factory(), status=Status.PROCESSING, attempts=3,
                started_at=timezone.now() - timedelta(hours=1))

    sweep = recovery.requeue_stuck(limit=timedelta(minutes=10))

    assert sweep.failed == [stuck.pk] and sent == []
    stuck.refresh_from_db()
    assert stuck.status == Status.FAILED and stuck.finished_at is not None
    assert "did not finish after 3 attempt(s)" in stuck.failure_reason
    assert "more than 10 minute(s)" in stuck.failure_reason
    assert "can be re-analysed" in stuck.failure_reason


def test_requeued_up_to_n_attempts_then_failed(submission_factory, settings, sent):
    """The whole cycle: each start that hangs is re-queued until the N-th, which fails."""
    settings.ANALYSIS_MAX_ATTEMPTS = 3
    submission = submission_factory()
    for attempt in range(1, 4):
        # A worker claims it (attempts + 1) and then hangs for an hour.
        Submission.objects.filter(pk=submission.pk).update(status=Status.PROCESSING, attempts=attempt,
                                                           started_at=timezone.now() - timedelta(hours=1))
        recovery.requeue_stuck(limit=timedelta(minutes=10))
        submission.refresh_from_db()
        expected = Status.QUEUED if attempt < 3 else Status.FAILED
        assert submission.status == expected, attempt
    assert sent == [submission.pk, submission.pk]
    assert "after 3 attempt(s)" in submission.failure_reason


def test_requeue_stuck_with_the_broker_down_leaves_it_for_the_outbox(submission_factory, broker_down):
    stuck = age(submission_factory(), status=Status.PROCESSING, attempts=1, created_at=timezone.now() - AGO,
                started_at=timezone.now() - timedelta(hours=1))
    assert recovery.requeue_stuck(limit=timedelta(minutes=10)).unsent == [stuck.pk]
    stuck.refresh_from_db()
    assert stuck.status == Status.QUEUED and stuck.enqueued_at is None
    assert stuck.pk in recovery.pending_dispatch().values_list("pk", flat=True)


def test_requeue_stuck_leaves_a_row_whose_run_moved_on(submission_factory, sent, monkeypatch):
    """A worker that finishes (or re-claims) between the read and the UPDATE wins."""
    stuck = age(submission_factory(), status=Status.PROCESSING, attempts=1,
                started_at=timezone.now() - timedelta(hours=1))
    real_filter = Submission.objects.filter

    def filter_after_the_worker_finished(*args, **kwargs):
        if kwargs.get("started_at") is not None and kwargs.get("pk") == stuck.pk:
            real_filter(pk=stuck.pk).update(status=Status.DONE)
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(Submission.objects, "filter", filter_after_the_worker_finished)
    assert recovery.requeue_stuck(limit=timedelta(minutes=10)).sent == [] and sent == []
    stuck.refresh_from_db()
    assert stuck.status == Status.DONE


def test_requeue_stuck_command(submission_factory, sent, settings):
    settings.ANALYSIS_MAX_ATTEMPTS = 2
    stuck = age(submission_factory(), status=Status.PROCESSING, attempts=1,
                started_at=timezone.now() - timedelta(hours=1))
    hopeless = age(submission_factory(), status=Status.PROCESSING, attempts=2,
                   started_at=timezone.now() - timedelta(hours=1))

    assert "Would re-queue 1 stuck submission(s); would mark 1 failed" in call("requeue_stuck", "--dry-run")
    assert Submission.objects.filter(status=Status.PROCESSING).count() == 2
    assert "Re-queued 1 stuck submission(s); marked 1 failed" in call("requeue_stuck", "--limit", "600")
    assert sent == [stuck.pk]
    hopeless.refresh_from_db()
    assert hopeless.status == Status.FAILED


# --- a photo that keeps killing its worker ------------------------------------------------------


def test_a_task_redelivered_after_the_last_attempt_fails_instead_of_looping(submission_factory, use_tiny_model,
                                                                           settings):
    settings.ANALYSIS_MAX_ATTEMPTS = 3
    submission = age(submission_factory(), status=Status.PROCESSING, attempts=3, started_at=timezone.now())
    assert analyse_submission.apply(args=[submission.pk]).get() == "failed"
    submission.refresh_from_db()
    assert submission.status == Status.FAILED and "interrupted 3 time(s)" in submission.failure_reason
    assert not submission.predictions.exists()


def test_a_redelivered_task_below_the_limit_completes(submission_factory, use_tiny_model, settings):
    settings.ANALYSIS_MAX_ATTEMPTS = 3
    submission = age(submission_factory(), status=Status.PROCESSING, attempts=1, started_at=timezone.now())
    assert analyse_submission.apply(args=[submission.pk]).get() == Status.DONE
    submission.refresh_from_db()
    assert submission.attempts == 2


def test_a_requeued_row_gets_a_run_whatever_its_attempts(submission_factory, use_tiny_model, settings):
    settings.ANALYSIS_MAX_ATTEMPTS = 3
    submission = age(submission_factory(), status=Status.QUEUED, attempts=3)  # re-queued by an admin
    assert analyse_submission.apply(args=[submission.pk]).get() == Status.DONE


# --- failed → fixed → requeue_failed ------------------------------------------------------------


@pytest.fixture
def broken_model(settings, tmp_path):
    """A model artifact whose weights fail their checksum; ``fix()`` restores the file."""
    from diagnosis.classifier import reset_classifier

    directory = tmp_path / "model"
    build_tiny_artifact(directory)
    weights = directory / "model.keras"
    good = weights.read_bytes()
    weights.write_bytes(good + b"corrupted in transit")
    settings.ML_MODEL_DIR = directory
    reset_classifier()
    yield lambda: weights.write_bytes(good)
    reset_classifier()


def test_a_failed_model_load_is_not_cached(broken_model):
    from diagnosis.classifier import get_classifier
    from ml.artifact import ArtifactError

    with pytest.raises(ArtifactError, match="sha256"):
        get_classifier()
    broken_model()
    assert get_classifier().version == "tiny-test-1"  # no reset_classifier(): the failure was not kept


def test_wrong_checksum_fails_then_requeue_failed_after_the_fix_completes(broken_model, submission_factory,
                                                                          django_capture_on_commit_callbacks):
    submission = submission_factory()
    assert analyse_submission.apply(args=[submission.pk]).get() == "failed"
    submission.refresh_from_db()
    assert submission.status == Status.FAILED
    assert "classifier is unavailable" in submission.failure_reason
    assert "model.keras fails its sha256 check" in submission.failure_reason

    broken_model()
    with django_capture_on_commit_callbacks(execute=True):
        assert "Re-queued 1 failed submission(s)" in call("requeue_failed")
    submission.refresh_from_db()
    assert submission.status == Status.DONE and submission.failure_reason == ""
    assert submission.attempts == 2
    assert Prediction.objects.filter(submission=submission).count() == len(CLASS_LABELS)
    assert LogEntry.objects.get_for_object(submission).filter(action=LogEntry.Action.UPDATE,
                                                              changes__icontains="queued").exists()


def test_requeue_failed_filters_and_dry_run(submission_factory, sent, django_capture_on_commit_callbacks):
    now = timezone.now()
    model_failure = age(submission_factory(), status=Status.FAILED, finished_at=now - timedelta(minutes=30),
                        failure_reason="The classifier is unavailable (model file model.keras is missing).")
    old_failure = age(submission_factory(), status=Status.FAILED, finished_at=now - timedelta(days=3),
                      failure_reason="The classifier is unavailable (no model artifact).")
    photo_failure = age(submission_factory(), status=Status.FAILED, finished_at=now - timedelta(minutes=5),
                        failure_reason="The photo could not be analysed (OSError).")
    age(submission_factory(), status=Status.REJECTED, finished_at=now, failure_reason="not skin")
    age(submission_factory(), status=Status.DONE, finished_at=now)

    assert "Would re-queue 3" in call("requeue_failed", "--dry-run")
    assert "Would re-queue 2" in call("requeue_failed", "--dry-run", "--since", "2h")
    assert "Would re-queue 2" in call("requeue_failed", "--dry-run", "--reason", "classifier is unavailable")
    assert Submission.objects.filter(status=Status.FAILED).count() == 3 and sent == []

    with django_capture_on_commit_callbacks(execute=True):
        assert "Re-queued 1" in call("requeue_failed", "--since", "1h", "--reason", "classifier")
    assert sent == [model_failure.pk]
    statuses = dict(Submission.objects.values_list("pk", "status"))
    assert statuses[model_failure.pk] == Status.QUEUED
    assert statuses[old_failure.pk] == statuses[photo_failure.pk] == Status.FAILED


def test_requeue_failed_since_parsing():
    from diagnosis.management.commands.requeue_failed import parse_since

    now = timezone.now()
    assert abs((now - parse_since("2h")) - timedelta(hours=2)) < timedelta(seconds=5)
    assert abs((now - parse_since("30m")) - timedelta(minutes=30)) < timedelta(seconds=5)
    assert parse_since("2026-11-26").isoformat().startswith("2026-11-26T00:00:00")
    assert parse_since("2026-11-26T14:30").hour == 14
    with pytest.raises(CommandError, match="2h, 3d"):
        call("requeue_failed", "--since", "yesterday")


# --- beat ---------------------------------------------------------------------------------------


def test_the_sweepers_are_in_the_beat_schedule(settings):
    from skinsite.celery import app

    app.loader.import_default_modules()  # what `celery worker` and `celery beat` do at start (autodiscovery)
    schedule = settings.CELERY_BEAT_SCHEDULE
    entries = {entry["task"]: entry for entry in schedule.values()}
    for name in ("diagnosis.dispatch_pending", "diagnosis.requeue_stuck"):
        assert name in app.tasks, name
        # Expiring: runs missed while no worker listened do not pile up.
        assert 0 < entries[name]["options"]["expires"] <= entries[name]["schedule"]
    assert entries["diagnosis.dispatch_pending"]["schedule"] <= 60  # a photo never waits minutes for it


def test_the_periodic_tasks_run_the_sweepers(submission_factory, use_tiny_model, settings):
    from diagnosis.periodic_tasks import dispatch_pending, requeue_stuck

    unsent = age(submission_factory(), created_at=timezone.now() - AGO)
    stuck = age(submission_factory(), status=Status.PROCESSING, attempts=1,
                started_at=timezone.now() - settings.ANALYSIS_STUCK_AFTER - timedelta(minutes=1))
    assert dispatch_pending.apply().get() == 1
    assert requeue_stuck.apply().get() == 1
    assert set(Submission.objects.filter(pk__in=[unsent.pk, stuck.pk]).values_list("status", flat=True)) == {
        Status.DONE}


# --- the cache with Redis down ------------------------------------------------------------------


def test_the_redis_cache_fails_open_when_redis_is_down():
    """Uploads check the upload rate in the cache: a dead Redis must make that a miss, not a 500."""
    import time

    from skinsite.cache import FailOpenRedisCache

    cache = FailOpenRedisCache("redis://127.0.0.1:9/0", {"OPTIONS": {"socket_connect_timeout": 1,
                                                                     "socket_timeout": 1}})
    started = time.monotonic()
    assert cache.get("rate", []) == []
    cache.set("rate", [1], 60)
    assert cache.add("rate", [1], 60) is False
    assert cache.get_many(["rate"]) == {}
    assert cache.delete("rate") is False
    assert time.monotonic() - started < 5
