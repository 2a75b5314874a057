"""API for following a lesion over time: its timeline (probabilities, change flags) and the PDF report.

GET /api/v1/lesions/<uuid>/timeline/ (JSON) and GET /api/v1/lesions/<uuid>/report/ (application/pdf).

A mixin for ``LesionViewSet``, so both routes sit under /api/v1/lesions/<uuid>/ and share its
owner-scoped lookup (another user's lesion is a 404).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import renderers, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from .. import selectors, timeline
from ..report import pdf_response
from .renderers import BinaryRenderer


class ChangeSerializer(serializers.Serializer):
    rule = serializers.ChoiceField(choices=[timeline.TOP_CLASS, timeline.MALIGNANCY, timeline.APPEARANCE],
                                   help_text="Which rule fired (see diagnosis/timeline.py).")
    message = serializers.CharField()


class TimelinePointSerializer(serializers.Serializer):
    """One analysed photo; ``changes`` compares it with the photo before it."""

    submission = serializers.UUIDField(source="submission.uuid")
    taken_at = serializers.DateTimeField()
    model_version = serializers.CharField()
    top_code = serializers.CharField(allow_null=True)
    probabilities = serializers.DictField(child=serializers.FloatField(), help_text="Class code to probability.")
    malignancy_probability = serializers.FloatField(
        source="malignancy", help_text="p(mel) + p(bcc) + p(scc) + p(akiec).")
    changed = serializers.BooleanField()
    changes = ChangeSerializer(many=True)


class TimelineSerializer(serializers.Serializer):
    lesion = serializers.UUIDField()
    malignancy_margin = serializers.FloatField(help_text="A rise of the malignancy sum beyond this counts as a change.")
    embedding_threshold = serializers.FloatField(help_text="A cosine distance beyond this counts as a change.")
    points = TimelinePointSerializer(many=True)


class PDFRenderer(BinaryRenderer):
    """Lets a client ask for ``Accept: application/pdf``; the PDF itself bypasses renderers."""

    media_type = "application/pdf"
    format = "pdf"


class LesionTimelineMixin:
    @extend_schema(summary="A lesion's analysed photos over time, with probabilities and change flags",
                   responses=TimelineSerializer)
    @action(detail=True, methods=["get"], url_path="timeline", serializer_class=TimelineSerializer,
            pagination_class=None)
    def timeline(self, request, uuid=None):
        lesion = selectors.get_lesion_for(request.user, uuid)
        return Response(TimelineSerializer({
            "lesion": lesion.uuid,
            "malignancy_margin": timeline.malignancy_margin(),
            "embedding_threshold": timeline.embedding_threshold(),
            "points": timeline.lesion_timeline(lesion),
        }).data)

    @extend_schema(
        summary="The lesion's report for a doctor, as PDF",
        description="Every photo with its date, top predictions, answers, urgency and reasons, the model "
                    "version and the 'not a diagnosis' notice.",
        responses={(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The report."),
                   404: OpenApiResponse(description="No such lesion for you.")},
    )
    @action(detail=True, methods=["get"], url_path="report",
            renderer_classes=[renderers.JSONRenderer, PDFRenderer])
    def report(self, request, uuid=None):
        return pdf_response(selectors.get_lesion_for(request.user, uuid))
