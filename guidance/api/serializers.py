"""API representations of condition entries and of the guidance for a submission."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import AssistantConversation, AssistantMessage, Condition, ReferralContact
from ..selectors import referrals, submission_triage
from ..triage import STATES, TIER_CHOICES


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


class ReferralContactSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display")

    class Meta:
        model = ReferralContact
        fields = ["name", "kind", "kind_display", "phone", "booking_url", "address", "region", "notes"]
        read_only_fields = fields


class GuidanceSerializer(serializers.Serializer):
    tier = serializers.ChoiceField(choices=TIER_CHOICES, help_text="urgent, soon, routine or self_care.")
    title = serializers.CharField(help_text="What the tier advises, in words.")
    reasons = serializers.ListField(child=serializers.CharField(), help_text="Why, in plain language.")
    malignancy_probability = serializers.FloatField(
        allow_null=True, help_text="p(mel) + p(bcc) + p(scc) + p(akiec); null when the photo was not assessed.")
    referrals = ReferralContactSerializer(
        many=True, help_text="Where to get seen, as configured by the service's staff for this tier.")
    referral_note = serializers.CharField(
        allow_blank=True, help_text="For urgent or soon with no contact configured: advice to contact a GP.")
    state = serializers.ChoiceField(choices=STATES, help_text="assessed, uncertain, not_skin or no_result.")
    state_title = serializers.CharField(help_text="The state in words.")
    shown_anyway = serializers.BooleanField(help_text="The person asked to see a not-assessed result's ranking.")
    shows_ranking = serializers.BooleanField(help_text="Whether the ranked conditions may be shown.")
    retake_tips = serializers.ListField(
        child=serializers.CharField(), help_text="How to take a photo that can be assessed; [] when assessed.")
    evidence = serializers.CharField(
        allow_blank=True, help_text="The summed skin-cancer probability in plain words; '' when not used.")
    borderline = serializers.BooleanField(help_text="The reading is close to the urgent threshold.")
    noted = serializers.ListField(
        child=serializers.CharField(), help_text="What the person told us that did not change the tier.")


def guidance_data(result, contacts=None):
    """The ``guidance`` representation of a :class:`~guidance.triage.TriageResult` (None stays None)."""
    if result is None:
        return None
    found = referrals(result.tier, contacts)
    return GuidanceSerializer({"tier": result.tier, "title": result.title, "reasons": result.reasons,
                               "malignancy_probability": result.malignancy_probability,
                               "referrals": found["contacts"], "referral_note": found["fallback"],
                               "state": result.state, "state_title": result.state_title,
                               "shown_anyway": result.shown_anyway, "shows_ranking": result.shows_ranking,
                               "retake_tips": list(result.retake_tips), "evidence": result.evidence,
                               "borderline": result.borderline, "noted": result.noted}).data


@extend_schema_field(GuidanceSerializer(allow_null=True))
class SubmissionGuidanceField(serializers.Field):
    """Read-only ``guidance`` of a submission: the urgency tier and its reasons; null until final (or failed)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("source", "*")
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, submission):
        loaded = self._loaded(submission)
        return guidance_data(submission_triage(submission, state=loaded["states"].get(submission.pk)),
                             contacts=loaded["contacts"])

    def _loaded(self, submission):
        """Assistant states and referral contacts read once per list of submissions, not once per item."""
        cache = getattr(self, "_cache", None)
        if cache is None or submission.pk not in cache["pks"]:
            root = self.root
            items = root.instance if isinstance(root, serializers.ListSerializer) else None
            pks = {item.pk for item in items or [] if hasattr(item, "pk")} | {submission.pk}
            cache = self._cache = {
                "pks": pks,
                "states": dict(AssistantConversation.objects.filter(submission_id__in=pks)
                               .values_list("submission_id", "state")),
                "contacts": list(ReferralContact.objects.filter(active=True)),
            }
        return cache


class AssistantMessageSerializer(serializers.ModelSerializer):
    tier = serializers.ChoiceField(choices=TIER_CHOICES, allow_blank=True,
                                   help_text="The tier after an assistant message (blank for the person's).")

    class Meta:
        model = AssistantMessage
        fields = ["role", "text", "tier", "understood", "created_at"]
        read_only_fields = fields


class OptionSerializer(serializers.Serializer):
    value = serializers.CharField(help_text="Send this as `message` to choose the option.")
    label = serializers.CharField()


class QuestionSerializer(serializers.Serializer):
    key = serializers.CharField()
    text = serializers.CharField()
    help = serializers.CharField(help_text="What the question means, if the person asks.")
    options = OptionSerializer(many=True, help_text="Quick replies; any free text is accepted too.")


class ReplySerializer(serializers.Serializer):
    text = serializers.CharField()
    understood = serializers.BooleanField(help_text="False when the assistant did not understand the message.")
    intent = serializers.CharField(help_text="answer, told (facts in free text), not_understood, how_soon, "
                                             "contagious, what_is, treatment, referral, fear, not_noted, ...")
    tier_changed = serializers.BooleanField()


class AssistantSerializer(serializers.Serializer):
    submission = serializers.UUIDField()
    intro = serializers.CharField(allow_blank=True, help_text="The opening text, until the first message is sent.")
    messages = AssistantMessageSerializer(many=True)
    question = QuestionSerializer(allow_null=True, help_text="The question asked now; null when all are done.")
    guidance = GuidanceSerializer(allow_null=True, help_text="The tier and reasons, with the answers so far.")
    reply = ReplySerializer(required=False, help_text="Only in the answer to a POST.")


class AssistantMessageInputSerializer(serializers.Serializer):
    message = serializers.CharField(max_length=500, help_text="An answer (e.g. a quick reply's value) or a question.")


def question_data(question):
    if question is None:
        return None
    return {"key": question.key, "text": question.text, "help": question.help,
            "options": [{"value": value, "label": label} for value, label in question.options]}
