"""The symptom assistant reads plain language (issue 12, items 2 and 10.1): statements, negations, misspellings,
fear and referral requests become the same answers the quick replies record, and nothing contradicts the tier.

Pure (no database): the same knowledge base and triage rule as test_assistant.py.
"""

from __future__ import annotations

import pytest

from guidance import assistant
from guidance.assistant import SCRIPT, new_state, respond
from guidance.triage import ROUTINE, SELF_CARE, SOON, URGENT

from tests.guidance.test_assistant import DF, MOLE, TINEA, context

MELANOMA = {"mel": .7, "nv": .3}


def talk(conversation, probabilities, state=None, **kwargs):
    """Play ``(message, answers recorded, reply intent, tier after)`` steps; return the final state and replies.

    ``answers recorded`` is a dict the state's answers must contain (a value of ``...`` only checks the key is
    absent). After each step the question asked next is never one already answered or skipped.
    """
    ctx = context(probabilities, **kwargs)
    state = state or new_state()
    replies = []
    for step, (message, answers, intent, tier) in enumerate(conversation):
        reply = respond(state, message, ctx)
        state = reply.state
        replies.append(reply)
        where = f"step {step} {message!r}: {reply.intent} {state['answers']} {reply.text}"
        for key, value in answers.items():
            if value is ...:
                assert key not in state["answers"], where
            else:
                assert key in state["answers"] and state["answers"][key] == value, where
        assert reply.intent == intent, where
        assert ctx.assess(state).tier == tier, where
        done = set(state["answers"]) | set(state["skipped"])
        assert reply.question is None or reply.question.key not in done, where
    return state, replies


