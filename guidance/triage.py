"""Urgency triage: how soon to see someone, from the calibrated probabilities and the person's answers.

One pure function, :func:`triage`, no database and no settings: the caller passes the
malignancy threshold (``guidance.selectors.malignancy_threshold()`` reads it from the
model's metadata or from settings). The rule, in order:

1. **Malignancy.** ``p(mel) + p(bcc) + p(scc) + p(akiec)`` (the calibrated probabilities of
   melanoma, basal cell carcinoma, squamous cell carcinoma and actinic keratosis / Bowen's
   disease) at or above the threshold gives ``urgent``. The sum, not the top class: a photo
   that is 30 % "mole" and 25 % "melanoma" is still one to show a doctor quickly.
2. **Top class.** Below the threshold, the most probable class sets the tier
   (``TOP_CLASS_TIER``): a skin-cancer class on top → ``soon``; benign growths (moles,
   seborrhoeic keratoses, dermatofibromas, vascular spots) → ``routine``; eczema, tinea
   and acne → ``self_care`` but only while the malignancy sum is below half the threshold
   (otherwise ``routine``); psoriasis → ``routine`` (it needs a doctor's diagnosis and
   prescription treatment); "another skin condition" → ``soon`` (we cannot say what it is).
3. **A result that could not be assessed** (``result_state``: not skin, uncertain, or no
   probabilities at all) is never reassuring: its tier is at least ``soon``, never ``routine`` or
   ``self_care``, its ranking is not shown (``TriageResult.shows_ranking``) and the person gets
   retake tips (``RETAKE_TIPS``). A photo the gate rejected as not skin has no meaningful
   probabilities: they are ignored. An uncertain result's probabilities still count, but only
   upwards (a high malignancy sum still gives ``urgent``). The person may say "this is skin,
   please look anyway" (``look_anyway``): the ranking is then shown with a warning, the not-skin
   photo's probabilities count, and the tier stays at least ``soon``.
4. **Red flags** in the answers (``RED_FLAGS``: bleeding, a sore not healed in 4 weeks,
   getting bigger, changing colour or shape) raise the tier: to ``urgent`` for a spot or
   growth (anything but the inflammatory and infection classes), for an unclear result and
   whenever two or more red flags are present; otherwise (eczema, tinea, acne, psoriasis
   with low malignancy) to at least ``soon``.
5. **Minor signs** (``MINOR_SIGNS``: itching, pain, crusting) on a spot or growth raise
   ``self_care``/``routine`` to ``soon`` (itch and crusting are minor criteria of the
   seven-point checklist for changing moles).

6. **ABCDE signs** (``ABCD_SIGNS``, from the symptom assistant: asymmetry, irregular border,
   several colours, wider than 6 mm; "E", evolving, is the ``changing``/``growing`` red flag)
   on a spot or growth: two or more raise the tier to at least ``soon``. They are then also
   scored as in the weighted seven-point checklist that NICE (NG12) uses for urgent referral:
   irregular shape (asymmetry or border) 2, irregular colour 2, diameter 1, crusting or
   oozing 1, itch or pain (a change in sensation) 1; a score of 3 or more gives ``urgent``
   (change in size, the checklist's third major feature, is already a red flag). One sign
   alone is common in harmless moles: it is mentioned but changes nothing.
7. **Risk factors** (``answers["history"]``: ``personal`` for a past skin cancer of one's own,
   ``family`` for melanoma or skin cancer in a parent, sibling or child) on a spot or growth: a
   personal history raises it to at least ``soon``; a family history does so when there is also
   an ABCD sign or a minor sign. Age 50 or over with a spot that appeared in the last year
   (``duration`` of days, weeks or months) raises it to at least ``soon``: new moles are rare
   after 50 and melanoma more common.

Answers the person did not give (or answered "not sure") count as "no"; nothing here ever
lowers a tier, and each raise adds its reason.

The threshold. It must be chosen on *validation* data (never test data) as the largest
value at which the urgent tier still catches at least 95 % of the melanomas there, and
reported with its false-alarm rate in the model card; the ML lead writes it into the model
metadata as ``thresholds.malignancy``. Until a model carries one,
``DEFAULT_MALIGNANCY_THRESHOLD`` (setting ``MALIGNANCY_THRESHOLD``) applies: a deliberately
low placeholder, not a validated value, that errs towards sending people to a doctor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

URGENT, SOON, ROUTINE, SELF_CARE = "urgent", "soon", "routine", "self_care"

# Whether a result could be assessed (the ranking is meaningful) or not, and why not.
ASSESSED, UNCERTAIN, NOT_SKIN, NO_RESULT = "assessed", "uncertain", "not_skin", "no_result"
STATES = (ASSESSED, UNCERTAIN, NOT_SKIN, NO_RESULT)
STATE_TITLES = {
    ASSESSED: "Assessed",
    UNCERTAIN: "Not assessed: the model is uncertain",
    NOT_SKIN: "Not assessed: this does not look like a photo of skin",
    NO_RESULT: "Not assessed",
}
NOT_ASSESSED_FLOOR = SOON

#: How to take a photo the model can read, shown whenever a result could not be assessed.
RETAKE_TIPS = (
    "Hold the camera about 10–15 cm from the skin, or as close as it still focuses sharply.",
    "Use daylight or a brightly lit room, with no shadow over the spot and no flash straight on it.",
    "Tap the spot on the screen to focus and hold still; if the photo looks blurred, take it again.",
    "Fit the whole spot in the frame, in the middle, with a little normal skin around it.",
    "No filter, zoom or beauty mode, and no make-up, cream or plaster on the spot.",
)

# Bounds of a "borderline" reading, as multiples of the malignancy threshold.
BORDERLINE = (2 / 3, 1.5)

# Most urgent first. Titles are what the person reads.
TIERS: dict[str, str] = {
    URGENT: "See a doctor within 2 weeks",
    SOON: "Book an appointment in the coming weeks",
    ROUTINE: "Mention it at your next routine visit / keep an eye on it",
    SELF_CARE: "Self-care; see a pharmacist or GP if it does not get better",
}
TIER_CHOICES = [(code, title) for code, title in TIERS.items()]
_RANK = {SELF_CARE: 0, ROUTINE: 1, SOON: 2, URGENT: 3}

MALIGNANT_CODES = ("mel", "bcc", "scc", "akiec")
INFLAMMATORY_CODES = frozenset({"ad", "tinea", "acne", "psoriasis"})
DEFAULT_MALIGNANCY_THRESHOLD = 0.15

# The tier when this class is the most probable and the malignancy sum is below the threshold.
TOP_CLASS_TIER: dict[str, str] = {
    "mel": SOON, "bcc": SOON, "scc": SOON, "akiec": SOON,
    "nv": ROUTINE, "bkl": ROUTINE, "df": ROUTINE, "vasc": ROUTINE,
    "ad": SELF_CARE, "tinea": SELF_CARE, "acne": SELF_CARE, "psoriasis": ROUTINE,
    "other": SOON,
}

RED_FLAGS: dict[str, str] = {
    "bleeding": "it bleeds",
    "not_healing": "it is a sore that has not healed in 4 weeks",
    "growing": "it is getting bigger",
    "changing": "it is changing colour or shape",
}
MINOR_SIGNS: dict[str, str] = {"itching": "it itches", "pain": "it hurts or is tender", "crusting": "it crusts or oozes"}
# The ABCD of the ABCDE rule for melanoma (E, evolving, is the "changing"/"growing" red flag).
ABCD_SIGNS: dict[str, str] = {
    "asymmetry": "its two halves do not match",
    "border": "its edge is irregular or blurred",
    "colours": "it has several colours",
    "diameter": "it is wider than 6 mm",
}
HISTORY: dict[str, str] = {
    "personal": "you have had skin cancer before",
    "family": "a close relative has had melanoma or skin cancer",
}
NEW_SPOT_DURATIONS = frozenset({"days", "weeks", "months"})  # diagnosis.choices.Duration: under a year
OLDER_AGE = 50


def seven_point_score(abcd: set[str], symptoms: set[str]) -> int:
    """The weighted seven-point checklist from the answers we have (without 'change in size', a red flag)."""
    score = 2 if abcd & {"asymmetry", "border"} else 0  # irregular shape
    score += 2 if "colours" in abcd else 0  # irregular colour
    score += 1 if "diameter" in abcd else 0
    score += 1 if "crusting" in symptoms else 0  # oozing
    score += 1 if symptoms & {"itching", "pain"} else 0  # change in sensation
    return score


@dataclass(frozen=True)
class TriageResult:
    tier: str
    reasons: list[str] = field(default_factory=list)
    malignancy_probability: float | None = None
    state: str = ASSESSED
    shown_anyway: bool = False  # the person asked to see a result that was not assessed
    evidence: str = ""  # the summed skin-cancer probability in plain words ("" without probabilities)
    borderline: bool = False
    noted: list[str] = field(default_factory=list)  # what the person told us that did not change the tier

    @property
    def title(self) -> str:
        return TIERS[self.tier]

    @property
    def assessed(self) -> bool:
        return self.state == ASSESSED

    @property
    def shows_ranking(self) -> bool:
        """Whether the ranked conditions may be shown: an assessed result, or one the person asked to see."""
        return shows_ranking(self.state, self.shown_anyway)

    @property
    def state_title(self) -> str:
        return STATE_TITLES[self.state]

    @property
    def retake_tips(self) -> tuple[str, ...]:
        return () if self.assessed else RETAKE_TIPS

    @property
    def can_look_anyway(self) -> bool:
        """A not-assessed result with probabilities, which the person has not yet asked to see."""
        return self.state in (UNCERTAIN, NOT_SKIN) and not self.shown_anyway


def _pct(p: float) -> str:
    return f"{p * 100:.0f} %"


def _more_urgent(a: str, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


def malignancy_probability(probabilities: dict[str, float]) -> float:
    """The summed probability of melanoma, BCC, SCC and actinic keratosis / Bowen's disease."""
    return sum(float(probabilities.get(code, 0.0)) for code in MALIGNANT_CODES)


