"""The symptom assistant engine, as conversations: messages in, expected follow-ups and urgency changes out.

Pure (no database): the knowledge base comes from the same JSON files the migrations load.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guidance import assistant
from guidance.assistant import SCRIPT, Context, ConditionInfo, new_state, parse_duration, respond
from guidance.triage import ROUTINE, SELF_CARE, SOON, URGENT, triage

DATA = Path(__file__).resolve().parents[2] / "guidance" / "data"
MOLE = {"nv": .9, "bkl": .06, "mel": .04}
TINEA = {"tinea": .85, "ad": .15}
DF = {"df": .9, "nv": .1}


def knowledge() -> list[ConditionInfo]:
    synonyms = json.loads((DATA / "synonyms.json").read_text())["synonyms"]
    return [ConditionInfo(code=e["code"], name=e["name"], summary=e["summary"], causes=e["causes_and_risk_factors"],
                          treatments=e["usual_treatments"], contagious=e["contagious"],
                          contagious_note=e["contagious_note"], synonyms=tuple(synonyms.get(e["code"], ())))
            for e in json.loads((DATA / "conditions.json").read_text())["conditions"]]


ENTRIES = {info.code: info for info in knowledge()}


def context(probabilities, *, not_skin=False, base=None) -> Context:
    base = base or {}

    def assess(state):
        told = assistant.triage_answers(state)
        answers = {**base, **told, "symptoms": sorted(set(base.get("symptoms", [])) | set(told["symptoms"]))}
        return triage(probabilities, uncertain=False, not_skin=not_skin, answers=answers, malignancy_threshold=.15)

    top = None if not_skin else max(probabilities, key=probabilities.get)
    return Context(conditions=knowledge(), assess=assess, top_code=top)


def run(conversation, probabilities, state=None, **kwargs):
    """Play ``(message, next question key, reply fragment, tier after)`` steps; return the final state."""
    ctx = context(probabilities, **kwargs)
    state = state or new_state()
    for step, (message, next_key, fragment, tier) in enumerate(conversation):
        reply = respond(state, message, ctx)
        state = reply.state
        where = f"step {step} {message!r}: {reply.text}"
        assert (reply.question.key if reply.question else None) == next_key, where
        assert fragment.lower() in reply.text.lower(), where
        assert ctx.assess(state).tier == tier, where
    return state


# Each conversation: id, probabilities, [(message, next question, reply fragment, tier after the message)].
CONVERSATIONS = [
    ("benign answers keep a mole routine", MOLE, [
        ("no", "border", "Thank you", ROUTINE),
        ("Nope", "colours", "C for colour", ROUTINE),
        ("it doesn't", "diameter", "D for diameter", ROUTINE),
        ("n", "evolving", "E for evolving", ROUTINE),
        ("no", "itching", "Does it itch", ROUTINE),
        ("no", "bleeding", "bleed", ROUTINE),
        ("no", "pain", "hurt", ROUTINE),
        ("no", "crusting", "crust", ROUTINE),
        ("no", "not_healing", "4 weeks", ROUTINE),
        ("no", "duration", "How long", ROUTINE),
        ("since I was a child", "age", "How old", ROUTINE),
        ("I'm 34", "personal_history", "skin cancer yourself", ROUTINE),
        ("no", "family_history", "parent, brother", ROUTINE),
        ("no", None, "That was my last question. My advice: " + "Mention it", ROUTINE),
    ]),
    ("two ABCD signs: soon, then the seven-point score: urgent", MOLE, [
        ("yes", "border", "Thank you", ROUTINE),
        ("Yes, it is", "colours", "C for colour", SOON),
        ("not sure", "diameter", "Noted as not sure", SOON),
        ("yes", "evolving", "That changes my advice to: See a doctor within 2 weeks", URGENT),
    ]),
    ("the tier change says why", MOLE, [
        ("yes", "border", "Thank you", ROUTINE),
        ("yes", "colours", "two or more of the ABCDE warning signs", SOON),
    ]),
    ("evolving: got bigger is a red flag", MOLE, [
        ("skip", "border", "Skipped", ROUTINE),
        ("skip", "colours", "Skipped", ROUTINE),
        ("skip", "diameter", "Skipped", ROUTINE),
        ("skip", "evolving", "Skipped", ROUTINE),
        ("got bigger", "itching", "it is getting bigger", URGENT),
    ]),
    ("evolving: plain yes is the changing red flag", MOLE, [
        *[("skip", key, "Skipped", ROUTINE) for key in ("border", "colours", "diameter", "evolving")],
        ("yeah", "itching", "changing colour or shape", URGENT),
    ]),
    ("evolving: no change", MOLE, [
        *[("skip", key, "Skipped", ROUTINE) for key in ("border", "colours", "diameter", "evolving")],
        ("no, it has not got bigger", "itching", "Does it itch", ROUTINE),
    ]),
    ("an itchy mole: soon", MOLE, [
        *[("skip", key, "Skipped", ROUTINE) for key in ("border", "colours", "diameter", "evolving", "itching")],
        ("yes a little", "bleeding", "it itches", SOON),
    ]),
    ("bleeding tinea: soon, not urgent", TINEA, [
        *[("skip", key, "Skipped", SELF_CARE) for key in ("border", "colours", "diameter", "evolving", "itching",
                                                          "bleeding")],
        ("yes", "pain", "rather than treating it yourself", SOON),
    ]),
    ("ABCD signs do not apply to a rash", TINEA, [
        ("yes", "border", "Thank you", SELF_CARE),
        ("yes", "colours", "Thank you", SELF_CARE),
    ]),
    ("age and a new spot", MOLE, [
        *[("skip", key, "Skipped", ROUTINE) for key in
          ("border", "colours", "diameter", "evolving", "itching", "bleeding", "pain", "crusting", "not_healing",
           "duration")],
        ("about 3 months", "age", "How old", ROUTINE),
        ("54", "personal_history", "age of 50 or over", SOON),
    ]),
    ("personal history of skin cancer", DF, [
        *[("skip", q.key, "Skipped", ROUTINE) for q in SCRIPT[1:-2]],
        ("skip", "personal_history", "skin cancer yourself", ROUTINE),
        ("yes, a basal cell carcinoma", "family_history", "skin cancer before", SOON),
        ("don't know", None, "last question", SOON),
        ("what do you mean?", None, "I have no more questions", SOON),
        ("yes", None, "I did not understand that", SOON),
        ("is it contagious?", None, "Not contagious", SOON),
    ]),
    ("questions it must say it does not understand", MOLE, [
        ("What's the weather like tomorrow?", "asymmetry", "I did not understand that", ROUTINE),
        ("purple monkey dishwasher", "asymmetry", "I did not understand that", ROUTINE),
        ("", "asymmetry", "I did not understand that", ROUTINE),
        ("What is a flibbertigibbet?", "asymmetry", "I know about these conditions", ROUTINE),
        ("yes", "border", "Thank you", ROUTINE),
    ]),
    ("free questions keep the question open", MOLE, [
        ("How soon should I see a doctor?", "asymmetry", "My advice now: Mention it at your next routine visit",
         ROUTINE),
        ("is it contagious?", "asymmetry", "Not contagious", ROUTINE),
        ("What is a dermatofibroma?", "asymmetry", "firm little bump", ROUTINE),
        ("is ringworm contagious?", "asymmetry", "Yes, it can spread", ROUTINE),
        ("what is the treatment for psoriasis?", "asymmetry", "Usual treatments for Psoriasis", ROUTINE),
        ("what causes eczema", "asymmetry", "Causes and risk factors of Atopic dermatitis", ROUTINE),
        ("Is it cancer?", "asymmetry", "only a doctor can", ROUTINE),
        ("what does that mean?", "asymmetry", "lopsided", ROUTINE),
        ("thanks", "asymmetry", "You're welcome", ROUTINE),
        ("yes", "border", "Thank you", ROUTINE),
    ]),
    ("how soon follows the answers", MOLE, [
        ("yes", "border", "Thank you", ROUTINE),
        ("yes", "colours", "changes my advice", SOON),
        ("how soon should I see a doctor?", "colours", "Book an appointment in the coming weeks", SOON),
        ("How soon should I see a doctor?", "colours", "two or more of the ABCDE warning signs", SOON),
    ]),
    ("contagious about the photo's most likely condition", TINEA, [
        ("Is it contagious?", "asymmetry", "Your photo most resembles Tinea", SELF_CARE),
        ("can I give it to my kids?", "asymmetry", "Yes, it can spread", SELF_CARE),
        ("is a mole contagious?", "asymmetry", "Not contagious", SELF_CARE),
    ]),
    ("age the assistant cannot take", MOLE, [
        *[("skip", q.key, "Skipped", ROUTINE) for q in SCRIPT[1:12]],
        ("I am 430", "age", "does not look like an age", ROUTINE),
        ("old enough", "age", "give your age as a number", ROUTINE),
        ("skip", "personal_history", "Skipped", ROUTINE),
    ]),
    ("start again forgets the answers", MOLE, [
        ("yes", "border", "Thank you", ROUTINE),
        ("yes", "colours", "changes my advice", SOON),
        ("start again", "asymmetry", "start again", ROUTINE),
    ]),
]


@pytest.mark.parametrize("probabilities,conversation", [row[1:] for row in CONVERSATIONS],
                         ids=[row[0] for row in CONVERSATIONS])
def test_conversation(probabilities, conversation):
    run(conversation, probabilities)


def test_a_not_skin_photo_has_no_subject_for_it_but_named_conditions_work():
    run([("is it contagious?", "asymmetry", "could not be assessed", SOON),
         ("what is it?", "asymmetry", "could not be assessed", SOON),
         ("Is tinea contagious?", "asymmetry", "Yes, it can spread", SOON)], MOLE, not_skin=True)


def test_answers_from_the_upload_form_are_not_asked_again():
    prefill = assistant.prefill_from(["itching", "growing"], 61, "weeks")
    assert prefill == {"itching": True, "evolving": ["growing"], "age": 61, "duration": "weeks"}
    state = new_state(prefill)
    keys = []
    while (question := assistant.next_question(state)) is not None:
        keys.append(question.key)
        state = respond(state, "skip", context(MOLE)).state
    assert keys == [q.key for q in SCRIPT if q.key not in prefill]
    assert "4 answer(s) from your upload form" in assistant.opening(new_state(prefill)).text


def test_the_script_asks_everything_the_issue_lists_in_order():
    assert [q.key for q in SCRIPT] == ["asymmetry", "border", "colours", "diameter", "evolving", "itching",
                                       "bleeding", "pain", "crusting", "not_healing", "duration", "age",
                                       "personal_history", "family_history"]
    assert all(any(value == "skip" for value, _label in q.options) for q in SCRIPT)


def test_every_quick_reply_is_understood():
    ctx = context(MOLE)
    for question in SCRIPT:
        state = {**new_state(), "skipped": [q.key for q in SCRIPT[:SCRIPT.index(question)]]}
        assert assistant.next_question(state) == question
        for value, _label in question.options:
            reply = respond(state, value, ctx)
            assert reply.understood and reply.intent == "answer", (question.key, value, reply.text)


@pytest.mark.parametrize("text,code", [
    ("3 days", "days"), ("a few days", "days"), ("yesterday", "days"), ("less than a week", "days"),
    ("2 weeks", "weeks"), ("a month", "weeks"), ("six weeks", "months"), ("a couple of months", "months"),
    ("12 months", "months"), ("2 years", "years"), ("years", "years"), ("since birth", "lifelong"),
    ("as long as I remember", "lifelong"), ("months", "months"), ("lifelong", "lifelong"), ("purple", None),
])
def test_durations(text, code):
    assert parse_duration(assistant.normalise(text)) == code


def test_the_triage_answers_count_not_sure_as_no():
    state = new_state({"asymmetry": True, "border": None, "colours": False, "bleeding": True,
                       "personal_history": None, "family_history": True, "evolving": ["growing", "changing"],
                       "age": 40, "duration": "years"})
    assert assistant.triage_answers(state) == {
        "symptoms": ["bleeding", "growing", "changing"], "abcd": ["asymmetry"], "history": ["family"],
        "age": 40, "duration": "years"}


def test_synonyms_and_name_parts_are_recognised():
    ctx = context(MOLE)
    for text, code in [("ringworm", "tinea"), ("candidiasis", "tinea"), ("eczema", "ad"), ("moles", "nv"),
                       ("basal cell carcinoma", "bcc"), ("bowen's disease", "akiec"), ("cherry angioma", "vasc"),
                       ("dermatofibromas", "df"), ("squamous cell carcinoma", "scc")]:
        found = ctx.find_condition(assistant.normalise(f"tell me about {text}"))
        assert found is not None and found.code == code, text
    assert ctx.find_condition("my spot") is None


def test_long_and_odd_messages_never_raise():
    ctx = context(MOLE)
    for message in ["?" * 2000, "yes " * 400, "\x00\n\t", "🙂", "SELECT * FROM users;"]:
        reply = respond(new_state(), message, ctx)
        assert reply.text
