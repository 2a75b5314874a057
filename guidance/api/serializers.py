"""API representations of condition entries and of the guidance for a submission."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Condition
from ..selectors import submission_triage
from ..triage import TIER_CHOICES


class SourceSerializer(serializers.Serializer):
    title = serializers.CharField()
    url = serializers.CharField(allow_blank=True)


class ConditionSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="guidance:api-condition-detail", lookup_field="code")
    category_display = serializers.CharField(source="get_category_display")
    # "tier", as in a submission's guidance: the usual tier when this condition is the clear result.
    tier = serializers.ChoiceField(choices=TIER_CHOICES, source="urgency")
    tier_display = serializers.CharField(source="urgency_title")
    red_flags = serializers.ListField(child=serializers.CharField(), source="red_flag_list")
    sources = serializers.SerializerMethodField()

    class Meta:
        model = Condition
        fields = ["code", "url", "name", "category", "category_display", "summary", "description", "appearance",
                  "causes_and_risk_factors", "usual_treatments", "contagious", "contagious_note", "red_flags",
                  "tier", "tier_display", "sources", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(SourceSerializer(many=True))
    def get_sources(self, condition):
        return [{"title": title, "url": url} for title, url in condition.source_list()]


class GuidanceSerializer(serializers.Serializer):
    tier = serializers.ChoiceField(choices=TIER_CHOICES, help_text="urgent, soon, routine or self_care.")
    title = serializers.CharField(help_text="What the tier advises, in words.")
    reasons = serializers.ListField(child=serializers.CharField(), help_text="Why, in plain language.")
    malignancy_probability = serializers.FloatField(
        allow_null=True, help_text="p(mel) + p(bcc) + p(scc) + p(akiec); null when the photo was not assessed.")


@extend_schema_field(GuidanceSerializer(allow_null=True))
class SubmissionGuidanceField(serializers.Field):
    """Read-only ``guidance`` of a submission: the urgency tier and its reasons; null until final (or failed)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("source", "*")
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, submission):
        result = submission_triage(submission)
        if result is None:
            return None
        return GuidanceSerializer({"tier": result.tier, "title": result.title, "reasons": result.reasons,
                                   "malignancy_probability": result.malignancy_probability}).data
