"""API for consent and data export (routed under /api/v1/ with the diagnosis endpoints)."""

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, renderers, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from diagnosis.api.renderers import BinaryRenderer

from . import services

CONSENT_REQUIRED = (
    "Accept the current consent (POST /api/v1/consent/ with {\"accept\": true}) before uploading photos."
)


class HasCurrentConsent(permissions.BasePermission):
    """Uploads need the consent version in force (settings.CONSENT_VERSION); reads do not."""

    message = CONSENT_REQUIRED

    def has_permission(self, request, view):
        return getattr(view, "action", None) != "create" or services.has_current_consent(request.user)


class ConsentStatusSerializer(serializers.Serializer):
    current_version = serializers.IntegerField(help_text="The consent version in force.")
    accepted = serializers.BooleanField(help_text="Whether you accepted the version in force.")
    accepted_at = serializers.DateTimeField(allow_null=True)
    improve_model = serializers.BooleanField(help_text="Your photos may be used to improve the model.")


class ConsentAcceptSerializer(serializers.Serializer):
    accept = serializers.BooleanField(help_text="Must be true: you accept the consent text shown on the web site.")
    improve_model = serializers.BooleanField(default=False, help_text="Optional, separate opt-in.")

    def validate_accept(self, value):
        if value is not True:
            raise serializers.ValidationError("Consent is given by sending accept=true.")
        return value


def _status(user):
    consent = services.current_consent(user)
    return {"current_version": settings.CONSENT_VERSION, "accepted": consent is not None,
            "accepted_at": consent.accepted_at if consent else None,
            "improve_model": bool(consent and consent.improve_model)}


@extend_schema(tags=["account"])
class ConsentView(APIView):
    @extend_schema(summary="Your consent status", responses=ConsentStatusSerializer)
    def get(self, request):
        return Response(ConsentStatusSerializer(_status(request.user)).data)

    @extend_schema(summary="Accept the consent version in force", request=ConsentAcceptSerializer,
                   responses={201: ConsentStatusSerializer, 400: OpenApiResponse(description="accept was not true")})
    def post(self, request):
        serializer = ConsentAcceptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.accept_consent(request.user, improve_model=serializer.validated_data["improve_model"],
                                request=request)
        return Response(ConsentStatusSerializer(_status(request.user)).data, status=status.HTTP_201_CREATED)


class ZipRenderer(BinaryRenderer):
    """Lets a client ask for ``Accept: application/zip`` (errors are still JSON, as documented)."""

    media_type = "application/zip"
    format = "zip"


@extend_schema(tags=["account"])
class ExportView(APIView):
    renderer_classes = [renderers.JSONRenderer, ZipRenderer]

    @extend_schema(summary="Download all your data (zip of photos + data.json)",
                   responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY)})
    def get(self, request):
        response = HttpResponse(services.export_zip(request.user, request=request), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="skinsite-data-{timezone.now():%Y%m%d}.zip"'
        return response
