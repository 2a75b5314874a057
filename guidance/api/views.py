"""The condition knowledge base (public, read-only) and the symptom assistant of a submission (owner only)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from diagnosis.selectors import get_submission_for

from .. import selectors, services
from .serializers import (
    AssistantMessageInputSerializer,
    AssistantMessageSerializer,
    AssistantSerializer,
    ConditionSerializer,
    guidance_data,
    question_data,
)


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


@extend_schema_view(
    get=extend_schema(
        tags=["assistant"], summary="The symptom assistant's conversation about a submission (owner only)",
        description="The transcript, the question asked now with its quick replies, and the guidance with the "
                    "answers so far. 409 until the analysis is final, and for a photo rejected as not skin "
                    "unless the person asked to see it anyway (POST .../look-anyway/).",
        responses={200: AssistantSerializer, 404: OpenApiResponse(description="No such submission for you."),
                   409: OpenApiResponse(description="No final result yet.")}),
    post=extend_schema(
        tags=["assistant"], summary="Send the symptom assistant a message (an answer or a question)",
        description="Answers change the guidance (tier and reasons) of the submission everywhere it is shown.",
        request=AssistantMessageInputSerializer,
        responses={200: AssistantSerializer, 400: OpenApiResponse(description="No message, or too long."),
                   404: OpenApiResponse(description="No such submission for you."),
                   409: OpenApiResponse(description="No final result yet, or the conversation is full.")}),
)
class AssistantView(APIView):
    """Session or token auth from settings; owner only (another user's submission is a 404)."""

    permission_classes = [permissions.IsAuthenticated]
    serializer_class = AssistantSerializer

    def get(self, request, submission_uuid):
        submission = get_submission_for(request.user, submission_uuid)
        if not selectors.assistant_offered(submission):
            return _not_final(submission)
        return Response(_conversation_data(submission))

    def post(self, request, submission_uuid):
        submission = get_submission_for(request.user, submission_uuid)
        incoming = AssistantMessageInputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        try:
            reply = services.assistant_turn(submission, incoming.validated_data["message"])
        except services.AssistantUnavailable as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        data = _conversation_data(submission)
        data["reply"] = {"text": reply.text, "understood": reply.understood, "intent": reply.intent,
                         "tier_changed": reply.tier_changed}
        return Response(data)


def _not_final(submission):
    return Response({"detail": selectors.assistant_unavailable_reason(submission)}, status=status.HTTP_409_CONFLICT)


def _conversation_data(submission):
    panel = selectors.assistant_panel(submission)
    return {
        "submission": str(submission.uuid),
        "intro": panel["intro"],
        "messages": AssistantMessageSerializer(panel["messages"], many=True).data,
        "question": question_data(panel["question"]),
        "guidance": guidance_data(selectors.submission_triage(submission)),
    }
