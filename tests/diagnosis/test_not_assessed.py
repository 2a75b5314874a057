"""A result that could not be assessed (not skin, uncertain): one rule on the page, the API, the report.

Nothing ranked is shown, the tier is never routine or self-care, the person gets retake tips, and
"this is skin, please look anyway" shows the reading with a warning (guidance/triage.py, issue 12).
"""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from diagnosis.models import Prediction, Submission
from guidance.triage import RETAKE_TIPS, TIERS
from ml.classes import ALL_LABELS

pytestmark = pytest.mark.django_db

MOLE = {"nv": .52, "bkl": .3, "df": .1, "mel": .08}  # no class stands out; below the threshold


@pytest.fixture
def result(submission_factory):
    """A final result with chosen probabilities and state (rows as store_result writes them)."""

    def make(probabilities=MOLE, *, status=Submission.Status.DONE, uncertain=False, owner=None):
        submission = submission_factory(owner=owner)
        ranked = sorted(probabilities.items(), key=lambda item: -item[1])
        Prediction.objects.bulk_create(
            Prediction(submission=submission, model_version="test", code=code, label=ALL_LABELS[code],
                       probability=p, rank=rank) for rank, (code, p) in enumerate(ranked, start=1))
        Submission.objects.filter(pk=submission.pk).update(
            status=status, uncertain=uncertain, model_version="test", finished_at=timezone.now(),
            failure_reason="This does not look like a photo of skin, so it was not assessed."
            if status == Submission.Status.REJECTED else "")
        submission.refresh_from_db()
        return submission

    return make


def page(client, submission):
    return client.get(reverse("diagnosis:submission-detail", args=[submission.uuid])).content.decode()


def look_anyway(client, submission):
    return client.post(reverse("diagnosis:submission-look-anyway", args=[submission.uuid]))


def api(submission):
    return reverse("api:submission-detail", args=[submission.uuid])


NOT_ASSESSED = [
    pytest.param({"uncertain": True}, "uncertain", id="uncertain"),
    pytest.param({"status": Submission.Status.REJECTED}, "not_skin", id="not-skin"),
]


@pytest.mark.parametrize("kind,state", NOT_ASSESSED)
def test_the_page_ranks_nothing_never_says_routine_and_gives_retake_tips(owner_client, result, kind, state):
    html = page(owner_client, result(**kind))
    assert f'data-state="{state}"' in html and 'id="not-assessed"' in html
    assert 'id="predictions"' not in html and 'id="condition-summaries"' not in html
    assert 'data-tier="soon"' in html and TIERS["routine"] not in html and TIERS["self_care"] not in html
    assert all(tip in html for tip in RETAKE_TIPS)
    assert 'id="look-anyway"' in html and 'id="retake"' in html
    # What to do first (retake, or look anyway), then how soon to see someone if that is not possible.
    assert html.index('id="not-assessed"') < html.index('id="guidance"') < html.index('This is not a diagnosis')


@pytest.mark.parametrize("kind,state", NOT_ASSESSED)
def test_look_anyway_shows_the_ranking_with_a_warning_and_keeps_at_least_soon(owner_client, result, kind, state):
    submission = result(**kind)
    response = look_anyway(owner_client, submission)
    assert response.status_code == 302
    submission.refresh_from_db()
    assert submission.look_anyway
    html = page(owner_client, submission)
    assert 'id="predictions"' in html and 'id="shown-anyway"' in html and 'id="look-anyway"' not in html
    assert 'data-tier="soon"' in html
    entry = LogEntry.objects.get_for_object(submission).filter(action=LogEntry.Action.UPDATE,
                                                               changes__icontains="look_anyway").get()
    assert entry.actor_id == submission.owner_id


def test_an_assessed_result_has_nothing_to_show_anyway(owner_client, result):
    submission = result({"nv": .95, "mel": .05})
    html = page(owner_client, submission)
    assert 'id="predictions"' in html and 'id="not-assessed"' not in html and 'id="look-anyway"' not in html
    look_anyway(owner_client, submission)
    submission.refresh_from_db()
    assert not submission.look_anyway
    assert owner_client.post(reverse("api:submission-look-anyway", args=[submission.uuid])).status_code == 409


def test_outsider_and_anonymous_cannot_look_anyway(client, outsider_client, result):
    submission = result(uncertain=True)
    assert look_anyway(outsider_client, submission).status_code == 404
    assert outsider_client.post(reverse("api:submission-look-anyway", args=[submission.uuid])).status_code == 404
    response = look_anyway(client, submission)
    assert response.status_code == 302 and reverse("login") in response["Location"]
    assert client.post(reverse("api:submission-look-anyway", args=[submission.uuid])).status_code in (401, 403)
    submission.refresh_from_db()
    assert not submission.look_anyway


def test_look_anyway_needs_a_post(owner_client, result):
    submission = result(uncertain=True)
    assert owner_client.get(reverse("diagnosis:submission-look-anyway", args=[submission.uuid])).status_code == 405


@pytest.mark.parametrize("kind,state", NOT_ASSESSED)
def test_the_api_leaves_the_ranking_out_until_asked(owner_client, result, kind, state):
    submission = result(**kind)
    data = owner_client.get(api(submission)).json()
    assert data["predictions"] == [] and data["top_predictions"] == [] and data["heatmap_url"] is None
    assert (data["result_state"], data["shows_ranking"], data["can_look_anyway"]) == (state, False, True)
    guidance = data["guidance"]
    assert guidance["tier"] == "soon" and guidance["state"] == state and guidance["retake_tips"] == list(RETAKE_TIPS)
    shown = owner_client.post(reverse("api:submission-look-anyway", args=[submission.uuid]))
    assert shown.status_code == 200
    shown = shown.json()
    assert [p["code"] for p in shown["top_predictions"]] == ["nv", "bkl", "df", "mel"]
    assert shown["shows_ranking"] and shown["guidance"]["shown_anyway"] and shown["guidance"]["tier"] == "soon"
    assert owner_client.post(reverse("api:submission-look-anyway", args=[submission.uuid])).status_code == 409


def test_an_uncertain_photo_that_resembles_cancer_stays_urgent(owner_client, result):
    submission = result({"mel": .45, "nv": .4, "bkl": .15}, uncertain=True)
    html = page(owner_client, submission)
    assert 'data-tier="urgent"' in html and 'id="predictions"' not in html


def test_the_report_ranks_only_what_the_page_ranks(owner_client, result):
    uncertain = result(uncertain=True)
    clear = result({"nv": .95, "mel": .05}, owner=uncertain.owner)
    Submission.objects.filter(pk=clear.pk).update(lesion=uncertain.lesion)
    html = owner_client.get(reverse("diagnosis:lesion-report", args=[uncertain.lesion.uuid])).content.decode()
    assert html.count('class="report-predictions"') == 1
    assert "Not assessed: the model is uncertain" in html


def test_the_lesion_history_says_not_assessed_instead_of_a_top_condition(owner_client, result):
    submission = result(uncertain=True)
    html = owner_client.get(reverse("diagnosis:lesion-detail", args=[submission.lesion.uuid])).content.decode()
    assert "not assessed" in html and ALL_LABELS["nv"] not in html
