"""The symptom assistant: a guided conversation about one result, with no language model and no outside service.

Pure Python, no database: the caller passes the conversation ``state`` (plain JSON), the
person's message, the knowledge base as :class:`ConditionInfo` rows and an ``assess``
callable that turns a state into a :class:`~guidance.triage.TriageResult` (so the engine can
say when an answer changes the advice). :func:`respond` returns a :class:`Reply` with the
text to show, the next question with its quick replies, and the new state.

The script (``SCRIPT``) asks the ABCDE signs of melanoma, then symptoms, how long the spot has
been there, age, and personal and family history of skin cancer. Every question can be
skipped. Questions already answered on the upload form (age, duration, symptoms) are filled in
from there and not asked again.

Messages that are not an answer are matched against a few intents by keywords (how soon,
is it cancer, contagious, treatment, causes, what is X, what does the question mean); a
condition is recognised by its name or a synonym from the knowledge base, else "it" is the
photo's most likely condition. Anything else gets a plain "I did not understand that",
with examples of what it can answer: it never guesses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

MAX_MESSAGE_LENGTH = 500
YES, NO, UNSURE, SKIP = "yes", "no", "not sure", "skip"
YES_NO_OPTIONS = ((YES, "Yes"), (NO, "No"), (UNSURE, "Not sure"), (SKIP, "Skip"))
EXAMPLES = ("How soon should I see a doctor?", "Is it contagious?", "What is a dermatofibroma?")


@dataclass(frozen=True)
class Question:
    key: str
    text: str
    help: str
    kind: str = "yesno"  # "yesno", "evolving", "duration" or "age"
    options: tuple[tuple[str, str], ...] = YES_NO_OPTIONS


SCRIPT: tuple[Question, ...] = (
    Question("asymmetry", "A for asymmetry: if you imagine a line through the middle of the spot, "
             "do the two halves look different from each other?",
             "Look at the spot in a mirror or a photo. A harmless mole is usually round or oval, so both halves "
             "match; a melanoma is often lopsided."),
    Question("border", "B for border: is its edge irregular, notched, ragged or blurred?",
             "A harmless mole usually has a smooth, clear edge. An edge that fades into the skin or has notches "
             "is a warning sign."),
    Question("colours", "C for colour: does it have more than one colour, for example several shades of brown, "
             "or black, red, white or blue parts?",
             "Most harmless moles are one even shade of brown. Several colours in one spot are a warning sign."),
    Question("diameter", "D for diameter: is it wider than 6 mm (about the width of a pencil's eraser)?",
             "Measure across the widest part with a ruler, or compare it with a pencil's eraser (about 6 mm)."),
    Question("evolving", "E for evolving: has it changed in the last weeks or months, for example got bigger, "
             "or changed shape or colour?",
             "Compare it with an older photo if you have one. Any change in size, shape or colour matters.",
             kind="evolving",
             options=(("got bigger", "Yes, it got bigger"), ("changed shape or colour", "Yes, shape or colour"),
                      (NO, "No"), (UNSURE, "Not sure"), (SKIP, "Skip"))),
    Question("itching", "Does it itch?", "Only count itching of the spot itself, not of the skin around it."),
    Question("bleeding", "Does it bleed, without you having scratched or cut it?",
             "Bleeding from a spot that was not injured is a warning sign."),
    Question("pain", "Does it hurt or feel tender?", "Tenderness when you touch it counts too."),
    Question("crusting", "Does it crust over, ooze or weep?", "A scab or fluid on the spot counts."),
    Question("not_healing", "Is it a sore or scab that has not healed within 4 weeks?",
             "A sore that heals and then comes back in the same place counts as not healing."),
    Question("duration", "How long have you had it?",
             "Your best guess is fine, for example '3 weeks' or 'since I was a child'.", kind="duration",
             options=(("days", "Less than a week"), ("weeks", "1–4 weeks"), ("months", "1–12 months"),
                      ("years", "More than a year"), ("lifelong", "As long as I remember"), (SKIP, "Skip"))),
    Question("age", "How old are you (in years)?", "Type a number, for example 54. Skin cancer is more common "
             "with age, so it helps the advice.", kind="age", options=((SKIP, "Skip"),)),
    Question("personal_history", "Have you ever had skin cancer yourself (melanoma or another kind)?",
             "Include basal cell carcinoma, squamous cell carcinoma and melanoma, even if it was removed."),
    Question("family_history", "Has a parent, brother, sister or child of yours had melanoma or another "
             "skin cancer?", "Only close blood relatives count."),
)
QUESTIONS = {question.key: question for question in SCRIPT}
SYMPTOM_KEYS = ("itching", "bleeding", "pain", "crusting", "not_healing")  # = Submission.Symptom codes
ABCD_KEYS = ("asymmetry", "border", "colours", "diameter")
HISTORY_KEYS = {"personal_history": "personal", "family_history": "family"}
DURATIONS = ("days", "weeks", "months", "years", "lifelong")  # = diagnosis.choices.Duration codes


@dataclass(frozen=True)
class ConditionInfo:
    """One knowledge base entry, as plain data."""

    code: str
    name: str
    summary: str
    causes: str
    treatments: str
    contagious: bool
    contagious_note: str
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reply:
    text: str
    question: Question | None
    state: dict
    understood: bool = True
    intent: str = "answer"
    tier_changed: bool = False


@dataclass
class Context:
    """What the engine may use besides the state: the knowledge base, the result and the rule."""

    conditions: list[ConditionInfo]
    assess: Callable[[dict], object]  # state -> TriageResult
    top_code: str | None = None  # the photo's most probable class; None when it was not assessed
    _aliases: list[tuple[str, ConditionInfo]] = field(default_factory=list, init=False)

    def __post_init__(self):
        pairs = [(alias, info) for info in self.conditions for alias in aliases(info)]
        self._aliases = sorted(pairs, key=lambda pair: -len(pair[0]))  # longest first: "basal cell carcinoma"

    def find_condition(self, text: str) -> ConditionInfo | None:
        for alias, info in self._aliases:
            if re.search(rf"\b{re.escape(alias)}(s|es)?\b", text):
                return info
        return None

    def top(self) -> ConditionInfo | None:
        return next((info for info in self.conditions if info.code == self.top_code), None)


def aliases(info: ConditionInfo) -> list[str]:
    """Names to recognise: the name's parts ("Tinea / ringworm / candidiasis", "Atopic dermatitis (eczema)")
    and the synonyms, normalised like messages."""
    parts = re.split(r"[/()]", info.name) + list(info.synonyms)
    found = {normalise(part) for part in parts}
    return sorted(alias for alias in found if len(alias) >= 3)


def normalise(text: str) -> str:
    text = (text or "").lower().replace("’", "'").replace("‘", "'")
    text = re.sub(r"[^a-z0-9'\s-]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


# --- state -----------------------------------------------------------------------------------------

def new_state(prefill: dict | None = None) -> dict:
    """A fresh conversation. ``prefill`` holds answers known from the upload form (same keys as ``SCRIPT``)."""
    prefill = {key: value for key, value in (prefill or {}).items() if key in QUESTIONS and value is not None}
    return {"answers": dict(prefill), "prefilled": sorted(prefill), "skipped": []}


def next_question(state: dict) -> Question | None:
    done = set(state.get("answers", {})) | set(state.get("skipped", []))
    return next((question for question in SCRIPT if question.key not in done), None)


def triage_answers(state: dict) -> dict:
    """The state's answers in the shape ``guidance.triage.triage`` reads ("not sure" counts as no)."""
    answers = state.get("answers", {})
    symptoms = [key for key in SYMPTOM_KEYS if answers.get(key) is True]
    evolving = answers.get("evolving")
    if isinstance(evolving, list):
        symptoms += [code for code in ("growing", "changing") if code in evolving]
    result = {
        "symptoms": symptoms,
        "abcd": [key for key in ABCD_KEYS if answers.get(key) is True],
        "history": [code for key, code in HISTORY_KEYS.items() if answers.get(key) is True],
    }
    if isinstance(answers.get("age"), int):
        result["age"] = answers["age"]
    if answers.get("duration") in DURATIONS:
        result["duration"] = answers["duration"]
    return result


