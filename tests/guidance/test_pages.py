"""Condition pages (public) and the guidance on the result page (owner only)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import escape

from diagnosis import analysis
from diagnosis.models import Submission
from guidance.triage import TIERS, triage

pytestmark = pytest.mark.django_db


def test_condition_list_is_public_and_lists_every_entry(client):
    response = client.get(reverse("guidance:condition-list"))
    assert response.status_code == 200
    html = response.content.decode()
    for code, name in [("mel", "Melanoma"), ("ad", "Atopic dermatitis (eczema)"), ("other", "Another skin condition")]:
        assert f'data-code="{code}"' in html and reverse("guidance:condition-detail", args=[code]) in html
        assert name in html
    assert "not a diagnosis" in html


def test_condition_page_shows_every_part_of_the_entry(client):
    response = client.get(reverse("guidance:condition-detail", args=["tinea"]))
    assert response.status_code == 200
    html = response.content.decode()
    condition = response.context["condition"]
    for heading in ["What it is", "How it typically looks", "Causes and risk factors", "Usual treatments",
                    "Is it contagious?", "See a doctor promptly if", "Sources"]:
        assert heading in html
    assert "<strong>Yes.</strong>" in html  # tinea is contagious
    assert TIERS[condition.urgency] in html
    for flag in condition.red_flag_list():
        assert escape(flag) in html
    for _title, url in condition.source_list():
        assert f'href="{url}"' in html
    assert "not a diagnosis" in html


def test_unknown_condition_is_404(client):
    assert client.get(reverse("guidance:condition-detail", args=["unicorn"])).status_code == 404


def test_condition_pages_show_no_personal_data(owner_client, user):
    html = owner_client.get(reverse("guidance:condition-detail", args=["mel"])).content.decode()
    assert user.email not in html


def _analysed(submission_factory, **context):
    submission = submission_factory(**context)
    analysis.analyse_submission(submission.pk)
    submission.refresh_from_db()
    return submission


def _expected(submission, threshold):
    probabilities = {p.code: p.probability for p in submission.predictions.all()}
    return triage(probabilities, uncertain=submission.uncertain, not_skin=submission.status == "rejected",
                  answers={"symptoms": submission.symptoms}, malignancy_threshold=threshold)


def test_result_page_shows_the_tier_reasons_and_top_four_conditions(owner_client, use_tiny_model,
                                                                     submission_factory):
    submission = _analysed(submission_factory)
    assert submission.status == Submission.Status.DONE
    expected = _expected(submission, 0.15)
    response = owner_client.get(reverse("diagnosis:submission-detail", args=[submission.uuid]))
    html = response.content.decode()
    assert f'data-tier="{expected.tier}"' in html
    assert TIERS[expected.tier] in html
    for reason in expected.reasons:
        assert escape(reason) in html
    top4 = list(submission.predictions.order_by("rank")[:4])
    summaries = html.split('id="condition-summaries"')[1]
    assert summaries.count('class="condition-summary"') == 4
    for prediction in top4:
        assert f'data-code="{prediction.code}"' in summaries
        assert reverse("guidance:condition-detail", args=[prediction.code]) in summaries


def test_result_page_tier_follows_the_threshold_setting(owner_client, use_tiny_model, submission_factory, settings):
    submission = _analysed(submission_factory)
    url = reverse("diagnosis:submission-detail", args=[submission.uuid])
    settings.MALIGNANCY_THRESHOLD = 0.01  # the tiny model's malignancy sum is far above this
    assert 'data-tier="urgent"' in owner_client.get(url).content.decode()
    settings.MALIGNANCY_THRESHOLD = 0.99
    expected = _expected(submission, 0.99)
    assert expected.tier != "urgent"
    assert f'data-tier="{expected.tier}"' in owner_client.get(url).content.decode()


def test_red_flag_answer_on_the_result_page(owner_client, use_tiny_model, submission_factory, settings):
    settings.MALIGNANCY_THRESHOLD = 0.99
    submission = _analysed(submission_factory, symptoms=["bleeding"])
    expected = _expected(submission, 0.99)
    assert expected.tier in ("soon", "urgent")  # a red flag reaches at least "soon" whatever the class
    html = owner_client.get(reverse("diagnosis:submission-detail", args=[submission.uuid])).content.decode()
    assert "it bleeds" in html and f'data-tier="{expected.tier}"' in html


def test_no_guidance_before_the_analysis_is_final(owner_client, submission_factory):
    submission = submission_factory()
    assert submission.status == Submission.Status.QUEUED
    html = owner_client.get(reverse("diagnosis:submission-detail", args=[submission.uuid])).content.decode()
    assert 'id="guidance"' not in html and 'id="condition-summaries"' not in html


def test_not_skin_result_gets_soon_advice_and_no_condition_summaries(owner_client, use_tiny_model,
                                                                      submission_factory):
    submission = _analysed(submission_factory)
    Submission.objects.filter(pk=submission.pk).update(
        status=Submission.Status.REJECTED, failure_reason="This does not look like a photo of skin.")
    html = owner_client.get(reverse("diagnosis:submission-detail", args=[submission.uuid])).content.decode()
    assert 'data-tier="soon"' in html and "does not look like a close-up of skin" in html
    assert 'id="condition-summaries"' not in html and 'id="predictions"' not in html


def test_outsider_sees_nothing_of_the_guidance(outsider_client, use_tiny_model, submission_factory):
    submission = _analysed(submission_factory)
    assert outsider_client.get(reverse("diagnosis:submission-detail", args=[submission.uuid])).status_code == 404
