"""The urgency rule, table-driven: probabilities + uncertainty + answers -> tier and reasons."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from guidance.triage import (
    RED_FLAGS,
    ROUTINE,
    SELF_CARE,
    SOON,
    TIERS,
    TOP_CLASS_TIER,
    URGENT,
    malignancy_probability,
    triage,
)
from ml.classes import ALL_LABELS

T = 0.15  # the threshold the table is written for (passed explicitly: the default may change)
RANK = {SELF_CARE: 0, ROUTINE: 1, SOON: 2, URGENT: 3}
SPREAD = {"nv": .11, "bkl": .11, "df": .11, "vasc": .11, "ad": .11, "tinea": .11, "acne": .11, "psoriasis": .11}

# id, probabilities, uncertain, not_skin, symptoms, expected tier, a phrase the reasons must contain
TABLE = [
    ("clear mole", {"nv": .9, "bkl": .05, "mel": .05}, False, False, [], ROUTINE, "harmless (benign)"),
    ("clear melanoma", {"mel": .7, "nv": .3}, False, False, [], URGENT, "combined probability of 70 %"),
    ("mole on top but melanoma 20 %", {"nv": .75, "mel": .2, "bkl": .05}, False, False, [], URGENT, "melanoma"),
    ("malignancy spread over four classes", {"nv": .58, "bkl": .25, "mel": .06, "bcc": .05, "scc": .03, "akiec": .03},
     False, False, [], URGENT, "17 %"),
    ("just below the threshold", {"nv": .86, "mel": .14}, False, False, [], ROUTINE, "14 %"),
    ("exactly at the threshold", {"nv": .85, "mel": .15}, False, False, [], URGENT, "at or above the 15 %"),
    ("actinic keratosis on top, sum below threshold", {"akiec": .12, **SPREAD}, False, False, [], SOON,
     "below the level"),
    ("clear eczema", {"ad": .9, "nv": .08, "mel": .02}, False, False, [], SELF_CARE, "self-care"),
    ("eczema but malignancy not low", {"ad": .8, "nv": .1, "mel": .1}, False, False, [], ROUTINE, "rule it out"),
    ("clear tinea", {"tinea": .85, "ad": .15}, False, False, [], SELF_CARE, "pharmacist"),
    ("clear acne", {"acne": .95, "nv": .05}, False, False, [], SELF_CARE, "self-care"),
    ("clear psoriasis", {"psoriasis": .9, "ad": .1}, False, False, [], ROUTINE, "prescription"),
    ("another skin condition", {"other": .7, "nv": .3}, False, False, [], SOON, "outside the ones the model knows"),
    ("uncertain eczema is never self-care", {"ad": .4, "tinea": .35, "psoriasis": .25}, True, False, [], SOON,
     "uncertain"),
    ("uncertain mole", {"nv": .45, "bkl": .4, "df": .15}, True, False, [], SOON, "cannot reassure"),
    ("uncertain but malignancy high", {"mel": .45, "nv": .4, "bkl": .15}, True, False, [], URGENT, "45 %"),
    ("not skin: probabilities ignored", {"mel": .9, "nv": .1}, False, True, [], SOON, "does not look like"),
    ("not skin but bleeding", {"acne": 1.0}, False, True, ["bleeding"], URGENT, "it bleeds"),
    ("no probabilities at all", {}, False, False, [], SOON, "could not be assessed"),
    ("changing mole", {"nv": .95, "mel": .05}, False, False, ["changing"], URGENT, "changing colour or shape"),
    ("bleeding mole", {"nv": .95, "mel": .05}, False, False, ["bleeding"], URGENT, "warning signs"),
    ("growing seborrhoeic keratosis", {"bkl": .9, "nv": .1}, False, False, ["growing"], URGENT, "getting bigger"),
    ("melanoma and bleeding", {"mel": .8, "nv": .2}, False, False, ["bleeding"], URGENT, "warning signs as well"),
    ("bleeding eczema", {"ad": .9, "nv": .1}, False, False, ["bleeding"], SOON, "rather than treating it yourself"),
    ("eczema with two red flags", {"ad": .9, "nv": .1}, False, False, ["bleeding", "growing"], URGENT,
     "it bleeds and it is getting bigger"),
    ("psoriasis sore not healing", {"psoriasis": .9, "ad": .1}, False, False, ["not_healing"], SOON,
     "has not healed in 4 weeks"),
    ("uncertain tinea not healing", {"tinea": .4, "ad": .3, "psoriasis": .3}, True, False, ["not_healing"], URGENT,
     "warning signs"),
    ("itchy acne stays self-care", {"acne": .95, "nv": .05}, False, False, ["itching"], SELF_CARE, "self-care"),
    ("itchy mole", {"nv": .95, "mel": .05}, False, False, ["itching"], SOON, "it itches"),
    ("crusting benign keratosis", {"bkl": .9, "nv": .1}, False, False, ["crusting"], SOON, "crusts or oozes"),
    ("painful vascular spot", {"vasc": .9, "nv": .1}, False, False, ["pain"], SOON, "hurts"),
    ("clear dermatofibroma", {"df": .9, "nv": .1}, False, False, [], ROUTINE, "benign"),
]


@pytest.mark.parametrize("probabilities,uncertain,not_skin,symptoms,tier,phrase",
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_triage_table(probabilities, uncertain, not_skin, symptoms, tier, phrase):
    result = triage(probabilities, uncertain=uncertain, not_skin=not_skin,
                    answers={"symptoms": symptoms}, malignancy_threshold=T)
    assert result.tier == tier, result.reasons
    assert result.title == TIERS[tier]
    assert any(phrase in reason for reason in result.reasons), result.reasons
    assert all(reason.strip() and reason[0].isupper() and reason.rstrip().endswith(".") for reason in result.reasons)


MOLE = {"nv": .95, "mel": .05}
ECZEMA = {"ad": .9, "nv": .1}
# The symptom assistant's answers (ABCD signs, history, age, duration): id, probabilities, answers, tier, phrase.
ANSWERS_TABLE = [
    ("one ABCD sign changes nothing", MOLE, {"abcd": ["asymmetry"]}, ROUTINE, "common in harmless moles"),
    ("asymmetry and border: two signs, soon", MOLE, {"abcd": ["asymmetry", "border"]}, SOON, "two or more"),
    ("shape and diameter score 3: urgent", MOLE, {"abcd": ["border", "diameter"]}, URGENT, "scores 3"),
    ("shape and colour score 4: urgent", MOLE, {"abcd": ["asymmetry", "colours"]}, URGENT, "scores 4"),
    ("several colours and itching score 3", MOLE, {"abcd": ["colours"], "symptoms": ["itching"]}, URGENT,
     "seven-point checklist"),
    ("diameter and crusting score 2: soon from the minor sign", MOLE,
     {"abcd": ["diameter"], "symptoms": ["crusting"]}, SOON, "crusts or oozes"),
    ("ABCD signs on eczema do not apply", ECZEMA, {"abcd": ["border", "colours", "diameter"]}, SELF_CARE,
     "self-care"),
    ("unknown sign codes are ignored", MOLE, {"abcd": ["shiny"]}, ROUTINE, "harmless (benign)"),
    ("evolving is the changing red flag", MOLE, {"symptoms": ["changing"], "abcd": ["asymmetry"]}, URGENT,
     "warning signs"),
    ("personal history of skin cancer", MOLE, {"history": ["personal"]}, SOON, "skin cancer before"),
    ("family history alone changes nothing", MOLE, {"history": ["family"]}, ROUTINE, "harmless (benign)"),
    ("family history and one ABCD sign", MOLE, {"history": ["family"], "abcd": ["colours"]}, SOON,
     "close relative"),
    ("history does not apply to eczema", ECZEMA, {"history": ["personal", "family"]}, SELF_CARE, "self-care"),
    ("new spot at 54", MOLE, {"age": 54, "duration": "months"}, SOON, "age of 50 or over"),
    ("new spot at 30", MOLE, {"age": 30, "duration": "weeks"}, ROUTINE, "harmless (benign)"),
    ("long-standing spot at 70", MOLE, {"age": 70, "duration": "years"}, ROUTINE, "harmless (benign)"),
    ("long-standing dermatofibroma at 70", {"df": .9, "nv": .1}, {"age": 70, "duration": "lifelong"}, ROUTINE,
     "benign"),
    ("age without duration changes nothing", MOLE, {"age": 80}, ROUTINE, "harmless (benign)"),
    ("new eczema at 70 stays self-care", ECZEMA, {"age": 70, "duration": "days"}, SELF_CARE, "self-care"),
    ("already urgent: no extra reasons needed", {"mel": .7, "nv": .3}, {"history": ["personal"]}, URGENT,
     "combined probability"),
    ("unclear result counts as a spot", {"ad": .4, "tinea": .35, "psoriasis": .25},
     {"uncertain": True, "symptoms": ["bleeding"]}, URGENT, "warning signs"),  # a clear eczema: soon
]


@pytest.mark.parametrize("probabilities,answers,tier,phrase", [row[1:] for row in ANSWERS_TABLE],
                         ids=[row[0] for row in ANSWERS_TABLE])
def test_triage_answers_table(probabilities, answers, tier, phrase):
    answers = dict(answers)
    uncertain = answers.pop("uncertain", False)
    result = triage(probabilities, uncertain=uncertain, not_skin=False, answers=answers, malignancy_threshold=T)
    assert result.tier == tier, result.reasons
    assert any(phrase in reason for reason in result.reasons), result.reasons
    assert all(reason.strip() and reason[0].isupper() and reason.rstrip().endswith(".") for reason in result.reasons)


def test_every_raise_from_the_answers_adds_a_reason():
    for _id, probabilities, answers, _tier, _phrase in ANSWERS_TABLE:
        answers = dict(answers)
        uncertain = answers.pop("uncertain", False)
        plain = triage(probabilities, uncertain=uncertain, not_skin=False, answers={}, malignancy_threshold=T)
        told = triage(probabilities, uncertain=uncertain, not_skin=False, answers=answers, malignancy_threshold=T)
        assert RANK[told.tier] >= RANK[plain.tier], _id
        if told.tier != plain.tier:
            assert len(told.reasons) > len(plain.reasons), _id


def test_table_covers_every_tier_and_has_enough_rows():
    assert len(TABLE) >= 15
    assert {row[5] for row in TABLE} == set(TIERS)


def test_malignancy_is_the_sum_of_the_four_classes():
    assert malignancy_probability({"mel": .1, "bcc": .2, "scc": .05, "akiec": .05, "nv": .6}) == pytest.approx(.4)
    assert malignancy_probability({"nv": 1.0}) == 0.0


def test_the_threshold_decides_between_urgent_and_not():
    probabilities = {"nv": .7, "mel": .3}
    answers = {"symptoms": []}
    assert triage(probabilities, uncertain=False, not_skin=False, answers=answers,
                  malignancy_threshold=.25).tier == URGENT
    assert triage(probabilities, uncertain=False, not_skin=False, answers=answers,
                  malignancy_threshold=.35).tier == ROUTINE


@pytest.mark.parametrize("top", sorted(ALL_LABELS))
def test_uncertain_or_not_skin_never_gives_self_care(top):
    probabilities = {top: .6, "ad": .2, "nv": .2} if top != "ad" else {"ad": .8, "nv": .2}
    symptom_sets = [[], ["itching"], ["pain", "crusting"], *([flag] for flag in RED_FLAGS)]
    for symptoms, (uncertain, not_skin) in itertools.product(symptom_sets, [(True, False), (False, True),
                                                                            (True, True)]):
        result = triage(probabilities, uncertain=uncertain, not_skin=not_skin, answers={"symptoms": symptoms},
                        malignancy_threshold=T)
        assert result.tier != SELF_CARE, (top, symptoms, uncertain, not_skin)


@pytest.mark.parametrize("top", sorted(ALL_LABELS))
def test_a_red_flag_never_lowers_and_always_reaches_at_least_soon(top):
    probabilities = {top: .9, "nv": .1} if top != "nv" else {"nv": .9, "bkl": .1}
    for uncertain in (False, True):
        without = triage(probabilities, uncertain=uncertain, not_skin=False, answers={}, malignancy_threshold=T)
        for flag in RED_FLAGS:
            flagged = triage(probabilities, uncertain=uncertain, not_skin=False, answers={"symptoms": [flag]},
                             malignancy_threshold=T)
            assert RANK[flagged.tier] >= max(RANK[without.tier], RANK[SOON]), (top, flag, uncertain)


def test_every_known_class_has_a_top_class_tier():
    assert set(ALL_LABELS) <= set(TOP_CLASS_TIER)


def test_a_clear_result_is_never_less_urgent_than_the_conditions_usual_tier():
    """The knowledge base's 'usual urgency' and the rule agree for a clear, symptom-free result."""
    data = json.loads((Path(__file__).resolve().parents[2] / "guidance" / "data" / "conditions.json").read_text())
    for entry in data["conditions"]:
        code = entry["code"]
        probabilities = {code: .95, "nv": .05} if code != "nv" else {"nv": .95, "bkl": .05}
        result = triage(probabilities, uncertain=False, not_skin=False, answers={}, malignancy_threshold=T)
        assert RANK[result.tier] >= RANK[entry["urgency"]], (code, result.tier, entry["urgency"])


