"""Analysis runs on the dedicated inference queue; periodic jobs stay on Celery's default queue."""

from skinsite.celery import app


def queue_of(task_name):
    return app.amqp.router.route({}, task_name)["queue"].name


def test_analysis_goes_to_the_inference_queue(settings):
    import diagnosis.tasks  # noqa: F401 - registers the task

    assert settings.CELERY_INFERENCE_QUEUE == "inference"
    assert queue_of("diagnosis.analyse_submission") == "inference"
    assert queue_of("diagnosis.analyse_batch") == "inference"  # bulk analysis follows the naming rule


def test_other_tasks_stay_on_the_default_queue():
    assert queue_of("diagnosis.send_due_reminders") == app.conf.task_default_queue == "celery"
