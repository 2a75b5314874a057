"""Sign up, upload a photo and watch it being analysed, in headless Chromium.

Debian's ``chromium`` package is driven by Playwright for Python through
``executable_path`` (never ``playwright install``); ``bin/test`` installs the
package when it can. The site runs in pytest-django's live server and the
analysis in a real Celery worker thread (tests/integration/realworker.py).
"""

import re
import shutil
import threading

import pytest
from django.core import mail

from diagnosis.models import Submission

from .conftest import RESULT_TIMEOUT_MS, SCREENSHOT, spot_photo

pytestmark = [pytest.mark.e2e, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def held_tasks(celery_worker):
    """Hold analysis tasks in the worker until released, so the test sees the page while it waits."""
    from celery.signals import task_prerun

    release = threading.Event()

    def wait_for_release(**kwargs):
        release.wait(timeout=120)

    task_prerun.connect(wait_for_release, weak=False)
    try:
        yield release
    finally:
        release.set()
        task_prerun.disconnect(wait_for_release)


def test_sign_up_upload_and_see_the_ranked_result(chromium, use_tiny_model, live_server, celery_worker, held_tasks,
                                                  page, tmp_path):
    # use_tiny_model before celery_worker: the worker loads the model as it starts.
    from playwright.sync_api import expect

    nav = page.locator("header nav")
    page.goto(live_server.url + "/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()

    nav.get_by_role("link", name="Sign up").click()
    page.fill("#id_username", "e2e-person")
    page.fill("#id_email", "e2e-person@example.com")
    page.get_by_role("button", name="Sign up").click()
    # Two steps (issue 13): the page answers the same for any address; the e-mail has the link.
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
    link = re.search(r"http\S+/accounts/signup/confirm/\?token=\S+", mail.outbox[-1].body).group(0)
    page.goto(link)
    expect(page.get_by_role("heading", name="Choose your password")).to_be_visible()
    page.fill("#id_password1", "a-long-Passphrase-42")
    page.fill("#id_password2", "a-long-Passphrase-42")
    page.get_by_role("button", name="Create my account").click()
    expect(nav.get_by_text("e2e-person")).to_be_visible()  # logged in once the password is chosen

    nav.get_by_role("link", name="Check a spot").click()
    # The first upload goes through the consent page; the model-improvement opt-in stays unticked.
    expect(page.get_by_role("heading", name="Before you upload")).to_be_visible()
    page.check("#id_agree")
    page.get_by_role("button", name="Save and continue").click()
    expect(page.get_by_role("heading", name="Check a spot")).to_be_visible()
    page.set_input_files("input[name=image]", str(spot_photo(tmp_path / "spot.jpg")))
    page.fill("input[name=lesion_name]", "Mole on left shoulder")
    page.get_by_role("button", name="Upload and analyse").click()

    # The result page first shows the live status while the worker holds the task...
    expect(page.locator("#waiting")).to_be_visible()
    assert page.locator("#result").get_attribute("data-final") == "false"
    result_url = page.url
    held_tasks.set()

    # ...then turns into the result by itself (the page polls; the test never reloads it).
    predictions = page.locator("#predictions li.prediction")
    expect(predictions).to_have_count(4, timeout=RESULT_TIMEOUT_MS)
    assert page.url == result_url
    expect(page.locator("#status")).to_have_text("Done")
    for text in predictions.all_inner_texts():
        assert "%" in text
    expect(page.locator("#result .notice", has_text="This is not a diagnosis")).to_be_visible()
    expect(page.get_by_text("Model version tiny-test-1")).to_be_visible()
    screenshot = tmp_path / "result.png"
    page.screenshot(path=str(screenshot), full_page=True)
    shutil.copyfile(screenshot, SCREENSHOT)

    nav.get_by_role("link", name="My spots").click()
    row = page.locator("tr", has_text="Mole on left shoulder")
    expect(row).to_be_visible()
    expect(row.locator("td").first).to_contain_text("1 photo")
    expect(row.locator("td.latest-tier [data-tier]")).to_be_visible()  # the latest photo's tier

    submission = Submission.objects.get(owner__username="e2e-person")
    assert submission.status == Submission.Status.DONE
    assert submission.predictions.count() == 12
    consent = submission.owner.consents.get()
    assert consent.improve_model is False
