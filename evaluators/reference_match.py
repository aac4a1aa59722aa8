"""Reference match: four evaluators comparing the answer with the row's reference (higher is better).

    exact_match       1 if normalise(answer) == normalise(reference), else 0; when the reference is
                      JSON (an object or a list), 1 if the parsed answer equals the parsed reference
    token_f1          SQuAD token F1: P = |common| / |answer tokens|, R = |common| / |reference tokens|,
                      F1 = 2PR / (P + R), on normalised tokens (common counted with multiplicity)
    rouge_l           ROUGE-L F-measure (longest common subsequence, Porter stemming) of rouge_score
    json_field_match  share of the reference object's fields whose value the answer object matches
                      (strings compared normalised, numbers by value); 0 if the answer is not JSON

All range over [0, 1]. ``normalise`` is SQuAD's: lower case, no punctuation, no articles. Rows with no
reference are not applicable; json_field_match also needs a reference that is a JSON object.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

from rouge_score import rouge_scorer

from evaluators import text
from evaluators.base import Evaluator, RowScore, ScoredRow
from evaluators.registry import register


def _json_reference(reference: str) -> Any:
    """The reference parsed when it is a JSON object or list, else None."""
    try:
        value = json.loads(reference)
    except ValueError:
        return None
    return value if isinstance(value, dict | list) else None


def _parsed_answer(answer: str) -> Any:
    try:
        return text.parse_json(answer)
    except ValueError:
        return None


def token_f1(answer: str, reference: str) -> float:
    """SQuAD token F1 of ``answer`` against ``reference`` (1 when both have no token)."""
    predicted, gold = text.normalise(answer).split(), text.normalise(reference).split()
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def values_match(answer_value: Any, reference_value: Any) -> bool:
    """Field equality: strings normalised, numbers by value (8 == 8.0 == "8"), the rest exactly."""
    if isinstance(reference_value, str) or isinstance(answer_value, str):
        return text.normalise(str(answer_value)) == text.normalise(str(reference_value))
    return bool(answer_value == reference_value)


class _ReferenceEvaluator(Evaluator):
    """Shared loop: rows without a reference are not applicable; ``score_pair`` does the rest."""

    higher_is_better: ClassVar[bool] = True
    version: ClassVar[str] = "1"
    cohorts: ClassVar[tuple[str, ...] | None] = None

    def score(self, rows: Sequence[ScoredRow]) -> list[RowScore]:
        """One score per row."""
        return [
            self.score_pair(row.answer, row.reference)
            if row.reference
            else RowScore.not_applicable("no reference")
            for row in rows
        ]

    def score_pair(self, answer: str, reference: str) -> RowScore:
        """The score of one answer against its reference."""
        raise NotImplementedError


@register
class ExactMatch(_ReferenceEvaluator):
    """Normalised exact match (parsed equality for JSON references), 1/0, higher is better."""

    name: ClassVar[str] = "exact_match"
    threshold: ClassVar[float] = 1.0

    def score_pair(self, answer: str, reference: str) -> RowScore:
        """1 if equal after normalisation (or parsing, for a JSON reference), else 0."""
        expected = _json_reference(reference)
        if expected is not None:
            return self.verdict(float(_parsed_answer(answer) == expected), compared="json")
        return self.verdict(float(text.normalise(answer) == text.normalise(reference)), compared="text")


@register
class TokenF1(_ReferenceEvaluator):
    """SQuAD token F1 against the reference, range [0, 1], higher is better."""

    name: ClassVar[str] = "token_f1"
    threshold: ClassVar[float] = 0.5

    def score_pair(self, answer: str, reference: str) -> RowScore:
        """Token F1 on normalised tokens."""
        return self.verdict(token_f1(answer, reference))


@register
class RougeL(_ReferenceEvaluator):
    """ROUGE-L F-measure against the reference (rouge_score), range [0, 1], higher is better."""

    name: ClassVar[str] = "rouge_l"
    threshold: ClassVar[float] = 0.5

    def __init__(self) -> None:
        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)

    def score_pair(self, answer: str, reference: str) -> RowScore:
        """ROUGE-L F-measure (precision and recall in ``detail``)."""
        rouge = self._scorer.score(reference, answer)["rougeL"]
        return self.verdict(
            rouge.fmeasure, precision=round(rouge.precision, 4), recall=round(rouge.recall, 4)
        )


@register
class JSONFieldMatch(_ReferenceEvaluator):
    """Share of the reference JSON object's fields the answer gets right, range [0, 1], higher is better."""

    name: ClassVar[str] = "json_field_match"
    threshold: ClassVar[float] = 1.0

    def score_pair(self, answer: str, reference: str) -> RowScore:
        """Matched fields / reference fields; ``detail`` lists the wrong and missing ones."""
        expected = _json_reference(reference)
        if not isinstance(expected, dict) or not expected:
            return RowScore.not_applicable("reference is not a JSON object")
        got = _parsed_answer(answer)
        if not isinstance(got, dict):
            return self.verdict(0.0, wrong=[], missing=sorted(expected), parsed=False)
        missing = sorted(key for key in expected if key not in got)
        wrong = sorted(key for key in expected if key in got and not values_match(got[key], expected[key]))
        matched = len(expected) - len(missing) - len(wrong)
        return self.verdict(matched / len(expected), wrong=wrong, missing=missing, parsed=True)
