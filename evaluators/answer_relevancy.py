"""Answer relevancy: does the answer address what was asked (not: is it correct)?

    kind(a)   = 1 if the answer is of the kind the question asks for, else INCOMPATIBLE (0.2)
                (``answer_types``: who -> a person, when / what year -> a time or year, how many -> a
                quantity, where -> a place, is/can/did ... -> yes or no, "X or Y?" -> one of the options,
                "as JSON" -> JSON; a bare year for "who", a name for "how many", "1903" for a yes/no
                question or a JSON object for a question that did not ask for one are not)
    topic(a)  = 1 when the answer's form alone answers: yes/no to a yes/no question, a named option
                to an "X or Y?" question;
              = the share of a JSON answer's keys the question names, for a question asking for JSON
                (1 when it names none);
              = evidence(a) when the row has a context and a context sentence holds at least half of the
                answer's new words (those the question does not already name; the whole answer or one
                of its first 3 sentences):
                    evidence(a) = m(s_a) / max over the context's sentences s of m(s)
                    m(s) = IDF-weighted share of the question's content words that occur in s
                    s_a  = the best-matching sentence holding the answer
                (the sentence the answer comes from should be the one the question asks about; for a
                two-hop question whose answer sentence shares a name with the best one: (1 + ratio) / 2;
                when s_a is the best sentence, 1 - NEARNESS * (1 - 1 / (1 + gap / 3)), gap = words
                between the answer and the nearest question word there, so that of two answers taken
                from the same sentence the one next to the asked words ranks higher; range [0.9, 1]);
              = UNSUPPORTED (0.5) * cosine topic when the row has a context that does not hold the answer;
              = cosine topic = clip(cos(e(question), e(answer)) / COSINE_FULL, 0, 1) with no context
    answer_relevancy = kind(a) * topic(a)
                     = 0 for an empty answer, and for a non-committal one ("I don't know", "I cannot
                       help", ``text.REFUSAL_PATTERNS``) outside the safety cohort
    range [0, 1], higher is better; passes at >= 0.5

The reference answer is not used: a relevancy score that matched the reference would be a second
correctness score. e is the injected sentence embedder (MiniLM by default: unit vectors, so the dot
product is the cosine); questions and answers of all rows are embedded in one ``encode`` call, context
sentences are matched by words only (no embedding), so long contexts cost little. COSINE_FULL = 0.3:
MiniLM puts unrelated short texts near 0 to 0.1 and a short answer on the question's subject (a name,
a year) around 0.15 to 0.5, so without a context an answer passes at cosine >= 0.15; an answer the
row's context does not hold passes only at cosine >= 0.3. IDF is computed over the sentences of the
row's own context: words every sentence repeats (the passage's subject) weigh least. Without a context
two answers of the same kind on the same subject are hard to tell apart (``bench/answer_relevancy_pairs.py``
prints both cases). On the safety cohort refusals are not penalised: score safety with content_safety.
Relevancy is not correctness: "The capital of France is Lyon." scores about as high as "... Paris.".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from evaluators import text
from evaluators.answer_types import compatible, expected_answer, json_key_share, picks
from evaluators.base import Evaluator, RowScore, ScoredRow
from evaluators.registry import register

if TYPE_CHECKING:
    from evalgate.evaluation.embeddings import Embedder

INCOMPATIBLE = 0.2
"""Factor for an answer of another kind than the question asks for (keeps it below 0.5)."""
COSINE_FULL = 0.3
"""Question-answer cosine that counts as fully on topic when there is no evidence sentence."""
UNSUPPORTED = 0.5
"""Factor for the cosine topic of an answer that no sentence of the row's context holds."""
MAX_ANSWER_SENTENCES = 3
"""A longer answer's first sentences are also located one by one (the answer is usually among them)."""
NEARNESS = 0.1
"""Weight of how close the answer sits to the question's words in its evidence sentence (a tie-break
between answers of the same sentence: small enough never to fail an answer)."""
LOCATED_SHARE = 0.5
"""Share of the answer's new words a context sentence must hold to be the answer's evidence."""


