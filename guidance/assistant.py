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

Plain-language statements ("it itches and bled last week", "my dad had melanoma", "I'm 54",
"the edge is ragged") are read by :func:`read_message` into the same answers the quick replies
record, whichever question is open, and are never asked again. How it reads them:

* the message is cut at sentence marks, commas and "but" into segments; a segment that starts
  with a question word (or ends the sentence with "?") is a question and records nothing;
* misspelt words ("itchs", "bleading", "melenoma") are corrected with rapidfuzz against a
  small vocabulary (``VOCABULARY``): only words of 5 or more letters, within 1 edit (2 from 9
  letters), with the same first letter, when the nearest words all mean the same thing and the
  word is not a real word that merely looks alike (``REAL_LOOKALIKES``: "paint", "inches");
* each fact (``FACT_RULES``, plus age and duration) is a pattern; the few words before it, back
  to "and"/"but", decide its polarity: "not/no/never/without" make it no ("it doesn't itch",
  "no bleeding", "never bled"), "not sure/maybe" not sure, and "if/might/could/scared" make it a
  hypothesis that is not recorded ("I'm scared it will bleed"). A later mention wins.

Fear ("I'm really scared") gets a calm reply that points to the current advice and records
nothing; referral requests ("can you refer me?", "who should I see") are told that the
assistant cannot refer or book, and who can (``Context.referral_text``, else the page's contacts
or a GP). Other messages that are not an answer are matched against a few intents by keywords
(how soon, is it cancer, contagious, treatment, causes, what is X, what does the question mean);
a condition is recognised by its name or a synonym from the knowledge base, else "it" is the
photo's most likely condition. On an urgent or soon result no answer contradicts the advice:
treatment questions get "have it checked first". Anything else gets a plain "I did not
understand that", with examples of what it can answer: it never guesses.