# --- parsing answers -----------------------------------------------------------------------------------

_SKIP = re.compile(r"^(skip|pass|next|next question|skip it|rather not say|prefer not to say|i'?d rather not)\b")
_UNSURE = re.compile(r"\b(not sure|unsure|don'?t know|do not know|dunno|no idea|idk|maybe|perhaps|can'?t tell|"
                     r"cannot tell|hard to (say|tell)|not certain|no clue)\b")
_NO = re.compile(r"^(no|n|nope|nah|never|not really|not at all|none|nobody|no one|negative|it doesn'?t|it does not|"
                 r"it isn'?t|it is not|it hasn'?t|it has not|i haven'?t|i have not|they haven'?t|not that i know)\b")
_YES = re.compile(r"^(yes|y|yeah|yep|yup|yea|ya|sure|definitely|correct|true|it does|it is|it has|i have|they have|"
                  r"i think so|probably|a bit|a little|slightly|somewhat|affirmative)\b")
_GROWING = re.compile(r"\b(bigger|grow|grew|growing|grown|larger|size|spread(ing)?|wider)\b")
_CHANGING = re.compile(r"\b(colou?r|shape|darker|lighter|black|changed|changing|raised|lumpy)\b")
_WORD_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "few": 3,
                 "couple": 2, "several": 4}
