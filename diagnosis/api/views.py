"""REST API: upload photos, read their status and ranked predictions, follow lesions over time.

Every object is fetched through the owner-scoped selectors, so another user's
lesion or submission is a 404, exactly like one that does not exist.
Authentication (session or token) and IsAuthenticated come from settings.
"""

from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, renderers, status, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from accounts import limits as account_limits
from accounts import services as account_services
from accounts.api import HasCurrentConsent
from skinsite.middleware import PRIVATE
from skinsite.throttling import AnonRateThrottle
from skinsite.parsers import BoundedJSONParser

from .. import explanations, selectors, services
from ..models import Prediction
from ..photos import private_photo_response
from ..throttles import UploadRateThrottle
from .renderers import BinaryRenderer
from .serializers import (
    LesionHistoryItemSerializer,
    LesionSerializer,
    SubmissionCreateSerializer,
    SubmissionSerializer,
    TokenSerializer,
)
from .timeline import LesionTimelineMixin  # GET lesions/<uuid>/timeline/ and report/ (PDF)


class JPEGRenderer(BinaryRenderer):
    """Lets a client ask for ``Accept: image/jpeg`` on the photo endpoint (errors are still JSON)."""

    media_type = "image/jpeg"
    format = "jpg"


class PNGRenderer(JPEGRenderer):
    """``Accept: image/png`` on the heatmap endpoint (same idea as JPEGRenderer)."""

    media_type = "image/png"
    format = "png"


@extend_schema(
    tags=["auth"], summary="Exchange a username and password for an API token",
    description="Needs no credentials: send none (an invalid `Authorization` header is answered 401). "
                "The body is JSON; a form (`curl -d username=... -d password=...`) is accepted too.",
    auth=[], responses={200: TokenSerializer},
)
class TokenView(ObtainAuthToken):
    """Send the token back as ``Authorization: Token <key>``."""

    # ObtainAuthToken's parsers, but JSON held to DATA_UPLOAD_MAX_MEMORY_SIZE like everywhere else
    # (it had the unbounded JSONParser). The schema documents only JSON (PARSER_WHITELIST in settings).
    parser_classes = [BoundedJSONParser, FormParser, MultiPartParser]
    # DRF's ObtainAuthToken turns throttling off (throttle_classes = ()): a password-guessing
    # endpoint is exactly where the anonymous rate must apply. Axes locks out by username as well.
    throttle_classes = [AnonRateThrottle]
    # It authenticates by username and password only: an expired token still sent in the
    # Authorization header (a client that is logging in again) must not turn the answer into 401.
    authentication_classes = []

    def finalize_response(self, request, response, *args, **kwargs):
        # The answer holds a secret, and the caller is anonymous here (no authenticators), so
        # PrivateResponsesMiddleware would leave it cacheable: mark it private here.
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = PRIVATE
        return response

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except ValidationError:
            # django-axes marks the request it refused, and so does the per-address limit on failed
            # log-ins (accounts/limits.py); DRF would answer either as a plain failed log-in.
            wait = account_limits.limited_for(request)
            if wait or getattr(request, "axes_locked_out", False):
                response = Response({"detail": "Too many failed log-ins: try again later."},
                                    status=status.HTTP_429_TOO_MANY_REQUESTS)
                if wait:
                    response["Retry-After"] = str(wait)
                return response
            raise
        # A new knox token per log-in (hashed at rest, expires after API_TOKEN_TTL), not DRF's one
        # everlasting key; "token" stays the key clients read.
        token, key = account_services.issue_api_token(serializer.validated_data["user"])
        return Response({"token": key, "expiry": token.expiry})


