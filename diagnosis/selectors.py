"""Reads scoped to the requesting user: another user's objects simply do not exist (404)."""

from django.db.models import Count, Max, Prefetch
from django.shortcuts import get_object_or_404

from .models import Lesion, Prediction, Submission


def lesions_for(user):
    # Explicit order: the aggregate annotation drops Meta.ordering.
    return Lesion.objects.for_owner(user).annotate(
        photo_count=Count("submissions"), last_photo_at=Max("submissions__created_at")
    ).order_by("-created_at", "-pk")


def get_lesion_for(user, lesion_uuid):
    return get_object_or_404(Lesion.objects.for_owner(user), uuid=lesion_uuid)


def submissions_for(user):
    return (
        Submission.objects.for_owner(user)
        .select_related("lesion")
        .with_top_prediction()
    )


def lesion_history(lesion):
    """The lesion's photos oldest first, each with its top prediction."""
    return lesion.submissions.with_top_prediction().order_by("created_at")


def get_submission_for(user, submission_uuid):
    queryset = Submission.objects.for_owner(user).select_related("lesion").prefetch_related(
        Prefetch("predictions", queryset=Prediction.objects.order_by("rank"))
    )
    return get_object_or_404(queryset, uuid=submission_uuid)


def latest_submissions(lesions) -> dict:
    """Each lesion's most recent photo (with its ranked predictions), keyed by lesion pk; one query."""
    latest = {}
    queryset = (Submission.objects.filter(lesion__in=lesions).select_related("lesion").order_by("-created_at", "-pk")
                .prefetch_related(Prefetch("predictions", queryset=Prediction.objects.order_by("rank"))))
    for submission in queryset:
        latest.setdefault(submission.lesion_id, submission)
    return latest
