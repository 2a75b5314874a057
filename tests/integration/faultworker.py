"""Celery app for the worker subprocesses of test_fault_tolerance.py: the real app, plus one pause.

``celery -A tests.integration.faultworker worker`` runs exactly the production tasks; the only
addition is a test hook in front of ``analysis.store_result``: when the file ``hold`` exists in
FAULT_HOLD_DIR, the first run to get there renames it (atomically: only that run is held), writes
its process id to ``started`` and waits until the test deletes the renamed file. So the test can
kill a worker, deterministically, after it claimed and classified a photo but before it stored
the result, or let a duplicate delivery finish first.
"""

import os
import time
from pathlib import Path

import django

from skinsite.celery import app  # noqa: F401 - the app celery -A finds here

django.setup()

from diagnosis import analysis  # noqa: E402

HOLD_DIR = Path(os.environ["FAULT_HOLD_DIR"])
_store_result = analysis.store_result


def _store_result_after_hold(*args, **kwargs):
    held = HOLD_DIR / f"held-{os.getpid()}"
    try:
        (HOLD_DIR / "hold").rename(held)
    except FileNotFoundError:
        return _store_result(*args, **kwargs)
    started = HOLD_DIR / f".started-{os.getpid()}"
    started.write_text(str(os.getpid()))
    started.rename(HOLD_DIR / "started")  # the test reads a complete pid
    deadline = time.monotonic() + 600
    while held.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return _store_result(*args, **kwargs)


analysis.store_result = _store_result_after_hold