def result_state(*, not_skin: bool, uncertain: bool, has_probabilities: bool) -> str:
    """Whether a final result was assessed, and if not why (the gate's verdict comes first)."""
    if not has_probabilities:
        return NO_RESULT
    if not_skin:
        return NOT_SKIN
    return UNCERTAIN if uncertain else ASSESSED


def shows_ranking(state: str, look_anyway: bool) -> bool:
    """Whether ranked conditions may be shown: an assessed result, or one the person asked to see anyway."""
    return state == ASSESSED or (look_anyway and state in (UNCERTAIN, NOT_SKIN))


def evidence(malignancy: float, threshold: float) -> tuple[str, bool]:
    """The summed skin-cancer probability in plain words, and whether the reading is borderline."""
    low, high = BORDERLINE
    borderline = low * threshold <= malignancy < high * threshold
    if malignancy >= 0.5:
        band = "high: the photo resembles skin cancer more than anything else"
    elif borderline:
        band = ("borderline: close to the level at which we advise a quick check, so a small change in the photo "
                "could change the advice")
    elif malignancy >= threshold:
        band = "raised: enough to have it checked quickly, although the model's reading leans to a harmless cause"
    else:
        band = "low"
    return (f"Resemblance to skin cancer or a pre-cancerous spot (all kinds together): {_pct(malignancy)}, {band}. "
            f"We advise a quick check from {_pct(threshold)}."), borderline


