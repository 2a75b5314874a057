"""The browser test uses the same real Celery worker fixture as tests/integration."""

from tests.integration.realworker import celery_worker, report_broker_usage  # noqa: F401


def pytest_terminal_summary(terminalreporter):
    report_broker_usage(terminalreporter)