# One message each, on a fresh conversation (the first question, asymmetry, is open):
# (message, answers it records, intent, tier after).
STATEMENTS = [
    # several facts in one sentence
    ("it itches and bled last week", {"itching": True, "bleeding": True, "duration": ...}, "answer", URGENT),
    ("It's itchy and it hurts", {"itching": True, "pain": True}, "answer", SOON),
    ("it itches but doesn't bleed", {"itching": True, "bleeding": False}, "answer", SOON),
    ("no itching, no pain, no bleeding", {"itching": False, "pain": False, "bleeding": False}, "answer", ROUTINE),
    ("It appeared 2 months ago and it itches", {"duration": "months", "itching": True}, "answer", SOON),
    ("I'm 63 and I noticed it a few weeks ago", {"age": 63, "duration": "weeks"}, "answer", SOON),
    ("it crusts over and never heals", {"crusting": True, "not_healing": True}, "answer", URGENT),
    ("It's getting bigger and it changed colour", {"evolving": ["growing", "changing"]}, "answer", URGENT),
    # symptoms said plainly
    ("it bleeds sometimes", {"bleeding": True}, "answer", URGENT),
    ("There was blood on my shirt from it", {"bleeding": True}, "answer", URGENT),
    ("it's really sore when I touch it", {"pain": True}, "answer", SOON),
    ("it feels tender", {"pain": True}, "answer", SOON),
    ("it oozes a clear fluid", {"crusting": True}, "answer", SOON),
    ("it keeps scabbing over", {"crusting": True}, "answer", SOON),
    ("a sore that won't heal", {"not_healing": True, "pain": ...}, "answer", URGENT),
    ("it heals and then comes back", {"not_healing": True}, "answer", URGENT),
    # negations
    ("it doesn't itch", {"itching": False}, "answer", ROUTINE),
    ("it does not itch at all", {"itching": False}, "answer", ROUTINE),
    ("no bleeding", {"bleeding": False}, "answer", ROUTINE),
    ("never bled", {"bleeding": False}, "answer", ROUTINE),
    ("it has never bled", {"bleeding": False}, "answer", ROUTINE),
    ("it isn't sore", {"pain": False}, "answer", ROUTINE),
    ("it is painless", {"pain": False}, "answer", ROUTINE),
    ("it doesnt itch or bleed", {"itching": False, "bleeding": False}, "answer", ROUTINE),
    ("it neither itches nor hurts", {"itching": False, "pain": False}, "answer", ROUTINE),
    ("I haven't noticed any bleeding", {"bleeding": False}, "answer", ROUTINE),
    ("it has healed", {"not_healing": False}, "answer", ROUTINE),
    ("it hasn't changed", {"evolving": False}, "answer", ROUTINE),
    ("it's not getting bigger", {"evolving": False}, "answer", ROUTINE),
    ("not sure if it bleeds", {"bleeding": None}, "answer", ROUTINE),
    # what is not a statement is not recorded
    ("I'm scared it will bleed", {"bleeding": ...}, "fear", ROUTINE),
    ("what if it starts bleeding?", {"bleeding": ...}, "not_understood", ROUTINE),
    ("does it matter that it itches?", {"itching": ...}, "not_understood", ROUTINE),
    ("it's 2 inches from my ear", {"itching": ...}, "not_understood", ROUTINE),
    ("there is a hair growing out of it", {"evolving": ...}, "not_understood", ROUTINE),
    ("it's on my groin", {"evolving": ...}, "not_understood", ROUTINE),
    # misspellings
    ("itchs", {"itching": True}, "answer", SOON),
    ("it itchs a lot", {"itching": True}, "answer", SOON),
    ("it's bleading", {"bleeding": True}, "answer", URGENT),
    ("it bleds when i shower", {"bleeding": True}, "answer", URGENT),
    ("its tendr", {"pain": True}, "answer", SOON),
    ("it dosent itch", {"itching": False}, "answer", ROUTINE),
    ("the edge is jaged", {"border": True}, "answer", ROUTINE),
    ("my dad had melenoma", {"family_history": True}, "answer", ROUTINE),
    # history
    ("my dad had melanoma", {"family_history": True}, "answer", ROUTINE),
    ("My mum died of skin cancer", {"family_history": True}, "answer", ROUTINE),
    ("my sister was diagnosed with melanoma last year", {"family_history": True}, "answer", ROUTINE),
    ("my brother had a basal cell carcinoma removed", {"family_history": True, "personal_history": ...}, "answer",
     ROUTINE),
    ("melanoma runs in my family", {"family_history": True}, "answer", ROUTINE),
    ("my dad had melanoma and I had a bcc removed", {"family_history": True, "personal_history": True}, "answer",
     SOON),
    ("nobody in my family has had skin cancer", {"family_history": False}, "answer", ROUTINE),
    ("no family history", {"family_history": False}, "answer", ROUTINE),
    ("my mum thinks it's melanoma", {"family_history": ...}, "not_understood", ROUTINE),
    ("my grandma had melanoma", {"family_history": ...}, "not_noted", ROUTINE),
    ("I had a melanoma removed", {"personal_history": True}, "answer", SOON),
    ("I've had skin cancer before", {"personal_history": True}, "answer", SOON),
    ("I had a BCC removed from my nose in 2019", {"personal_history": True}, "answer", SOON),
    ("I have never had skin cancer", {"personal_history": False}, "answer", ROUTINE),
    ("I'm worried I have melanoma", {"personal_history": ...}, "fear", ROUTINE),
    # age and duration
    ("I'm 54", {"age": 54}, "answer", ROUTINE),
    ("I am 61 years old", {"age": 61}, "answer", ROUTINE),
    ("aged 70", {"age": 70}, "answer", ROUTINE),
    ("I am 5 foot tall", {"age": ...}, "not_understood", ROUTINE),
    ("I've had it for 3 weeks", {"duration": "weeks", "asymmetry": ...}, "answer", ROUTINE),
    ("it's been there for years", {"duration": "years"}, "answer", ROUTINE),
    ("I've had it since childhood", {"duration": "lifelong"}, "answer", ROUTINE),
    ("I was born with it", {"duration": "lifelong"}, "answer", ROUTINE),
    ("I noticed it a few days ago", {"duration": "days"}, "answer", ROUTINE),
    ("it has itched for 3 weeks", {"itching": True, "duration": ...}, "answer", SOON),
    # growth and change
    ("it's getting bigger", {"evolving": ["growing"]}, "answer", URGENT),
    ("it has grown a lot", {"evolving": ["growing"]}, "answer", URGENT),
    ("it is bigger than before", {"evolving": ["growing"]}, "answer", URGENT),
    ("it changed colour", {"evolving": ["changing"]}, "answer", URGENT),
    ("it's gone darker", {"evolving": ["changing"]}, "answer", URGENT),
    # ABCD
    ("it's lopsided", {"asymmetry": True}, "answer", ROUTINE),
    ("the two halves don't match", {"asymmetry": True}, "answer", ROUTINE),
    ("both halves look the same", {"asymmetry": False, "evolving": ...}, "answer", ROUTINE),
    ("the edge is ragged", {"border": True}, "answer", ROUTINE),
    ("it has a blurry border", {"border": True}, "answer", ROUTINE),
    ("the edges are smooth", {"border": False}, "answer", ROUTINE),
    ("the edge isn't ragged", {"border": False}, "answer", ROUTINE),
    ("it has several colours", {"colours": True}, "answer", ROUTINE),
    ("it's black and blue", {"colours": True}, "answer", ROUTINE),
    ("it is all one colour", {"colours": False}, "answer", ROUTINE),
    ("it's bigger than a pencil eraser", {"diameter": True, "evolving": ...}, "answer", ROUTINE),
    ("wider than 6 mm", {"diameter": True}, "answer", ROUTINE),
    ("it is about 8 mm across", {"diameter": True}, "answer", ROUTINE),
    ("smaller than a pea", {"diameter": False}, "answer", ROUTINE),
    ("the edge is ragged and it has several colours", {"border": True, "colours": True}, "answer", URGENT),
]


