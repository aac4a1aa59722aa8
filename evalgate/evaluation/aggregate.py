"""Aggregates of per-row scores: means with seeded bootstrap intervals, fail rates, paired deltas.

Pure functions: scores in, numbers out (no database). Per evaluator x cohort:

- ``n``: rows with a score (rows an evaluator could not score, ``score`` None, are left out);
- ``mean``: the mean score;
- ``ci_low``/``ci_high``: the 95% BCa bootstrap interval of the mean (``intervals.bca``: ``resamples``
  resamples of the rows with replacement, numpy ``default_rng(seed)``, drawn in bounded chunks);
- ``fail_rate``: the share of scored rows with ``passed`` False (the eval-fail rate).

``paired_delta`` pairs a candidate's and the base model's scores by row id and gives the mean per-row
delta ``d_i = candidate_i - base_i`` with the interval the gate uses (``intervals.paired_test``: Tango's
score interval when every score is 0 or 1, the studentized bootstrap of the pairs otherwise; the gate's
figures differ only where it orients or Holm-corrects them). Its sign is a raw difference:
for a higher-is-better evaluator a negative delta is a regression, for a lower-is-better one (perplexity,
ood_kl) a positive delta is. On the ood cohort this is the ``ood_delta`` the gate uses.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from evalgate.evaluation.intervals import bca, is_binary, paired_test

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95


class RowMismatchError(ValueError):
    """Candidate and base scores do not cover the same rows: they cannot be paired."""


@dataclass(frozen=True)
class ScoreRecord:
    """One stored per-row score, as aggregation needs it."""

    evaluator: str
    cohort: str
    row_id: str
    score: float | None
    passed: bool | None


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap interval over ``n`` values (or paired deltas)."""

    n: int
    mean: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready."""
        return asdict(self)


def bootstrap_mean(
    values: Iterable[float],
    *,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Interval:
    """Mean of ``values`` and its BCa bootstrap interval (``intervals.bca``).

    ``resamples`` samples of size n with replacement (``numpy.random.default_rng(seed)``); the bounds
    are the BCa-adjusted ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of their
    means. Same values and seed give the same interval, in any order. Raises ``ValueError`` on no values.
    """
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        raise ValueError("cannot bootstrap the mean of no values")
    _check_options(confidence, resamples)
    low, high = bca(data, resamples=resamples, seed=seed).interval((1 - confidence) / 2)
    return _interval(data, low, high)


def _check_options(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1 or resamples < 1:
        raise ValueError("confidence must be in (0, 1) and resamples at least 1")


def _interval(data: np.ndarray, low: float, high: float) -> Interval:
    mean = float(data.mean())
    return Interval(n=int(data.size), mean=mean, ci_low=min(low, mean), ci_high=max(high, mean))


def summarise(
    records: Iterable[ScoreRecord], *, seed: int, resamples: int = DEFAULT_RESAMPLES
) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """``{evaluator: {cohort: {n, mean, ci_low, ci_high, fail_rate, rows}}}`` over scored rows.

    ``rows`` counts every stored row including unscored ones; ``n`` and the statistics cover the rows
    with a score. A group with no scored row has ``n`` 0 and None statistics.
    """
    groups: dict[tuple[str, str], list[ScoreRecord]] = defaultdict(list)
    for record in records:
        groups[(record.evaluator, record.cohort)].append(record)
    summary: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for (evaluator, cohort), group in sorted(groups.items()):
        scored = [r for r in group if r.score is not None]
        judged = [r for r in scored if r.passed is not None]
        entry: dict[str, float | int | None] = {
            "rows": len(group),
            "n": 0,
            "mean": None,
            "ci_low": None,
            "ci_high": None,
        }
        if scored:
            entry.update(
                bootstrap_mean(
                    [r.score for r in scored if r.score is not None], seed=seed, resamples=resamples
                ).to_dict()
            )
        entry["fail_rate"] = sum(not r.passed for r in judged) / len(judged) if judged else None
        summary.setdefault(evaluator, {})[cohort] = entry
    return summary


def paired_deltas(
    candidate_scores: Mapping[str, float], base_scores: Mapping[str, float]
) -> tuple[list[str], np.ndarray]:
    """Row ids (sorted) and per-row deltas ``candidate - base``, paired by row id.

    Raises ``RowMismatchError`` naming the unpaired rows when the two sets of row ids differ.
    """
    only_candidate = sorted(set(candidate_scores) - set(base_scores))
    only_base = sorted(set(base_scores) - set(candidate_scores))
    if only_candidate or only_base:
        raise RowMismatchError(
            f"cannot pair scores: {len(only_candidate)} rows only in the candidate "
            f"{only_candidate[:5]}, {len(only_base)} only in the base {only_base[:5]}"
        )
    row_ids = sorted(candidate_scores)
    deltas = np.array([candidate_scores[r] - base_scores[r] for r in row_ids], dtype=np.float64)
    return row_ids, deltas


def paired_delta(
    candidate_scores: Mapping[str, float],
    base_scores: Mapping[str, float],
    *,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Interval:
    """Mean per-row delta ``candidate - base`` with the gate's two-sided interval (``intervals``)."""
    row_ids, deltas = paired_deltas(candidate_scores, base_scores)
    _check_options(confidence, resamples)
    candidate = np.array([candidate_scores[row] for row in row_ids], dtype=np.float64)
    base = np.array([base_scores[row] for row in row_ids], dtype=np.float64)
    test = paired_test(deltas, binary=is_binary(candidate, base), resamples=resamples, seed=seed)
    low, high = test.interval((1 - confidence) / 2)
    return _interval(deltas, low, high)


def scores_by_group(records: Iterable[ScoreRecord]) -> dict[tuple[str, str], dict[str, float]]:
    """``{(evaluator, cohort): {row_id: score}}`` over scored rows (input of ``paired_delta``)."""
    grouped: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for record in records:
        if record.score is not None:
            grouped[(record.evaluator, record.cohort)][record.row_id] = record.score
    return dict(grouped)


def delta_table(
    candidate: Iterable[ScoreRecord],
    base: Iterable[ScoreRecord],
    *,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
    zero_baseline: Iterable[str] = (),
) -> dict[str, dict[str, dict[str, float | int]]]:
    """``{evaluator: {cohort: paired delta}}`` for every group the candidate has.

    Rows are paired where both sides have a score; ``unpaired`` counts rows scored on one side only
    (an evaluator may not apply to one model's answer, e.g. faithfulness of an empty answer). The gate
    will not pass a check with unpaired rows.

    Evaluators named in ``zero_baseline`` (already paired measures such as ``ood_kl``, where the base
    model scores 0 by definition) are compared against 0 on the candidate's own rows.
    """
    base_groups = scores_by_group(base)
    zero = set(zero_baseline)
    table: dict[str, dict[str, dict[str, float | int]]] = {}
    for (evaluator, cohort), scores in sorted(scores_by_group(candidate).items()):
        reference = dict.fromkeys(scores, 0.0) if evaluator in zero else base_groups.get((evaluator, cohort))
        if reference is None:
            continue
        shared = scores.keys() & reference.keys()
        if not shared:
            continue
        interval = paired_delta(
            {row: scores[row] for row in shared},
            {row: reference[row] for row in shared},
            seed=seed,
            resamples=resamples,
        )
        unpaired = len(scores.keys() ^ reference.keys())
        table.setdefault(evaluator, {})[cohort] = {**interval.to_dict(), "unpaired": unpaired}
    return table
