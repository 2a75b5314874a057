"""Reads for the condition pages and the guidance shown with a result.

Condition entries are public health information (no personal data). The
guidance for a submission is computed on each read from its stored predictions
and answers (the upload form's and the symptom assistant's), so a changed rule
or threshold applies to old results too. Callers fetch the submission through
the owner-scoped ``diagnosis.selectors`` first.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.shortcuts import get_object_or_404

from . import assistant
from .models import AssistantConversation, Condition, ReferralContact
from .triage import DEFAULT_MALIGNANCY_THRESHOLD, NOT_SKIN, SOON, URGENT, TriageResult, triage

logger = logging.getLogger(__name__)

TOP_N = 4


def conditions():
    return Condition.objects.all()


def get_condition(code):
    return get_object_or_404(Condition, code=code)


def _probability(value, path, key) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = -1.0
    if not 0.0 < value < 1.0:
        logger.warning("ignoring thresholds.%s=%r in %s: not a probability", key, value, path)
        return None
    return value


@lru_cache(maxsize=8)
def _thresholds_from_metadata(path: str, mtime: float) -> tuple[float | None, dict[str, float]]:
    """(``thresholds.malignancy``, ``thresholds.malignancy_by_kind``) of a metadata file, the
    values that are not probabilities left out."""
    try:
        thresholds = json.loads(Path(path).read_text()).get("thresholds") or {}
    except (OSError, ValueError):
        logger.warning("could not read the model metadata at %s for the malignancy threshold", path)
        return None, {}
    by_kind = {}
    for kind, value in (thresholds.get("malignancy_by_kind") or {}).items():
        value = _probability(value, path, f"malignancy_by_kind.{kind}")
        if value is not None:
            by_kind[str(kind)] = value
    return _probability(thresholds.get("malignancy"), path, "malignancy"), by_kind


def malignancy_threshold(kind: str | None = None) -> float:
    """The urgent tier's threshold for a photo of ``kind`` ("dermoscopic", "clinical": what the
    model read the photo as). From the configured model's metadata: ``thresholds.malignancy_by_kind``
    for that kind, else ``thresholds.malignancy`` (which the ML lead sets to the lower of the two,
    so an unknown kind is held to the stricter one), else ``settings.MALIGNANCY_THRESHOLD``.

    The metadata values are chosen on validation data (see guidance/triage.py and
    ``python -m ml thresholds``); the setting (default ``triage.DEFAULT_MALIGNANCY_THRESHOLD``)
    covers models without one.
    """
    path = Path(settings.ML_MODEL_DIR) / "metadata.json"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = None
    overall, by_kind = _thresholds_from_metadata(str(path), mtime) if mtime is not None else (None, {})
    if kind and kind in by_kind:
        return by_kind[kind]
    if overall is not None:
        return overall
    return float(getattr(settings, "MALIGNANCY_THRESHOLD", DEFAULT_MALIGNANCY_THRESHOLD))


def _ranked(submission):
    # Sorted in Python so any prefetch (or none) gives ranks in order.
    return sorted(submission.predictions.all(), key=lambda p: p.rank)


_STORED = object()
GP_FALLBACK = ("Contact your GP (family doctor) and say what this page advises; if you cannot get an appointment "
               "in time, ask your GP practice or a pharmacist where else you can be seen.")


def has_result(submission) -> bool:
    """Guidance (and the symptom assistant) exist for a final result: analysed, or rejected as not skin."""
    return submission.status in ("done", "rejected")


def conversation_state(submission) -> dict | None:
    """The symptom assistant's stored state for this submission, read fresh (never a cached relation)."""
    return AssistantConversation.objects.filter(submission=submission).values_list("state", flat=True).first()


def triage_answers(submission, state=None) -> dict:
    """What the triage reads: the upload form's answers, with the assistant's added (its age/duration win)."""
    answers = {"symptoms": list(submission.symptoms or []), "age": submission.age, "duration": submission.duration}
    if state:
        told = assistant.triage_answers(state)
        answers["symptoms"] = sorted(set(answers["symptoms"]) | set(told["symptoms"]))
        answers["abcd"], answers["history"] = told["abcd"], told["history"]
        answers.update({key: told[key] for key in ("age", "duration") if key in told})
    return answers


