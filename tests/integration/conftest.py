"""Fixtures for the real-worker tests (shared with tests/e2e)."""

from tests.integration.realworker import celery_worker, report_broker_usage  # noqa: F401


def pytest_terminal_summary(terminalreporter):
    report_broker_usage(terminalreporter)
