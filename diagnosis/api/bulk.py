"""Bulk upload API: many photos in one request, classified together as one batch.

``POST /api/v1/batches/`` stores every acceptable photo (each becomes an ordinary submission) and
answers 202 with a per-file report; ``GET /api/v1/batches/<uuid>/`` shows how far the batch got.
The work is in ``diagnosis.bulk``; this module only validates the request and shapes the answers.
"""

from django.conf import settings
from django.core.exceptions import TooManyFilesSent
from django.db.models import Prefetch
from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from accounts.api import HasCurrentConsent

from .. import bulk, selectors
from ..models import Prediction, Submission
from ..throttles import UploadRateThrottle
from .serializers import SubmissionSerializer

IMAGES = "images"


class BatchPhotoRateThrottle(UploadRateThrottle):
    """Photos sent in bulk per user (``batch_photos`` rate), each photo counting once.

    A request counts as one upload in the ``uploads`` rate like any upload; this rate is what keeps
    a hundred photos a request from multiplying it a hundredfold.
    """

    scope = "batch_photos"

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        weight = max(1, len(request.FILES.getlist(IMAGES)))
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) + weight > self.num_requests:
            return self.throttle_failure()
        self.history[:0] = [self.now] * weight
        self.cache.set(self.key, self.history, self.duration)
        return True


class FlatListField(serializers.ListField):
    """A list whose item errors are plain messages ("item 2: ..."), the error shape the API documents."""

    def run_child_validation(self, data):
        result, errors = [], []
        for index, item in enumerate(data, start=1):
            try:
                result.append(self.child.run_validation(item))
            except ValidationError as exc:
                errors += [f"item {index}: {message}" for message in exc.detail]
        if errors:
            raise ValidationError(errors)
        return result


class BatchCreateSerializer(serializers.Serializer):
    images = FlatListField(
        child=serializers.FileField(allow_empty_file=True, use_url=False), allow_empty=False,
        help_text="The photos (repeat the field for each). JPEG, PNG, WebP or HEIC; each is checked on its own.",
    )
    lesion = serializers.UUIDField(
        required=False, allow_null=True,
        help_text="UUID of one of your lesions: every photo is of that spot. Leave out for one new lesion per photo.",
    )
    lesion_names = FlatListField(
        child=serializers.CharField(max_length=100, allow_blank=True), required=False,
        help_text="Names for the new lesions, one per photo in the same order (\"\" for the default name).",
    )
    heatmaps = serializers.BooleanField(
        default=False, help_text="Also compute each photo's heatmap (slower: about a second per photo).",
    )

    def validate_images(self, images):
        if len(images) > settings.BULK_MAX_FILES:
            raise ValidationError(f"Send at most {settings.BULK_MAX_FILES} photos per request.")
        return images

    def validate_lesion(self, lesion_uuid):
        if lesion_uuid is None:
            return None
        # Scoped to the caller: someone else's lesion reads exactly like one that does not exist.
        lesion = selectors.lesions_for(self.context["request"].user).filter(uuid=lesion_uuid).first()
        if lesion is None:
            raise ValidationError("You have no lesion with this id.", code="does_not_exist")
        return lesion

    def validate(self, data):
        names = data.get("lesion_names")
        if names and data.get("lesion"):
            raise ValidationError({"lesion_names": ["Give either a lesion for every photo or lesion names."]})
        if names and len(names) != len(data["images"]):
            raise ValidationError({"lesion_names": [f"Give one name per photo ({len(data['images'])})."]})
        return data


class BatchFileSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The file name as uploaded.")
    accepted = serializers.BooleanField()
    submission = serializers.UUIDField(allow_null=True, help_text="The new submission (accepted files).")
    url = serializers.URLField(allow_null=True, help_text="Where to read the submission.")
    error = serializers.CharField(allow_blank=True, help_text="Why the file was refused (refused files).")


class BatchCreatedSerializer(serializers.Serializer):
    uuid = serializers.UUIDField(help_text="The batch id.")
    url = serializers.URLField(help_text="Where to follow the batch.")
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    files = BatchFileSerializer(many=True)


class BatchCountsSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    processing = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    rejected = serializers.IntegerField()