_SPAN = re.compile(r"(\d+|a|an|one|two|three|four|five|six|few|couple|several)(?: of)?\s*(day|week|month|year)s?\b")
_LIFELONG = re.compile(r"(since birth|born with|always|as long as i (can )?remember|all my life|whole life|"
                       r"since (i was )?(a )?(child|kid|baby)|childhood|lifelong)")
_RECENT = re.compile(r"\b(today|yesterday|this week|few days|last week|days)\b")


def _yes_no(text: str):
    if _UNSURE.search(text):
        return UNSURE
    if _NO.match(text):
        return NO
    if _YES.match(text):
        return YES
    return None


def parse_duration(text: str) -> str | None:
    """A ``Duration`` code from "3 weeks", "a few months", "since I was a child", a code or a label."""
    for code, label in QUESTIONS["duration"].options:
        if text in (code, normalise(label)):
            return code if code in DURATIONS else None
    if _LIFELONG.search(text):
        return "lifelong"
    match = _SPAN.search(text)
    if match:
        number = int(match.group(1)) if match.group(1).isdigit() else _WORD_NUMBERS[match.group(1)]
        unit = match.group(2)
        less = bool(re.search(r"\b(less than|under|not even)\b", text))
        days = number * {"day": 1, "week": 7, "month": 30, "year": 365}[unit] - (1 if less else 0)
        if days < 7:
            return "days"
        if days <= 31:
            return "weeks"
        if days <= 366:
            return "months"
        return "years"
    if _RECENT.search(text):
        return "days"
    if re.search(r"\b(weeks)\b", text):
        return "weeks"
    if re.search(r"\b(months)\b", text):
        return "months"
    if re.search(r"\b(years|ages|a long time)\b", text):
        return "years"
    return None


def parse_age(text: str) -> int | None | str:
    """Years as an int, or ``"bad"`` for a number that cannot be an age; None when there is no number."""
    match = re.search(r"\b(\d{1,3})\b", text)
    if not match:
        return None
    age = int(match.group(1))
    return age if 1 <= age <= 120 else "bad"


def parse_answer(question: Question, text: str):
    """``(ok, value)``: ``value`` True/False/None (not sure) for yes/no questions, a code or a number; SKIP."""
    if _SKIP.match(text):
        return True, SKIP
    if question.kind == "age":
        age = parse_age(text)
        return (True, age) if isinstance(age, int) else (False, None)
    if question.kind == "duration":
        duration = parse_duration(text)
        return (True, duration) if duration else (False, None)
    said = _yes_no(text)
    if question.kind == "evolving":
        codes = [code for code, pattern in (("growing", _GROWING), ("changing", _CHANGING)) if pattern.search(text)]
        if said == UNSURE:
            return True, None
        if said == NO:  # "no, it has not got bigger" too
            return True, False
        if codes and said != NO:
            return True, codes
        if said == YES:
            return True, ["changing"]
        return False, None
    if said is None:
        return False, None
    return True, {YES: True, NO: False, UNSURE: None}[said]


# --- free questions -----------------------------------------------------------------------------------

