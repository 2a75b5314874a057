"""Read-only, public API of the condition knowledge base (general health information)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions

from .. import selectors
from .serializers import ConditionSerializer


@extend_schema(tags=["conditions"], summary="Every condition the model knows, with its plain-language entry")
class ConditionListView(generics.ListAPIView):
    serializer_class = ConditionSerializer
    permission_classes = [permissions.AllowAny]

    def get_queryset(self):
        return selectors.conditions()


@extend_schema(tags=["conditions"], summary="One condition's entry, by class code", parameters=[
    OpenApiParameter("code", OpenApiTypes.STR, OpenApiParameter.PATH, pattern=r"^[-a-zA-Z0-9_]+$",
                     description="The model's class code, e.g. `mel` or `nv` (see the list endpoint)."),
])
class ConditionDetailView(generics.RetrieveAPIView):
    serializer_class = ConditionSerializer
    permission_classes = [permissions.AllowAny]
    lookup_field = "code"

    def get_queryset(self):
        return selectors.conditions()