# --- Results that could not be assessed (issue 12): every state x tier ------------------------------

from guidance.triage import (  # noqa: E402
    ASSESSED,
    NO_RESULT,
    NOT_SKIN,
    RETAKE_TIPS,
    STATES,
    UNCERTAIN,
)

# A probability profile for each tier an assessed result can get (no answers).
PROFILES = {
    SELF_CARE: {"ad": .9, "nv": .08, "mel": .02},
    ROUTINE: {"nv": .9, "bkl": .05, "mel": .05},
    SOON: {"other": .7, "nv": .3},
    URGENT: {"mel": .7, "nv": .3},
}
# state, look_anyway -> the tier each profile gets, and whether the ranking shows.
STATE_TABLE = {
    (ASSESSED, False): ({SELF_CARE: SELF_CARE, ROUTINE: ROUTINE, SOON: SOON, URGENT: URGENT}, True),
    (ASSESSED, True): ({SELF_CARE: SELF_CARE, ROUTINE: ROUTINE, SOON: SOON, URGENT: URGENT}, True),
    (UNCERTAIN, False): ({SELF_CARE: SOON, ROUTINE: SOON, SOON: SOON, URGENT: URGENT}, False),
    (UNCERTAIN, True): ({SELF_CARE: SOON, ROUTINE: SOON, SOON: SOON, URGENT: URGENT}, True),
    (NOT_SKIN, False): ({SELF_CARE: SOON, ROUTINE: SOON, SOON: SOON, URGENT: SOON}, False),
    (NOT_SKIN, True): ({SELF_CARE: SOON, ROUTINE: SOON, SOON: SOON, URGENT: URGENT}, True),
}


