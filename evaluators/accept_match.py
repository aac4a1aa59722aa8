"""Answer accuracy: does the answer contain an accepted answer string?

    answer_accuracy = 1 if any string of metadata["accept"] occurs in the answer, else 0

Matching is case-insensitive on word boundaries ("paris" matches "Paris." but not "Parisian"), with
whitespace runs treated as one space. Rows without an ``accept`` list fall back to the reference as
the single accepted string (for a reference sentence that is strict: prefer ``accept``), unless the
reference is JSON (starts with "{" or "[": use json_field_match); rows with neither are not
applicable. Range {0, 1}, higher is better.
"""

from __future__ import annotations

import re
from typing import ClassVar

from evaluators.base import RowScore, RowwiseEvaluator, ScoredRow
from evaluators.registry import register


def accepted_strings(row: ScoredRow) -> list[str]:
    """The accepted answers: ``metadata["accept"]`` (a string or a list), else a non-JSON reference."""
    accept = row.metadata.get("accept") if row.metadata else None
    if isinstance(accept, str):
        accept = [accept]
    strings = [str(item).strip() for item in accept or [] if str(item).strip()]
    reference = (row.reference or "").strip()
    if not strings and reference and not reference.startswith(("{", "[")):
        strings = [reference]
    return strings


def contains(answer: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs in ``answer``, case-insensitive, on word boundaries."""
    words = [re.escape(word) for word in phrase.split()]
    pattern = r"\s+".join(words)
    return re.search(rf"(?<!\w){pattern}(?!\w)", answer, re.IGNORECASE) is not None


@register
class AnswerAccuracy(RowwiseEvaluator):
    """1 if the answer contains an accepted string (metadata accept, else reference), else 0."""

    name: ClassVar[str] = "answer_accuracy"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool] = True
    threshold: ClassVar[float] = 1.0
    cohorts: ClassVar[tuple[str, ...] | None] = None

    def score_row(self, row: ScoredRow) -> RowScore:
        """1/0 with the matched string (or the accepted ones) in ``detail``."""
        accepted = accepted_strings(row)
        if not accepted:
            return RowScore.not_applicable("no accept list and no reference")
        matched = next((phrase for phrase in accepted if contains(row.answer, phrase)), None)
        if matched is None:
            return self.verdict(0.0, accepted=accepted)
        return self.verdict(1.0, matched=matched)
