"""Browser-test fixtures: Debian's chromium driven by Playwright, and the same real Celery
worker fixture as tests/integration."""

import numpy as np
import pytest
from PIL import Image

from tests.conftest import CHROMIUM_ARGS
from tests.integration.realworker import celery_worker, report_broker_usage  # noqa: F401

SCREENSHOT = "/tmp/e2e-result.png"  # kept after the run for people to look at
RESULT_TIMEOUT_MS = 180_000  # first analysis imports TensorFlow in the worker


@pytest.fixture
def page(chromium, monkeypatch):
    # Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls
    # from a thread with a running loop. Nothing here is concurrent with it, so allow them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
            # While the loop runs, Django keeps DB connections per async context, so ORM calls in
            # the test got a connection of their own. Close it, or PostgreSQL refuses to drop the
            # test database at the end of the run ("being accessed by other users").
            from django.db import connections

            connections.close_all()


def spot_photo(path, radius=55, seed=1):
    """A real JPEG: a brownish round spot on skin-coloured, slightly noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:320, 0:320]
    spot = ((yy - 160) ** 2 + (xx - 150) ** 2) < radius ** 2
    pixels = np.where(spot[..., None], [110, 70, 50], [225, 180, 155]) + rng.integers(-12, 12, (320, 320, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(path, "JPEG", quality=90)
    return path




def pytest_terminal_summary(terminalreporter):
    report_broker_usage(terminalreporter)
