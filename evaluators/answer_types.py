"""What kind of answer a question asks for, and whether an answer is of that kind (rules, no model).

    expected = expected_answer("In what year did the Suez Canal open?")   # kind "year"
    compatible(expected, "1869")          # True
    compatible(expected, "Ferdinand de Lesseps")   # False

The kind comes from the question's wh-word and shape: who/whom/whose -> person; where or "in which
city/country/..." -> place; when / what year / which century -> a time (a year or date for the
"year" kind, also a time clause such as "once it is cool" for plain "when"); how many / how much /
how long / how far / ... -> a quantity; why -> a reason; a question that starts with an auxiliary
verb (is, can, did, ...) -> yes or no; "... X or Y?" -> one of the named options; a question that
asks for JSON -> a JSON object or array; anything else (what, which, how) -> open. Compatibility is
deliberately lenient: it says False only when the answer is clearly of another kind (a bare year for a
"who" question, a name for "how many", "1903" for a yes/no question, a JSON object for a question
that did not ask for one), and True otherwise.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


AUXILIARIES = _wordset(
    "is are was were am do does did can could has have had will would should shall may might must"
)
"""First words of a yes/no question."""
PLACE_NOUNS = _wordset(
    """city cities country countries state states continent ocean sea river lake mountain mountains
    range region town village county province island islands capital place hemisphere desert
    kingdom nation street district park area location"""
)
PERSON_NOUNS = _wordset(
    """person people man woman king queen emperor empress pharaoh president leader traveller traveler
    explorer scientist engineer inventor writer author poet painter artist composer actor actress
    singer director player member founder designer architect general pope prince princess"""
)
QUANTITY_WORDS = _wordset(
    """one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
    sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred
    hundreds thousand thousands million millions billion billions dozen dozens half quarter third
    single couple few several many much most all none every once twice daily weekly monthly yearly
    percent per"""
)
TIME_WORDS = _wordset(
    """january february march april may june july august september october november december
    century centuries decade decades ago bc ad bce ce year years today yesterday morning evening night
    once after before when while until during since spring summer autumn winter"""
)
YES_NO = _wordset("yes no yeah nope yep")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_YEAR = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b|\b\d+\s*(?:bc|ad|bce|ce)\b|\b\d+(?:st|nd|rd|th)\b")
_NUMBER = re.compile(r"\d")
_LEAD_IN = re.compile(r"^(?:according to (?:the|this) (?:passage|text|context)[^,]*,\s*|based on [^,]+,\s*)")
_CAPITALISED = re.compile(r"\b[A-Z][\w'&-]*")


@dataclass(frozen=True)
class ExpectedAnswer:
    """The kind of answer a question asks for; ``options`` for a choice question."""

    kind: str
    """person, place, year, time, quantity, reason, yesno, choice, json or open."""
    options: tuple[str, ...] = ()


def words(text: str) -> list[str]:
    """Lower-case word tokens."""
    return _WORD.findall(text.lower())


def expected_answer(question: str) -> ExpectedAnswer:
    """The kind of answer ``question`` asks for (see the module docstring)."""
    text = _LEAD_IN.sub("", question.strip().lower())
    tokens = words(text)
    if not tokens:
        return ExpectedAnswer("open")
    if "json" in tokens:
        return ExpectedAnswer("json")
    asked = _asked_phrase(tokens)
    if asked:
        return ExpectedAnswer(asked)
    options = choice_options(question)
    if options:
        return ExpectedAnswer("choice", options)
    if tokens[0] in AUXILIARIES:
        return ExpectedAnswer("yesno")
    return ExpectedAnswer(_wh_kind(tokens))


def _asked_phrase(tokens: list[str]) -> str | None:
    """A year or quantity asked anywhere ("... who won it in what year?", "... a population of what?")."""
    for index, token in enumerate(tokens):
        following = tokens[index + 1 : index + 2]
        if token in ("what", "which") and following and following[0] in ("year", "century", "decade"):
            return "year"
        if token == "how" and following and following[0] in ("many", "much"):
            return "quantity"
    if "population" in tokens and ("what" in tokens or "how" in tokens):
        return "quantity"
    return None


def _wh_kind(tokens: list[str]) -> str:
    """The kind of a wh-question from its first wh-word and the noun after which/what."""
    for index, token in enumerate(tokens):
        following = [word for word in tokens[index + 1 : index + 4] if word not in _SKIPPED]
        if token in ("who", "whom", "whose"):
            return "person"
        if token == "where":
            return "place"
        if token == "when":
            return "time"
        if token == "why":
            return "reason"
        if token == "how":
            return "quantity" if following[:1] and _is_measure(following[0]) else "open"
        if token in ("which", "what"):
            return _noun_kind(following[:2])
    return "open"


_SKIPPED = frozenset({"is", "was", "are", "were", "the", "a", "an", "of"})


def _is_measure(word: str) -> bool:
    return word in {"many", "much", "old", "long", "far", "tall", "high", "deep", "big", "large",
                    "often", "fast", "wide", "heavy", "hot", "cold", "soon"}  # fmt: skip


def _noun_kind(following: list[str]) -> str:
    """Kind of "which/what <noun>": a year, a place, a person, a quantity, or open."""
    for word in following:
        if word in ("year", "century", "decade", "date"):
            return "year"
        if word in PLACE_NOUNS:
            return "place"
        if word in PERSON_NOUNS:
            return "person"
        if word in ("percentage", "percent", "number", "amount", "share", "proportion", "population"):
            return "quantity"
    return "open"


def choice_options(question: str) -> tuple[str, ...]:
    """The two named options of "... X or Y?" (a name, or a short phrase in a which/is-question) or
    of "Between X and Y, who/which ...?" (names), else ()."""
    body = question.strip().rstrip("?").strip()
    between = _BETWEEN.match(body)
    if between:
        return _between_options(between.group(1), between.group(2))
    if " or " not in body:
        return ()
    left, right = body.rsplit(" or ", 1)
    right = right.strip(" ,")
    right_words = right.split()
    named = bool(_CAPITALISED.search(right)) or right[:1].isdigit()
    opener = words(body)[:1]
    if not right_words or len(right_words) > 6:
        return ()
    if not named and (len(right_words) > 3 or not opener or opener[0] not in _CHOICE_OPENERS):
        return ()
    left_span = _trailing_phrase(left, len(right_words))
    return (left_span, right) if left_span else ()


_BETWEEN = re.compile(
    r"(?:in\s+)?between\s+(.+?)\s+and\s+([^,]+?)\s*,?\s+(?:who|which|what)\b", re.IGNORECASE
)
"""A choice opened by "(In) between X and Y(,) who/which/what ...". ("Who ... between X and Y?" is left out:
"the connection between X and Y" and "the game between X and Y" offer no choice.)"""


def _between_options(left: str, right: str) -> tuple[str, ...]:
    """The options of "Between X and Y, ...": both must be names, of at most 6 words."""
    right = right.strip()
    if not (_CAPITALISED.search(right) or right[:1].isdigit()) or len(right.split()) > 6:
        return ()
    left_span = _trailing_phrase(left, len(right.split()))
    return (left_span, right) if left_span[:1].isupper() or left_span[:1].isdigit() else ()


_CHOICE_OPENERS = AUXILIARIES | {"which", "who", "what", "whose", "where"}
_CONNECTORS = frozenset({"of", "the", "for", "and", "de", "la", "le", "von", "van", "in", "on", "&"})


def _trailing_phrase(text: str, width: int) -> str:
    """The option before " or ": its trailing capitalised name, else its last ``width`` + 1 words."""
    tail = re.split(r"[,:]\s*", text)[-1].split()
    if not tail:
        return ""
    if tail[-1][:1].isupper() or tail[-1][:1].isdigit():
        start = len(tail) - 1
        while start > 0 and (tail[start - 1][:1].isupper() or tail[start - 1].lower() in _CONNECTORS):
            start -= 1
        while start < len(tail) - 1 and tail[start].lower() in _CONNECTORS - {"the"}:
            start += 1
        return " ".join(tail[start:])
    return " ".join(tail[-(width + 1) :])


def compatible(expected: ExpectedAnswer, answer: str, question: str = "") -> bool:
    """Whether ``answer`` may be of the kind ``expected`` asks for (False only when clearly not)."""
    tokens = words(answer)
    if not tokens:
        return False
    if expected.kind == "json":
        return _is_json(answer)
    if _is_json(answer):
        return False
    if expected.kind == "yesno":
        return tokens[0] in YES_NO or _restates(tokens, words(question))
    if tokens[0] in YES_NO and len(tokens) <= 2:
        return False
    if expected.kind == "choice":
        return any(_mentions(tokens, option) for option in expected.options) or tokens[0] in YES_NO
    checks = {
        "year": lambda: _YEAR.search(answer.lower()) is not None,
        "time": lambda: _has_time(answer, tokens),
        "quantity": lambda: _has_quantity(answer, tokens, words(question)),
    }
    if expected.kind in checks:
        return checks[expected.kind]()
    return not _only_numeric(answer, tokens)


def _is_json(answer: str) -> bool:
    stripped = answer.strip().strip("`").removeprefix("json").strip()
    if not stripped.startswith(("{", "[")):
        return False
    try:
        json.loads(stripped)
    except ValueError:
        return stripped.startswith("{") and '":' in stripped
    return True


def _restates(answer: list[str], question: list[str]) -> bool:
    """A sentence answer to a yes/no question repeats at least half of its longer words."""
    content = {word for word in question if len(word) > 3}
    return bool(content) and len(content & set(answer)) >= len(content) / 2


def _mentions(answer: list[str], option: str) -> bool:
    """Whether the answer names the option (one of its longer words, or all of a short option)."""
    option_words = [w for w in words(option) if len(w) > 2 and w not in _CONNECTORS] or words(option)
    return any(word in answer for word in option_words)


def _has_time(answer: str, tokens: list[str]) -> bool:
    return _NUMBER.search(answer) is not None or any(token in TIME_WORDS for token in tokens)


def _has_quantity(answer: str, tokens: list[str], question: list[str]) -> bool:
    """A number or quantity word; for "how big / large" also a comparison of size ("the size of a fist")."""
    if _NUMBER.search(answer) or any(token in QUANTITY_WORDS for token in tokens):
        return True
    return bool({"big", "large"} & set(question)) and bool({"size", "big", "large", "as"} & set(tokens))


def _only_numeric(answer: str, tokens: list[str]) -> bool:
    """A bare number, year or date ("1969", "In 1903", "about 70"), with no name or noun beside it."""
    if not _NUMBER.search(answer) and not _YEAR.search(answer.lower()):
        return False
    filler = {"in", "on", "about", "around", "approximately", "the", "year", "of", "since", "by"}
    rest = [t for t in tokens if not t.isdigit() and t not in filler and t not in TIME_WORDS]
    return not rest and not _CAPITALISED.search(re.sub(r"^\W*\w+", "", answer))


def picks(expected: ExpectedAnswer, answer: str) -> bool:
    """Whether the answer's form alone answers the question: yes/no to a yes/no question, or one of the
    named options to a choice question (relevant whatever the context says; correctness aside)."""
    tokens = words(answer)
    if expected.kind == "yesno":
        return bool(tokens) and tokens[0] in YES_NO
    if expected.kind == "choice":
        return any(_mentions(tokens, option) for option in expected.options)
    return False


def json_key_share(question: str, answer: str) -> float:
    """Share of a JSON object answer's keys that the question names, when it asks for keys or fields
    (1.0 otherwise, or when the answer is not an object): an extraction with the asked-for keys is on
    topic."""
    try:
        value = json.loads(answer.strip().strip("`").removeprefix("json").strip())
    except ValueError:
        return 1.0
    if not isinstance(value, dict) or not value:
        return 1.0
    asked = set(words(question))
    if not asked & {"key", "keys", "field", "fields"}:
        return 1.0
    named = [key for key in value if set(words(str(key))) <= asked]
    return len(named) / len(value)
