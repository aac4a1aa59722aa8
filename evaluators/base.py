"""What every evaluator is: a named, versioned, directed per-row scorer with a pass threshold.

An evaluator scores rows and nothing else: no file or database access. Models it needs (sentence
embeddings, a language model's log-probabilities, an NLI cross-encoder) are injected through its
constructor. Aggregation (means, intervals, fail rates, paired deltas) lives in ``evalgate``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class ScoredRow:
    """One row as an evaluator sees it: the dataset fields plus the model's answer."""

    id: str
    question: str
    answer: str
    context: str = ""
    reference: str | None = None
    cohort: str = "target"
    json_schema: str | None = None
    """JSON Schema as JSON text, or None."""
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RowScore:
    """An evaluator's verdict on one row. ``score`` None means the evaluator does not apply to it."""

    score: float | None
    passed: bool | None
    detail: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def not_applicable(cls, reason: str) -> RowScore:
        """A row this evaluator cannot score (no reference, wrong cohort, ...)."""
        return cls(None, None, {"skipped": reason})


class Evaluator:
    """Base class: subclasses set the class attributes and implement ``score``.

    ``passed`` of a row is ``score >= threshold`` when ``higher_is_better``, else ``score <= threshold``.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    higher_is_better: ClassVar[bool]
    threshold: ClassVar[float]
    cohorts: ClassVar[tuple[str, ...] | None] = None
    """Cohorts this evaluator applies to (None: every cohort); other rows are not applicable."""

    def score(self, rows: Sequence[ScoredRow]) -> list[RowScore]:
        """One ``RowScore`` per row, in order."""
        raise NotImplementedError

    def passes(self, value: float) -> bool:
        """Whether ``value`` meets the threshold in this evaluator's direction."""
        return value >= self.threshold if self.higher_is_better else value <= self.threshold

    def verdict(self, value: float | None, **detail: Any) -> RowScore:
        """A ``RowScore`` for ``value`` with ``passed`` from the threshold."""
        if value is None:
            return RowScore(None, None, detail)
        return RowScore(float(value), self.passes(float(value)), detail)


class RowwiseEvaluator(Evaluator):
    """An evaluator that scores each row on its own: subclasses implement ``score_row``."""

    def score(self, rows: Sequence[ScoredRow]) -> list[RowScore]:
        """``score_row`` of each row, in order."""
        return [self.score_row(row) for row in rows]

    def score_row(self, row: ScoredRow) -> RowScore:
        """The verdict on one row."""
        raise NotImplementedError