INTENTS: tuple[tuple[str, re.Pattern], ...] = (
    ("restart", re.compile(r"^(start (again|over)|restart|reset)\b")),
    ("help", re.compile(r"what do you mean|what does (that|this|it) mean|i don'?t understand|don'?t get it|"
                        r"how (do|can|should|would) i (tell|know|measure|check|see)|don'?t know what|"
                        r"what (is|does) (the )?(abcde|asymmetry|border|diameter|evolving)")),
    ("cancer", re.compile(r"\b(is|could) (it|this|that) (be )?(skin )?(cancer|melanoma|malignant|cancerous)|"
                          r"do i have (skin )?cancer|am i going to die")),
    ("how_soon", re.compile(r"how (soon|quickly|urgent|fast|long can i wait)|when should i (see|go|visit|book|call)|"
                            r"should i (see|go to|visit|book|call|worry|be worried)|do i (need|have) to (see|go)|"
                            r"need to see|is (it|this|that) (urgent|serious|dangerous|bad|an emergency)|"
                            r"see a (doctor|gp|dermatologist|nurse)|how worried|go to (the )?(doctor|gp|hospital)|"
                            r"what should i do")),
    ("contagious", re.compile(r"contagious|infectious|\bcatch|spread (it|to)|pass (it|this|that) on|"
                              r"give (it|this|that) to|transmit|can others get")),
    ("treatment", re.compile(r"\btreat|\bcure|get rid|remov|medicine|medication|\bcream|ointment|therapy|"
                             r"what can i do|how do i fix")),
    ("causes", re.compile(r"\bcaus|why (do|did|does|have) (i|people|it|you)|risk factor|where does .* come from|"
                          r"how do (you|people|i) get|why did i get")),
    ("what_is", re.compile(r"\bwhat( i|')?s\b|\bwhat are\b|tell me (about|more)|explain|meaning of|define|"
                           r"^(is|are) (a |an )?[\w' -]+ (a |an )?(cancer|dangerous|serious|harmless)")),
    ("thanks", re.compile(r"^(thanks|thank you|thx|cheers|great|ok thanks|okay thanks)\b")),
    ("hello", re.compile(r"^(hi|hello|hey|good (morning|afternoon|evening))\b")),
)
_QUESTION_START = re.compile(r"^(what|what's|whats|how|why|when|where|which|who|is|are|can|could|should|do|does|"
                             r"will|would|tell|explain|am)\b")


def _advice(ctx: Context, state: dict) -> str:
    result = ctx.assess(state)
    text = f"My advice now: {result.title}. Why: " + " ".join(result.reasons)
    if next_question(state) is not None:
        text += " Answering my questions can change this advice."
    return text


def _subject(ctx: Context, text: str) -> tuple[ConditionInfo | None, str]:
    """The condition a free question is about: a named one, else the photo's most likely one."""
    named = ctx.find_condition(text)
    if named is not None:
        return named, ""
    top = ctx.top()
    if top is not None:
        return top, f"Your photo most resembles {top.name} (this is not a diagnosis). "
    return None, ""


def _no_subject() -> str:
    return ("Your photo could not be assessed, so I cannot tell which condition it is. Ask me about a named "
            "condition instead, for example 'Is ringworm contagious?' or 'What is a dermatofibroma?'.")


def answer_intent(intent: str, text: str, ctx: Context, state: dict) -> str | None:
    """The answer to a recognised free question, or None when its subject was not recognised."""
    question = next_question(state)
    if intent == "help":
        if question is None:
            return "I have no more questions. You can ask me, for example, " + ", ".join(
                f"'{example}'" for example in EXAMPLES) + "."
        return question.help
    if intent == "how_soon":
        return _advice(ctx, state)
    if intent == "cancer":
        return ("Neither I nor the model can tell whether it is cancer: only a doctor can, sometimes after "
                "taking a small sample. The photo and your answers decide how soon you should be seen. "
                + _advice(ctx, state))
    if intent in ("contagious", "treatment", "causes"):
        condition, preface = _subject(ctx, text)
        if condition is None:
            return _no_subject()
        if intent == "contagious":
            note = condition.contagious_note.strip()
            if condition.contagious:
                verdict = "Yes, it can spread. "
            else:
                verdict = "" if re.match(r"(?i)(no|not)\b", note) else "No, it is not contagious. "
            return f"{preface}{verdict}{note}"
        if intent == "treatment":
            return f"{preface}Usual treatments for {condition.name}: {condition.treatments}"
        return f"{preface}Causes and risk factors of {condition.name}: {condition.causes}"
    if intent == "what_is":
        named = ctx.find_condition(text)
        if named is not None:
            return f"{named.name}: {named.summary}"
        if re.search(r"\b(it|this|that|my spot|the spot|mine)\b", text):
            condition, preface = _subject(ctx, text)
            return f"{preface}{condition.summary}" if condition else _no_subject()
        return None
    if intent == "thanks":
        return "You're welcome."
    if intent == "hello":
        return "Hello."
    raise ValueError(intent)