@extend_schema(tags=["submissions"])
@extend_schema_view(
    list=extend_schema(summary="List your submissions, newest first"),
    retrieve=extend_schema(summary="A submission's status and ranked predictions"),
    destroy=extend_schema(summary="Delete a photo, its predictions and its stored file"),
)
class SubmissionViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = SubmissionSerializer
    lookup_field = "uuid"
    lookup_value_converter = "uuid"
    # Only uploads send a body; photos need multipart.
    parser_classes = [MultiPartParser]
    permission_classes = [permissions.IsAuthenticated, HasCurrentConsent]

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.action == "create":
            throttles.append(UploadRateThrottle())
        return throttles

    def get_serializer_class(self):
        # POST (including the browsable API's upload form) takes the upload fields.
        if self.request is not None and self.request.method == "POST":
            return SubmissionCreateSerializer
        return SubmissionSerializer

    def get_queryset(self):
        return selectors.submissions_for(self.request.user).prefetch_related(
            Prefetch("predictions", queryset=Prediction.objects.order_by("rank"))
        )

    def get_object(self):
        submission = selectors.get_submission_for(self.request.user, self.kwargs["uuid"])
        self.check_object_permissions(self.request, submission)
        return submission

    @extend_schema(
        summary="Upload a photo for analysis",
        description=(
            "Multipart upload. The photo is checked and cleaned (orientation applied, metadata removed) "
            "and queued for analysis; poll the returned `url` until `is_final` is true. A file that is not "
            "an accepted image is answered 400 with `{\"image\": [message]}` and nothing is stored. "
            "Until the current consent is accepted (`POST /api/v1/consent/`) the answer is 403."
        ),
        request={"multipart/form-data": SubmissionCreateSerializer},
        responses={201: SubmissionSerializer, 400: OpenApiResponse(description="Invalid upload"),
                   403: OpenApiResponse(description="Consent not accepted yet"),
                   413: OpenApiResponse(description="Request too large"),
                   429: OpenApiResponse(description="Too many uploads")},
    )
    def create(self, request, *args, **kwargs):
        upload = self.get_serializer(data=request.data)
        upload.is_valid(raise_exception=True)
        submission = upload.save()
        # Re-read through the selector so the response has the same shape as a GET.
        submission = selectors.get_submission_for(request.user, submission.uuid)
        data = SubmissionSerializer(submission, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": str(data["url"])})

    def perform_destroy(self, instance):
        services.delete_submission(instance)

    @extend_schema(
        summary='"This is skin, please look anyway": show a not-assessed result\'s ranking',
        description=(
            "For a result that was not assessed (`can_look_anyway`: not skin, or the model uncertain), fill "
            "`predictions` and `top_predictions` with the model's reading, shown with a warning; the guidance "
            "stays at least `soon`. Recorded in the audit log. 409 when there is nothing to show (an assessed, "
            "failed or unfinished result, or asked before)."
        ),
        request=None,
        responses={200: SubmissionSerializer, 404: OpenApiResponse(description="No such submission for you."),
                   409: OpenApiResponse(description="Nothing to show: assessed, not final, failed or asked before.")},
    )
    @action(detail=True, methods=["post"], url_path="look-anyway")
    def look_anyway(self, request, uuid=None):
        submission = self.get_object()
        if not services.look_anyway(submission):
            return Response({"detail": "There is no hidden reading to show for this photo."},
                            status=status.HTTP_409_CONFLICT)
        submission = selectors.get_submission_for(request.user, submission.uuid)
        return Response(SubmissionSerializer(submission, context=self.get_serializer_context()).data)

    @extend_schema(
        summary="The uploaded photo (owner only)",
        responses={
            (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="The stored, cleaned JPEG."),
            404: OpenApiResponse(description="No such submission for you."),
        },
    )
    @action(detail=True, methods=["get"], url_path="image", renderer_classes=[renderers.JSONRenderer, JPEGRenderer])
    def image(self, request, uuid=None):
        return private_photo_response(self.get_object().image)

    @extend_schema(
        summary="Where the model looked: the heatmap overlay (owner only)",
        description=(
            "A PNG the shape of the photo (at most 1024 px on its longer side): warm colours where hiding "
            "that part of the photo lowered the top class's probability most, transparent elsewhere. "
            "Stack it over `image_url`. 404 when the submission has none (`heatmap_url` is null)."
        ),
        responses={
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The overlay, RGBA palette PNG."),
            404: OpenApiResponse(description="No such submission for you, or no heatmap."),
        },
    )
    @action(detail=True, methods=["get"], url_path="heatmap", renderer_classes=[renderers.JSONRenderer, PNGRenderer])
    def heatmap(self, request, uuid=None):
        return explanations.heatmap_response(self.get_object())


@extend_schema(tags=["lesions"])
@extend_schema_view(
    list=extend_schema(summary="List your lesions"),
    retrieve=extend_schema(summary="A lesion with its photo count"),
    create=extend_schema(summary="Create a lesion to follow"),
    destroy=extend_schema(summary="Delete a lesion with all its photos and their stored files"),
)
class LesionViewSet(LesionTimelineMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin,
                    viewsets.ReadOnlyModelViewSet):
    serializer_class = LesionSerializer
    lookup_field = "uuid"
    lookup_value_converter = "uuid"

    def get_queryset(self):
        return selectors.lesions_for(self.request.user)

    def perform_destroy(self, instance):
        services.delete_lesion(instance)

    def perform_create(self, serializer):
        lesion = serializer.save(owner=self.request.user)
        # Re-read with the annotations (photo count) the other endpoints return.
        serializer.instance = self.get_queryset().get(pk=lesion.pk)

    @extend_schema(summary="A lesion's photos over time, oldest first", responses=LesionHistoryItemSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="submissions", serializer_class=LesionHistoryItemSerializer)
    def submissions(self, request, uuid=None):
        lesion = selectors.get_lesion_for(request.user, uuid)
        page = self.paginate_queryset(selectors.lesion_history(lesion))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
