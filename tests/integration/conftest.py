"""Fixtures for the real-worker tests (shared with tests/e2e)."""

from tests.integration.faults import FAULT_METRICS
from tests.integration.realworker import celery_worker, report_broker_usage  # noqa: F401


def pytest_terminal_summary(terminalreporter):
    report_broker_usage(terminalreporter)
    if FAULT_METRICS:
        terminalreporter.section("fault tolerance: measured")
        for line in FAULT_METRICS:
            terminalreporter.write_line(line)
