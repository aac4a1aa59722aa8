"""Lexical grounding features of a claim against its evidence, question-aware (pure text, no model).

Every feature compares the claim's *new* words (its content words the question does not already
name: "Delhi" in answer to "Where is the head office?" is new, "head office" is not) with the
evidence. Words are canonical: lower case, plural/possessive 's' removed, spelled-out and grouped
numbers as digits ("1,000" = "1000" = "one thousand"), ordinals as numbers ("2nd" = "2"), month
names and abbreviations as one token ("Mar." = "March"), so "March 2, 1991" and "2 March 1991" give
the same set of tokens. A common word also matches an evidence word with the same first
``PREFIX`` letters ("founded" ~ "founder"); names and numbers must match exactly.

    novel       share of new words absent from the evidence                  [0, 1], 0 = grounded
    anchors     share of new names and numbers absent from the evidence      [0, 1], 0 = grounded
    any_anchor  1 if any new name or number is absent, else 0
    scattered   1 - the largest share of the claim's words found in the evidence (new or not) that
                one evidence sentence holds: an answer stitched from different sentences scores high
    negation    1 if the claim (of >= 4 tokens) and the evidence sentence sharing most of its
                words disagree on negation, else 0
    novel_count log(1 + number of new words absent from the evidence)
    echo        1 if every content word of the claim is one the question names (it adds nothing)
                and the question offers no alternatives, else 0
    off_choice  1 if the question offers alternatives ("..., Henri Leconte or Jonathan Stark?")
                and the claim names neither, else 0
    no_number   1 if the question asks for a number or a date (when, what year, how many, how
                long, ...) and the claim has neither a number nor a month, else 0

When the evidence is a passage (a context, not a bare reference answer), ``scattered`` counts all
the claim's words, found or not: a passage should hold the whole claim in one sentence, while a
short reference ("Brussels") holds only the answer and says nothing about the rest.

``features`` returns them in ``FEATURES`` order; ``evaluators.faithfulness_head`` weighs them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from evaluators import text
from evaluators.answer_types import choice_options

FEATURES = (
    "novel", "anchors", "any_anchor", "scattered", "negation", "novel_count",
    "echo", "off_choice", "no_number",
)  # fmt: skip
"""Names of the features, in the order ``features`` returns them."""
PREFIX = 5
"""Common words of at least this many letters match on their first ``PREFIX`` letters."""

NEGATION_MIN_TOKENS = 4
"""A claim shorter than this (a bare name or phrase) cannot disagree with its evidence on negation."""

MONTHS = {
    "jan": "january", "feb": "february", "mar": "march", "apr": "april", "jun": "june",
    "jul": "july", "aug": "august", "sep": "september", "sept": "september", "oct": "october",
    "nov": "november", "dec": "december",
}  # fmt: skip
_TOKEN = re.compile(
    r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:st|nd|rd|th)?|[A-Za-z]+(?:['\u2019][A-Za-z]+)?"
)
_ORDINAL = re.compile(r"^(\d+)(?:st|nd|rd|th)$")
_NAME = re.compile(r"\b[A-Z][A-Za-z'\u2019]*|\b\d[\d,.]*(?:st|nd|rd|th)?")
_ASKS_NUMBER = re.compile(
    r"\b(?:when|what (?:year|date|age|decade|century)|which (?:year|decade|century)|in what year"
    r"|how (?:many|much|long|old|far|tall|high|big|large|deep|wide|heavy))\b",
    re.IGNORECASE,
)
_PLURAL_ALTERNATES = (("ve", "f"), ("ie", "y"), ("xe", "x"), ("che", "ch"), ("she", "sh"), ("sse", "ss"))
"""Evidence word endings left by a plural's "es" ("scarves" -> "scarve"), and the singular's ending."""
_ONE = frozenset({"a", "an", "single"})
"""Words that state the quantity 1 ("a red notebook")."""


@lru_cache(maxsize=65536)
def canonical(word: str) -> str:
    """The canonical form of one token (see the module docstring); "" for a stopword."""
    word = word.lower().replace("\u2019", "'")
    if word[0].isdigit():
        ordinal = _ORDINAL.match(word)
        number = ordinal.group(1) if ordinal else word.replace(",", "")
        return number.removesuffix(".0")
    if word in text.STOPWORDS and word not in text.NUMBER_WORDS:
        return ""
    if word in text.NUMBER_WORDS:
        return text.NUMBER_WORDS[word]
    word = MONTHS.get(word, word).removesuffix("'s")
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def words(passage: str) -> list[str]:
    """Canonical content tokens of ``passage`` in order (stopwords dropped); a spelled-out number
    followed by a multiplier is one number ("one thousand" -> "1000", as "1,000")."""
    found: list[str] = []
    after_spelled_number = False
    for token in _TOKEN.findall(passage):
        word, form = token.lower(), canonical(token)
        if after_spelled_number and word in text.MULTIPLIERS:
            found[-1] = str(int(found[-1]) * int(form))
        elif form:
            found.append(form)
        after_spelled_number = word in text.NUMBER_WORDS and bool(form)
    return found


def all_words(passage: str) -> list[str]:
    """Every token of ``passage`` lower-cased in order (stopwords kept)."""
    return [t.lower().replace(",", "") for t in _TOKEN.findall(passage)]


def names(passage: str) -> set[str]:
    """Canonical names and numbers: capitalised words that are not stopwords, and numbers."""
    found = {canonical(match.rstrip(".,")) for match in _NAME.findall(passage) if match.rstrip(".,")}
    return {name for name in found if name}


@dataclass(frozen=True)
class Evidence:
    """What a claim is checked against: the evidence's words, their prefixes, its sentences."""

    words: frozenset[str]
    prefixes: frozenset[str]
    sentences: tuple[tuple[frozenset[str], bool], ...]
    """Each evidence sentence's words and whether it is negated."""
    passage: bool
    """Whether the evidence is a passage (a context) rather than a bare reference answer."""

    @classmethod
    def of(cls, evidence: str, question: str = "", *, passage: bool = True) -> Evidence:
        """The evidence of a row (``question`` is accepted for symmetry; it states no fact)."""
        del question
        found = set(words(evidence))
        found.update(_singulars(found))
        if _ONE & set(all_words(evidence)):
            found.add("1")
        sentences = tuple((frozenset(words(s)), text.has_negation(s)) for s in text.split_sentences(evidence))
        prefixes = frozenset(w[:PREFIX] for w in found if len(w) >= PREFIX)
        return cls(frozenset(found), prefixes, sentences, passage)

    def has(self, word: str, *, exact: bool = False) -> bool:
        """Whether ``word`` is in the evidence (a common word may match on its prefix)."""
        if word in self.words:
            return True
        return not exact and len(word) >= PREFIX and not word[0].isdigit() and word[:PREFIX] in self.prefixes


