"""The report for a doctor: printable page and PDF (read back with pypdf), owner only."""

import io

import numpy as np
import pytest
from django.urls import reverse
from pypdf import PdfReader

from diagnosis import report
from guidance.triage import TIERS
from tests.diagnosis.lesion_helpers import finish, photo_series, photo_submission

pytestmark = pytest.mark.django_db

MELANOMA_LIKE = {"mel": 0.62, "nv": 0.25, "bkl": 0.05}
MOLE = {"nv": 0.88, "bkl": 0.06, "mel": 0.02}


def pdf_text_and_images(content: bytes):
    reader = PdfReader(io.BytesIO(content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    images = []
    for page in reader.pages:
        xobjects = page["/Resources"].get("/XObject")
        if xobjects is None:
            continue
        xobjects = xobjects.get_object()
        images += [name for name in xobjects if xobjects[name].get_object()["/Subtype"] == "/Image"]
    return " ".join(text.split()), images


@pytest.fixture
def lesion_with_photos(user):
    first = finish(photo_submission(user, color=(190, 140, 110), age=54, duration="months", symptoms=["itching"]),
                   MOLE, days_ago=40)
    second = finish(photo_submission(user, first.lesion, color=(120, 80, 60), age=54, duration="months",
                                     symptoms=["bleeding"]), MELANOMA_LIKE, days_ago=1)
    return first.lesion, first, second


def test_pdf_has_the_photos_urgency_predictions_answers_and_notice(owner_client, lesion_with_photos):
    lesion, first, second = lesion_with_photos
    response = owner_client.get(reverse("diagnosis:lesion-report-pdf", args=[lesion.uuid]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert lesion.name not in response["Content-Disposition"]  # no health data in the file name
    assert response["Cache-Control"] == "private, no-store"
    text, images = pdf_text_and_images(response.content)
    assert len(images) == 2  # both photos embedded
    assert TIERS["urgent"] in text  # the melanoma-like photo with bleeding
    assert "Melanoma (mel): 62.0 %" in text and "Melanocytic nevus (mole) (nv): 88.0 %" in text
    assert "Age: 54" in text and "Has had it for: 1–12 months" in text
    assert "Bleeding" in text and "Itching" in text
    assert "test-model-1" in text
    assert "not a diagnosis" in text.lower()
    assert lesion.name in text
    assert "Changed since the previous photo" in text and "Melanoma" in text


def test_pdf_embeds_downscaled_photos(owner_client, user):
    from PIL import Image

    big = finish(photo_submission(user, size=(2400, 1800)), MOLE)
    jpeg = report.photo_jpeg(big)
    assert max(Image.open(io.BytesIO(jpeg)).size) == report.PHOTO_MAX_SIDE
    _text, images = pdf_text_and_images(
        owner_client.get(reverse("diagnosis:lesion-report-pdf", args=[big.lesion.uuid])).content)
    assert len(images) == 1


def test_pdf_of_a_lesion_with_unfinished_and_rejected_photos(owner_client, user):
    queued = photo_submission(user, color=(200, 160, 140))
    rejected = finish(photo_submission(user, queued.lesion, color=(60, 200, 90)), MOLE, status="rejected")
    text, images = pdf_text_and_images(
        owner_client.get(reverse("diagnosis:lesion-report-pdf", args=[queued.lesion.uuid])).content)
    assert len(images) == 2
    assert "Queued" in text and "Not analysed" in text
    assert rejected.failure_reason.split(",")[0] in text
    assert TIERS["soon"] in text  # a photo that could not be assessed is never routine or self-care


def test_pdf_of_a_lesion_without_photos(owner_client, user):
    from diagnosis.models import Lesion

    lesion = Lesion.objects.create(owner=user, name="Left shoulder")
    text, images = pdf_text_and_images(
        owner_client.get(reverse("diagnosis:lesion-report-pdf", args=[lesion.uuid])).content)
    assert images == [] and "No photo of this spot yet" in text and "Left shoulder" in text


def test_report_survives_a_missing_photo_file(owner_client, lesion_with_photos):
    lesion, first, _second = lesion_with_photos
    first.image.storage.delete(first.image.name)
    text, images = pdf_text_and_images(
        owner_client.get(reverse("diagnosis:lesion-report-pdf", args=[lesion.uuid])).content)
    assert len(images) == 1 and "(photo unavailable)" in text


def test_unusual_characters_in_the_name_are_safe(owner_client, submission_factory):
    submission = finish(submission_factory(lesion_name="Spot <b>&amp; “Ωμέγα”"), MOLE)
    text, _images = pdf_text_and_images(
        owner_client.get(reverse("diagnosis:lesion-report-pdf", args=[submission.lesion.uuid])).content)
    assert "Spot <b>&amp; “Ωμέγα”" in text


def test_printable_page(owner_client, lesion_with_photos):
    lesion, first, second = lesion_with_photos
    response = owner_client.get(reverse("diagnosis:lesion-report", args=[lesion.uuid]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "@media print" in html
    assert 'id="report-notice"' in html and "not a diagnosis" in html.lower()
    assert 'id="report-photo-1"' in html and 'id="report-photo-2"' in html
    for s in (first, second):
        assert reverse("diagnosis:submission-photo", args=[s.uuid]) in html
    assert TIERS["urgent"] in html and "Bleeding" in html and "test-model-1" in html
    assert reverse("diagnosis:lesion-report-pdf", args=[lesion.uuid]) in html


def test_report_data_includes_embedding_changes(submission_factory):
    first, second = photo_series(submission_factory, [(10, MOLE, np.array([1.0, 0, 0])),
                                                      (1, MOLE, np.array([0, 1.0, 0]))])
    built = report.build_report(first.lesion)
    assert [e.number for e in built.entries] == [1, 2]
    assert [c.rule for c in built.entries[1].changes] == ["appearance"]
    assert built.latest_triage.tier == built.entries[1].triage.tier


@pytest.mark.parametrize("name", ["diagnosis:lesion-report", "diagnosis:lesion-report-pdf"])
def test_report_pages_are_private(client, outsider_client, lesion_with_photos, name):
    url = reverse(name, args=[lesion_with_photos[0].uuid])
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert outsider_client.get(url).status_code == 404


def test_api_report_pdf(owner_client, client, outsider_client, lesion_with_photos):
    url = reverse("api:lesion-report", args=[lesion_with_photos[0].uuid])
    response = owner_client.get(url, HTTP_ACCEPT="application/pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text, images = pdf_text_and_images(response.content)
    assert TIERS["urgent"] in text and len(images) == 2
    assert owner_client.get(url).status_code == 200  # Accept: */* as well
    assert client.get(url).status_code == 401
    response = outsider_client.get(url, HTTP_ACCEPT="application/pdf")
    assert response.status_code == 404


def test_api_schema_documents_the_new_routes(client):
    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    pdf = schema["paths"]["/api/v1/lesions/{uuid}/report/"]["get"]["responses"]["200"]["content"]
    assert pdf["application/pdf"]["schema"] == {"type": "string", "format": "binary"}
    timeline = schema["paths"]["/api/v1/lesions/{uuid}/timeline/"]["get"]["responses"]["200"]["content"]
    assert timeline["application/json"]["schema"]["$ref"].endswith("/Timeline")


def test_symptom_assistant_answers_are_in_the_report(owner_client, lesion_with_photos):
    from guidance.models import AssistantConversation

    lesion, _first, second = lesion_with_photos
    AssistantConversation.objects.create(submission=second, state={
        "answers": {"asymmetry": True, "border": False, "evolving": ["got bigger"], "personal_history": True,
                    "age": 54},
        "prefilled": ["age"],  # from the upload form: shown with those answers, not twice
        "skipped": ["diameter"],
    })
    rows = dict(report.assistant_answers(second))
    assert rows["A for asymmetry"] == "Yes" and rows["B for border"] == "No"
    assert rows["E for evolving"] == "Yes, it got bigger" and rows["D for diameter"] == "skipped"
    assert rows["Have you ever had skin cancer yourself (melanoma or another kind)?"] == "Yes"
    assert "How old are you (in years)?" not in rows
    text, _images = pdf_text_and_images(
        owner_client.get(reverse("diagnosis:lesion-report-pdf", args=[lesion.uuid])).content)
    assert "Symptom assistant" in text and "A for asymmetry: Yes" in text
    html = owner_client.get(reverse("diagnosis:lesion-report", args=[lesion.uuid])).content.decode()
    assert "<dt>E for evolving</dt><dd>Yes, it got bigger</dd>" in html


def test_symptoms_are_one_list_from_the_form_and_the_assistant_and_noted_facts_are_listed(owner_client, user):
    """Issue 12 item 6: "Symptoms: none reported" next to the assistant's "bleeds: yes"; history left out."""
    from guidance.models import AssistantConversation

    photo = finish(photo_submission(user, symptoms=["itching"]), MELANOMA_LIKE, days_ago=1)
    AssistantConversation.objects.create(submission=photo, state={
        "answers": {"bleeding": True, "pain": False, "personal_history": True}, "prefilled": [], "skipped": []})
    text, _ = pdf_text_and_images(owner_client.get(reverse("diagnosis:lesion-report-pdf",
                                                           args=[photo.lesion.uuid])).content)
    assert "Symptoms (upload form and assistant): Bleeding, Itching" in text
    assert "none reported" not in text
    assert "Also noted (did not change the urgency)" in text and "you have had skin cancer before" in text
    html = owner_client.get(reverse("diagnosis:lesion-report", args=[photo.lesion.uuid])).content.decode()
    assert "Bleeding, Itching" in html and 'class="report-noted"' in html


def test_a_photo_heading_never_ends_a_pdf_page_alone(owner_client, user):
    """Issue 12 item 6: "Photo 2 of 2" was left alone at the bottom of page 1."""
    lesion = None
    for i in range(4):  # enough photos for several page breaks, with long details
        photo = finish(photo_submission(user, lesion, color=(100 + 30 * i, 90, 80), age=54, duration="months",
                                        symptoms=["itching", "bleeding", "pain", "crusting"]),
                       MELANOMA_LIKE if i % 2 else MOLE, days_ago=10 - i)
        lesion = photo.lesion
    content = owner_client.get(reverse("diagnosis:lesion-report-pdf", args=[lesion.uuid])).content
    pages = [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(content)).pages]
    assert len(pages) >= 2
    for text in pages:
        for number in range(1, 5):
            heading = f"Photo {number} of 4"
            if heading in text:
                assert "Taken:" in text[text.index(heading):], f"{heading} ends its page alone"
