"""Admin: lists, filters and search render; predictions are read-only; views and changes are audited."""

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from diagnosis.models import Lesion, Prediction, Submission

pytestmark = pytest.mark.django_db

ACCESS = LogEntry.Action.ACCESS
UPDATE = LogEntry.Action.UPDATE


def health_data_access():
    """ACCESS entries about health records (log-ins are ACCESS entries about the user: accounts/audit.py)."""
    return LogEntry.objects.filter(action=ACCESS).exclude(
        content_type=ContentType.objects.get_by_natural_key("accounts", "user")
    )


def entries(obj, action):
    return LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_pk=str(obj.pk), action=action
    )


@pytest.fixture
def submission(submission_factory):
    return submission_factory(age=50, anatomic_site="back")


@pytest.fixture
def staff_client(client, django_user_model):
    """Staff without any model permission: may enter the admin, may see no health data."""
    staff = django_user_model.objects.create_user("staff", "staff@example.com", "pw-staff-123456", is_staff=True)
    client.force_login(staff)
    return client


def change_url(obj):
    return reverse(f"admin:diagnosis_{obj._meta.model_name}_change", args=[obj.pk])


def photo_url(submission):
    return reverse("admin:diagnosis_submission_photo", args=[submission.pk])


# --- index and lists ------------------------------------------------------------------------------


