"""Hallucination score: the rate of answer claims unsupported by, or contradicting, context and reference.

Evidence is the row's context and its reference together. Each claim gets a support from the same
``ClaimJudge`` as faithfulness (offline: ``GroundingJudge``, question-aware grounding features weighed
by a learned head, see ``evaluators.faithfulness``), and

    h(c) = 1                   if c contradicts the evidence or the reference
           1 - support(c)      otherwise
    hallucination_score = mean over claims c of h(c)        range [0, 1], lower is better
                          (max over claims for a JSON answer: one invented value fails the row)

A claim contradicts when the judge says so (offline: the evidence sentence sharing most of its words
has the opposite negation), or when a reference is given and the claim carries numbers
absent from a reference that has numbers, or capitalised entities none of which the reference names
while it names some. Rows with neither context nor reference are not applicable. An answer that
invents a name or number scores high however short it is ("The capital of Belgium is Leuart." against
the reference "Brussels"); a long answer whose every claim the evidence holds scores low. The default
threshold is 1 - ``faithfulness.THRESHOLD`` (chosen on the dev half of a HaluEval QA file).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from evaluators import text
from evaluators.base import Evaluator, RowScore, ScoredRow
from evaluators.faithfulness import (
    THRESHOLD,
    ClaimCheck,
    ClaimJudge,
    ClaimVerdict,
    GroundingJudge,
    claim_detail,
    is_json_record,
)
from evaluators.registry import register


def reference_conflict(claim: str, reference: str) -> str | None:
    """Why ``claim`` conflicts with ``reference`` (a different number or entity), or None."""
    claim_numbers, reference_numbers = text.numbers(claim), text.numbers(reference)
    if claim_numbers and reference_numbers and not claim_numbers <= reference_numbers:
        return f"numbers {', '.join(sorted(claim_numbers - reference_numbers))} not in the reference"
    claim_entities, reference_words = text.entities(claim), set(text.tokens(reference))
    if claim_entities and text.entities(reference) and not claim_entities & reference_words:
        return f"names {', '.join(sorted(claim_entities))}, the reference names others"
    return None


@register
class HallucinationScore(Evaluator):
    """Rate of unsupported or contradicting claims, range [0, 1], lower is better (see module)."""

    name: ClassVar[str] = "hallucination_score"
    version: ClassVar[str] = "5"
    higher_is_better: ClassVar[bool] = False
    threshold: ClassVar[float] = round(1.0 - THRESHOLD, 4)
    cohorts: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, judge: ClaimJudge | None = None):
        self.judge: ClaimJudge = judge or GroundingJudge()

    def score(self, rows: Sequence[ScoredRow]) -> list[RowScore]:
        """One score per row; rows with neither context nor reference are not applicable."""
        scored = [i for i, row in enumerate(rows) if _evidence(row) and row.answer.strip()]
        checks = [
            ClaimCheck(rows[i].question, rows[i].answer, _evidence(rows[i]), bool(rows[i].context.strip()))
            for i in scored
        ]
        verdicts = dict(zip(scored, self.judge.judge(checks), strict=True))
        return [self._row_score(row, verdicts.get(i)) for i, row in enumerate(rows)]

    def _row_score(self, row: ScoredRow, verdicts: list[ClaimVerdict] | None) -> RowScore:
        if verdicts is None:
            reason = "no context or reference" if not _evidence(row) else "empty answer"
            return RowScore.not_applicable(reason)
        if not verdicts:
            return RowScore.not_applicable("the answer makes no claim")
        checked = [_with_reference(verdict, row.reference) for verdict in verdicts]
        rates = [1.0 if v.contradicted else 1.0 - v.support for v in checked]
        score = max(rates) if is_json_record(row.answer) else float(np.mean(rates))
        return self.verdict(score, **claim_detail(checked))


def _evidence(row: ScoredRow) -> str:
    return "\n".join(part for part in (row.context.strip(), (row.reference or "").strip()) if part)


def _with_reference(verdict: ClaimVerdict, reference: str | None) -> ClaimVerdict:
    conflict = reference_conflict(verdict.claim, reference) if reference else None
    if conflict is None:
        return verdict
    reason = f"{verdict.reason}; contradicts the reference: {conflict}".lstrip("; ")
    return ClaimVerdict(verdict.claim, verdict.support, True, reason)
