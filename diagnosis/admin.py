"""Admin for lesions, submissions and predictions, with an audit trail of who looked at what.

Changes are recorded by django-auditlog (see ``audit.py``). Looking at health
data is recorded too: every render of a lesion, submission or prediction
change page writes one LogEntry with action ACCESS, the event name
``admin_access`` and the admin as actor (``audit.log_admin_access``); the photo
the page embeds is part of that view, and is logged on its own only when opened
alone. The entries are browsed, filtered by event and searched in the admin
under "Audit log · Log entries" (accounts/admin.py).

Predictions are the model's output: nobody edits them by hand.
Photos are never linked by storage path; they are shown through an
admin-only view that checks staff access and logs it.
"""

from functools import cached_property

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from guidance.selectors import submission_triage

from . import services
from .audit import log_admin_access, log_requeued
from .models import Lesion, Prediction, Submission
from .photos import private_photo_response


class AccessLoggedAdminMixin:
    """Record an ACCESS log entry each time an object's change (or read-only view) page is shown."""

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        log_admin_access(request, obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


@admin.register(Lesion)
class LesionAdmin(AccessLoggedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "uuid", "owner", "body_site", "photo_count", "created_at"]
    list_filter = ["body_site", "created_at"]
    search_fields = ["owner__username", "owner__email", "name", "=uuid"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    readonly_fields = ["uuid", "owner", "created_at"]
    fields = ["uuid", "owner", "name", "body_site", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(photo_count=Count("submissions"))

    @admin.display(description="Photos", ordering="photo_count")
    def photo_count(self, lesion):
        return lesion.photo_count

    def has_add_permission(self, request):
        return False  # lesions are created by their owners (web or API)


class PredictionInline(admin.TabularInline):
    model = Prediction
    fields = ["rank", "code", "label", "probability", "model_version", "created_at"]
    readonly_fields = fields
    ordering = ["rank"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Submission)
class SubmissionAdmin(AccessLoggedAdminMixin, admin.ModelAdmin):
    list_display = ["uuid", "owner", "lesion", "status", "uncertain", "model_version", "top_prediction",
                    "created_at"]
    list_filter = ["status", "model_version", "uncertain", "photo_kind", "created_at"]
    date_hierarchy = "created_at"
    search_fields = ["owner__username", "owner__email", "=uuid", "=batch"]  # batch: a bulk import's id
    list_select_related = ["owner", "lesion"]
    inlines = [PredictionInline]
    actions = ["requeue_failed"]
    # Status and failure reason may be corrected by staff (auditlog records each change);
    # the photo, the owner and what the person told us are not editable here.
    fieldsets = [
        (None, {"fields": ["uuid", "owner", "lesion", "photo", "status", "failure_reason", "uncertain",
                           "look_anyway", "model_version", "photo_kind", "attempts"]}),
        ("Advice the person was given", {"fields": ["tier", "tier_reasons"]}),
        ("Times", {"fields": ["created_at", "updated_at", "started_at", "finished_at"]}),
        ("Context given by the person", {"fields": ["age", "sex", "anatomic_site", "skin_type", "duration",
                                                    "symptoms"]}),
        ("Stored file", {"classes": ["collapse"], "fields": ["image_sha256", "image_width", "image_height"]}),
    ]
    readonly_fields = ["uuid", "owner", "lesion", "photo", "uncertain", "look_anyway", "tier", "tier_reasons",
                       "model_version", "photo_kind", "attempts",
                       "created_at", "updated_at", "started_at", "finished_at",
                       "age", "sex", "anatomic_site", "skin_type", "duration", "symptoms",
                       "image_sha256", "image_width", "image_height"]

    def get_queryset(self, request):
        return super().get_queryset(request).with_top_prediction()

    def has_add_permission(self, request):
        return False  # uploads go through the sanitiser (web form or API), never the admin

    @admin.display(description="Top prediction", ordering="top_probability")
    def top_prediction(self, submission):
        if getattr(submission, "top_code", None) is None:
            return "—"
        return f"{submission.top_label} ({submission.top_probability:.0%})"

    @staticmethod
    def _triage(submission):
        """The person's triage, computed once per page for the two fields that show it."""
        if not hasattr(submission, "_admin_triage"):
            submission._admin_triage = submission_triage(submission)
        return submission._admin_triage

    @admin.display(description="How soon to see someone")
    def tier(self, submission):
        """The tier the person's result page shows, from the same rule (guidance/triage.py)."""
        result = self._triage(submission)
        if result is None:
            return "— (no final result)"
        return f"{result.title} ({result.state_title.lower()})" if not result.assessed else result.title

    @admin.display(description="Why")
    def tier_reasons(self, submission):
        result = self._triage(submission)
        return format_html_join("", "<p>{}</p>", ((reason,) for reason in result.reasons)) if result else "—"

    @admin.display(description="Photo")
    def photo(self, submission):
        if not submission.pk or not submission.image:
            return "—"
        url = reverse("admin:diagnosis_submission_photo", args=[submission.pk])
        return format_html('<a href="{0}"><img src="{0}" alt="Submitted photo" style="max-width:320px;'
                           'max-height:320px"></a>', url)

    def get_urls(self):
        photo = path("<path:object_id>/photo/", self.admin_site.admin_view(self.photo_view),
                     name="diagnosis_submission_photo")
        return [photo, *super().get_urls()]

    def photo_view(self, request, object_id):
        # admin_view() already demands an active staff user; the model permission is checked too.
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied
        submission = self.get_object(request, object_id)
        if submission is None:
            raise Http404("No such submission.")
        if not self.has_view_permission(request, submission):
            raise PermissionDenied
        response = private_photo_response(submission.image)
        log_admin_access(request, submission, part_of_page=True)
        return response

    @admin.action(description="Re-queue failed submissions", permissions=["change"])
    def requeue_failed(self, request, queryset):
        requeued = 0
        for submission in queryset.filter(status=Submission.Status.FAILED):
            if services.requeue_submission(submission):
                log_requeued(submission)
                self.log_change(request, submission, "Re-queued for analysis.")
                requeued += 1
        skipped = queryset.count() - requeued
        if requeued:
            self.message_user(request, f"Re-queued {requeued} failed submission(s).", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} selected submission(s) had not failed and were left alone.",
                              messages.WARNING)


class PredictionLabelFilter(admin.SimpleListFilter):
    title = "label"
    parameter_name = "code"

    def lookups(self, request, model_admin):
        return Prediction.objects.order_by("code").values_list("code", "label").distinct()

    def queryset(self, request, queryset):
        return queryset.filter(code=self.value()) if self.value() else queryset


@admin.register(Prediction)
class PredictionAdmin(AccessLoggedAdminMixin, admin.ModelAdmin):
    list_display = ["submission_uuid", "owner", "rank", "code", "label", "probability_display", "model_version",
                    "submission_status", "created_at"]
    list_filter = [PredictionLabelFilter, "model_version", "rank", "submission__status"]
    search_fields = ["submission__owner__username", "submission__owner__email", "=submission__uuid"]
    list_select_related = ["submission", "submission__owner"]
    ordering = ["-created_at", "submission", "rank"]
    date_hierarchy = "created_at"

    @admin.display(description="Submission", ordering="submission__created_at")
    def submission_uuid(self, prediction):
        return prediction.submission.uuid

    @admin.display(description="Owner", ordering="submission__owner__username")
    def owner(self, prediction):
        return prediction.submission.owner

    @admin.display(description="Probability", ordering="probability")
    def probability_display(self, prediction):
        return f"{prediction.probability:.1%}"

    @admin.display(description="Submission status", ordering="submission__status")
    def submission_status(self, prediction):
        return prediction.submission.get_status_display()

    # The model's output is evidence: it can be read, never written by hand.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Never deleted on their own. Deleting a submission (or lesion) still removes its
        # predictions: Django asks this admin about the cascade from the other admin's URLs.
        match = request.resolver_match
        if match is None or match.url_name in self._own_url_names:
            return False
        return super().has_delete_permission(request, obj)

    @cached_property
    def _own_url_names(self):
        return {pattern.name for pattern in self.urls if pattern.name}
