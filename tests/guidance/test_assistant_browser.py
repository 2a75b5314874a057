"""The symptom assistant in headless Chromium with JavaScript switched off: plain forms are enough."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from diagnosis.models import Prediction, Submission
from guidance.triage import TIERS
from ml.classes import ALL_LABELS
from tests.conftest import CHROMIUM_ARGS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]



@pytest.fixture
def browser_page(chromium, monkeypatch, live_server, user):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # see tests/e2e/conftest.py
    from playwright.sync_api import sync_playwright

    client = Client()
    client.force_login(user)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 900})
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "url": live_server.url,
                              "value": client.cookies[settings.SESSION_COOKIE_NAME].value}])
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
            from django.db import connections

            connections.close_all()


def test_answering_with_buttons_and_text_without_javascript(browser_page, live_server, use_tiny_model,
                                                            submission_factory, knowledge_base):
    from playwright.sync_api import expect

    submission = submission_factory()  # committed: the tiny model analyses it; then known probabilities
    Prediction.objects.filter(submission=submission).delete()
    Prediction.objects.bulk_create(
        Prediction(submission=submission, model_version="test", code=code, label=ALL_LABELS[code], probability=p,
                   rank=rank) for rank, (code, p) in enumerate([("nv", .9), ("bkl", .06), ("mel", .04)], start=1))
    Submission.objects.filter(pk=submission.pk).update(status="done", uncertain=False, model_version="test")

    page = browser_page
    page.goto(f"{live_server.url}/submissions/{submission.uuid}/")
    expect(page.locator("#tier")).to_have_text(TIERS["routine"])
    expect(page.locator("#assistant-question")).to_contain_text("A for asymmetry")

    page.locator("#assistant .quick-replies").get_by_role("button", name="Yes", exact=True).click()
    expect(page.locator("#assistant-question")).to_contain_text("B for border")
    assert page.url.endswith("#assistant-latest")
    page.locator("#assistant .quick-replies").get_by_role("button", name="Yes", exact=True).click()
    expect(page.locator("#tier")).to_have_text(TIERS["soon"])
    expect(page.locator("#tier-reasons")).to_contain_text("two or more of the ABCDE warning signs")

    page.fill("#assistant-message", "Is it contagious?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#assistant-latest")).to_contain_text("Not contagious")
    page.fill("#assistant-message", "Will it rain tomorrow?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#assistant-latest")).to_contain_text("I did not understand that")
    expect(page.locator("#assistant-question")).to_contain_text("C for colour")
