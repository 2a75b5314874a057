"""The conditions API (public, read-only) and the guidance in the submission API (owner only)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from diagnosis import analysis
from guidance.models import Condition
from guidance.triage import TIERS
from ml.classes import ALL_LABELS

pytestmark = pytest.mark.django_db


def test_condition_list_is_public_and_complete(client):
    response = client.get(reverse("guidance:api-condition-list"))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(ALL_LABELS)
    assert {item["code"] for item in body["results"]} == set(ALL_LABELS)


def test_condition_detail_has_every_field(client):
    response = client.get(reverse("guidance:api-condition-detail", args=["mel"]))
    assert response.status_code == 200
    data = response.json()
    condition = Condition.objects.get(code="mel")
    assert data["name"] == condition.name and data["category"] == "cancer"
    assert data["tier"] == condition.urgency and data["tier_display"] == TIERS[condition.urgency]
    assert data["red_flags"] == condition.red_flag_list() and len(data["red_flags"]) >= 2
    assert all(source["url"].startswith("https://") for source in data["sources"])
    for field in ["summary", "description", "appearance", "causes_and_risk_factors", "usual_treatments",
                  "contagious_note"]:
        assert data[field] == getattr(condition, field)
    assert data["contagious"] is False
    assert data["url"].endswith(reverse("guidance:api-condition-detail", args=["mel"]))


def test_unknown_condition_is_a_json_404(client):
    response = client.get(reverse("guidance:api-condition-detail", args=["unicorn"]))
    assert response.status_code == 404 and response["Content-Type"].startswith("application/json")


def test_conditions_api_is_read_only(owner_client):
    url = reverse("guidance:api-condition-detail", args=["mel"])
    assert owner_client.put(url, {}, content_type="application/json").status_code == 405
    assert owner_client.delete(url).status_code == 405
    assert owner_client.post(reverse("guidance:api-condition-list"), {}).status_code == 405
    assert Condition.objects.filter(code="mel").exists()


def test_submission_api_includes_the_guidance(owner_client, use_tiny_model, submission_factory, settings):
    settings.MALIGNANCY_THRESHOLD = 0.99
    submission = submission_factory(symptoms=["bleeding", "growing"])  # two red flags: urgent for any class
    analysis.analyse_submission(submission.pk)
    data = owner_client.get(reverse("api:submission-detail", args=[submission.uuid])).json()
    guidance = data["guidance"]
    assert guidance["tier"] == "urgent" and guidance["title"] == TIERS["urgent"]
    assert any("getting bigger" in reason for reason in guidance["reasons"])
    assert 0.0 <= guidance["malignancy_probability"] <= 1.0
    listed = owner_client.get(reverse("api:submission-list")).json()["results"][0]
    assert listed["guidance"] == guidance


def test_submission_guidance_is_null_until_final(owner_client, submission_factory):
    submission = submission_factory()
    data = owner_client.get(reverse("api:submission-detail", args=[submission.uuid])).json()
    assert data["status"] == "queued" and data["guidance"] is None


def test_schema_documents_the_new_endpoints_and_field(client):
    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert {"/api/v1/conditions/", "/api/v1/conditions/{code}/"} <= set(schema["paths"])
    assert "guidance" in schema["components"]["schemas"]["Submission"]["properties"]
    assert set(schema["components"]["schemas"]["TierEnum"]["enum"]) == set(TIERS)
