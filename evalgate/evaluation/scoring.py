"""Scoring one model's answers on a dataset version's eval rows: every evaluator on the rows of its
cohorts, and the ``ood_kl`` forgetting signal on the ood rows (candidates only).

    scorer = Scorer(rows, pool, factory, candidates)
    scores, described = scorer.score(candidate, answers, base_answers, ["json_valid", "ood_kl"])

One scorer serves every candidate of an evaluation: the first candidate's ``ood_kl`` computes every
candidate's at once (``evalgate.evaluation.forgetting.ood_kl_all``), the others take theirs from it.

Per-row scores only: aggregation and storage are the evaluation run's (``evalgate.evaluation.run``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evalgate.core.settings import Settings
from evalgate.core.timings import stage
from evalgate.evaluation.forgetting import ood_kl_all, reference_logprobs
from evalgate.evaluation.pseudo_evaluators import OOD_KL, OOD_KL_THRESHOLD, OOD_KL_VERSION
from evalgate.evaluation.records import CandidateInfo, StoredScore
from evalgate.modeling.generation import Answer, ModelPool, active_adapter
from evaluators.base import Evaluator, ScoredRow
from evaluators.perplexity import Perplexity

Row = Mapping[str, Any]
EvaluatorFactory = Callable[[str], Evaluator]
Advance = Callable[[int], None] | None


def default_factory(settings: Settings) -> EvaluatorFactory:
    """``evalgate.evaluation.factory.build_evaluator`` (default models injected) when present, else the
    registry's plain constructor."""
    try:
        from evalgate.evaluation.factory import build_evaluator  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from evaluators import registry

        return registry.create
    return lambda name: build_evaluator(name, settings)  # type: ignore[no-any-return,unused-ignore]


@dataclass(frozen=True)
class Scorer:
    """Scores any model of ``pool`` on ``rows`` (one dataset version's eval rows)."""

    rows: Sequence[Row]
    pool: ModelPool
    factory: EvaluatorFactory
    candidates: Sequence[CandidateInfo] = ()
    """Every candidate this scorer will score (their ``ood_kl`` is computed together)."""
    _ood_kl: dict[int, list[float]] = field(default_factory=dict)

    def score(
        self,
        candidate: CandidateInfo | None,
        answers: dict[str, Answer],
        base_answers: dict[str, Answer],
        names: Sequence[str],
        advance: Advance = None,
    ) -> tuple[list[StoredScore], dict[str, dict[str, Any]]]:
        """Every evaluator in ``names`` on the rows of its cohorts; ``ood_kl`` on the ood rows
        (candidates only). Returns the per-row scores and each evaluator's version and direction."""
        rows = [_scored_row(row, answers[row["id"]].text) for row in self.rows]
        scores: list[StoredScore] = []
        described: dict[str, dict[str, Any]] = {}
        for name in names:
            with stage(f"evaluation: scoring: {name}"):
                found, described[name] = self._score_one(candidate, name, rows, base_answers)
            scores += found
            if advance is not None:
                advance(1)
        return scores, described

    def _score_one(
        self,
        candidate: CandidateInfo | None,
        name: str,
        rows: list[ScoredRow],
        base_answers: dict[str, Answer],
    ) -> tuple[list[StoredScore], dict[str, Any]]:
        """Evaluator ``name``'s scores, and its version, direction and threshold."""
        if name == OOD_KL:
            described = {"version": OOD_KL_VERSION, "higher_is_better": False, "threshold": OOD_KL_THRESHOLD}
            return self._ood_kl_scores(candidate, base_answers), described
        evaluator = self._build(candidate, name)
        described = {
            "version": evaluator.version,
            "higher_is_better": evaluator.higher_is_better,
            "threshold": evaluator.threshold,
        }
        return _evaluate_rows(evaluator, rows), described

    def _build(self, candidate: CandidateInfo | None, name: str) -> Evaluator:
        """The evaluator ``name``; perplexity gets the loaded model (the candidate's adapter active)."""
        if name != Perplexity.name:
            return self.factory(name)
        adapter = self.pool.adapter(candidate)
        model, tokenizer = self.pool.load()
        inner = reference_logprobs(model, tokenizer)

        def logprobs(rows: Sequence[ScoredRow]) -> list[list[float]]:
            with active_adapter(model, adapter):
                return inner(rows)

        return Perplexity(logprobs)

    def _ood_kl_scores(
        self, candidate: CandidateInfo | None, base_answers: dict[str, Answer]
    ) -> list[StoredScore]:
        """Per ood row, KL(base || candidate) per token on the prompt + base answer."""
        rows = [row for row in self.rows if row["cohort"] == "ood"]
        if candidate is None or not rows:
            return []
        if candidate.id not in self._ood_kl:
            self._compute_ood_kl([candidate, *self.candidates], rows, base_answers)
        values = self._ood_kl[candidate.id]
        return [
            StoredScore(row["id"], "ood", OOD_KL, OOD_KL_VERSION, value, value <= OOD_KL_THRESHOLD, {})
            for row, value in zip(rows, values, strict=True)
        ]

    def _compute_ood_kl(
        self, candidates: Sequence[CandidateInfo], rows: Sequence[Row], base_answers: dict[str, Answer]
    ) -> None:
        """``ood_kl`` of every candidate in ``candidates`` not computed yet, in one stacked pass."""
        todo = {c.id: c for c in candidates if c.id not in self._ood_kl}
        adapters = {candidate_id: self.pool.adapter(c) for candidate_id, c in todo.items()}
        model, tokenizer = self.pool.load()
        answers = [base_answers[row["id"]].text for row in rows]
        names = [name for name in adapters.values() if name is not None]
        values = ood_kl_all(model, tokenizer, rows, answers, names)
        for candidate_id, adapter in adapters.items():
            assert adapter is not None
            self._ood_kl[candidate_id] = values[adapter]


def _evaluate_rows(evaluator: Evaluator, rows: Sequence[ScoredRow]) -> list[StoredScore]:
    applicable = [r for r in rows if evaluator.cohorts is None or r.cohort in evaluator.cohorts]
    results = evaluator.score(applicable) if applicable else []
    if len(results) != len(applicable):
        raise RuntimeError(
            f"evaluator {evaluator.name} returned {len(results)} scores for {len(applicable)} rows"
        )
    return [
        StoredScore(
            row.id,
            row.cohort,
            evaluator.name,
            evaluator.version,
            result.score,
            result.passed,
            dict(result.detail),
        )
        for row, result in zip(applicable, results, strict=True)
    ]


def _scored_row(row: Row, answer: str) -> ScoredRow:
    metadata = json.loads(row["metadata"]) if row.get("metadata") else {}
    return ScoredRow(
        id=row["id"],
        question=row["question"],
        answer=answer,
        context=row.get("context") or "",
        reference=row.get("reference"),
        cohort=row.get("cohort") or "target",
        json_schema=row.get("json_schema"),
        metadata=metadata if isinstance(metadata, dict) else {},
    )