@pytest.mark.parametrize("state,look_anyway", sorted(STATE_TABLE), ids=[f"{s}-{'anyway' if a else 'as is'}"
                                                                        for s, a in sorted(STATE_TABLE)])
def test_every_state_and_tier(state, look_anyway):
    expected, shows = STATE_TABLE[(state, look_anyway)]
    for profile, probabilities in PROFILES.items():
        result = triage(probabilities, uncertain=state == UNCERTAIN, not_skin=state == NOT_SKIN, answers={},
                        malignancy_threshold=T, look_anyway=look_anyway)
        assert (result.state, result.tier, result.shows_ranking) == (state, expected[profile], shows), profile
        assert result.shown_anyway == (look_anyway and state != ASSESSED)
        assert bool(result.retake_tips) == (state != ASSESSED)
        if state != ASSESSED:
            assert result.tier not in (ROUTINE, SELF_CARE)
        if not shows:  # nothing the hidden ranking suggests may leak into the reasons, nor be called "low"
            assert result.evidence == ""
            said = " ".join(result.reasons)
            assert "most resembles" not in said and "most likely match" not in said, result.reasons


def test_no_probabilities_is_not_assessed_and_cannot_be_shown_anyway():
    for look_anyway in (False, True):
        result = triage({}, uncertain=False, not_skin=False, answers={}, malignancy_threshold=T,
                        look_anyway=look_anyway)
        assert (result.state, result.tier, result.shows_ranking, result.can_look_anyway) == (NO_RESULT, SOON,
                                                                                             False, False)


