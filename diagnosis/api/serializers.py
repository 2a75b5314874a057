"""API representations of lesions, submissions and their ranked predictions.

Only UUIDs leave the API; integer keys stay internal. The upload serializer
does no image work of its own: it hands the file to ``services.clean_upload``,
the same sanitiser the web form uses.
"""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from guidance.api.serializers import SubmissionGuidanceField
from guidance.triage import STATES

from .. import selectors, services
from ..choices import BodySite, Duration, Sex, SkinType
from ..images import ImageRejected
from ..models import Lesion, Prediction, Submission

TOP_N = 4


class TokenSerializer(serializers.Serializer):
    """The answer of POST /api/v1/auth/token/ (documentation only: the view builds it)."""

    token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`.")
    expiry = serializers.DateTimeField(required=False, allow_null=True,
                                       help_text="When the token stops working (null: never).")


class PredictionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Prediction
        fields = ["code", "label", "probability", "rank"]


class TopPredictionSerializer(serializers.Serializer):
    """The rank-1 prediction, read from the ``with_top_prediction()`` annotation."""

    code = serializers.CharField(source="top_code")
    label = serializers.CharField(source="top_label")
    probability = serializers.FloatField(source="top_probability")


def _photo_url(request, submission, route="api:submission-image"):
    url = reverse(route, kwargs={"uuid": submission.uuid})
    return request.build_absolute_uri(url) if request is not None else url


class SubmissionSerializer(serializers.ModelSerializer):
    """A submission with its status and, once done, every class ranked by probability."""

    url = serializers.HyperlinkedIdentityField(view_name="api:submission-detail", lookup_field="uuid")
    lesion = serializers.SlugRelatedField(slug_field="uuid", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    is_final = serializers.BooleanField(read_only=True)
    predictions = serializers.SerializerMethodField()
    top_predictions = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    heatmap_url = serializers.SerializerMethodField()
    guidance = SubmissionGuidanceField()  # urgency tier and reasons (guidance/triage.py)
    result_state = serializers.ChoiceField(
        choices=STATES, read_only=True,
        help_text="assessed, uncertain or not_skin once analysed (no_result while queued or if it failed). "
                  "Only an assessed result has its ranking in predictions/top_predictions.")
    shows_ranking = serializers.BooleanField(
        read_only=True, help_text="Whether predictions and top_predictions are filled: an assessed result, or one "
                                  "the person asked to see anyway (POST look-anyway/). Otherwise they are [].")
    can_look_anyway = serializers.BooleanField(
        read_only=True, help_text="A not-assessed result whose reading can be shown with POST look-anyway/.")
    # Declared so the schema says "" is a possible value (the person did not answer): a read-only
    # model field loses allow_blank, and the schema then listed only the choices.
    sex = serializers.ChoiceField(choices=Sex.choices, allow_blank=True, read_only=True)
    anatomic_site = serializers.ChoiceField(choices=BodySite.choices, allow_blank=True, read_only=True)
    skin_type = serializers.ChoiceField(choices=SkinType.choices, allow_blank=True, read_only=True)
    duration = serializers.ChoiceField(choices=Duration.choices, allow_blank=True, read_only=True)
    photo_kind = serializers.ChoiceField(
        choices=Submission._meta.get_field("photo_kind").choices, allow_blank=True, read_only=True,
        help_text="How the model read the photo once analysed: dermoscopic or clinical (an ordinary camera); the "
                  "urgent tier's threshold follows it. Empty before the analysis, or for a model without a kind probe.")

    class Meta:
        model = Submission
        fields = [
            "uuid", "url", "lesion", "status", "status_display", "is_final", "failure_reason", "uncertain",
            "result_state", "shows_ranking", "look_anyway", "can_look_anyway", "model_version", "photo_kind",
            "created_at", "started_at", "finished_at", "age", "sex", "anatomic_site", "skin_type", "duration", "symptoms",
            "predictions", "top_predictions", "image_url", "heatmap_url", "guidance",
        ]
        read_only_fields = fields

    def _ranked(self, submission):
        # Sorted in Python so a prefetch with any ordering (or none) still gives ranks in order.
        return sorted(submission.predictions.all(), key=lambda p: p.rank)

    @extend_schema_field(PredictionSerializer(many=True))
    def get_predictions(self, submission):
        return PredictionSerializer(submission.shown_predictions(self._ranked(submission)), many=True).data

    @extend_schema_field(PredictionSerializer(many=True))
    def get_top_predictions(self, submission):
        return PredictionSerializer(submission.shown_predictions(self._ranked(submission))[:TOP_N], many=True).data

    @extend_schema_field(OpenApiTypes.URI)
    def get_image_url(self, submission):
        return _photo_url(self.context.get("request"), submission)

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_heatmap_url(self, submission):
        """Where the model looked (a PNG overlay the photo's shape); null when there is none."""
        if not submission.heatmap or not submission.shows_ranking:
            return None
        return _photo_url(self.context.get("request"), submission, "api:submission-heatmap")


class SubmissionCreateSerializer(serializers.Serializer):
    """A multipart upload: the photo, optionally the lesion it shows, and optional context."""

    image = serializers.FileField(
        help_text="JPEG, PNG, WebP or HEIC photo. The type is decided by decoding the content, not the name."
    )
    lesion = serializers.UUIDField(
        required=False, allow_null=True,
        help_text="UUID of one of your lesions. Leave out to create a new lesion for this photo.",
    )
    lesion_name = serializers.CharField(
        max_length=100, required=False, allow_blank=True, help_text="Name for the new lesion (if none is given)."
    )
    age = serializers.IntegerField(min_value=0, max_value=120, required=False, allow_null=True)
    sex = serializers.ChoiceField(choices=Sex.choices, required=False, allow_blank=True)
    anatomic_site = serializers.ChoiceField(choices=BodySite.choices, required=False, allow_blank=True)
    skin_type = serializers.ChoiceField(choices=SkinType.choices, required=False, allow_blank=True)
    duration = serializers.ChoiceField(choices=Duration.choices, required=False, allow_blank=True)
    symptoms = serializers.MultipleChoiceField(choices=Submission.Symptom.choices, required=False)

    def validate_image(self, upload):
        try:
            return services.clean_upload(upload)
        except ImageRejected as exc:
            raise serializers.ValidationError(str(exc), code="rejected_image") from exc

    def validate_lesion(self, lesion_uuid):
        if lesion_uuid is None:
            return None
        # Scoped to the caller: someone else's lesion reads exactly like one that does not exist.
        lesion = selectors.lesions_for(self.context["request"].user).filter(uuid=lesion_uuid).first()
        if lesion is None:
            raise serializers.ValidationError("You have no lesion with this id.", code="does_not_exist")
        return lesion

    def validate_symptoms(self, symptoms):
        return sorted(symptoms)

    def create(self, validated_data):
        data = dict(validated_data)
        clean_image = data.pop("image")
        return services.create_submission(
            self.context["request"].user,
            clean_image,
            lesion=data.pop("lesion", None),
            lesion_name=data.pop("lesion_name", ""),
            **data,
        )


class LesionSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:lesion-detail", lookup_field="uuid")
    submissions_url = serializers.HyperlinkedIdentityField(view_name="api:lesion-submissions", lookup_field="uuid")
    photo_count = serializers.IntegerField(read_only=True)
    last_photo_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Lesion
        fields = ["uuid", "url", "name", "body_site", "created_at", "photo_count", "last_photo_at",
                  "submissions_url"]
        read_only_fields = ["uuid", "created_at"]


class LesionHistoryItemSerializer(serializers.ModelSerializer):
    """One photo in a lesion's history, with only its top prediction."""

    url = serializers.HyperlinkedIdentityField(view_name="api:submission-detail", lookup_field="uuid")
    top_prediction = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()

    class Meta:
        model = Submission
        fields = ["uuid", "url", "status", "uncertain", "model_version", "created_at", "finished_at",
                  "top_prediction", "image_url"]
        read_only_fields = fields

    @extend_schema_field(TopPredictionSerializer(allow_null=True))
    def get_top_prediction(self, submission):
        if getattr(submission, "top_code", None) is None or not submission.shows_ranking:
            return None
        return TopPredictionSerializer(submission).data

    @extend_schema_field(OpenApiTypes.URI)
    def get_image_url(self, submission):
        return _photo_url(self.context.get("request"), submission)