def triage(probabilities: dict[str, float], *, uncertain: bool, not_skin: bool, answers: dict,
           malignancy_threshold: float = DEFAULT_MALIGNANCY_THRESHOLD, look_anyway: bool = False) -> TriageResult:
    """Turn one result and the person's answers into one of four tiers, with plain-language reasons.

    ``probabilities`` maps class codes (``ml.classes``) to calibrated probabilities (may be
    empty); ``answers`` may hold ``symptoms`` (a list of ``Submission.Symptom`` codes),
    ``abcd`` (``ABCD_SIGNS`` codes), ``history`` (``HISTORY`` codes), ``age`` (years) and
    ``duration`` (a ``Duration`` code). ``look_anyway``: the person asked to see a result that
    was not assessed. The rule is described in the module docstring.
    """
    reasons: list[str] = []
    symptoms = set(answers.get("symptoms") or [])
    abcd = set(answers.get("abcd") or []) & set(ABCD_SIGNS)
    history = set(answers.get("history") or []) & set(HISTORY)
    red_flags = [text for code, text in RED_FLAGS.items() if code in symptoms]
    minor = [text for code, text in MINOR_SIGNS.items() if code in symptoms]
    state = result_state(not_skin=not_skin, uncertain=uncertain, has_probabilities=bool(probabilities))
    shown_anyway = look_anyway and state in (UNCERTAIN, NOT_SKIN)

    if state == NO_RESULT or (state == NOT_SKIN and not shown_anyway):
        # The gate's "not skin" means the probabilities describe nothing: ignore them.
        malignancy = None
        top = None
        tier = NOT_ASSESSED_FLOOR
        reasons.append("The photo could not be assessed" + (
            " because it does not look like a close-up of skin" if state == NOT_SKIN else "")
            + ", so nothing in it can reassure you. Take it again (see the tips); if you cannot get a clear photo, "
              "or the spot worries you, have it looked at in the coming weeks.")
        unclear = True
    else:
        malignancy = malignancy_probability(probabilities)
        top = max(probabilities, key=lambda code: probabilities[code])
        unclear = state != ASSESSED or top == "other"
        if state == NOT_SKIN:
            reasons.append("You asked us to read a photo that the model judged not to look like skin: its reading "
                           "may be wrong, so the advice is never less than booking an appointment.")
        if malignancy >= malignancy_threshold:
            tier = URGENT
            reasons.append(
                f"The photo resembles skin cancer or a pre-cancerous spot (melanoma, basal cell carcinoma, "
                f"squamous cell carcinoma or actinic keratosis) with a combined probability of {_pct(malignancy)}, "
                f"at or above the {_pct(malignancy_threshold)} at which we advise seeing a doctor quickly.")
        elif state == UNCERTAIN and not shown_anyway:
            tier = NOT_ASSESSED_FLOOR  # the ranking is not shown, so neither is what its top class suggests
        else:
            tier = TOP_CLASS_TIER.get(top, SOON)
            if top in INFLAMMATORY_CODES and tier == SELF_CARE and malignancy >= malignancy_threshold / 2:
                tier = ROUTINE
                reasons.append(
                    f"The photo most resembles a common skin condition that often responds to self-care, but the "
                    f"combined probability of skin cancer or a pre-cancerous spot ({_pct(malignancy)}) is not low "
                    f"enough to rule it out: have it looked at.")
            elif top in MALIGNANT_CODES:
                reasons.append(
                    f"The most likely match is a skin cancer or pre-cancerous spot, although the combined "
                    f"probability ({_pct(malignancy)}) is below the level for the most urgent advice.")
            elif top == "other":
                reasons.append("The photo most resembles a skin condition outside the ones the model knows, "
                               "so it cannot tell you what it is: a doctor or nurse should look at it.")
            elif tier == SELF_CARE:
                reasons.append("The photo most resembles a common skin condition that usually responds to "
                               "self-care or treatment from a pharmacist, and nothing in it suggests skin cancer.")
            elif top == "psoriasis":
                reasons.append("The photo most resembles psoriasis, which needs a doctor's diagnosis and "
                               "usually prescription treatment, but it is not urgent.")
            else:
                reasons.append(f"The photo most resembles a harmless (benign) skin growth; the combined "
                               f"probability of skin cancer or a pre-cancerous spot is {_pct(malignancy)}.")
        if state == UNCERTAIN:
            reasons.append("The model is uncertain: none of the conditions it knows stands out, so it cannot "
                           "reassure you" + (". You asked to see its reading anyway: treat the ranking with caution."
                                              if shown_anyway else " and does not rank them. Take the photo again "
                                              "(see the tips), or have the spot looked at."))

    spot = unclear or top not in INFLAMMATORY_CODES
    if red_flags:
        said = " and ".join(red_flags)
        if spot or len(red_flags) >= 2:
            if tier != URGENT:
                reasons.append(f"You told us {said}: these are warning signs that a doctor should check quickly.")
            else:
                reasons.append(f"You told us {said}, which are warning signs as well.")
            tier = URGENT
        else:
            if _RANK[tier] < _RANK[SOON]:
                reasons.append(f"You told us {said}: a doctor should see it rather than treating it yourself.")
            else:
                reasons.append(f"You told us {said}, which is a reason to have it checked.")
            tier = _more_urgent(tier, SOON)
    if minor and spot and _RANK[tier] < _RANK[SOON]:
        reasons.append(f"You told us {' and '.join(minor)}: in a spot or growth that is worth having checked.")
        tier = SOON
    if abcd and spot:
        tier = _abcd_step(tier, abcd, symptoms, reasons)
    if spot:
        tier = _risk_step(tier, history, abcd, minor, answers, reasons)

    if state != ASSESSED and _RANK[tier] < _RANK[NOT_ASSESSED_FLOOR]:
        # Never routine or self-care without a clear result.
        reasons.append("Because the photo could not be assessed clearly, the advice is at least to book an "
                       "appointment rather than wait.")
        tier = NOT_ASSESSED_FLOOR
    noted = _also_noted(reasons, red_flags + minor, abcd, history)
    said, borderline = "", False
    if malignancy is not None and shows_ranking(state, shown_anyway):  # a hidden reading is not quoted as "low"
        said, borderline = evidence(malignancy, malignancy_threshold)
        if state != ASSESSED:
            said += " The photo could not be assessed clearly, so this may be wrong."
    return TriageResult(tier=tier, reasons=reasons, malignancy_probability=malignancy, state=state,
                        shown_anyway=shown_anyway, evidence=said, borderline=borderline, noted=noted)