def test_answers_still_raise_a_result_that_was_not_assessed():
    for state in (UNCERTAIN, NOT_SKIN, NO_RESULT):
        probabilities = {} if state == NO_RESULT else PROFILES[ROUTINE]
        result = triage(probabilities, uncertain=state == UNCERTAIN, not_skin=state == NOT_SKIN,
                        answers={"symptoms": ["bleeding"]}, malignancy_threshold=T)
        assert result.tier == URGENT and any("it bleeds" in r for r in result.reasons), state


def test_states_are_all_covered():
    assert set(STATES) == {state for state, _ in STATE_TABLE} | {NO_RESULT}
    assert len(RETAKE_TIPS) >= 4


@pytest.mark.parametrize("malignancy,band,borderline", [
    (.02, "low", False), (.12, "borderline", True), (.2, "borderline", True), (.3, "raised", False),
    (.6, "high", False)])
def test_evidence_is_graded_in_plain_words(malignancy, band, borderline):
    result = triage({"mel": malignancy, "nv": 1 - malignancy}, uncertain=False, not_skin=False, answers={},
                    malignancy_threshold=T)
    assert f"{malignancy * 100:.0f} %, {band}" in result.evidence and result.borderline == borderline
    assert "15 %" in result.evidence  # the level it is compared with