def test_index_lists_our_models_and_the_audit_log(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    for name in ("submission", "prediction", "lesion"):
        assert reverse(f"admin:diagnosis_{name}_changelist") in html
    assert reverse("admin:auditlog_logentry_changelist") in html


@pytest.mark.parametrize("query", [
    "", "?status__exact=done", "?status__exact=failed", "?model_version=tiny-test-1", "?uncertain__exact=0",
    "?created_at__year=2000", "?q=owner", "?q=owner%40example.com", "?o=7",
])
def test_submission_changelist_renders(admin_client, analysed, query):
    response = admin_client.get(reverse("admin:diagnosis_submission_changelist") + query)
    assert response.status_code == 200
    assert "ERRORS" not in response.content.decode()  # an invalid lookup would redirect with ?e=1


def test_submission_changelist_shows_top_prediction_and_filters(admin_client, analysed, submission_factory):
    submission_factory()  # still queued
    top = analysed.predictions.get(rank=1)
    response = admin_client.get(reverse("admin:diagnosis_submission_changelist"))
    html = response.content.decode()
    assert top.label in html
    assert str(analysed.uuid) in html
    assert response.context["cl"].result_count == 2

    done = admin_client.get(reverse("admin:diagnosis_submission_changelist") + "?status__exact=done")
    assert [s.pk for s in done.context["cl"].result_list] == [analysed.pk]


def test_submission_search_by_owner(admin_client, submission_factory, other_user):
    mine = submission_factory()
    theirs = submission_factory(owner=other_user)
    url = reverse("admin:diagnosis_submission_changelist")
    assert [s.pk for s in admin_client.get(url + "?q=outsider").context["cl"].result_list] == [theirs.pk]
    assert [s.pk for s in admin_client.get(url + "?q=owner@example.com").context["cl"].result_list] == [mine.pk]


@pytest.mark.parametrize("query", [
    "", "?code=mel", "?model_version=tiny-test-1", "?rank=1", "?submission__status__exact=done",
    "?q=owner", "?o=5", "?o=-5",
])
def test_prediction_changelist_renders(admin_client, analysed, query):
    response = admin_client.get(reverse("admin:diagnosis_prediction_changelist") + query)
    assert response.status_code == 200


def test_prediction_filters_and_sorting(admin_client, analysed, other_user, submission_factory):
    url = reverse("admin:diagnosis_prediction_changelist")
    code = analysed.predictions.get(rank=3).code

    by_code = admin_client.get(f"{url}?code={code}").context["cl"].result_list
    assert [p.code for p in by_code] == [code]
    assert [p.rank for p in admin_client.get(url + "?rank=1").context["cl"].result_list] == [1]
    assert admin_client.get(url + "?model_version=tiny-test-1").context["cl"].result_count == 12
    assert admin_client.get(url + "?model_version=other").context["cl"].result_count == 0
    assert admin_client.get(url + "?submission__status__exact=failed").context["cl"].result_count == 0
    assert admin_client.get(url + "?q=outsider").context["cl"].result_count == 0

    # The probability column is sortable both ways.
    column = admin_client.get(url).context["cl"].list_display.index("probability_display")
    ascending = [p.probability for p in admin_client.get(f"{url}?o={column}").context["cl"].result_list]
    assert ascending == sorted(ascending) and len(ascending) == 12
    descending = [p.probability for p in admin_client.get(f"{url}?o=-{column}").context["cl"].result_list]
    assert descending == sorted(ascending, reverse=True)

    labels = dict(admin_client.get(url).context["cl"].filter_specs[0].lookup_choices)
    assert labels[code] == analysed.predictions.get(code=code).label


def test_lesion_changelist_and_search(admin_client, submission):
    url = reverse("admin:diagnosis_lesion_changelist")
    response = admin_client.get(url + "?q=owner")
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


# --- predictions are read-only ----------------------------------------------------------------------


def test_predictions_cannot_be_added_changed_or_deleted(admin_client, analysed):
    prediction = analysed.predictions.get(rank=1)
    assert admin_client.get(reverse("admin:diagnosis_prediction_add")).status_code == 403

    response = admin_client.post(change_url(prediction), {"probability": "0.99", "code": "mel", "rank": "1"})
    assert response.status_code == 403
    prediction.refresh_from_db()
    assert prediction.probability != 0.99

    delete_url = reverse("admin:diagnosis_prediction_delete", args=[prediction.pk])
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403

    bulk = admin_client.post(reverse("admin:diagnosis_prediction_changelist"),
                             {"action": "delete_selected", "_selected_action": [prediction.pk], "post": "yes"})
    assert bulk.status_code in (200, 302)
    assert Prediction.objects.filter(pk=prediction.pk).exists()


def test_prediction_detail_page_is_read_only(admin_client, analysed):
    prediction = analysed.predictions.get(rank=1)
    response = admin_client.get(change_url(prediction))
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    assert 'name="_save"' not in response.content.decode()


def test_predictions_inline_on_submission_is_read_only(admin_client, analysed):
    response = admin_client.get(change_url(analysed))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="predictions-0-probability"' not in html
    assert analysed.predictions.get(rank=1).label in html


def test_deleting_a_submission_removes_its_predictions(admin_client, analysed):
    url = reverse("admin:diagnosis_submission_delete", args=[analysed.pk])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Submission.objects.filter(pk=analysed.pk).exists()
    assert not Prediction.objects.exists()
    assert entries(analysed, LogEntry.Action.DELETE).count() == 1


def test_submissions_cannot_be_added_in_admin(admin_client):
    assert admin_client.get(reverse("admin:diagnosis_submission_add")).status_code == 403


# --- photos ------------------------------------------------------------------------------------------


def test_change_page_shows_photo_through_the_admin_view_only(admin_client, submission):
    html = admin_client.get(change_url(submission)).content.decode()
    assert photo_url(submission) in html
    assert submission.image.name not in html  # the storage path is never shown or linked


def test_admin_photo_view_serves_the_photo_privately(admin_client, submission):
    response = admin_client.get(photo_url(submission))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    # admin_view() adds never_cache's directives to ours.
    assert {"private", "no-store"} <= {part.strip() for part in response["Cache-Control"].split(",")}
    assert response["X-Content-Type-Options"] == "nosniff"
    with submission.image.open("rb") as fh:
        assert b"".join(response.streaming_content) == fh.read()


def test_admin_photo_view_refuses_non_staff(client, owner_client, submission):
    for c in (client, owner_client):  # anonymous, and the photo's own (non-staff) owner
        response = c.get(photo_url(submission))
        assert response.status_code == 302
        assert reverse("admin:login") in response["Location"]
    assert not health_data_access().exists()


def test_admin_photo_view_needs_view_permission(staff_client, submission):
    assert staff_client.get(photo_url(submission)).status_code == 403
    assert staff_client.get(change_url(submission)).status_code == 403
    assert not health_data_access().exists()


def test_admin_photo_of_unknown_submission_is_404(admin_client):
    assert admin_client.get(reverse("admin:diagnosis_submission_photo", args=[999999])).status_code == 404


# --- audit trail ---------------------------------------------------------------------------------------


def test_opening_a_submission_is_logged_as_access(admin_client, admin_user, submission):
    assert not entries(submission, ACCESS).exists()
    assert admin_client.get(change_url(submission)).status_code == 200
    entry = entries(submission, ACCESS).get()
    assert entry.actor == admin_user
    assert admin_client.get(change_url(submission)).status_code == 200
    assert entries(submission, ACCESS).count() == 2  # every view, not only the first


def test_viewing_the_admin_photo_is_logged_as_access(admin_client, admin_user, submission):
    admin_client.get(photo_url(submission))
    assert entries(submission, ACCESS).get().actor == admin_user


def test_opening_a_prediction_is_logged_as_access(admin_client, admin_user, analysed):
    prediction = analysed.predictions.get(rank=2)
    admin_client.get(change_url(prediction))
    assert entries(prediction, ACCESS).get().actor == admin_user


def test_opening_a_lesion_is_logged_as_access(admin_client, submission):
    admin_client.get(change_url(submission.lesion))
    assert entries(submission.lesion, ACCESS).count() == 1


def test_lists_alone_are_not_logged_per_object(admin_client, analysed):
    admin_client.get(reverse("admin:diagnosis_submission_changelist"))
    admin_client.get(reverse("admin:diagnosis_prediction_changelist"))
    assert not health_data_access().exists()


def _change_form(submission, **changes):
    data = {
        "status": submission.status,
        "failure_reason": submission.failure_reason,
        "predictions-TOTAL_FORMS": "0",
        "predictions-INITIAL_FORMS": "0",
        "predictions-MIN_NUM_FORMS": "0",
        "predictions-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    data.update(changes)
    return data


def test_changing_status_is_logged_as_update(admin_client, admin_user, submission):
    response = admin_client.post(change_url(submission), _change_form(
        submission, status="failed", failure_reason="Photo out of focus; please retake."))
    assert response.status_code == 302, response.content
    submission.refresh_from_db()
    assert submission.status == "failed"
    entry = entries(submission, UPDATE).get()
    assert entry.actor == admin_user
    assert entry.changes_dict["status"] == ["queued", "failed"]
    assert "failure_reason" in entry.changes_dict


def test_read_only_fields_cannot_be_changed_through_the_form(admin_client, submission):
    admin_client.post(change_url(submission), _change_form(submission, age="99", model_version="forged"))
    submission.refresh_from_db()
    assert submission.age == 50 and submission.model_version == ""


def test_audit_log_is_browsable(admin_client, submission):
    admin_client.get(change_url(submission))
    response = admin_client.get(reverse("admin:auditlog_logentry_changelist") + "?action=3")
    assert response.status_code == 200
    assert response.context["cl"].result_count == LogEntry.objects.filter(action=ACCESS).count()
    entry = health_data_access().get()
    assert admin_client.get(reverse("admin:auditlog_logentry_change", args=[entry.pk])).status_code == 200


# --- re-queue action ----------------------------------------------------------------------------------


def test_requeue_action_requeues_only_failed(admin_client, admin_user, submission_factory,
                                            django_capture_on_commit_callbacks):
    failed = submission_factory()
    queued = submission_factory()
    Submission.objects.filter(pk=failed.pk).update(status="failed", failure_reason="classifier unavailable")
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(reverse("admin:diagnosis_submission_changelist"), {
            "action": "requeue_failed", "_selected_action": [failed.pk, queued.pk],
        }, follow=True)
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any("Re-queued 1" in m for m in messages), messages
    assert any("left alone" in m for m in messages), messages
    failed.refresh_from_db()
    assert (failed.status, failed.failure_reason) == ("queued", "")
    assert len(callbacks) == 1  # one analysis enqueued, after commit
    entry = entries(failed, UPDATE).get()
    assert entry.changes_dict["status"] == ["failed", "queued"]
    assert entry.actor == admin_user
    assert not entries(queued, UPDATE).exists()


def test_requeued_submission_is_analysed(admin_client, submission_factory, use_tiny_model,
                                         django_capture_on_commit_callbacks):
    failed = submission_factory()
    Submission.objects.filter(pk=failed.pk).update(status="failed")
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("admin:diagnosis_submission_changelist"),
                          {"action": "requeue_failed", "_selected_action": [failed.pk]})
    failed.refresh_from_db()
    assert failed.status == "done"
    assert failed.predictions.count() == 12


def test_lesions_cannot_be_added_in_admin(admin_client):
    assert admin_client.get(reverse("admin:diagnosis_lesion_add")).status_code == 403
    assert Lesion.objects.count() == 0


def test_one_admin_view_of_a_submission_is_one_entry_photo_included(admin_client, admin_user, submission):
    """Issue 12 item 5: the change page and the photo it embeds wrote two entries per view."""
    admin_client.get(change_url(submission))
    admin_client.get(photo_url(submission))  # the <img> of that page
    entry = entries(submission, ACCESS).get()
    assert entry.actor == admin_user and entry.additional_data == {"event": "admin_access"}


def test_the_submission_page_shows_the_tier_the_person_was_given(admin_client, analysed):
    """Issue 12 item 10: the admin submission page showed no tier."""
    from guidance.selectors import submission_triage

    html = admin_client.get(change_url(analysed)).content.decode()
    result = submission_triage(analysed)
    assert "How soon to see someone" in html and result.title in html
