"""Shared text helpers for the evaluators: splitting, normalisation, numbers, entities, refusals.

Everything here is pure string processing (regular expressions, no downloaded data), so it works
offline and gives the same result on every machine.
"""

from __future__ import annotations

import json
import re
import string
from typing import Any

_STOPWORD_TEXT = """a an the and or but if then than so of to in on at by for with from into onto over
    under about
    as is are was were be been being am do does did done has have had having it its it's this that these
    those there here which who whom whose what when where why how i me my we our you your he him his she
    her they them their not no nor yes also very can could would should will shall may might must just
    only both either neither each all any some such more most other same own up down out off again once
    one first"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
"""Function words ignored by content-token overlap (a small fixed list: NLTK data is not available)."""

NEGATIONS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "cannot"})

NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "dozen": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16",
    "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30",
    "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
    "hundred": "100", "thousand": "1000", "million": "1000000",
}  # fmt: skip
"""Spelled-out numbers mapped to digits, so "eight vases" grounds "8"."""

REFUSAL_PATTERNS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\bI(?:'m| am) (?:not able|unable) to\b",
        r"\bI (?:can(?:'|no)?t|cannot|won'?t|will not|must decline to|refuse to)\b",
        r"\bI(?:'m| am) (?:sorry|afraid)\b",
        r"\bI do(?:n'?t| not) know\b",
        r"\bI(?:'m| am) not sure\b",
        r"\bas an AI\b",
        r"\b(?:not able|unable) to (?:help|assist|provide|answer)\b",
        r"\bcan(?:'|no)?t (?:help|assist) with\b",
        r"\b(?:no|not enough) information\b",
        r"\bI (?:have no|don'?t have) (?:information|access|knowledge)\b",
    )
)
"""Non-committal and refusal phrasings ("I don't know", "I cannot help", "As an AI ...")."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|(?<=[a-z0-9)][.!?])(?=[A-Z][a-z])|\n+")
_ABBREVIATION = re.compile(r"[A-Z]\.|(?:St|Dr|Mr|Mrs|Ms|Jr|Sr|Mt|Prof|Gen|Col|Lt|No|vs|Co|Inc)\.")
"""A token that ends in a full stop without ending a sentence: an initial or a title."""
_CLAIM_JOINT = re.compile(r";\s+|,\s+(?:and|but|while|whereas)\s+|\s+(?:but|whereas)\s+")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['\u2019][A-Za-z]+)?")
_NUMBER = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_CAPITALISED = re.compile(r"\b[A-Z][A-Za-z0-9'\u2019&-]*")
_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; also splits "century.First" (a missing space after a full stop), but
    not after an initial or a title ("Mark L. Lester", "Dr. Smith")."""
    joined: list[str] = []
    for part in (piece.strip() for piece in _SENTENCE_END.split(text)):
        if not part:
            continue
        if joined and _ABBREVIATION.fullmatch(joined[-1].rsplit(None, 1)[-1]):
            joined[-1] = f"{joined[-1]} {part}"
        else:
            joined.append(part)
    return joined


def split_claims(text: str) -> list[str]:
    """Claims of an answer: its sentences, further split at ';' and at clause joints (", and", "but")."""
    claims: list[str] = []
    for sentence in split_sentences(text):
        claims.extend(part.strip(" ,;") for part in _CLAIM_JOINT.split(sentence) if tokens(part))
    return claims


def normalise(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    lowered = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", lowered).split())


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits, keeping inner apostrophes)."""
    return [word.lower().replace("\u2019", "'") for word in _WORD.findall(text)]


def content_tokens(text: str) -> set[str]:
    """Tokens that are not stopwords: plural or possessive 's' removed, number words as digits."""
    return {NUMBER_WORDS.get(word) or _stem(word) for word in tokens(text) if word not in STOPWORDS}


def _stem(word: str) -> str:
    word = word.removesuffix("'s")
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


MULTIPLIERS = frozenset({"hundred", "thousand", "million"})
"""Number words that multiply the spelled-out number before them ("two hundred" is 200)."""


def numbers(text: str) -> set[str]:
    """Numbers in ``text`` as canonical digit strings ("1,000" -> "1000", "eight" -> "8", "one
    thousand" -> "1000", "two hundred thousand" -> "200000")."""
    found = {match.replace(",", "").removesuffix(".0") for match in _NUMBER.findall(text)}
    return found | set(_spelled_numbers(tokens(text)))


def _spelled_numbers(words: list[str]) -> list[str]:
    """The spelled-out numbers of ``words``: a multiplier right after a number word multiplies it."""
    values: list[str] = []
    previous_was_number = False
    for word in words:
        value = NUMBER_WORDS.get(word)
        if value is not None and word in MULTIPLIERS and previous_was_number:
            values[-1] = str(int(values[-1]) * int(value))
        elif value is not None:
            values.append(value)
        previous_was_number = value is not None
    return values


def entities(text: str) -> set[str]:
    """Capitalised words (lower-cased) that are not stopwords: a cheap proper-noun detector."""
    words = (match.lower().replace("\u2019", "'").removesuffix("'s") for match in _CAPITALISED.findall(text))
    return {word for word in words if word not in STOPWORDS and not word.isdigit()}


def has_negation(text: str) -> bool:
    """Whether ``text`` contains a negation word or an "n't" contraction."""
    words = tokens(text)
    return any(word in NEGATIONS or word.endswith("n't") for word in words)


def is_refusal(text: str) -> bool:
    """Whether ``text`` refuses or declines to answer (see ``REFUSAL_PATTERNS``)."""
    return any(pattern.search(text) for pattern in REFUSAL_PATTERNS)


def strip_fence(text: str) -> str:
    """``text`` without a surrounding Markdown code fence (```json ... ``` or ``` ... ```)."""
    match = _FENCE.match(text)
    return match.group(1) if match else text.strip()


def parse_json(text: str) -> Any:
    """The JSON value in ``text`` (alone, or fenced in ```json ... ```); raises ``ValueError``."""
    return json.loads(strip_fence(text))