def not_understood_text(question: Question | None) -> str:
    examples = ", ".join(f"'{example}'" for example in EXAMPLES)
    if question is None:
        return f"Sorry, I did not understand that. I can answer questions like {examples}"
    how = {"age": "give your age as a number, for example 54", "duration": "say how long, for example '3 weeks' "
           "or 'since I was a child'"}.get(question.kind, "answer yes, no or not sure")
    return f"Sorry, I did not understand that. Please {how} (or skip), or ask me something like {examples}"


# --- the turn ----------------------------------------------------------------------------------------

def opening(state: dict) -> Reply:
    """The first message, before the person has said anything."""
    question = next_question(state)
    text = ("I can ask you a few questions about the spot: the ABCDE signs of melanoma, symptoms, how long you "
            "have had it, and your history. Each answer can change the advice above. You can skip any question, "
            "or ask me something, for example " + ", ".join(f"'{e}'" for e in EXAMPLES) + ".")
    prefilled = state.get("prefilled", [])
    if prefilled:
        text += f" I already have {len(prefilled)} answer(s) from your upload form."
    if question is not None:
        text += " " + question.text
    return Reply(text=text, question=question, state=state, intent="opening")


def _record(state: dict, question: Question, value) -> dict:
    state = {**state, "answers": dict(state.get("answers", {})), "skipped": list(state.get("skipped", []))}
    if value == SKIP:
        state["skipped"].append(question.key)
    else:
        state["answers"][question.key] = value
    return state


def _changes(before, after) -> str:
    if after.tier == before.tier:
        return ""
    new = [reason for reason in after.reasons if reason not in before.reasons]
    return f"That changes my advice to: {after.title}. " + " ".join(new)


def respond(state: dict, message: str, ctx: Context) -> Reply:
    """One turn: the person's ``message`` against ``state``; never raises on odd input."""
    text = normalise(message[:MAX_MESSAGE_LENGTH])
    question = next_question(state)
    intent = next((name for name, pattern in INTENTS if pattern.search(text)), None) if text else None
    question_like = message.strip().endswith("?") or bool(_QUESTION_START.match(text))

    if intent == "restart":
        fresh = new_state({key: state["answers"][key] for key in state.get("prefilled", []) if key in state["answers"]})
        first = next_question(fresh)
        return Reply(text="Let's start again. " + (first.text if first else ""), question=first, state=fresh,
                     intent="restart", tier_changed=ctx.assess(fresh).tier != ctx.assess(state).tier)
    if question is not None and text and intent != "help" and not (question_like and intent):
        ok, value = parse_answer(question, text)
        if ok:
            return _answered(state, question, value, ctx)
        if question.kind == "age" and parse_age(text) == "bad":
            return Reply(text="That does not look like an age in years. " + question.text, question=question,
                         state=state, understood=False, intent="not_understood")
    reply = answer_intent(intent, text, ctx, state) if intent is not None else None
    if reply is not None:
        if question is not None and intent != "help":
            reply += f" Back to my question: {question.text}"
        return Reply(text=reply, question=question, state=state, intent=intent)
    reply = not_understood_text(question) + "."
    if intent == "what_is":
        known = ", ".join(info.name for info in ctx.conditions)
        reply += f" I know about these conditions: {known}."
    if question is not None:
        reply += f" {question.text}"
    return Reply(text=reply, question=question, state=state, understood=False, intent="not_understood")


def _answered(state: dict, question: Question, value, ctx: Context) -> Reply:
    before = ctx.assess(state)
    state = _record(state, question, value)
    after = ctx.assess(state)
    parts = ["Skipped." if value == SKIP else "Noted as not sure." if value is None else "Thank you."]
    change = _changes(before, after)
    if change:
        parts.append(change)
    following = next_question(state)
    if following is not None:
        parts.append(following.text)
    else:
        parts.append(f"That was my last question. My advice: {after.title}. You can still ask me questions, "
                     f"for example '{EXAMPLES[0]}'")
    text = " ".join(part.strip() for part in parts)
    return Reply(text=text, question=following, state=state, tier_changed=bool(change))


def prefill_from(symptoms: Iterable[str], age: int | None, duration: str | None) -> dict:
    """Answers already given on the upload form (``Submission`` fields), so they are not asked twice."""
    symptoms = set(symptoms or [])
    prefill = {key: True for key in SYMPTOM_KEYS if key in symptoms}
    evolving = [code for code in ("growing", "changing") if code in symptoms]
    if evolving:
        prefill["evolving"] = evolving
    if age:
        prefill["age"] = int(age)
    if duration in DURATIONS:
        prefill["duration"] = duration
    return prefill