def _also_noted(reasons: list[str], signs: list[str], abcd: set[str], history: set[str]) -> list[str]:
    """Each thing the person told us that no reason mentions (the tier was already at or above what it
    would give), so the page and the doctor's report still list it."""
    said = " ".join(reasons)
    told = signs + [text for code, text in ABCD_SIGNS.items() if code in abcd]
    told += [text for code, text in HISTORY.items() if code in history]
    return [f"You told us {text}." for text in told if text not in said]


def _abcd_step(tier: str, abcd: set[str], symptoms: set[str], reasons: list[str]) -> str:
    said = " and ".join(text for code, text in ABCD_SIGNS.items() if code in abcd)
    score = seven_point_score(abcd, symptoms)
    if score >= 3 and tier != URGENT:
        reasons.append(f"You told us {said}: with your other answers that scores {score} on the seven-point "
                       f"checklist doctors use for changing moles, where 3 or more means a doctor should see it "
                       f"within 2 weeks.")
        return URGENT
    if len(abcd) >= 2 and _RANK[tier] < _RANK[SOON]:
        reasons.append(f"You told us {said}: two or more of the ABCDE warning signs of melanoma are a reason "
                       f"to have it checked.")
        return SOON
    if len(abcd) == 1 and _RANK[tier] < _RANK[SOON]:
        reasons.append(f"You told us {said}. One such sign alone is common in harmless moles: keep an eye on it "
                       f"and photograph it again in a few weeks.")
    return tier


def _risk_step(tier: str, history: set[str], abcd: set[str], minor: list[str], answers: dict,
               reasons: list[str]) -> str:
    if _RANK[tier] >= _RANK[SOON]:
        return tier
    if "personal" in history:
        reasons.append("You have had skin cancer before, which makes a new one more likely: "
                       "a doctor should look at any new or unusual spot.")
        return SOON
    if "family" in history and (abcd or minor):
        reasons.append("A close relative has had melanoma or skin cancer, and you noticed a warning sign: "
                       "have it checked.")
        return SOON
    age, duration = answers.get("age"), answers.get("duration")
    if isinstance(age, int) and age >= OLDER_AGE and duration in NEW_SPOT_DURATIONS:
        reasons.append(f"A spot that appeared in the last year at the age of {OLDER_AGE} or over is worth having "
                       f"checked: new moles are uncommon then, and skin cancer more common.")
        return SOON
    return tier