@pytest.mark.parametrize("message,answers,intent,tier", STATEMENTS, ids=[row[0] for row in STATEMENTS])
def test_a_statement_records_the_answers_the_quick_replies_would(message, answers, intent, tier):
    talk([(message, answers, intent, tier)], MOLE)


def test_there_are_at_least_sixty_phrasings():
    assert len(STATEMENTS) + len(CONVERSATIONS) >= 60


# Conversations: id, probabilities, [(message, answers recorded, intent, tier after)].
CONVERSATIONS = [
    ("quick replies and free text mix", MOLE, [
        ("no", {"asymmetry": False}, "answer", ROUTINE),
        ("no, but it bleeds", {"border": False, "bleeding": True}, "answer", URGENT),
        ("yes and it itches too", {"colours": True, "itching": True}, "answer", URGENT),
    ]),
    ("a later statement corrects an earlier one", MOLE, [
        ("it doesn't itch", {"itching": False}, "answer", ROUTINE),
        ("actually it does itch a bit", {"itching": True}, "answer", SOON),
    ]),
    ("fear with a fact: the fact counts, the fear does not", MOLE, [
        ("I am really scared, my dad had melanoma", {"family_history": True}, "answer", ROUTINE),
        ("it itches", {"itching": True}, "answer", SOON),
    ]),
    ("fear alone", MOLE, [
        ("I'm scared", {}, "fear", ROUTINE),
        ("really worried", {}, "fear", ROUTINE),
        ("terrified to be honest", {}, "fear", ROUTINE),
    ]),
    ("fear with a greeting still gets the advice", MOLE, [
        ("hi, I'm scared", {}, "hello", ROUTINE),
    ]),
    ("fear with a question gets the answer", MELANOMA, [
        ("I'm scared, is it cancer?", {}, "cancer", URGENT),
    ]),
    ("referral requests", MOLE, [
        ("can you refer me to a dermatologist?", {}, "referral", ROUTINE),
        ("who should I see", {}, "referral", ROUTINE),
        ("where can I get this checked", {}, "referral", ROUTINE),
        ("book an appointment", {}, "referral", ROUTINE),
        ("can you refer me to a dematologist", {}, "referral", ROUTINE),
        ("Can you book me a taxi?", {}, "not_understood", ROUTINE),
        ("when should I book an appointment?", {}, "how_soon", ROUTINE),
    ]),
    ("a fact and a referral request in one message", MOLE, [
        ("it bleeds, can you refer me?", {"bleeding": True}, "answer", URGENT),
    ]),
    ("a fact and a question in one message", TINEA, [
        ("it itches, is it contagious?", {"itching": True}, "answer", SELF_CARE),
    ]),
    ("treatment on an urgent tier", MELANOMA, [
        ("can I just put some cream on it?", {}, "treatment", URGENT),
        ("how do I treat it", {}, "treatment", URGENT),
        ("what cream should I use", {}, "treatment", URGENT),
    ]),
    ("treatment once the answers make it urgent", MOLE, [
        ("it bled", {"bleeding": True}, "answer", URGENT),
        ("can I just put some cream on it?", {}, "treatment", URGENT),
    ]),
    ("unrelated messages are still not understood", MOLE, [
        ("what's the weather", {}, "not_understood", ROUTINE),
        ("purple monkey dishwasher", {}, "not_understood", ROUTINE),
    ]),
]