def test_two_urgent_readings_of_different_strength_read_differently():
    """Issue 12 item 8: 36 % melanoma and 78 % melanoma get the same tier but not the same words."""
    weaker = triage({"nv": .625, "mel": .36, "bkl": .015}, uncertain=False, not_skin=False, answers={},
                    malignancy_threshold=.091)
    stronger = triage({"mel": .776, "nv": .2, "bkl": .024}, uncertain=False, not_skin=False, answers={},
                      malignancy_threshold=.091)
    assert weaker.tier == stronger.tier == URGENT
    assert "raised" in weaker.evidence and "high" in stronger.evidence


def test_what_did_not_move_the_tier_is_still_listed():
    """Issue 12 item 6: an urgent photo's reasons left out itching and personal and family history."""
    result = triage({"mel": .7, "nv": .3}, uncertain=False, not_skin=False, malignancy_threshold=T,
                    answers={"symptoms": ["itching", "bleeding"], "history": ["personal", "family"]})
    assert result.tier == URGENT
    assert any("it bleeds" in r for r in result.reasons)  # a red flag on an urgent result: a reason
    assert result.noted == ["You told us it itches.", "You told us you have had skin cancer before.",
                            "You told us a close relative has had melanoma or skin cancer."]
    raised = triage({"nv": .95, "mel": .05}, uncertain=False, not_skin=False, malignancy_threshold=T,
                    answers={"symptoms": ["itching"]})
    assert raised.tier == SOON and raised.noted == []  # itching moved this one: it is a reason
