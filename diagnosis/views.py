"""Web pages: upload, live result, history. Every health-data page requires login."""

import uuid
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.services import has_current_consent
from guidance.selectors import TOP_N, result_guidance, submission_triage

from . import explanations, selectors, services
from .forms import UploadForm
from .photos import private_photo_response
from .throttles import UploadRateThrottle


def home(request):
    return render(request, "diagnosis/home.html")


@login_required
def upload(request):
    if not has_current_consent(request.user):
        # First upload, or the consent text changed since the last acceptance.
        return redirect(f"{reverse('consent')}?{urlencode({'next': request.get_full_path()})}")
    lesions = selectors.lesions_for(request.user)
    if request.method == "POST":
        # The API's per-user upload rate, sharing its count: one limit whichever way photos come.
        throttle = UploadRateThrottle()
        if not throttle.allow_request(request, None):
            wait = int(throttle.wait() or 60)
            return HttpResponse(f"Too many uploads: please try again in {max(1, wait // 60)} minute(s).",
                                status=429, content_type="text/plain; charset=utf-8",
                                headers={"Retry-After": str(wait)})
        form = UploadForm(request.POST, request.FILES, lesions=lesions)
        if form.is_valid():
            submission = services.create_submission(
                request.user, form.cleaned_data["image"], **form.submission_kwargs()
            )
            return redirect("diagnosis:submission-detail", submission_uuid=submission.uuid)
    else:
        initial = {}
        if lesion_uuid := request.GET.get("lesion"):
            initial["lesion"] = lesions.filter(uuid=lesion_uuid).first() if _is_uuid(lesion_uuid) else None
        form = UploadForm(initial=initial, lesions=lesions)
    return render(request, "diagnosis/upload.html", {"form": form})


def _is_uuid(value):
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@login_required
def submission_detail(request, submission_uuid):
    submission = selectors.get_submission_for(request.user, submission_uuid)
    predictions = list(submission.predictions.all())
    return render(request, "diagnosis/submission_detail.html", {
        "submission": submission,
        "top_predictions": submission.shown_predictions(predictions)[:TOP_N],
        "heatmap_pending": explanations.heatmap_pending(submission),
        "guidance": result_guidance(submission, predictions),
    })


@login_required
@require_POST
def submission_look_anyway(request, submission_uuid):
    """"This is skin, please look anyway": show a not-assessed result's reading, with a warning."""
    submission = selectors.get_submission_for(request.user, submission_uuid)
    if services.look_anyway(submission):
        messages.info(request, "Here is what the model read in the photo. It could not assess it clearly, so treat "
                               "the ranking with caution; the advice stays at least to book an appointment.")
    return redirect("diagnosis:submission-detail", submission_uuid=submission.uuid)


@login_required
@require_GET
def submission_status(request, submission_uuid):
    """Polled by the result page until the analysis is final (and its overlay, if one is coming, stored)."""
    submission = selectors.get_submission_for(request.user, submission_uuid)
    return JsonResponse(
        {"status": submission.status, "status_display": submission.get_status_display(),
         "is_final": submission.is_final, "heatmap_pending": explanations.heatmap_pending(submission)},
    )


@login_required
@require_GET
def submission_photo(request, submission_uuid):
    submission = selectors.get_submission_for(request.user, submission_uuid)
    return private_photo_response(submission.image)


@login_required
@require_GET
def submission_heatmap(request, submission_uuid):
    """The "where the model looked" overlay of the result page (owner only; 404 when none)."""
    submission = selectors.get_submission_for(request.user, submission_uuid)
    return explanations.heatmap_response(submission)


@login_required
def lesion_list(request):
    """Each spot with its latest photo's status and tier, and when to photograph it again."""
    lesions = list(selectors.lesions_for(request.user))
    latest = selectors.latest_submissions(lesions)
    rows = [{"lesion": lesion, "latest": latest.get(lesion.pk),
             "triage": submission_triage(latest[lesion.pk]) if lesion.pk in latest else None} for lesion in lesions]
    recent = selectors.submissions_for(request.user)[:10]
    return render(request, "diagnosis/lesion_list.html", {"lesions": lesions, "rows": rows, "recent": recent})


@login_required
def lesion_detail(request, lesion_uuid):
    lesion = selectors.get_lesion_for(request.user, lesion_uuid)
    return render(request, "diagnosis/lesion_detail.html", {
        "lesion": lesion,
        "history": selectors.lesion_history(lesion),
    })


@login_required
def submission_delete(request, submission_uuid):
    """Confirmation page (GET) and deletion (POST) of one photo, its results and its stored file."""
    submission = selectors.get_submission_for(request.user, submission_uuid)
    if request.method == "POST":
        lesion_uuid = submission.lesion.uuid
        services.delete_submission(submission)
        messages.success(request, "The photo and its results have been deleted.")
        return redirect("diagnosis:lesion-detail", lesion_uuid=lesion_uuid)
    return render(request, "diagnosis/confirm_delete.html", {
        "what": "this photo and its results", "cancel_url": reverse("diagnosis:submission-detail",
                                                                    args=[submission.uuid]),
    })


@login_required
def lesion_delete(request, lesion_uuid):
    """Confirmation page (GET) and deletion (POST) of a lesion with all its photos."""
    lesion = selectors.get_lesion_for(request.user, lesion_uuid)
    if request.method == "POST":
        count = services.delete_lesion(lesion)
        messages.success(request, f"“{lesion.name}” and its {count} photo(s) have been deleted.")
        return redirect("diagnosis:lesion-list")
    return render(request, "diagnosis/confirm_delete.html", {
        "what": f"“{lesion.name}” and all {lesion.submissions.count()} photo(s) of it",
        "cancel_url": reverse("diagnosis:lesion-detail", args=[lesion.uuid]),
    })
