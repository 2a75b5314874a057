"""The symptom assistant on the result page (plain forms) and its API, stored per submission; referral contacts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from accounts.services import issue_api_token
from diagnosis.models import Prediction, Submission
from guidance import selectors
from guidance.models import AssistantConversation, AssistantMessage, ReferralContact
from guidance.selectors import GP_FALLBACK
from guidance.triage import TIERS
from ml.classes import ALL_LABELS

pytestmark = pytest.mark.django_db

MOLE = {"nv": .9, "bkl": .06, "mel": .04}
MELANOMA = {"mel": .7, "nv": .3}
TINEA = {"tinea": .85, "ad": .15}


@pytest.fixture
def result(submission_factory):
    """A final result with chosen probabilities (rows as store_result writes them; no model run)."""

    def make(probabilities=MOLE, status=Submission.Status.DONE, owner=None, **context):
        submission = submission_factory(owner=owner, **context)
        ranked = sorted(probabilities.items(), key=lambda item: -item[1])
        Prediction.objects.bulk_create(
            Prediction(submission=submission, model_version="test", code=code, label=ALL_LABELS[code],
                       probability=p, rank=rank) for rank, (code, p) in enumerate(ranked, start=1))
        Submission.objects.filter(pk=submission.pk).update(status=status, model_version="test",
                                                           finished_at=timezone.now())
        submission.refresh_from_db()
        return submission

    return make


def page(client, submission):
    return client.get(reverse("diagnosis:submission-detail", args=[submission.uuid]))


def post(client, submission, message):
    return client.post(reverse("guidance:assistant-message", args=[submission.uuid]), {"message": message})


def api_url(submission):
    return reverse("guidance:api-assistant", args=[submission.uuid])


# --- the page --------------------------------------------------------------------------------------

def test_result_page_shows_the_opening_and_first_question_with_quick_replies(owner_client, result):
    submission = result()
    html = page(owner_client, submission).content.decode()
    panel = html.split('id="assistant"')[1]
    assert "ABCDE signs of melanoma" in panel
    assert 'data-key="asymmetry"' in panel
    for label in ["Yes", "No", "Not sure", "Skip"]:
        assert f'value="{label.lower()}">{label}</button>' in panel
    assert reverse("guidance:assistant-message", args=[submission.uuid]) in panel
    assert not AssistantConversation.objects.exists()  # looking stores nothing


def test_answers_are_stored_across_requests_and_change_the_tier_on_the_page(owner_client, result):
    submission = result(MOLE)
    assert page(owner_client, submission).context["guidance"]["triage"].tier == "routine"
    response = post(owner_client, submission, "yes")
    assert response.status_code == 302
    assert response["Location"] == reverse("diagnosis:submission-detail", args=[submission.uuid]) + "#assistant-latest"
    assert post(owner_client, submission, "yes").status_code == 302  # border: two ABCD signs

    response = page(owner_client, submission)
    html = response.content.decode()
    assert 'data-tier="soon"' in html and TIERS["soon"] in html
    assert "two or more of the ABCDE warning signs" in html.split('id="tier-reasons"')[1].split("</ul>")[0]
    assert 'data-key="colours"' in html
    conversation = AssistantConversation.objects.get(submission=submission)
    roles = list(conversation.messages.values_list("role", flat=True))
    assert roles == ["assistant", "person", "assistant", "person", "assistant"]
    last = conversation.messages.last()
    assert last.tier == "soon" and "That changes my advice" in last.text
    assert escape(last.text) in html
    assert html.count('id="assistant-latest"') == 1
    assert escape(last.text) in html.split('id="assistant-latest"')[1].split("</li>")[0]
    assert conversation.state["answers"] == {"asymmetry": True, "border": True}
    # The submission API's guidance uses the same answers.
    data = owner_client.get(reverse("api:submission-detail", args=[submission.uuid])).json()
    assert data["guidance"]["tier"] == "soon"


def test_a_question_it_does_not_understand_is_said_plainly(owner_client, result):
    submission = result()
    post(owner_client, submission, "Can you book me a taxi?")
    html = page(owner_client, submission).content.decode()
    assert "I did not understand that" in html and "not-understood" in html
    message = AssistantMessage.objects.filter(role="assistant").last()
    assert message.understood is False
    assert 'data-key="asymmetry"' in html  # still the same question


def test_upload_answers_are_not_asked_again_and_count(owner_client, result):
    submission = result(MOLE, age=63, duration="months", symptoms=["itching"])
    assert page(owner_client, submission).context["guidance"]["triage"].tier == "soon"  # itching, new at 63
    for _ in range(9):  # A-E and bleeding, pain, crusting, not healing: itching, duration and age are known
        post(owner_client, submission, "skip")
    html = page(owner_client, submission).content.decode()
    assert 'data-key="personal_history"' in html


def test_the_assistant_is_not_offered_before_a_result(owner_client, result):
    submission = result(status=Submission.Status.QUEUED)
    assert 'id="assistant"' not in page(owner_client, submission).content.decode()
    response = post(owner_client, submission, "yes")
    assert response.status_code == 302
    assert not AssistantConversation.objects.exists()


def test_a_not_skin_result_gets_the_assistant_only_once_the_person_says_it_is_skin(owner_client, result):
    """Issue 12: a cat was asked about its asymmetry. Rejected as not skin: no assistant, until "look anyway"."""
    submission = result(MOLE, status=Submission.Status.REJECTED)
    assert 'id="assistant"' not in page(owner_client, submission).content.decode()
    post(owner_client, submission, "Is it contagious?")
    assert not AssistantConversation.objects.exists()
    owner_client.post(reverse("diagnosis:submission-look-anyway", args=[submission.uuid]))
    assert 'id="assistant"' in page(owner_client, submission).content.decode()
    post(owner_client, submission, "Is it contagious?")
    assert AssistantMessage.objects.filter(role="assistant").exists()


def test_the_assistant_api_refuses_a_not_skin_result_with_the_reason(owner_client, result):
    submission = result(MOLE, status=Submission.Status.REJECTED)
    response = owner_client.get(api_url(submission))
    assert response.status_code == 409 and "does not look like skin" in response.json()["detail"]


def test_an_empty_or_too_long_message_is_refused_without_storing(owner_client, result):
    submission = result()
    assert post(owner_client, submission, "   ").status_code == 302
    assert post(owner_client, submission, "x" * 501).status_code == 302
    assert not AssistantConversation.objects.exists()


def test_outsider_gets_404_and_stores_nothing(outsider_client, result):
    submission = result()
    assert post(outsider_client, submission, "yes").status_code == 404
    assert not AssistantConversation.objects.exists()


def test_anonymous_is_sent_to_log_in(client, result):
    submission = result()
    response = post(client, submission, "yes")
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not AssistantConversation.objects.exists()


def test_the_form_view_accepts_only_post(owner_client, result):
    submission = result()
    assert owner_client.get(reverse("guidance:assistant-message", args=[submission.uuid])).status_code == 405


def test_deleting_the_photo_deletes_the_conversation_and_the_log_keeps_no_text(owner_client, result):
    from diagnosis import services

    submission = result()
    post(owner_client, submission, "I have had melanoma, is it contagious?")
    assert AssistantMessage.objects.count() == 3
    services.delete_submission(submission)
    assert not AssistantConversation.objects.exists() and not AssistantMessage.objects.exists()
    for entry in LogEntry.objects.filter(content_type__model__in=["assistantmessage", "assistantconversation"]):
        assert "melanoma" not in str(entry.changes) and "melanoma" not in entry.object_repr


# --- the API -----------------------------------------------------------------------------------------

def test_api_conversation(owner_client, result):
    submission = result(MOLE)
    data = owner_client.get(api_url(submission)).json()
    assert data["submission"] == str(submission.uuid)
    assert data["messages"] == [] and "ABCDE" in data["intro"]
    assert data["question"]["key"] == "asymmetry"
    assert {"value": "not sure", "label": "Not sure"} in data["question"]["options"]
    assert data["guidance"]["tier"] == "routine"

    data = owner_client.post(api_url(submission), {"message": "yes"}, content_type="application/json").json()
    assert data["reply"] == {"text": data["messages"][-1]["text"], "understood": True, "intent": "answer",
                             "tier_changed": False}
    data = owner_client.post(api_url(submission), {"message": "yes"}, content_type="application/json").json()
    assert data["reply"]["tier_changed"] is True
    assert data["guidance"]["tier"] == "soon"
    assert any("two or more" in reason for reason in data["guidance"]["reasons"])
    assert data["question"]["key"] == "colours" and data["intro"] == ""
    assert [m["role"] for m in data["messages"]] == ["assistant", "person", "assistant", "person", "assistant"]

    data = owner_client.post(api_url(submission), {"message": "What is a dermatofibroma?"},
                             content_type="application/json").json()
    assert data["reply"]["intent"] == "what_is" and "firm little bump" in data["reply"]["text"]
    data = owner_client.post(api_url(submission), {"message": "banana phone"}, content_type="application/json").json()
    assert data["reply"]["understood"] is False and "did not understand" in data["reply"]["text"]
    assert owner_client.get(api_url(submission)).json()["messages"] == data["messages"]


def test_api_with_a_token(user, result, client):
    submission = result(TINEA)
    _, key = issue_api_token(user)
    response = client.post(api_url(submission), {"message": "is it contagious?"}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
    assert response.json()["reply"]["text"].startswith("Your photo most resembles Tinea")


def test_api_rejects_a_missing_message(owner_client, result):
    submission = result()
    response = owner_client.post(api_url(submission), {}, content_type="application/json")
    assert response.status_code == 400 and "message" in response.json()


def test_api_before_a_result_is_409(owner_client, result):
    submission = result(status=Submission.Status.PROCESSING)
    assert owner_client.get(api_url(submission)).status_code == 409
    assert owner_client.post(api_url(submission), {"message": "yes"},
                             content_type="application/json").status_code == 409


def test_api_outsider_404(outsider_client, result):
    submission = result()
    assert outsider_client.get(api_url(submission)).status_code == 404
    assert outsider_client.post(api_url(submission), {"message": "yes"},
                                content_type="application/json").status_code == 404
    assert not AssistantConversation.objects.exists()


def test_api_anonymous_401(client, result):
    submission = result()
    assert client.get(api_url(submission)).status_code == 401
    assert client.post(api_url(submission), {"message": "yes"}, content_type="application/json").status_code == 401


def test_api_schema_documents_the_assistant(client):
    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operations = schema["paths"]["/api/v1/submissions/{submission_uuid}/assistant/"]
    assert set(operations) >= {"get", "post"}
    assert operations["get"]["parameters"][0]["schema"]["format"] == "uuid"
    guidance = schema["components"]["schemas"]["Guidance"]["properties"]
    assert {"referrals", "referral_note"} <= set(guidance)


# --- referral contacts -----------------------------------------------------------------------------

def contact(**fields):
    values = {"name": "Riverside Skin Clinic", "kind": "dermatology", "phone": "+44 20 7946 0000",
              "booking_url": "https://clinic.example.org/book", "region": "Riverside"} | fields
    return ReferralContact.objects.create(**values)


def test_contacts_are_shown_with_an_urgent_result(owner_client, result):
    contact()
    contact(name="Hidden Clinic", active=False)
    contact(name="Pharmacy Corner", kind="pharmacy", show_for_urgent=False, show_for_soon=False,
            show_for_self_care=True)
    html = page(owner_client, result(MELANOMA)).content.decode()
    box = html.split('id="guidance"')[1].split("</section>")[0]
    assert "Riverside Skin Clinic" in box and 'href="tel:+442079460000"' in box
    assert 'href="https://clinic.example.org/book"' in box
    assert "Hidden Clinic" not in html and "Pharmacy Corner" not in html
    assert GP_FALLBACK not in html


def test_contacts_for_routine_only_when_ticked(owner_client, result):
    contact()
    html = page(owner_client, result(MOLE)).content.decode()
    assert "Riverside Skin Clinic" not in html and GP_FALLBACK not in html
    contact(name="Family Practice", kind="gp", show_for_routine=True)
    html = page(owner_client, result(MOLE)).content.decode()
    assert "Family Practice" in html and "Riverside Skin Clinic" not in html


def test_without_contacts_urgent_says_contact_your_gp(owner_client, result):
    html = page(owner_client, result(MELANOMA)).content.decode()
    assert escape(GP_FALLBACK) in html


def test_contacts_follow_the_tier_after_the_assistant_answers(owner_client, result):
    contact()
    submission = result(MOLE)
    assert "Riverside Skin Clinic" not in page(owner_client, submission).content.decode()
    for _ in range(4):
        post(owner_client, submission, "skip")
    post(owner_client, submission, "it got bigger")  # evolving: a red flag on a spot
    html = page(owner_client, submission).content.decode()
    assert 'data-tier="urgent"' in html and "Riverside Skin Clinic" in html


def test_api_guidance_lists_the_contacts(owner_client, result):
    contact(address="1 River Road\nRiverside", notes="Referral letter not needed.")
    data = owner_client.get(reverse("api:submission-detail", args=[result(MELANOMA).uuid])).json()["guidance"]
    assert data["referrals"] == [{"name": "Riverside Skin Clinic", "kind": "dermatology",
                                  "kind_display": "Dermatology clinic", "phone": "+44 20 7946 0000",
                                  "booking_url": "https://clinic.example.org/book",
                                  "address": "1 River Road\nRiverside", "region": "Riverside",
                                  "notes": "Referral letter not needed."}]
    assert data["referral_note"] == ""
    ReferralContact.objects.all().delete()
    data = owner_client.get(reverse("api:submission-detail", args=[result(MELANOMA).uuid])).json()["guidance"]
    assert data["referrals"] == [] and data["referral_note"] == GP_FALLBACK


def test_no_contacts_are_shipped():
    assert not ReferralContact.objects.exists()


def test_admin_adds_a_contact_and_it_is_audited(admin_client):
    response = admin_client.post(reverse("admin:guidance_referralcontact_add"), {
        "name": "City Dermatology", "kind": "dermatology", "region": "City", "active": "on", "order": "1",
        "phone": "0123 456", "booking_url": "https://derm.example.org/", "address": "", "notes": "",
        "show_for_urgent": "on", "show_for_soon": "on"})
    assert response.status_code == 302, response.context and response.context["adminform"].errors
    added = ReferralContact.objects.get(name="City Dermatology")
    assert added.shown_for("urgent") and not added.shown_for("routine")
    assert LogEntry.objects.get_for_object(added).filter(action=LogEntry.Action.CREATE).exists()


def test_admin_shows_conversations_read_only(admin_client, owner_client, result):
    submission = result()
    post(owner_client, submission, "yes")
    conversation = AssistantConversation.objects.get()
    url = reverse("admin:guidance_assistantconversation_change", args=[conversation.pk])
    response = admin_client.get(url)
    assert response.status_code == 200 and "Thank you." in response.content.decode()
    assert not response.context["has_change_permission"]
    assert admin_client.post(url, {"state": "{}"}).status_code == 403
    assert LogEntry.objects.get_for_object(conversation).filter(action=LogEntry.Action.ACCESS).exists()


def test_selectors_merge_the_assistant_answers_with_the_upload_form(result):
    submission = result(MOLE, age=30, duration="years", symptoms=["pain"])
    state = {"answers": {"age": 58, "duration": "weeks", "bleeding": True, "asymmetry": True}}
    answers = selectors.triage_answers(submission, state)
    assert answers == {"symptoms": ["bleeding", "pain"], "age": 58, "duration": "weeks", "abcd": ["asymmetry"],
                       "history": []}


def test_the_submission_list_reads_guidance_tables_a_fixed_number_of_times(owner_client, result):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def guidance_queries():
        with CaptureQueriesContext(connection) as queries:
            response = owner_client.get(reverse("api:submission-list"))
        assert response.status_code == 200
        return len([q for q in queries.captured_queries if '"guidance_' in q["sql"]]), response.json()

    contact()
    for _ in range(2):
        result(MELANOMA)
    few, _data = guidance_queries()
    post(owner_client, result(MOLE), "yes")
    post(owner_client, Submission.objects.order_by("-created_at", "-pk").first(), "yes")
    for _ in range(3):
        result(MELANOMA)
    many, data = guidance_queries()
    assert many == few
    tiers = sorted(item["guidance"]["tier"] for item in data["results"])
    assert tiers == ["soon", "urgent", "urgent", "urgent", "urgent", "urgent"]
    assert all(item["guidance"]["referrals"][0]["name"] == "Riverside Skin Clinic" for item in data["results"])


def test_a_changed_tier_moves_the_lesions_reminder(owner_client, result, django_capture_on_commit_callbacks):
    from diagnosis.reminders import reminder_days

    submission = result(MOLE)
    with django_capture_on_commit_callbacks(execute=True):
        for message in ["skip"] * 4:
            post(owner_client, submission, message)
    submission.lesion.refresh_from_db()
    assert submission.lesion.remind_at is None  # no change of tier, nothing scheduled
    with django_capture_on_commit_callbacks(execute=True):
        post(owner_client, submission, "yes, it got bigger")  # evolving: urgent
    submission.lesion.refresh_from_db()
    assert submission.lesion.remind_at == submission.finished_at + timedelta(days=reminder_days("urgent"))