class BatchSerializer(serializers.Serializer):
    uuid = serializers.UUIDField()
    url = serializers.URLField()
    total = serializers.IntegerField(help_text="Photos in the batch.")
    is_final = serializers.BooleanField(help_text="Every photo is done, failed or not analysed.")
    counts = BatchCountsSerializer(help_text="Photos per status.")
    next = serializers.URLField(allow_null=True, help_text="The next page of submissions.")
    previous = serializers.URLField(allow_null=True)
    submissions = SubmissionSerializer(many=True, help_text="This page of the batch's photos, in upload order.")


class BatchPagination(PageNumberPagination):
    page_size = 100


def _absolute(request, name, **kwargs):
    return request.build_absolute_uri(reverse(name, kwargs=kwargs))


@extend_schema(tags=["batches"])
@extend_schema_view(
    create=extend_schema(
        summary="Upload many photos for analysis as one batch",
        description=(
            "Multipart upload of up to `BULK_MAX_FILES` photos (100 by default) in repeated `images` fields; "
            "the request as a whole must stay under the upload size limit. Each photo is checked and cleaned "
            "like a single upload and becomes a submission of its own (one new lesion per photo unless "
            "`lesion` is given); one task classifies them all. The answer lists every file, accepted or "
            "refused with the reason; a refused file stores nothing. When no file is acceptable the answer "
            "is 400. Each photo counts in the per-user `batch_photos` rate."
        ),
        request={"multipart/form-data": BatchCreateSerializer},
        responses={202: BatchCreatedSerializer},
    ),
    retrieve=extend_schema(
        summary="A batch's progress and each photo's ranked predictions",
        parameters=[OpenApiParameter("page", int, description="Page of submissions (100 a page).")],
        responses={200: BatchSerializer},
    ),
)
class BatchViewSet(viewsets.GenericViewSet):
    lookup_field = "uuid"
    lookup_value_converter = "uuid"
    parser_classes = [MultiPartParser]
    permission_classes = [permissions.IsAuthenticated, HasCurrentConsent]
    serializer_class = BatchCreateSerializer

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.action == "create":
            throttles += [UploadRateThrottle(), BatchPhotoRateThrottle()]
        return throttles

    def handle_exception(self, exc):
        # Django refuses a body with more file parts than DATA_UPLOAD_MAX_NUMBER_FILES while parsing it.
        if isinstance(exc, TooManyFilesSent):
            exc = ValidationError({IMAGES: [f"Send at most {settings.BULK_MAX_FILES} photos per request."]})
        return super().handle_exception(exc)

    def create(self, request):
        upload = self.get_serializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        outcome = bulk.create_batch(request.user, data["images"], lesion=data.get("lesion"),
                                    lesion_names=data.get("lesion_names"), heatmaps=data["heatmaps"])
        if outcome.batch is None:
            raise ValidationError({IMAGES: [f"{f.name}: {f.error}" for f in outcome.files]})
        files = [{
            "name": f.name, "accepted": f.accepted, "error": f.error,
            "submission": f.submission.uuid if f.submission else None,
            "url": _absolute(request, "api:submission-detail", uuid=f.submission.uuid) if f.submission else None,
        } for f in outcome.files]
        url = _absolute(request, "api:batch-detail", uuid=outcome.batch)
        body = BatchCreatedSerializer({"uuid": outcome.batch, "url": url, "accepted": len(outcome.accepted),
                                       "rejected": len(outcome.rejected), "files": files}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": url})

    def retrieve(self, request, uuid=None):
        submissions = bulk.batch_submissions(request.user, uuid)
        counts = bulk.batch_counts(submissions)
        total = sum(counts.values())
        if not total:  # no such batch, or not yours
            raise Http404
        paginator = BatchPagination()
        page = paginator.paginate_queryset(
            submissions.select_related("lesion").prefetch_related(
                Prefetch("predictions", queryset=Prediction.objects.order_by("rank"))
            ).order_by("created_at", "pk"),
            request, view=self,
        )
        final = sum(counts[s] for s in Submission.FINAL_STATUSES)
        body = {
            "uuid": uuid, "url": _absolute(request, "api:batch-detail", uuid=uuid), "total": total,
            "is_final": final == total, "counts": counts,
            "next": paginator.get_next_link(), "previous": paginator.get_previous_link(),
            "submissions": page,
        }
        return Response(BatchSerializer(body, context=self.get_serializer_context()).data)