Replies stay short: an open question is repeated once after a digression ("Back to my
question: ..."), not after every message, and the page shows it below the transcript anyway.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein

from guidance.triage import ROUTINE, SELF_CARE, SOON, URGENT

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
    # Who can see the person, for referral requests: e.g. the referral contacts shown for this tier, or the
    # advice to contact a GP. Empty: the reply points to the contacts on the page and the GP.
    referral_text: str = ""
    _aliases: list[tuple[str, ConditionInfo]] = field(default_factory=list, init=False)
    _vocabulary: dict[str, str] = field(default_factory=dict, init=False)

    def __post_init__(self):
        pairs = [(alias, info) for info in self.conditions for alias in aliases(info)]
        self._aliases = sorted(pairs, key=lambda pair: -len(pair[0]))  # longest first: "basal cell carcinoma"
        # Condition names are corrected too ("dermatofibrona"); each word is its own meaning.
        names = {word: word for alias, _info in pairs for word in alias.split() if word.isalpha()}
        self._vocabulary = {**names, **VOCABULARY}

    def correct(self, text: str) -> str:
        """``text`` (normalised) with misspelt keywords and condition names corrected."""
        return correct_spelling(text, self._vocabulary)

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


_FILLER = frozenset({"not", "really", "a", "bit", "little", "lot", "very", "much", "quite", "so", "at", "all",
                     "sometimes", "though", "i", "think", "yes", "no", "definitely", "it", "does", "is", "has"})


def _yes_no(text: str):
    if _UNSURE.search(text):
        return UNSURE
    for pattern, said in ((_NO, NO), (_YES, YES)):
        match = pattern.match(text)
        if match and _plain_reply(match, text):
            return said
    return None


def _plain_reply(match: re.Match, text: str) -> bool:
    """Whether a reply that opens with "it is"/"I have" is only that: "it is 8 mm across" is not a yes."""
    if not re.match(r"(it|i|they)\b", match.group(0)):
        return True  # "yes ...", "no ...", "never ...": said plainly
    rest = text[match.end():].split()
    return all(word in _FILLER for word in rest)


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


# --- spelling -----------------------------------------------------------------------------------------

def _meaning(meaning: str, *words: str) -> dict[str, str]:
    return {word: meaning for word in words}


# Words the patterns below look for, each with its meaning: a misspelling is corrected only when the
# nearest words all mean the same ("itchs" is as near "itches" as "itchy").
VOCABULARY: dict[str, str] = {
    **_meaning("itch", "itch", "itches", "itched", "itching", "itchy", "itchiness"),
    **_meaning("bleed", "bleed", "bleeds", "bleeding", "bled", "blood", "bloody"),
    **_meaning("pain", "pain", "pains", "painful", "painless", "hurt", "hurts", "hurting", "tender", "tenderness",
               "sore", "soreness", "aching", "stinging", "throbbing"),
    **_meaning("crust", "crust", "crusts", "crusty", "crusted", "crusting", "scab", "scabs", "scabby", "scabbed",
               "ooze", "oozes", "oozing", "oozed", "weep", "weeps", "weeping", "discharge"),
    **_meaning("heal", "heal", "heals", "healed", "healing"),
    **_meaning("grow", "grow", "grows", "growing", "grown", "bigger", "larger", "wider", "enlarged", "spreading"),
    **_meaning("change", "change", "changed", "changes", "changing", "darker", "lighter", "different"),
    **_meaning("colour", "colour", "colours", "color", "colors", "shade", "shades", "multicoloured", "multicolored"),
    **_meaning("edge", "edges", "border", "borders", "outline", "ragged", "jagged", "irregular", "notched",
               "blurred", "blurry", "fuzzy", "uneven", "smooth"),
    **_meaning("symmetry", "asymmetric", "asymmetrical", "symmetric", "symmetrical", "lopsided", "halves"),
    **_meaning("size", "diameter", "eraser", "pencil", "millimetres", "millimeters", "smaller"),
    **_meaning("cancer", "cancer", "cancers", "melanoma", "melanomas", "carcinoma", "basal", "squamous"),
    **_meaning("mother", "mother", "mummy"), **_meaning("father", "father", "daddy"),
    **_meaning("sister", "sister"), **_meaning("brother", "brother"), **_meaning("daughter", "daughter"),
    **_meaning("parent", "parent", "parents"), **_meaning("family", "family"), **_meaning("history", "history"),
    **_meaning("diagnosed", "diagnosed"), **_meaning("removed", "removed"), **_meaning("before", "before"),
    **_meaning("childhood", "childhood"), **_meaning("appeared", "appeared"), **_meaning("noticed", "noticed"),
    **_meaning("fear", "scared", "afraid", "frightened", "terrified", "worried", "anxious", "nervous",
               "panicking", "petrified"),
    **_meaning("refer", "refer", "referral"), **_meaning("dermatologist", "dermatologist"),
    **_meaning("appointment", "appointment"), **_meaning("doctor", "doctor"),
    **_meaning("contagious", "contagious"), **_meaning("infectious", "infectious"),
    **_meaning("treat", "treat", "treatment"), **_meaning("cream", "cream", "creams", "ointment"),
}
# Real words one letter away from a keyword: left as they are ("2 inches wide" is not "itches").
REAL_LOOKALIKES = frozenset({
    # everyday words
    "paint", "paints", "plain", "pairs", "store", "stored", "score", "scored", "snore", "shore", "spore", "swore",
    "inches", "blend", "blends", "blended", "blending", "blond", "bloom", "broad", "breed", "breeds", "breeding",
    "bread", "tended", "tenser", "crush", "crushed", "crushing", "crest", "crested", "heels", "heads", "heaps",
    "headed", "heading", "hearing", "heated", "heating", "header", "healer", "cancel", "cancels", "canker",
    "sacred", "scarred", "shared", "scaled", "spared", "stared", "soared", "bugger", "large", "lager", "groin",
    "growl", "gross", "glowing", "crowing", "charge", "charged", "charging", "chance", "chances", "chanted",
    "chanting", "rigged", "jogged", "farther", "sitter", "sifter", "bother", "bothers", "brothel", "patent",
    "patents", "basil", "weeks", "weekly", "wiser", "shape", "shapes", "share", "shares", "shakes", "shaves",
    "colon", "colons", "acting", "arching", "scans", "pointless", "singing", "stringing", "streaming", "threat",
    "tread", "treaty", "dream", "screams", "appealed", "blurted", "halved", "ranged", "shaded", "injection",
    "inspection", "boarder", "pencils", "contiguous",
    # words of the software world that look alike
    "parens", "paren", "submetric", "cruft", "changeset", "outlive", "symmetries", "symmetrize",
})


def correct_spelling(text: str, vocabulary: dict[str, str]) -> str:
    """``text`` with each misspelt keyword replaced by the nearest vocabulary word (see the module docstring)."""
    return " ".join(_correct_word(word, vocabulary) for word in text.split(" "))


def _correct_word(word: str, vocabulary: dict[str, str]) -> str:
    if len(word) < 5 or not word.isalpha() or word in vocabulary or word in REAL_LOOKALIKES:
        return word
    max_edits = 1 if len(word) < 9 else 2
    matches = process.extract(word, list(vocabulary), scorer=DamerauLevenshtein.distance, score_cutoff=max_edits,
                              limit=None)
    matches = [(choice, distance) for choice, distance, _index in matches if choice[0] == word[0]]
    if not matches:
        return word
    nearest = min(distance for _choice, distance in matches)
    choices = sorted(choice for choice, distance in matches if distance == nearest)
    if len({vocabulary[choice] for choice in choices}) != 1:
        return word  # as near one meaning as another: no guess
    return choices[0]


# --- reading free text ----------------------------------------------------------------------------------

_CONTRACTIONS = (
    (re.compile(r"\b(dosent|dosen't|dosnt|doesent|doesnot|dose not)\b"), "does not"),
    (re.compile(r"\b(can't|cant|cannot)\b"), "can not"), (re.compile(r"\b(won't|wont)\b"), "will not"),
    (re.compile(r"\b(\w+)n't\b"), r"\1 not"),
    (re.compile(r"\b(does|is|has|have|do|did|was|were|are|would|could|should|had)nt\b"), r"\1 not"),
    (re.compile(r"\b(it's)\b"), "it is"), (re.compile(r"\b(i'm|im)\b"), "i am"),
    (re.compile(r"\b(i've|ive)\b"), "i have"), (re.compile(r"\b(\w+)'ve\b"), r"\1 have"),
    (re.compile(r"\bi'd\b"), "i would"), (re.compile(r"\b(\w+)'ll\b"), r"\1 will"),
    (re.compile(r"\b(\w+)'re\b"), r"\1 are"),
)
# Words that end the reach of a "not" or an "if": "it doesn't itch but bleeds", "no pain and it bleeds".
_SCOPE_BREAKS = frozenset({"and", "but", "though", "although", "however", "yet", "whereas", "while", "so",
                           "because", "since", "then", "also", "plus", "except", "as"})
_NEGATIONS = frozenset({"not", "no", "never", "without", "nor", "neither", "none", "nothing", "nobody", "noone"})
_HYPOTHETICAL = frozenset({"if", "might", "may", "could", "whether", "wonder", "wondering", "afraid", "scared",
                           "worried", "worry", "worrying", "fear", "frightened", "terrified", "concerned", "anxious",
                           "nervous", "case", "what"})
_UNSURE_WORDS = frozenset({"unsure", "maybe", "perhaps", "possibly"})
_SCOPE_WORDS = 6
_SEGMENT_ORDER = 2 * MAX_MESSAGE_LENGTH  # more than any position in a segment, so segments keep their order

_CANCER = (r"(?:skin cancers?|melanomas?|basal cell(?: carcinoma| cancer)?|squamous cell(?: carcinoma| cancer)?|"
           r"carcinoma|bcc|scc|rodent ulcer|cancer of the skin)")
_RELATIVE = (r"\b(?:mum|mom|mam|mother|mummy|mommy|dad|father|daddy|sister|brother|son|daughter|parents?|"
             r"siblings?|twin|children|child|kids?|family)\b")
_SIZE_OBJECT = (r"(?:the size of )?(?:a |an |the )?(?:(?:pencil'?s? )?(?:eraser|rubber)|pencil|pea|"
                r"(?:6|six) ?(?:mm|millimet\w*)|half a (?:cm|centimet\w*))")
_BIG = r"(?P<anchor>bigger|larger|wider|more|over|above|greater)"
_SMALL = r"(?P<anchor>smaller|narrower|less|under|below|tinier)"
_BORDER_WORD = r"(?:edges?|borders?|outline|rim|margins?)"
_BORDER_BAD = r"(?:ragged|jagged|irregular|notched|blurred|blurry|fuzzy|uneven|bumpy|wavy|scalloped|smudged|fading)"
_BORDER_GOOD = r"(?:smooth|clear|sharp|regular|neat|even|clean|well defined|round)"
_BECOMES = r"(?:getting|got|gotten|become|became|gone|going|gets|get|turned|turning|grown)"


@dataclass(frozen=True)
class FactRule:
    """A phrase that answers a question: ``value`` when said plainly, its opposite when negated."""

    key: str
    pattern: re.Pattern
    value: object  # True/False; for "evolving" a code ("growing", "changing") or False (no change)
    unless: re.Pattern | None = None  # its clause is about something else ("hair growing out of it")


def _rule(key: str, pattern: str, value=True, unless: str | None = None) -> FactRule:
    return FactRule(key, re.compile(pattern), value, re.compile(unless) if unless else None)


FACT_RULES: tuple[FactRule, ...] = (
    _rule("itching", r"\b(?:itch(?:es|ed|ing|y|iness)?)\b"),
    _rule("bleeding", r"\b(?:bleed(?:s|ing)?|bled|blood(?:y)?)\b", unless=r"\bblood (?:vessels?|test|pressure)"),
    _rule("pain", r"\b(?:pain(?:s|ful)?|hurts?|hurting|tender(?:ness)?|aches?|aching|stings?|stinging|throbs?|"
                  r"throbbing|soreness)\b"),
    _rule("pain", r"(?<!\ba )(?<!\bthe )(?<!\bopen )(?<!\bcold )(?<!\bthis )\bsore\b"),  # not "a sore"
    _rule("pain", r"\bpainless\b", False),
    _rule("crusting", r"\b(?:crust(?:s|y|ed|ing)?|scab(?:s|by|bed|bing)?|ooz(?:e|es|ed|ing|y)|weep(?:s|ing|y)?|"
                      r"pus|discharge|fluid)\b"),
    # "it has healed" is no, so "it hasn't healed" and "it won't heal" are yes.
    _rule("not_healing", r"(?<!non-)(?<!non )\bheal(?:s|ed|ing)?\b", False),
    _rule("not_healing", r"\b(?:non-? ?healing|keeps? (?:coming back|reopening|opening up)|(?:comes|came) back|"
                         r"reopens)\b"),
    _rule("asymmetry", r"\b(?:asymmetric(?:al)?|lopsided|(?:irregular|odd|strange|uneven)(?:ly)? shaped?)\b"),
    _rule("asymmetry", r"\b(?:symmetric(?:al)?|evenly shaped)\b", False),
    _rule("asymmetry", r"\bhalves (?:\w+ ){0,3}?(?P<anchor>match|the same|alike|identical)\b", False),
    _rule("asymmetry", r"\bhalves (?:\w+ ){0,2}?(?P<anchor>different|differ)\b"),
    _rule("border", rf"\b{_BORDER_WORD} (?:\w+ ){{0,3}}?(?P<anchor>{_BORDER_BAD})\b"),
    _rule("border", rf"\b(?P<anchor>{_BORDER_BAD}) (?:\w+ )?{_BORDER_WORD}\b"),
    _rule("border", rf"\b{_BORDER_WORD} (?:\w+ ){{0,3}}?(?P<anchor>{_BORDER_GOOD})\b", False),
    _rule("border", rf"\b(?P<anchor>{_BORDER_GOOD}) (?:\w+ )?{_BORDER_WORD}\b", False),
    _rule("colours", r"\b(?:several|many|multiple|different|various|two|three|four|mixed|lots of|more than one|"
                     r"a few|a couple of|a mix of)(?: \w+)? (?P<anchor>colou?rs|shades|tones)\b"),
    _rule("colours", r"\b(?P<anchor>multi-? ?colou?red)\b"),
    _rule("colours", r"\b(?P<anchor>black|blue|red|white|grey|gray|pink|brown|tan) and (?:black|blue|red|white|"
                     r"grey|gray|pink|brown|tan)\b(?! (?:itchy|sore|scaly|flaky|raised|swollen|inflamed))"),
    _rule("colours", r"\b(?:one|single|same|even|uniform)(?: \w+)? (?P<anchor>colou?r|shade)\b(?! as)", False),
    _rule("diameter", rf"\b{_BIG} than {_SIZE_OBJECT}"),
    _rule("diameter", r"\b(?P<anchor>over|above|more than) (?:6|six) ?(?:mm|millimet\w*)"),
    _rule("diameter", rf"\b{_SMALL} than {_SIZE_OBJECT}", False),
    _rule("diameter", r"\b(?P<anchor>under|below|less than) (?:6|six) ?(?:mm|millimet\w*)", False),
    _rule("evolving", r"\b(?P<anchor>grow(?:s|ing|n)?|grew|enlarg\w*|spreading|spread)\b", "growing",
          unless=r"\bhairs?\b|\b(?:can|could|will|does|do) (?:\w+ )?spread"),
    _rule("evolving", rf"\b{_BECOMES} (?:\w+ ){{0,2}}?(?P<anchor>bigger|larger|wider|thicker)\b", "growing"),
    _rule("evolving", r"\b(?P<anchor>bigger|larger|wider) than (?:before|it was|it used to be|last)", "growing"),
    _rule("evolving", r"\b(?:(?P<anchor>chang\w*) (?:in )?size|(?P<size>increased|increasing) in size)\b", "growing"),
    _rule("evolving", r"\b(?P<anchor>chang(?:ed|ing|es|e))\b(?! (?:in )?size)", "changing"),
    _rule("evolving", rf"\b{_BECOMES} (?:\w+ ){{0,2}}?(?P<anchor>darker|lighter|black|blacker|raised|lumpy)\b",
          "changing"),
    _rule("evolving", r"\b(?:unchanged|stayed the same|(?:looks|is|the) same as (?:before|always|ever|it was))\b",
          False),
    _rule("family_history", rf"{_RELATIVE} (?:\w+ ){{0,4}}?(?:had|has|have|got|died|diagnosed|suffered|treated)\b"
                            rf"(?: \w+){{0,4}}? (?P<anchor>{_CANCER})\b"),
    _rule("family_history", rf"\b(?P<anchor>{_CANCER}) runs in (?:my|the|our) family\b"),
    _rule("family_history", r"\bfamily history\b"),
    _rule("personal_history", rf"\bi (?:\w+ ){{0,2}}?(?:had|diagnosed|got|treated)\b(?: \w+){{0,3}}? "
                              rf"(?P<anchor>{_CANCER})\b", unless=_RELATIVE),
    _rule("personal_history", rf"\b(?:i|my) (?:\w+ ){{0,3}}?history of (?:\w+ ){{0,2}}?(?P<anchor>{_CANCER})\b",
          unless=r"\bfamily\b"),
)

_AGE = re.compile(r"\b(?:i am|aged?|my age is) (?:about |nearly |almost |around |just )?(?P<age>\d{1,3})"
                  r"(?! ?(?:mm|cm|kg|kilos?|lbs?|stone|foot|feet|ft|inch\w*|percent|days?|weeks?|months?|times?|"
                  r"m|x|th|st|nd|rd)\b)|\b(?P<years>\d{1,3}) ?(?:years?|yrs?|y) old\b")
_SIZE = re.compile(r"\b(?:is|about|around|roughly|approximately|measures|measuring|maybe|only|just) "
                   r"(?P<number>\d{1,2}) ?(?P<unit>mm|millimet\w*|cm|centimet\w*)\b|"
                   r"\b(?P<number2>\d{1,2}) ?(?P<unit2>mm|millimet\w*|cm|centimet\w*) "
                   r"(?:across|wide|in diameter|big|large|in size)\b")
_SECOND_DEGREE = re.compile(r"\b(?:grand\w*|gran|granny|nan|nana|aunt\w*|uncle\w*|cousins?|nieces?|nephews?|"
                            r"in-laws?|in law|step\w*|husband|wife|partner|friends?)\b")
_LIFELONG_STATEMENT = re.compile(
    r"\b(?:since (?:birth|childhood|i was (?:a |little|young|small|born)\w*|(?:a |my )?(?:child|kid|baby|teens?))|"
    r"born with it|all my life|my whole life|as long as i (?:can )?remember|always had it|"
    r"had it (?:forever|always))\b")
_DURATION_CUE = re.compile(r"\b(?:had (?:it|this|the spot|the mole)|been there|there for|appeared|came up|come up|"
                           r"showed up|popped up|turned up|noticed it|first noticed|spotted it|developed|got it)\b|"
                           r"^for (?:about |around |roughly |nearly |almost |over )?\w+ "
                           r"(?:days?|weeks?|months?|years?)")
_FEAR = re.compile(r"\b(?:scared|afraid|frightened|terrified|petrified|worried|worrying|anxious|nervous|panicking|"
                   r"panicked|panic|freaking out|freaked out|stressed|scary|frightening|terrifying)\b")


@dataclass(frozen=True)
class Segment:
    text: str  # normalised, corrected, contractions spelt out: what the fact patterns read
    question: bool  # asks something, so records nothing
    said: str = ""  # normalised and corrected, as the intents read it


@dataclass(frozen=True)
class Reading:
    """What a free-text message says: answers by question key, fear, and its segments."""

    facts: dict
    fear: bool
    segments: tuple[Segment, ...]
    distant_relative: bool = False  # "my grandma had melanoma": said, but not what the question counts

    @property
    def statements(self) -> list[str]:
        return [segment.text for segment in self.segments if not segment.question]

    @property
    def questions(self) -> str:
        return " ".join(segment.said for segment in self.segments if segment.question)


def expand_contractions(text: str) -> str:
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return text


def segments(message: str, correct: Callable[[str], str] = lambda text: text) -> tuple[Segment, ...]:
    """The message cut at sentence marks, commas and "but", each marked as a question or a statement."""
    found = []
    for sentence, mark in re.findall(r"([^.!?;\n]+)([.!?;\n]*)", message or ""):
        parts = [part for part in re.split(r",|\bbut\b", sentence, flags=re.IGNORECASE) if normalise(part)]
        for index, part in enumerate(parts):
            said = correct(normalise(part))
            text = expand_contractions(said)
            # "does" opens a question at the start of a sentence, not after "but" ("it itches but doesn't bleed").
            asks = (index == 0 and bool(_QUESTION_START.match(text))) or ("?" in mark and index == len(parts) - 1)
            found.append(Segment(text=text, question=asks, said=said))
    return tuple(found)


def _scope(text: str, position: int) -> list[str]:
    """The words just before ``position``, nearest first, back to a word such as "and" or "but"."""
    words = []
    for word in reversed(text[:position].split()):
        if word in _SCOPE_BREAKS or len(words) >= _SCOPE_WORDS:
            break
        words.append(word)
    return words


def _clause_around(text: str, position: int) -> str:
    """The words around ``position`` between two words such as "and" or "but"."""
    words = text.split()
    index = len(text[:position].split())
    start = max((i + 1 for i in range(index) if words[i] in _SCOPE_BREAKS), default=0)
    end = next((i for i in range(index, len(words)) if words[i] in _SCOPE_BREAKS), len(words))
    return " ".join(words[start:end])


def polarity(text: str, position: int) -> str:
    """How the words before a fact frame it: YES, NO, UNSURE, or "" for a hypothesis ("if it bleeds")."""
    scope = set(_scope(text, position))
    if scope & _UNSURE_WORDS or ("not" in scope and scope & {"sure", "know", "certain", "tell"}) \
            or {"no", "idea"} <= scope:
        return UNSURE
    if scope & _HYPOTHETICAL:
        return ""
    return NO if scope & _NEGATIONS else YES


def _anchor(match: re.Match) -> int:
    """Where the words that carry the polarity start: the named group ``anchor`` (or ``size``), else the match."""
    for name in ("anchor", "size"):
        if name in match.re.groupindex and match.group(name) is not None:
            return match.start(name)
    return match.start()


def _rule_value(rule: FactRule, said: str):
    if said == UNSURE:
        return None
    if rule.key == "evolving":
        if rule.value is False:
            return ["changing"] if said == NO else False
        return [rule.value] if said == YES else False
    return rule.value if said == YES else not rule.value


def _rule_facts(text: str) -> list[tuple[int, str, object]]:
    """(position, key, value) for each fact phrase in one statement."""
    found = []
    for rule in FACT_RULES:
        for match in rule.pattern.finditer(text):
            if rule.unless is not None and rule.unless.search(_clause_around(text, match.start())):
                continue
            said = polarity(text, _anchor(match))
            if said:
                found.append((match.start(), rule.key, _rule_value(rule, said)))
    return found


def read_age(text: str) -> int | None:
    """An age stated in words ("I'm 54", "I am 61 years old"); None when there is none or it cannot be one."""
    match = _AGE.search(text)
    if not match:
        return None
    age = int(match.group("age") or match.group("years"))
    return age if 1 <= age <= 120 else None


def read_duration(text: str) -> str | None:
    """How long the spot has been there, from a statement that says so ("I've had it for 3 weeks").

    Only from a clause about the spot itself: in "it bled last week" the week is when it bled."""
    if _LIFELONG_STATEMENT.search(text):
        return "lifelong"
    for clause in re.split(r"\b(?:and|but|then|also)\b", text):
        clause = clause.strip()
        if _DURATION_CUE.search(clause) and not any(rule.pattern.search(clause) for rule in FACT_RULES):
            duration = parse_duration(clause)
            if duration and duration != "lifelong":
                return duration
    return None


def read_size(text: str) -> bool | None:
    """Whether a size stated in millimetres or centimetres ("it is about 8 mm across") is over 6 mm."""
    match = _SIZE.search(text)
    if not match or re.search(r"\b(?:grew|grown|by|more|bigger|larger)\b", text):
        return None  # "it grew by 2 mm" is a change, not a size
    number = int(match.group("number") or match.group("number2"))
    unit = match.group("unit") or match.group("unit2")
    return number * (10 if unit.startswith("c") else 1) > 6


def mentions_distant_relative(text: str) -> bool:
    """A grandparent, aunt or cousin with skin cancer: not the close blood relatives the question asks about."""
    return bool(_SECOND_DEGREE.search(text) and re.search(_CANCER, text) and not re.search(_RELATIVE, text))


def _combine(found: list[tuple[int, str, object]]) -> dict:
    """One answer per key: the last mention wins; the evolving answers add up ("bigger and darker")."""
    facts: dict = {}
    for _position, key, value in sorted(found, key=lambda item: item[0]):
        if key == "evolving" and isinstance(value, list) and isinstance(facts.get(key), list):
            value = [code for code in ("growing", "changing") if code in facts[key] or code in value]
        elif key == "evolving" and not isinstance(value, list) and isinstance(facts.get(key), list):
            continue  # "it hasn't changed colour but it's bigger": the change counts
        facts[key] = value
    return facts


def read_message(message: str, correct: Callable[[str], str] = lambda text: text) -> Reading:
    """The answers, fear and segments of a free-text message (see the module docstring)."""
    parts = segments(message, correct)
    found: list[tuple[int, str, object]] = []  # (order in the message, key, value): a later mention wins
    fear = distant = False
    for offset, segment in enumerate(parts):
        if segment.question:
            continue
        text = segment.text
        start, end = offset * _SEGMENT_ORDER, (offset + 1) * _SEGMENT_ORDER - 1
        found += [(start + position, key, value) for position, key, value in _rule_facts(text)]
        for key, value in (("diameter", read_size(text)), ("duration", read_duration(text)), ("age", read_age(text))):
            if value is not None:
                found.append((end, key, value))
        distant = distant or mentions_distant_relative(text)
        fear = fear or any(polarity(text, match.start()) != NO for match in _FEAR.finditer(text))
    return Reading(facts=_combine(found), fear=fear, segments=parts, distant_relative=distant)


_BARE_REPLY = re.compile(
    r"^(?:yes|y|yeah|yep|yup|yea|ya|sure|definitely|correct|no|n|nope|nah|not really|not at all|not sure|unsure|"
    r"do not know|dunno|no idea|maybe|probably|i think so|i do not think so|skip|pass)"
    r"(?: (?:it|they|i) (?:does|do|is|are|has|have|did|was|am)(?: not)?)?(?: (?:really|a bit|a little|slightly))?$")


def _leading_reply(question: Question, reading: Reading):
    """A bare "yes"/"no"/"skip" that opens a longer message ("no, but it bleeds") answers the open question."""
    statements = reading.statements
    if not statements or not reading.segments or reading.segments[0].question:
        return None
    first = re.split(r"\b(?:and|but|though|although|also)\b", statements[0])[0].strip()
    if not _BARE_REPLY.match(first):
        return None
    ok, value = parse_answer(question, first)
    return (value,) if ok else None


# --- free questions -----------------------------------------------------------------------------------

INTENTS: tuple[tuple[str, re.Pattern], ...] = (
    ("restart", re.compile(r"^(start (again|over)|restart|reset)\b")),
    ("help", re.compile(r"what do you mean|what does (that|this|it) mean|i don'?t understand|don'?t get it|"
                        r"how (do|can|should|would) i (tell|know|measure|check|see)|don'?t know what|"
                        r"what (is|does) (the )?(abcde|asymmetry|border|diameter|evolving)")),
    ("cancer", re.compile(r"\b(is|could) (it|this|that) (be )?(skin )?(cancer|melanoma|malignant|cancerous)|"
                          r"do i have (skin )?cancer|am i going to die")),
    # Before how_soon: "who should I see" is a request for a referral, "should I see a doctor" is not.
    ("referral", re.compile(r"\brefer (me|us|my)\b|\b(a|get|need|want|give me|write) (a |me a )?referral\b|"
                            r"\breferral (letter|to|for)\b|"
                            r"who (should|do|can|could|would) i (see|go to|contact|call|ask|"
                            r"speak to|talk to)|which (doctor|clinic|specialist|hospital)|"
                            r"where (can|do|should|could|would) i (get|go|have|find|book)|"
                            r"(^|you |i want to |i would like to |i'd like to |help me |how (do|can) i )(\w+ )?"
                            r"(book|make|arrange|schedule|get) (me )?(an? |my )?(appointment|consultation|"
                            r"check ?up|(doctor'?s?|gp'?s?|dermatologist'?s?|specialist|skin) (appointment|visit))|"
                            r"(find|recommend|suggest) (me )?(a |an )?(good )?(doctor|dermatologist|clinic|specialist|"
                            r"skin doctor|gp)|(send|put) me (to|through to|in touch)")),
    ("how_soon", re.compile(r"how (soon|quickly|urgent|fast|long can i wait)|when should i (see|go|visit|book|call)|"
                            r"should i (see|go to|visit|book|call|worry|be worried)|do i (need|have) to (see|go)|"
                            r"need to see|is (it|this|that) (urgent|serious|dangerous|bad|an emergency)|"
                            r"see a (doctor|gp|dermatologist|nurse)|how worried|go to (the )?(doctor|gp|hospital)|"
                            r"what should i do|(be|get) (worried|scared|concerned|afraid)|worry about")),
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
CHECK_FIRST_TIERS = (URGENT, SOON)  # a doctor should see it: nothing may suggest treating it at home first
_FEAR_ADVICE = {
    URGENT: "Booking that appointment is the most useful thing you can do now: a doctor can examine it properly.",
    SOON: "A doctor can examine it properly and tell you what it is.",
    ROUTINE: "If it changes, or you stay worried, a doctor can look at it sooner.",
    SELF_CARE: "If it does not get better, or you stay worried, see a pharmacist or GP.",
}
_STATES_ADVICE = frozenset({"how_soon", "cancer", "referral"})  # answers that already end with the advice
EMPATHY = "I understand that this is worrying, and it is good that you are looking into it."
DISTANT_RELATIVE = ("Thank you for telling me. For family history only parents, brothers, sisters and children count, "
                    "so I have not noted it as a close relative; do mention it to your doctor.")
REFERRAL_FALLBACK = ("The contacts listed on this page (set up by the clinic's staff), or your GP (family doctor), "
                     "can see you or refer you.")


def detect_intent(text: str) -> str | None:
    return next((name for name, pattern in INTENTS if pattern.search(text)), None) if text else None


def _advice(ctx: Context, state: dict) -> str:
    result = ctx.assess(state)
    text = f"My advice now: {result.title}. Why: " + " ".join(result.reasons)
    if next_question(state) is not None:
        text += " Answering my questions can change this advice."
    return text


def _advice_title(ctx: Context, state: dict) -> str:
    return f"My advice now: {ctx.assess(state).title}."


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


def _treatment(text: str, ctx: Context, state: dict) -> str:
    """Usual treatments; on an urgent or soon result, first "have it checked", never "none is needed"."""
    result = ctx.assess(state)
    named = ctx.find_condition(text)
    if result.tier in CHECK_FIRST_TIERS:
        reply = (f"With my advice as it is ({result.title}), have it checked by a doctor first, before treating it "
                 f"yourself: a cream or other treatment can change how it looks and delay the right care.")
        if named is not None:
            reply += f" Usual treatments for {named.name}, once a doctor has confirmed it: {named.treatments}"
        return reply
    condition, preface = _subject(ctx, text)
    if condition is None:
        return _no_subject()
    return f"{preface}Usual treatments for {condition.name}: {condition.treatments}"


def _referral(ctx: Context, state: dict) -> str:
    who = ctx.referral_text.strip() or REFERRAL_FALLBACK
    return f"I cannot refer you or book an appointment myself. {who} {_advice_title(ctx, state)}"


def fear_text(ctx: Context, state: dict) -> str:
    """Calm and plain: the current advice and what to do next, no reassurance beyond it."""
    result = ctx.assess(state)
    return f"My advice is: {result.title}. {_FEAR_ADVICE.get(result.tier, '')}".strip()


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
    if intent == "referral":
        return _referral(ctx, state)
    if intent == "cancer":
        return ("Neither I nor the model can tell whether it is cancer: only a doctor can, sometimes after "
                "taking a small sample. The photo and your answers decide how soon you should be seen. "
                + _advice_title(ctx, state))
    if intent == "treatment":
        return _treatment(text, ctx, state)
    if intent in ("contagious", "causes"):
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
        return f"{preface}Causes and risk factors of {condition.name}: {condition.causes}"
    if intent == "what_is":
        named = ctx.find_condition(text)
        if named is not None:
            return f"{named.name}: {named.summary}"
        if re.search(r"\b(it|this|that|my spot|the spot|mine)\b", text):
            condition, preface = _subject(ctx, text)
            if condition is None:
                return _no_subject()
            reply = f"{preface}{condition.summary}"
            result = ctx.assess(state)
            if result.tier in CHECK_FIRST_TIERS:  # "a harmless mole" must not outweigh "see a doctor"
                reply += f" That is only what the photo resembles; my advice stays: {result.title}."
            return reply
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
    return (f"Sorry, I did not understand that. Please {how} (or skip), tell me about the spot (for example "
            f"'it itches'), or ask me something like {examples}")


# --- what was noted ------------------------------------------------------------------------------------

NOTED: dict[str, tuple[str, str]] = {  # key: (said yes, said no)
    "asymmetry": ("its two halves do not match", "its two halves match"),
    "border": ("its edge is irregular or blurred", "its edge is smooth"),
    "colours": ("it has several colours", "it is one colour"),
    "diameter": ("it is wider than 6 mm", "it is not wider than 6 mm"),
    "evolving": ("it has changed", "it has not changed"),
    "itching": ("it itches", "it does not itch"),
    "bleeding": ("it bleeds", "it does not bleed"),
    "pain": ("it hurts or is tender", "it does not hurt"),
    "crusting": ("it crusts or oozes", "it does not crust or ooze"),
    "not_healing": ("it has not healed within 4 weeks", "it heals"),
    "personal_history": ("you have had skin cancer before", "you have not had skin cancer"),
    "family_history": ("a close relative has had melanoma or skin cancer",
                       "no close relative has had melanoma or skin cancer"),
}
_EVOLVING_NOTED = {"growing": "it is getting bigger", "changing": "it is changing shape or colour"}
_DURATION_NOTED = {"days": "for less than a week", "weeks": "for 1 to 4 weeks", "months": "for 1 to 12 months",
                   "years": "for more than a year", "lifelong": "as long as you remember"}


def noted_text(key: str, value) -> str:
    """One answer in words, as the person would recognise it: "it itches", "you are 54"."""
    if value == SKIP:
        return f"skipped the question about {key.replace('_', ' ')}"
    if key == "age":
        return f"you are {value}"
    if key == "duration":
        return f"you have had it {_DURATION_NOTED[value]}"
    if key == "evolving" and isinstance(value, list):
        return " and ".join(_EVOLVING_NOTED[code] for code in value)
    said_yes, said_no = NOTED[key]
    if value is None:
        return f"you are not sure whether {said_yes}"
    return said_yes if value else said_no


# --- the turn ----------------------------------------------------------------------------------------

def opening(state: dict) -> Reply:
    """The first message, before the person has said anything."""
    question = next_question(state)
    text = ("I can ask you a few questions about the spot: the ABCDE signs of melanoma, symptoms, how long you "
            "have had it, and your history. Each answer can change the advice above. You can skip any question, "
            "tell me about the spot in your own words, or ask me something, for example "
            + ", ".join(f"'{e}'" for e in EXAMPLES) + ".")
    prefilled = state.get("prefilled", [])
    if prefilled:
        text += f" I already have {len(prefilled)} answer(s) from your upload form."
    if question is not None:
        text += " " + question.text
    return Reply(text=text, question=question, state=state, intent="opening")


def _copy(state: dict) -> dict:
    return {**state, "answers": dict(state.get("answers", {})), "skipped": list(state.get("skipped", []))}


def _record(state: dict, question: Question, value) -> dict:
    state = _copy(state)
    if value == SKIP:
        if question.key not in state["skipped"] and question.key not in state["answers"]:
            state["skipped"].append(question.key)
    else:
        state["answers"][question.key] = value
        if question.key in state["skipped"]:  # said later in free text: the answer counts
            state["skipped"].remove(question.key)
    return state


def _changes(before, after) -> str:
    if after.tier == before.tier:
        return ""
    new = [reason for reason in after.reasons if reason not in before.reasons]
    return f"That changes my advice to: {after.title}. " + " ".join(new)


def _prompt(state: dict, asked: Question | None, following: Question | None) -> tuple[str, dict]:
    """The question to put after a reply: a new one in full; the open one again only once after a digression."""
    if following is None:
        return "", state
    if following != asked:
        return following.text, {**state, "reminded": None}
    if state.get("reminded") == following.key:
        return "", state
    return f"Back to my question: {following.text}", {**state, "reminded": following.key}


def respond(state: dict, message: str, ctx: Context) -> Reply:
    """One turn: the person's ``message`` against ``state``; never raises on odd input."""
    message = (message or "")[:MAX_MESSAGE_LENGTH]
    text = ctx.correct(normalise(message))
    question = next_question(state)
    intent = detect_intent(text)
    question_like = message.strip().endswith("?") or bool(_QUESTION_START.match(text))

    if intent == "restart":
        fresh = new_state({key: state["answers"][key] for key in state.get("prefilled", []) if key in state["answers"]})
        first = next_question(fresh)
        return Reply(text="Let's start again. " + (first.text if first else ""), question=first, state=fresh,
                     intent="restart", tier_changed=ctx.assess(fresh).tier != ctx.assess(state).tier)
    reading = read_message(message, ctx.correct)
    facts = dict(reading.facts)
    plain = not facts and not reading.fear  # a plain answer to the open question, as before free text
    if question is not None and text and intent != "help" and question.key not in facts:
        if not plain:
            lead = _leading_reply(question, reading)
            if lead is not None:
                facts = {question.key: lead[0], **facts}
        elif not (question_like and intent) and intent != "referral":
            ok, value = parse_answer(question, text)
            if ok:
                return _answered(state, question, value, ctx)
            if question.kind == "age" and parse_age(text) == "bad":
                prompt, state = _prompt(state, question, question)
                return Reply(text=f"That does not look like an age in years. {prompt}".strip(), question=question,
                             state=state, understood=False, intent="not_understood")
    if facts or reading.fear:
        # With facts, only what the question part asks is answered: "I had a melanoma removed" is no treatment question.
        asked_intent = "referral" if intent == "referral" else detect_intent(reading.questions) if facts else intent
        return _told(state, facts, reading.fear, asked_intent, reading.questions or text, ctx)
    reply = answer_intent(intent, text, ctx, state) if intent is not None else None
    if reply is None and reading.distant_relative:
        intent, reply = "not_noted", DISTANT_RELATIVE
    if reply is not None:
        if intent != "help":
            prompt, state = _prompt(state, question, question)
            reply = f"{reply} {prompt}".strip()
        return Reply(text=reply, question=question, state=state, intent=intent)
    reply = not_understood_text(question) + "."
    if intent == "what_is":
        known = ", ".join(info.name for info in ctx.conditions)
        reply += f" I know about these conditions: {known}."
    prompt, state = _prompt(state, question, question)
    reply = f"{reply} {prompt}".strip()
    return Reply(text=reply, question=question, state=state, understood=False, intent="not_understood")


def _answered(state: dict, question: Question, value, ctx: Context) -> Reply:
    """A quick reply or a plain answer ("yes", "3 weeks") to the open question."""
    before = ctx.assess(state)
    state = _record(state, question, value)
    after = ctx.assess(state)
    parts = ["Skipped." if value == SKIP else "Noted as not sure." if value is None else "Thank you."]
    change = _changes(before, after)
    if change:
        parts.append(change)
    following = next_question(state)
    if following is not None:
        prompt, state = _prompt(state, question, following)
        parts.append(prompt)
    else:
        parts.append(f"That was my last question. My advice: {after.title}. You can still ask me questions, "
                     f"for example '{EXAMPLES[0]}'")
    text = " ".join(part.strip() for part in parts if part)
    return Reply(text=text, question=following, state=state, tier_changed=bool(change))


def _told(state: dict, facts: dict, fear: bool, intent: str | None, asked: str, ctx: Context) -> Reply:
    """Answers stated in free text, with fear and a question in the same message: "Noted: it itches, it bleeds."."""
    question = next_question(state)
    before = ctx.assess(state)
    for key, value in facts.items():
        state = _record(state, QUESTIONS[key], value)
    after = ctx.assess(state)
    parts = [EMPATHY] if fear else []
    if facts:
        parts.append("Noted: " + ", ".join(noted_text(key, value) for key, value in facts.items()) + ".")
    change = _changes(before, after)
    if change:
        parts.append(change)
    answer = answer_intent(intent, asked, ctx, state) if intent is not None else None
    if answer is not None:
        parts.append(answer)
    if fear and not change and (answer is None or intent not in _STATES_ADVICE):
        parts.append(fear_text(ctx, state))
    following = next_question(state)
    if following is None and question is not None:
        parts.append(f"That was my last question. You can still ask me questions, for example '{EXAMPLES[0]}'")
    elif intent != "help":
        prompt, state = _prompt(state, question, following)
        parts.append(prompt)
    reply_intent = "answer" if facts else intent if answer is not None else "fear"
    text = " ".join(part.strip() for part in parts if part)
    return Reply(text=text, question=following, state=state, intent=reply_intent, tier_changed=bool(change))


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
