"""Writes of the guidance app: one turn of the symptom assistant, stored with the submission."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from . import assistant, selectors
from .models import AssistantConversation, AssistantMessage

MAX_PERSON_MESSAGES = 200  # a conversation has 14 questions: this only stops unbounded storage


class AssistantUnavailable(Exception):
    """The assistant cannot take a message for this submission (no final result, or too long a conversation)."""


def _conversation_for_update(submission) -> tuple[AssistantConversation, bool]:
    """The submission's conversation, locked; created (with its opening message) on the first message."""
    conversation = AssistantConversation.objects.select_for_update().filter(submission=submission).first()
    if conversation is not None:
        return conversation, False
    try:
        with transaction.atomic():  # a savepoint: a concurrent first message may have created it
            state = selectors.initial_state(submission)
            conversation = AssistantConversation.objects.create(submission=submission, state=state)
    except IntegrityError:
        return AssistantConversation.objects.select_for_update().get(submission=submission), False
    return conversation, True


def assistant_turn(submission, message: str) -> assistant.Reply:
    """Store the person's message and the assistant's reply; the new answers count in the triage from now on."""
    if not selectors.assistant_offered(submission):
        raise AssistantUnavailable(selectors.assistant_unavailable_reason(submission))
    message = (message or "").strip()[:assistant.MAX_MESSAGE_LENGTH]
    context = selectors.assistant_context(submission)
    with transaction.atomic():
        conversation, created = _conversation_for_update(submission)
        if created:
            _add(conversation, AssistantMessage.Role.ASSISTANT, assistant.opening(conversation.state).text,
                 context.assess(conversation.state).tier)
        elif conversation.messages.filter(role=AssistantMessage.Role.PERSON).count() >= MAX_PERSON_MESSAGES:
            raise AssistantUnavailable("This conversation is full. The advice above stays as it is.")
        reply = assistant.respond(conversation.state, message, context)
        _add(conversation, AssistantMessage.Role.PERSON, message or "(empty message)")
        _add(conversation, AssistantMessage.Role.ASSISTANT, reply.text, context.assess(reply.state).tier,
             understood=reply.understood)
        conversation.state = reply.state
        conversation.save(update_fields=["state", "updated_at"])
        if reply.tier_changed and submission.lesion.reminder_sent_at is None:
            transaction.on_commit(lambda: _reschedule_reminder(submission.pk))
    return reply


def _reschedule_reminder(submission_id):
    """The re-photograph reminder follows the tier (diagnosis/reminders.py), so a changed tier moves it."""
    from diagnosis.reminders import schedule_reminder

    schedule_reminder(submission_id)


def _add(conversation, role, text, tier="", understood=True):
    return AssistantMessage.objects.create(conversation=conversation, role=role, text=text, tier=tier or "",
                                           understood=understood)