@pytest.mark.parametrize("probabilities,conversation", [row[1:] for row in CONVERSATIONS],
                         ids=[row[0] for row in CONVERSATIONS])
def test_conversation(probabilities, conversation):
    talk(conversation, probabilities)


# --- what the replies say ------------------------------------------------------------------------------

def test_noted_says_what_was_recorded_and_that_the_advice_changed():
    _state, (reply,) = talk([("it itches and bled last week", {}, "answer", URGENT)], MOLE)
    assert "Noted: it itches, it bleeds." in reply.text
    assert reply.tier_changed and "That changes my advice to: See a doctor within 2 weeks" in reply.text
    assert reply.understood


def test_a_question_answered_in_free_text_is_not_asked_again():
    ctx = context(MOLE)
    state = new_state()
    state = respond(state, "it itches and the edge is ragged", ctx).state
    asked = []
    while (question := assistant.next_question(state)) is not None:
        asked.append(question.key)
        reply = respond(state, "skip", ctx)
        assert "Does it itch" not in reply.text and "B for border" not in reply.text
        state = reply.state
    assert "itching" not in asked and "border" not in asked
    assert asked == [q.key for q in SCRIPT if q.key not in ("itching", "border")]


def test_the_open_question_answered_in_free_text_moves_on():
    state, (reply,) = talk([("skip", {}, "answer", ROUTINE)], MOLE)
    _state, (reply,) = talk([("the edge is ragged", {"border": True}, "answer", ROUTINE)], MOLE, state=state)
    assert reply.question.key == "colours" and "C for colour" in reply.text


def test_a_question_prefilled_from_the_upload_form_is_not_asked_after_free_text():
    state = new_state(assistant.prefill_from(["itching"], 61, "weeks"))
    state, replies = talk([("it bleeds", {"bleeding": True, "itching": True}, "answer", URGENT)], MOLE, state=state)
    assert replies[0].question.key == "asymmetry"
    keys = []
    ctx = context(MOLE)
    while (question := assistant.next_question(state)) is not None:
        keys.append(question.key)
        state = respond(state, "skip", ctx).state
    assert not {"itching", "bleeding", "age", "duration"} & set(keys)


def test_a_skipped_question_answered_later_in_free_text_counts():
    state, _ = talk([("skip", {}, "answer", ROUTINE)], MOLE)
    assert state["skipped"] == ["asymmetry"]
    state, _ = talk([("it's lopsided", {"asymmetry": True}, "answer", ROUTINE)], MOLE, state=state)
    assert state["skipped"] == []


def test_fear_is_calm_points_to_the_advice_and_records_nothing():
    for probabilities, tier, title in [(MOLE, ROUTINE, "Mention it at your next routine visit"),
                                       (MELANOMA, URGENT, "See a doctor within 2 weeks")]:
        state, (reply,) = talk([("I'm really scared", {}, "fear", tier)], probabilities)
        assert state["answers"] == {}
        assert "worrying" in reply.text and title in reply.text
        for reassurance in ("nothing to worry", "harmless", "probably fine", "don't worry"):
            assert reassurance not in reply.text.lower()


def test_referral_says_it_cannot_refer_and_who_can():
    _state, (reply,) = talk([("can you refer me to a dermatologist?", {}, "referral", URGENT)], MELANOMA)
    assert "cannot refer you or book" in reply.text
    assert "contacts listed on this page" in reply.text and "GP" in reply.text
    assert "See a doctor within 2 weeks" in reply.text