def _singulars(found: set[str]) -> set[str]:
    return {
        word[: -len(plural)] + singular
        for word in found
        for plural, singular in _PLURAL_ALTERNATES
        if len(word) > len(plural) + 2 and word.endswith(plural)
    }


@lru_cache(maxsize=4096)
def _asked(question: str) -> frozenset[str]:
    return frozenset(words(question))


@lru_cache(maxsize=4096)
def options(question: str) -> frozenset[str] | None:
    """Canonical words of the alternatives a question offers (``answer_types.choice_options``: "...,
    X or Y?", "Between X and Y, who ...?"), or None."""
    return frozenset(words(" ".join(choice_options(question)))) or None


def features(claim: str, question: str, evidence: Evidence) -> list[float]:
    """The ``FEATURES`` of ``claim`` against ``evidence`` (see the module docstring)."""
    asked = _asked(question)
    claim_words = words(claim)
    new = [w for w in dict.fromkeys(claim_words) if w not in asked]
    novel = [w for w in new if not evidence.has(w, exact=w in _claim_names(claim))]
    anchors = [n for n in _claim_names(claim) if n not in asked and n in new]
    missing = [n for n in anchors if n not in evidence.words]
    offered = options(question)
    return [
        len(novel) / len(new) if new else 0.0,
        len(missing) / len(anchors) if anchors else 0.0,
        1.0 if missing else 0.0,
        _scattered(set(claim_words), evidence),
        1.0 if _negation_differs(claim, set(claim_words), evidence) else 0.0,
        math.log1p(len(novel)),
        1.0 if claim_words and not new and offered is None else 0.0,
        1.0 if claim_words and offered is not None and not offered & set(claim_words) else 0.0,
        1.0 if _ASKS_NUMBER.search(question) and not _has_number(claim_words) else 0.0,
    ]


@lru_cache(maxsize=4096)
def _claim_names(claim: str) -> frozenset[str]:
    return frozenset(names(claim))


def _scattered(claim_words: set[str], evidence: Evidence) -> float:
    found = {w for w in claim_words if evidence.has(w)}
    counted = claim_words if evidence.passage else found
    if len(counted) < 2 or not found or not evidence.sentences:
        return 0.0
    best = max(sum(_in(w, ws) for w in found) for ws, _ in evidence.sentences)
    return 1.0 - best / len(counted)


def _has_number(claim_words: list[str]) -> bool:
    return any(w[0].isdigit() or w in _MONTH_NAMES for w in claim_words)


_MONTH_NAMES = frozenset(MONTHS.values())


def _in(word: str, sentence_words: frozenset[str]) -> bool:
    if word in sentence_words:
        return True
    return (
        len(word) >= PREFIX
        and not word[0].isdigit()
        and any(w.startswith(word[:PREFIX]) for w in sentence_words)
    )


def _negation_differs(claim: str, claim_words: set[str], evidence: Evidence) -> bool:
    if not evidence.sentences or not claim_words:
        return False
    overlap, negated = max((len(claim_words & ws), neg) for ws, neg in evidence.sentences)
    return (
        len(all_words(claim)) >= NEGATION_MIN_TOKENS and overlap >= 2 and negated != text.has_negation(claim)
    )


def missing_words(claim: str, question: str, evidence: Evidence) -> list[str]:
    """The claim's new words (not in the question) that the evidence lacks, in order."""
    asked = set(words(question))
    exact = _claim_names(claim)
    new = [w for w in dict.fromkeys(words(claim)) if w not in asked]
    return [w for w in new if not evidence.has(w, exact=w in exact)]
