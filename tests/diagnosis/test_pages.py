"""Web pages: owner, outsider and anonymous access; upload through the form; the live result."""

from pathlib import Path

import pytest
from django.urls import reverse

from diagnosis import analysis
from diagnosis.models import Lesion, Submission
from tests.conftest import image_bytes, upload_file

pytestmark = pytest.mark.django_db


def submission_urls(submission):
    return [
        reverse("diagnosis:submission-detail", args=[submission.uuid]),
        reverse("diagnosis:submission-status", args=[submission.uuid]),
        reverse("diagnosis:submission-photo", args=[submission.uuid]),
        reverse("diagnosis:lesion-detail", args=[submission.lesion.uuid]),
    ]


def test_home_is_public(client):
    response = client.get(reverse("diagnosis:home"))
    assert response.status_code == 200
    assert b"not a diagnosis" in response.content


@pytest.mark.parametrize("name", ["diagnosis:upload", "diagnosis:lesion-list"])
def test_health_pages_require_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_anonymous_cannot_reach_a_submission(client, submission_factory):
    for url in submission_urls(submission_factory()):
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"], url


def test_outsider_gets_404_everywhere(outsider_client, submission_factory):
    for url in submission_urls(submission_factory()):
        assert outsider_client.get(url).status_code == 404, url


def test_owner_sees_everything(owner_client, submission_factory):
    for url in submission_urls(submission_factory()):
        assert owner_client.get(url).status_code == 200, url


def test_photo_is_served_privately(owner_client, submission_factory):
    submission = submission_factory()
    response = owner_client.get(reverse("diagnosis:submission-photo", args=[submission.uuid]))
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content)[:3] == b"\xff\xd8\xff"


def test_no_public_media_route(client, submission_factory):
    submission = submission_factory()
    assert client.get("/media/" + submission.image.name).status_code == 404


def test_upload_form_creates_submission_and_shows_live_result(owner_client, user, use_tiny_model,
                                                               django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("diagnosis:upload"), {
            "image": upload_file(image_bytes("PNG"), "spot.png", "image/png"),
            "lesion_name": "Mole on left shoulder",
            "age": "42",
            "symptoms": ["itching", "growing"],
        })
    submission = Submission.objects.get(owner=user)
    assert response.status_code == 302
    assert response["Location"] == reverse("diagnosis:submission-detail", args=[submission.uuid])
    assert submission.lesion.name == "Mole on left shoulder"
    assert submission.symptoms == ["itching", "growing"] and submission.age == 42
    page = owner_client.get(response["Location"])
    assert submission.status == "queued" or page.context["submission"].status == "done"
    assert len(page.context["top_predictions"]) == 4
    assert page.content.count(b'class="prediction"') == 4
    assert b"tiny-test-1" in page.content and b"not a diagnosis" in page.content


def test_result_page_polls_while_queued(owner_client, submission_factory):
    submission = submission_factory()
    page = owner_client.get(reverse("diagnosis:submission-detail", args=[submission.uuid]))
    assert b'data-final="false"' in page.content and b"updates by itself" in page.content
    status = owner_client.get(reverse("diagnosis:submission-status", args=[submission.uuid])).json()
    assert status == {"status": "queued", "status_display": "Queued", "is_final": False, "heatmap_pending": False}


@pytest.mark.parametrize("content,name,message", [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj", "report.pdf", b"not an image"),
    (b"hello, I am text", "photo.jpg", b"not an image"),
    (image_bytes("JPEG", size=(400, 300))[:900], "cut.jpg", b"damaged or incomplete"),
])
def test_rejected_upload_shows_message_and_leaves_nothing(owner_client, settings, content, name, message):
    response = owner_client.post(reverse("diagnosis:upload"), {"image": upload_file(content, name)})
    assert response.status_code == 200
    assert message in response.content
    assert Submission.objects.count() == 0 and Lesion.objects.count() == 0
    media = Path(settings.MEDIA_ROOT)
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


def test_upload_form_only_offers_own_lesions(owner_client, other_user, submission_factory):
    theirs = submission_factory(owner=other_user)
    response = owner_client.post(reverse("diagnosis:upload"), {
        "image": upload_file(image_bytes()), "lesion": str(theirs.lesion.uuid),
    })
    assert response.status_code == 200 and "lesion" in response.context["form"].errors
    assert Submission.objects.filter(lesion=theirs.lesion).count() == 1


def test_history_lists_own_lesions_with_top_prediction(owner_client, user, other_user, submission_factory, use_tiny_model):

    mine = submission_factory()
    second = submission_factory(lesion=mine.lesion)
    analysis.analyse_submission(mine.pk)
    analysis.analyse_submission(second.pk)
    submission_factory(owner=other_user)
    listing = owner_client.get(reverse("diagnosis:lesion-list"))
    assert list(listing.context["lesions"]) == [mine.lesion]
    assert listing.context["lesions"][0].photo_count == 2
    detail = owner_client.get(reverse("diagnosis:lesion-detail", args=[mine.lesion.uuid]))
    history = list(detail.context["history"])
    assert [s.pk for s in history] == [mine.pk, second.pk]  # oldest first
    assert all(s.top_code and s.top_probability > 0 for s in history)


def test_my_spots_shows_each_spots_latest_status_tier_and_next_photo(owner_client, user, other_user,
                                                                     submission_factory, use_tiny_model):
    """Issue 12 item 6: My spots showed no status, no tier and no "next photo due" date."""
    from guidance.selectors import submission_triage

    first = submission_factory()
    latest = submission_factory(lesion=first.lesion)
    analysis.analyse_submission(first.pk)
    analysis.analyse_submission(latest.pk)
    queued = submission_factory()  # another spot, not analysed yet
    theirs = submission_factory(owner=other_user)
    from diagnosis.reminders import schedule_reminder

    assert schedule_reminder(latest.pk)  # after the result commits, in production (on_commit)
    latest.refresh_from_db()
    latest.lesion.refresh_from_db()
    html = owner_client.get(reverse("diagnosis:lesion-list")).content.decode()
    row = html[html.index(f'data-spot="{first.lesion.uuid}"'):]
    row = row[:row.index("</tr>")]
    tier = submission_triage(latest)
    assert reverse("diagnosis:submission-detail", args=[latest.uuid]) in row and tier.title in row
    assert f"{latest.lesion.remind_at:%-d %b %Y}" in row  # the re-photograph date the result set
    queued_row = html[html.index(f'data-spot="{queued.lesion.uuid}"'):]
    assert "Queued" in queued_row[:queued_row.index("</tr>")]
    assert str(theirs.lesion.uuid) not in html


def test_every_page_links_to_the_condition_pages(client):
    assert b'href="/conditions/"' in client.get(reverse("diagnosis:home")).content


def test_an_upload_with_an_error_asks_to_choose_the_photo_again_and_stores_nothing(owner_client):
    """Issue 12 item 6: browsers clear the file field, and the form used to drop the photo silently."""
    response = owner_client.post(reverse("diagnosis:upload"), {"image": upload_file(image_bytes()), "age": "200"})
    html = response.content.decode()
    assert response.status_code == 200 and 'id="choose-again"' in html and "choose the photo again" in html
    assert not Submission.objects.exists()
    assert 'id="choose-again"' not in owner_client.get(reverse("diagnosis:upload")).content.decode()
