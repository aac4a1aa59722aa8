"""The perplexity evaluator: exp of the mean negative log-probability of the reference tokens."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from evaluators.base import ScoredRow
from evaluators.perplexity import Perplexity


def _row(row_id: str, reference: str | None) -> ScoredRow:
    return ScoredRow(id=row_id, question="q", answer="ignored", reference=reference)


def test_perplexity_is_exp_of_mean_negative_logprob_and_lower_is_better() -> None:
    seen: list[list[str]] = []

    def logprobs(rows: Sequence[ScoredRow]) -> list[list[float]]:
        seen.append([row.id for row in rows])
        return [[math.log(0.5), math.log(0.5)] if row.id == "sure" else [math.log(0.01)] for row in rows]

    evaluator = Perplexity(logprobs)
    sure, unsure = evaluator.score([_row("sure", "a b"), _row("unsure", "c")])

    assert sure.score == pytest.approx(2.0) and sure.passed
    assert unsure.score == pytest.approx(100.0) and unsure.passed is False
    assert sure.detail["tokens"] == 2
    assert not Perplexity.higher_is_better
    assert seen == [["sure", "unsure"]]


def test_rows_without_reference_are_not_applicable_and_not_sent_to_the_model() -> None:
    def logprobs(rows: Sequence[ScoredRow]) -> list[list[float]]:
        assert [row.id for row in rows] == ["b"]
        return [[0.0]]

    missing, present = Perplexity(logprobs).score([_row("a", None), _row("b", "x")])

    assert missing.score is None and "skipped" in missing.detail
    assert present.score == pytest.approx(1.0)


def test_hopeless_rows_score_a_finite_perplexity() -> None:
    (result,) = Perplexity(lambda rows: [[-1e6]]).score([_row("a", "x")])

    assert result.score is not None and math.isfinite(result.score) and result.passed is False
