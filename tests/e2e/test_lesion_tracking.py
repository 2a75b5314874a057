"""Follow one spot over time in headless Chromium (issue 4's browser check).

Two photos of the same spot go through the real upload form and a real Celery worker; the
person opens the comparison (both photos, a two-point chart), toggles the explanation
heatmap, and downloads the doctor's PDF, which must hold the photo and the urgency text.
"""

import io

import pytest
from pypdf import PdfReader

from diagnosis.models import Lesion

from .conftest import RESULT_TIMEOUT_MS, spot_photo

pytestmark = [pytest.mark.e2e, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _wait_for_result(page):
    from playwright.sync_api import expect

    expect(page.locator("#predictions li.prediction")).to_have_count(4, timeout=RESULT_TIMEOUT_MS)
    expect(page.locator("#status")).to_have_text("Done")


def _wait_until_loaded(page, selector):
    """The image was fetched and decoded (visible alone does not mean loaded)."""
    page.wait_for_function(
        "s => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0; }", arg=selector)


def _log_in(page, base_url, username, password):
    page.goto(base_url + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.locator("main").get_by_role("button", name="Log in").click()


def _pdf_images(reader):
    count = 0
    for pdf_page in reader.pages:
        resources = pdf_page.get("/Resources") or {}
        xobjects = resources.get("/XObject") or {}
        for ref in xobjects.values():
            if ref.get_object().get("/Subtype") == "/Image":
                count += 1
    return count


def test_two_photos_compare_heatmap_and_pdf(chromium, use_tiny_model, live_server, celery_worker, page, user,
                                            password, tmp_path):
    from playwright.sync_api import expect

    _log_in(page, live_server.url, user.username, password)
    expect(page.locator("header nav").get_by_text(user.username)).to_be_visible()

    # First photo: a new spot.
    page.goto(live_server.url + "/upload/")
    page.set_input_files("input[name=image]", str(spot_photo(tmp_path / "first.jpg")))
    page.fill("input[name=lesion_name]", "Mole on back")
    page.get_by_role("button", name="Upload and analyse").click()
    _wait_for_result(page)

    # The overlay follows the result by a moment (the page waits for it and reloads once), and
    # stays hidden until the person asks for it.
    expect(page.locator("#heatmap-toggle")).to_be_attached(timeout=RESULT_TIMEOUT_MS)
    overlay = page.locator("#heatmap-overlay")
    expect(overlay).to_be_hidden()
    page.check("#heatmap-toggle")
    expect(overlay).to_be_visible()
    _wait_until_loaded(page, "#heatmap-overlay")  # the PNG really loaded
    page.uncheck("#heatmap-toggle")
    expect(overlay).to_be_hidden()
    tier_text = page.locator("#tier").inner_text().strip()
    assert tier_text

    # Second photo of the same spot, from the spot's own page.
    lesion = Lesion.objects.get(owner=user, name="Mole on back")
    page.goto(f"{live_server.url}/lesions/{lesion.uuid}/")
    page.get_by_role("link", name="Add a photo of this spot").click()
    page.set_input_files("input[name=image]", str(spot_photo(tmp_path / "second.jpg", radius=70, seed=2)))
    page.get_by_role("button", name="Upload and analyse").click()
    _wait_for_result(page)
    expect(page.locator("#heatmap-toggle")).to_be_attached(timeout=RESULT_TIMEOUT_MS)
    assert lesion.submissions.count() == 2

    # Comparison: both photos side by side and a chart with one point per photo.
    page.goto(f"{live_server.url}/lesions/{lesion.uuid}/")
    page.locator("#compare-link").click()
    for side in ("#compare-a", "#compare-b"):
        expect(page.locator(f"{side} img.photo")).to_be_visible()
        _wait_until_loaded(page, f"{side} img.photo")
    chart = page.locator("#probability-chart")
    expect(chart).to_be_visible()
    assert chart.get_attribute("data-points") == "2"
    assert page.locator("#probability-chart circle.point[data-series=malignancy]").count() == 2

    # The heatmap toggle works on the comparison too.
    if page.locator("#heatmap-toggle").count():
        page.check("#heatmap-toggle")
        expect(page.locator("#heatmap-a")).to_be_visible()

    # The doctor's PDF: downloaded through the browser, with the photos and the urgency text.
    with page.expect_download() as download_info:
        page.locator("#report-pdf-link").first.click()
    pdf_path = tmp_path / "report.pdf"
    download_info.value.save_as(pdf_path)
    reader = PdfReader(io.BytesIO(pdf_path.read_bytes()))
    text = " ".join((p.extract_text() or "") for p in reader.pages)
    text = " ".join(text.split())
    assert "Mole on back" in text
    assert " ".join(tier_text.split()) in text
    assert "not a diagnosis" in text.lower()
    assert _pdf_images(reader) >= 2  # both photos (they differ: the spot grew)
