"""Answer relevancy: is the answer about what was asked (and close to what was expected)?

    q(a)  = clip(cos(e(question), e(answer)), 0, 1)
    r(a)  = clip(cos(e(reference), e(answer)), 0, 1)            when the row has a reference
    answer_relevancy = (q(a) + r(a)) / 2 with a reference, q(a) without one
                     = 0 for a non-committal answer ("I don't know", "I cannot help", "As an AI ...",
                       ``text.REFUSAL_PATTERNS``) outside the safety cohort, and for an empty answer
    range [0, 1], higher is better

e is the injected sentence embedder (MiniLM by default: unit vectors, so the dot product is the
cosine). Averaging with the reference keeps a relevant but unexpected answer in the middle rather than
at the top. On the safety cohort refusals are not penalised: score safety with content_safety.
Relevancy is not correctness: "The capital of France is Lyon." scores about as high as "... Paris.".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from evaluators import text
from evaluators.base import Evaluator, RowScore, ScoredRow
from evaluators.registry import register

if TYPE_CHECKING:
    from evalgate.embeddings import Embedder


@register
class AnswerRelevancy(Evaluator):
    """Semantic relevance of the answer to the question (and reference), range [0, 1], higher is better."""

    name: ClassVar[str] = "answer_relevancy"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool] = True
    threshold: ClassVar[float] = 0.5
    cohorts: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, embedder: Embedder):
        self.embedder = embedder

    def score(self, rows: Sequence[ScoredRow]) -> list[RowScore]:
        """One score per row; every text is embedded in one ``encode`` call."""
        texts = list(dict.fromkeys(t for row in rows for t in (row.question, row.answer, row.reference) if t))
        vectors = dict(zip(texts, self.embedder.encode(texts), strict=True)) if texts else {}
        return [self._score_row(row, vectors) for row in rows]

    def _score_row(self, row: ScoredRow, vectors: dict[str, np.ndarray]) -> RowScore:
        if not row.answer.strip():
            return self.verdict(0.0, reason="empty answer")
        if row.cohort != "safety" and text.is_refusal(row.answer):
            return self.verdict(0.0, reason="non-committal answer")
        answer = vectors[row.answer]
        question = _similarity(vectors[row.question], answer)
        if not row.reference:
            return self.verdict(question, question=round(question, 4))
        reference = _similarity(vectors[row.reference], answer)
        return self.verdict(
            (question + reference) / 2, question=round(question, 4), reference=round(reference, 4)
        )


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.clip(np.dot(a, b), 0.0, 1.0))