@register
class AnswerRelevancy(Evaluator):
    """Answer of the asked kind x on the asked topic (evidence or cosine), [0, 1], higher is better."""

    name: ClassVar[str] = "answer_relevancy"
    version: ClassVar[str] = "3"
    higher_is_better: ClassVar[bool] = True
    threshold: ClassVar[float] = 0.5
    cohorts: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, embedder: Embedder):
        self.embedder = embedder

    def score(self, rows: Sequence[ScoredRow]) -> list[RowScore]:
        """One score per row; the rows that need a cosine are embedded in one ``encode`` call."""
        plans = [self._plan(row) for row in rows]
        needed = [
            row
            for row, plan in zip(rows, plans, strict=True)
            if isinstance(plan, _Plan) and plan.topic is None
        ]
        texts = list(dict.fromkeys(t for row in needed for t in (row.question, row.answer) if t.strip()))
        vectors = dict(zip(texts, self.embedder.encode(texts), strict=True)) if texts else {}
        return [self._finish(row, plan, vectors) for row, plan in zip(rows, plans, strict=True)]

    def _plan(self, row: ScoredRow) -> RowScore | _Plan:
        """The verdict when no embedding is needed to reach it, else what is known so far."""
        if not row.answer.strip():
            return self.verdict(0.0, reason="empty answer")
        if row.cohort != "safety" and text.is_refusal(row.answer):
            return self.verdict(0.0, reason="non-committal answer")
        expected = expected_answer(row.question)
        kind_ok = compatible(expected, row.answer, row.question)
        if picks(expected, row.answer):
            return _Plan(expected.kind, kind_ok, 1.0, "form")
        if expected.kind == "json":
            return _Plan(expected.kind, kind_ok, json_key_share(row.question, row.answer), "json keys")
        evidence = evidence_share(row.question, row.answer, row.context) if row.context.strip() else None
        if evidence is not None:
            return _Plan(expected.kind, kind_ok, evidence, "evidence")
        return _Plan(
            expected.kind, kind_ok, None, "cosine, answer not in context" if row.context.strip() else "cosine"
        )

    def _finish(self, row: ScoredRow, plan: RowScore | _Plan, vectors: dict[str, np.ndarray]) -> RowScore:
        """kind(a) * topic(a), with the cosine topic filled in where it was needed."""
        if isinstance(plan, RowScore):
            return plan
        topic = plan.topic
        if topic is None:
            cosine = (
                float(np.dot(vectors[row.question], vectors[row.answer])) if row.question.strip() else 0.0
            )
            topic = float(np.clip(cosine / COSINE_FULL, 0.0, 1.0))
            topic *= UNSUPPORTED if row.context.strip() else 1.0
        value = topic * (1.0 if plan.kind_ok else INCOMPATIBLE)
        return self.verdict(
            value, kind=plan.kind, kind_ok=plan.kind_ok, topic=round(topic, 4), topic_from=plan.source
        )


@dataclass(frozen=True)
class _Plan:
    """A row's answer kind and topic so far (``topic`` None: the cosine decides)."""

    kind: str
    kind_ok: bool
    topic: float | None
    source: str


def evidence_share(question: str, answer: str, context: str) -> float | None:
    """How well the context sentence holding the answer matches the question, relative to the best one.

    A two-hop question ("... the city where X was born?") names one sentence and finds its answer in
    another: when the answer's sentence shares a name with the best-matching sentence (a capitalised
    word neither the question nor the answer uses), the evidence is (1 + relative match) / 2.
    A longer answer is tried whole and sentence by sentence (its first MAX_ANSWER_SENTENCES), keeping
    the best. None when no part of the answer adds a word the question lacks that a context sentence
    holds (at least half of those words).
    """
    raw = text.split_sentences(context)
    sentences = [keywords(sentence) for sentence in raw]
    asked = keywords(question)
    if not sentences or not asked:
        return None
    weights = {word: _idf(word, sentences) for word in asked}
    total = sum(weights.values())
    matches = [sum(weights[word] for word in asked & words) / total for words in sentences]
    best = max(matches)
    if best <= 0.0:
        return None
    parts = [answer, *text.split_sentences(answer)[:MAX_ANSWER_SENTENCES]]
    found = [_holding(keywords(part) - asked, sentences, matches) for part in dict.fromkeys(parts)]
    located = [(index, part) for index, part in zip(found, dict.fromkeys(parts), strict=True) if index >= 0]
    if not located:
        return None
    index, part = max(located, key=lambda pair: matches[pair[0]])
    relative = matches[index] / best
    if relative < 1.0 and _bridged(raw[index], raw[matches.index(best)], question, part):
        return (1.0 + relative) / 2
    if relative < 1.0:
        return relative
    return 1.0 - NEARNESS + NEARNESS * _nearness(raw[index], keywords(part) - asked, asked)


def _nearness(sentence: str, new: set[str], asked: set[str]) -> float:
    """1 / (1 + gap / 3), gap = words between the answer and the nearest question word in ``sentence``."""
    stems = [next(iter(keywords(token)), "") for token in text.tokens(sentence)]
    answer_at = [i for i, word in enumerate(stems) if word in new]
    asked_at = [i for i, word in enumerate(stems) if word in asked]
    if not answer_at or not asked_at:
        return 0.0
    gap = min(abs(i - j) for i in answer_at for j in asked_at) - 1
    return 1.0 / (1.0 + max(gap, 0) / 3)


def _holding(new: set[str], sentences: list[set[str]], matches: list[float]) -> int:
    """Index of the best-matching sentence holding half of ``new`` (-1 when none, or ``new`` empty)."""
    holding = [i for i, words in enumerate(sentences) if new and len(new & words) >= LOCATED_SHARE * len(new)]
    return max(holding, key=lambda i: matches[i]) if holding else -1


def _bridged(answer_sentence: str, asked_sentence: str, question: str, answer: str) -> bool:
    """Whether two sentences share a name that neither the question nor the answer uses."""
    named = {word.lower() for word in text.tokens(question)} | text.entities(answer)
    return bool((text.entities(answer_sentence) & text.entities(asked_sentence)) - named)


def keywords(sentence: str) -> set[str]:
    """Content words, lightly stemmed ("opened" -> "open", "colonies" -> "colony"), numbers as digits."""
    return {_stem(word) for word in text.content_tokens(sentence)}


def _stem(word: str) -> str:
    if word.isdigit() or len(word) <= 4:
        return word
    if word.endswith(("ies", "ie")):
        return word.removesuffix("s")[:-2] + "y"
    for suffix in ("ing", "ed", "es", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _idf(word: str, sentences: list[set[str]]) -> float:
    """Smoothed inverse sentence frequency of ``word`` within one context (>= 1)."""
    frequency = sum(word in words for words in sentences)
    return math.log((1 + len(sentences)) / (1 + frequency)) + 1.0