def test_referral_uses_the_contacts_text_the_page_passes():
    ctx = context(MELANOMA)
    ctx.referral_text = "Riverside Skin Clinic, +44 20 7946 0000."
    reply = respond(new_state(), "who should I see?", ctx)
    assert reply.intent == "referral" and "Riverside Skin Clinic, +44 20 7946 0000." in reply.text


@pytest.mark.parametrize("message", ["can I just put some cream on it?", "how do I treat it", "what cream should I use",
                                     "what is the treatment for it?"])
def test_treatment_on_an_urgent_or_soon_tier_says_have_it_checked_first(message):
    for probabilities, answers in [(MELANOMA, {}), (MOLE, {"bleeding": True}), (MOLE, {"personal_history": True})]:
        ctx = context(probabilities)
        state = new_state(answers)
        assert ctx.assess(state).tier in (URGENT, SOON)
        reply = respond(state, message, ctx)
        assert reply.intent == "treatment"
        assert "have it checked by a doctor first" in reply.text and "before treating it yourself" in reply.text
        assert "None is needed" not in reply.text and "Usual treatments" not in reply.text


def test_treatment_on_a_routine_or_self_care_tier_keeps_the_usual_treatments():
    assert "Usual treatments for Melanocytic nevus" in respond(new_state(), "how do I treat it", context(MOLE)).text
    assert "Antifungal" in respond(new_state(), "what cream should I use?", context(TINEA)).text
    assert "None is needed" in respond(new_state(), "how do I treat it?", context(DF)).text


def test_a_named_condition_on_an_urgent_tier_gets_its_treatments_after_check_first():
    reply = respond(new_state(), "what is the treatment for psoriasis?", context(MELANOMA))
    assert reply.text.index("have it checked by a doctor first") < reply.text.index("Usual treatments for Psoriasis")


def test_is_it_cancer_and_what_is_it_do_not_reassure_on_an_urgent_tier():
    ctx = context(MOLE)
    state = new_state({"bleeding": True})
    cancer = respond(state, "is it cancer?", ctx).text
    assert "only a doctor can" in cancer and "See a doctor within 2 weeks" in cancer
    what = respond(state, "what is it?", ctx).text
    assert "harmless" in what  # the mole's summary ...
    assert "my advice stays: See a doctor within 2 weeks" in what  # ... never outweighs the advice


# --- compact replies (item 10.1) ------------------------------------------------------------------------

def test_the_open_question_is_repeated_once_after_a_digression_not_every_turn():
    ctx = context(MOLE)
    state = new_state()
    first = respond(state, "is it contagious?", ctx)
    assert "Back to my question: A for asymmetry" in first.text
    second = respond(first.state, "what causes moles?", ctx)
    third = respond(second.state, "banana phone", ctx)
    assert "A for asymmetry" not in second.text and "A for asymmetry" not in third.text
    assert second.question.key == third.question.key == "asymmetry"  # still open, shown by the page
    answered = respond(third.state, "yes", ctx)
    assert "B for border" in answered.text
    assert "Back to my question: B for border" in respond(answered.state, "thanks", ctx).text


def test_replies_do_not_repeat_the_help_text():
    ctx = context(MOLE)
    state = new_state()
    for message in ["no", "it itches", "is it contagious?", "I'm scared"]:
        reply = respond(state, message, ctx)
        state = reply.state
        assert all(question.help not in reply.text for question in SCRIPT), message


def test_misspellings_are_only_corrected_when_close_and_unambiguous():
    vocabulary = assistant.VOCABULARY
    assert assistant.correct_spelling("bleading itchs tendr melenoma dematologist", vocabulary) == \
        "bleeding itch tender melanoma dermatologist"
    for word in ["paint", "inches", "weeks", "store", "groin", "shape", "shapes", "large", "bread", "weather", "cat"]:
        assert assistant.correct_spelling(word, vocabulary) == word
    assert assistant.correct_spelling("zzzzz itxxx", vocabulary) == "zzzzz itxxx"