def submission_triage(submission, predictions=None, state=_STORED) -> TriageResult | None:
    """The urgency tier and reasons for a finished analysis; None while queued, analysing or failed.

    ``state`` defaults to the stored assistant conversation's, so its answers count everywhere
    (result page, API, reminders); the assistant passes a state it is trying out.
    """
    if not has_result(submission):
        return None
    predictions = _ranked(submission) if predictions is None else predictions
    if state is _STORED:
        state = conversation_state(submission)
    return triage(
        {p.code: p.probability for p in predictions},
        uncertain=submission.uncertain,
        not_skin=submission.status == "rejected",
        answers=triage_answers(submission, state),
        malignancy_threshold=malignancy_threshold(submission.photo_kind or None),
        look_anyway=submission.look_anyway,
    )


def referrals(tier: str | None, active_contacts=None) -> dict:
    """Referral contacts staff configured for this tier; for urgent/soon with none, the advice to call a GP.

    ``active_contacts``: the active contacts when the caller already read them (a list of results).
    """
    if tier is None:
        return {"contacts": [], "fallback": ""}
    if active_contacts is None:
        active_contacts = ReferralContact.objects.filter(active=True)
    contacts = [contact for contact in active_contacts if contact.shown_for(tier)]
    fallback = GP_FALLBACK if not contacts and tier in (URGENT, SOON) else ""
    return {"contacts": contacts, "fallback": fallback}


def assistant_context(submission, predictions=None) -> assistant.Context:
    """The engine's view of this result: the knowledge base as plain data and the triage as a function."""
    predictions = _ranked(submission) if predictions is None else list(predictions)
    # The assistant talks about the photo's most likely condition only where the page shows the ranking.
    top = predictions[0].code if predictions and submission.shows_ranking else None
    return assistant.Context(
        conditions=[assistant.ConditionInfo(
            code=c.code, name=c.name, summary=c.summary, causes=c.causes_and_risk_factors,
            treatments=c.usual_treatments, contagious=c.contagious, contagious_note=c.contagious_note,
            synonyms=tuple(c.synonym_list())) for c in Condition.objects.all()],
        assess=lambda state: submission_triage(submission, predictions, state=state),
        top_code=top,
        referral_text=referral_text(submission_triage(submission, predictions)),
    )


def referral_text(result) -> str:
    """Who can see the person, in one sentence for the assistant: the contacts staff configured for the
    tier, else the advice to contact a GP; "" without a result (the assistant then names the page's list)."""
    if result is None:
        return ""
    found = referrals(result.tier)
    if not found["contacts"]:
        return found["fallback"]
    named = "; ".join(", ".join(part for part in (c.name, c.phone, c.booking_url) if part) for c in found["contacts"])
    return f"For this advice you can contact: {named}."


def initial_state(submission) -> dict:
    return assistant.new_state(assistant.prefill_from(submission.symptoms, submission.age, submission.duration))


def assistant_offered(submission) -> bool:
    """The symptom assistant runs on a final result, but not on a photo rejected as not skin (a cat has
    no border to ask about) unless the person said it is skin and asked to see it anyway."""
    return has_result(submission) and (submission.result_state != NOT_SKIN or submission.look_anyway)


def assistant_unavailable_reason(submission) -> str:
    if has_result(submission):
        return ("The assistant is not offered for a photo that does not look like skin. Take the photo again, or "
                "say it is skin and ask to see the reading anyway.")
    return "The assistant is available once the photo has been analysed."


def assistant_panel(submission, predictions=None) -> dict | None:
    """The transcript, the question now asked and its quick replies; None when the assistant is not offered."""
    if not assistant_offered(submission):
        return None
    conversation = AssistantConversation.objects.filter(submission=submission).first()
    if conversation is None:
        state = initial_state(submission)
        intro = assistant.opening(state).text
        return {"messages": [], "intro": intro, "question": assistant.next_question(state)}
    return {"messages": list(conversation.messages.all()), "intro": "",
            "question": assistant.next_question(conversation.state)}


def result_guidance(submission, predictions=None) -> dict:
    """Context for templates/guidance/_result_guidance.html: triage, top conditions' entries, assistant, referrals."""
    predictions = _ranked(submission) if predictions is None else list(predictions)
    result = submission_triage(submission, predictions)
    top = submission.shown_predictions(predictions)[:TOP_N]
    entries = {c.code: c for c in Condition.objects.for_codes(p.code for p in top)}
    return {
        "triage": result,
        "conditions": [{"prediction": p, "condition": entries.get(p.code)} for p in top],
        "referrals": referrals(result.tier if result else None),
        "assistant": assistant_panel(submission, predictions),
        "submission_uuid": submission.uuid,
    }
