"""Lesions, the photos submitted of them over time, and the model's predictions.

Public identifiers are UUIDs; integer keys stay internal. Every read that a
user can reach goes through the owner-scoped querysets (``for_owner``).
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from guidance import triage

from .choices import BodySite, Duration, Sex, SkinType
from .storage import photo_storage


def submission_upload_to(instance, filename):
    """A random name, so the stored path reveals nothing about the user or the upload."""
    return f"submissions/{uuid.uuid4().hex}.jpg"


def heatmap_upload_to(instance, filename):
    """Explanation overlays are stored (encrypted) beside the photos, under random names too."""
    return f"heatmaps/{uuid.uuid4().hex}.png"


class OwnedQuerySet(models.QuerySet):
    def for_owner(self, user):
        if not user.is_authenticated:
            return self.none()
        return self.filter(owner=user)


class Lesion(models.Model):
    """One spot on the body that the user follows over time."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lesions")
    name = models.CharField(max_length=100)
    body_site = models.CharField(max_length=20, choices=BodySite.choices, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # When to ask the owner to photograph this spot again (set from the urgency of its latest result).
    remind_at = models.DateTimeField(null=True, blank=True, db_index=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name


class SubmissionQuerySet(OwnedQuerySet):
    def allowed_for_training(self):
        """Photos whose owner's latest consent (any version) opts in to improving the model.

        The opt-in is separate from the consent to upload: without it, a photo is analysed for its
        owner and never used for anything else. A later "no" withdraws earlier photos too.
        """
        from accounts.models import Consent

        latest = Consent.objects.filter(user=models.OuterRef("owner")).order_by("-accepted_at", "-pk")
        return self.annotate(_owner_opt_in=models.Subquery(latest.values("improve_model")[:1])).filter(
            _owner_opt_in=True)

    def with_top_prediction(self):
        top = Prediction.objects.filter(submission=models.OuterRef("pk"), rank=1)
        return self.annotate(
            top_code=models.Subquery(top.values("code")[:1]),
            top_label=models.Subquery(top.values("label")[:1]),
            top_probability=models.Subquery(top.values("probability")[:1]),
        )


class Submission(models.Model):
    """One uploaded photo of a lesion and the state of its analysis."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Analysing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Not analysed"

    class Symptom(models.TextChoices):
        ITCHING = "itching", "Itching"
        BLEEDING = "bleeding", "Bleeding"
        PAIN = "pain", "Pain or tenderness"
        CRUSTING = "crusting", "Crusting or oozing"
        GROWING = "growing", "Getting bigger"
        CHANGING = "changing", "Changing colour or shape"
        NOT_HEALING = "not_healing", "A sore that has not healed in 4 weeks"

    FINAL_STATUSES = (Status.DONE, Status.FAILED, Status.REJECTED)

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="submissions")
    lesion = models.ForeignKey(Lesion, on_delete=models.CASCADE, related_name="submissions")
    # Encrypted at rest (diagnosis/storage.py); .open() gives the decrypted JPEG.
    image = models.FileField(upload_to=submission_upload_to, storage=photo_storage, max_length=200)
    image_sha256 = models.CharField("sha256 of the uploaded file", max_length=64, db_index=True)
    image_width = models.PositiveIntegerField(default=0)
    image_height = models.PositiveIntegerField(default=0)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    failure_reason = models.TextField(blank=True)
    uncertain = models.BooleanField(default=False, help_text="The model did not commit to one condition.")
    look_anyway = models.BooleanField(
        default=False, help_text="The person asked to see the reading of a photo that was not assessed "
                                 "(not skin, or the model uncertain); it is shown with a warning.")
    model_version = models.CharField(max_length=100, blank=True, db_index=True)
    photo_kind = models.CharField(
        max_length=12, blank=True, choices=[("dermoscopic", "Dermoscopic"), ("clinical", "Clinical (ordinary camera)")],
        help_text="How the model read the photo: through a dermatoscope or with an ordinary camera. "
                  "The urgent tier's threshold follows it.")
    attempts = models.PositiveSmallIntegerField(default=0)
    # Outbox marker: set once the broker accepted the analysis task; queued rows without it are
    # (re)sent by the dispatcher, so a broker outage at upload time loses nothing.
    enqueued_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Photos classified together (a bulk import) share one batch id.
    batch = models.UUIDField(null=True, blank=True, db_index=True)
    # The model's image embedding (float16 bytes): how far a lesion's look moved between photos.
    embedding = models.BinaryField(null=True, blank=True, editable=False)
    # Where the model looked for its top class (an encrypted PNG overlay, same size as the photo).
    heatmap = models.FileField(upload_to=heatmap_upload_to, storage=photo_storage, max_length=200, blank=True)

    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Optional context the person may give with the photo.
    age = models.PositiveSmallIntegerField(null=True, blank=True)
    sex = models.CharField(max_length=10, choices=Sex.choices, blank=True)
    anatomic_site = models.CharField(max_length=20, choices=BodySite.choices, blank=True)
    skin_type = models.CharField(max_length=3, choices=SkinType.choices, blank=True)
    duration = models.CharField(max_length=10, choices=Duration.choices, blank=True)
    symptoms = models.JSONField(default=list, blank=True)

    objects = SubmissionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.lesion} @ {self.created_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def is_final(self):
        return self.status in self.FINAL_STATUSES

    @property
    def result_state(self) -> str:
        """guidance.triage's state of a final result (assessed, uncertain, not skin), from the stored fields."""
        return triage.result_state(not_skin=self.status == self.Status.REJECTED, uncertain=self.uncertain,
                                   has_probabilities=self.status in (self.Status.DONE, self.Status.REJECTED))

    @property
    def shows_ranking(self) -> bool:
        """Whether the ranked conditions may be shown anywhere (page, API, report, timeline)."""
        return self.is_final and triage.shows_ranking(self.result_state, self.look_anyway)

    def shown_predictions(self, predictions) -> list:
        """The ranked predictions as every view may show them: all, or none for a result not assessed."""
        return list(predictions) if self.shows_ranking else []

    @property
    def can_look_anyway(self) -> bool:
        return self.is_final and self.result_state in (triage.UNCERTAIN, triage.NOT_SKIN) and not self.look_anyway


class Prediction(models.Model):
    """The probability one model version gave one class for one submission."""

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.CharField(max_length=100, db_index=True)
    code = models.CharField("class", max_length=20, db_index=True)
    label = models.CharField(max_length=100)
    probability = models.FloatField()
    rank = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["submission", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["submission", "code"], name="one_prediction_per_class"),
            models.UniqueConstraint(fields=["submission", "rank"], name="one_prediction_per_rank"),
        ]

    def __str__(self):
        return f"{self.code} {self.probability:.1%}"

    @property
    def percent(self):
        return round(self.probability * 100, 1)
