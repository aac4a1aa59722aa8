"""Synthetic score tables with a known truth, for calibrating the gate (tests and bench/).

Each row has its own difficulty, shared by baseline and candidate (the same question is easy or hard
for both), so paired deltas are less noisy than the raw scores:

- ``continuous``: row level ``mu_i ~ Beta(5, 2)``; score = clip(mu_i - shift + N(0, noise), 0, 1),
  noise drawn independently for baseline and candidate;
- ``binary``: row success probability ``p_i ~ Beta(2, 1)``; score = 1[u < p_i - shift] with a uniform
  ``u`` per model: the candidate reuses the baseline's ``u`` with probability ``persistence`` and
  draws a fresh one otherwise, so its marginal is exactly Bernoulli(p_i - shift) while its answers
  agree with the baseline's as often as ``persistence`` makes them (0: every row re-rolled).

``shift`` is 0 for a candidate from the baseline's distribution and the true mean drop otherwise
(exactly, as long as ``p_i - shift`` and ``mu_i - shift`` stay inside [0, 1] — the tails are clipped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalgate.gate.decide import ScoreTable


@dataclass(frozen=True)
class Scenario:
    """How synthetic scores are drawn."""

    kind: str = "continuous"
    """continuous or binary."""
    noise: float = 0.1
    """continuous: standard deviation of each model's per-row noise."""
    persistence: float = 0.0
    """binary: probability that the candidate's draw reuses the baseline's."""

    @property
    def label(self) -> str:
        """Short description for tables."""
        if self.kind == "continuous":
            return f"continuous, noise {self.noise}"
        return f"binary, persistence {self.persistence}"


def synthetic_pair(
    rng: np.random.Generator,
    scenario: Scenario,
    *,
    rows: int,
    shift: float,
    checks: tuple[tuple[str, str], ...] = (("quality", "target"),),
    threshold: float = 0.5,
) -> tuple[ScoreTable, ScoreTable]:
    """(candidate, baseline) tables over ``rows`` rows for each (evaluator, cohort) in ``checks``."""
    candidate, baseline = {}, {}
    ids = [f"row-{i}" for i in range(rows)]
    for key in checks:
        base_scores, cand_scores = _draw_pair(rng, scenario, rows, shift)
        baseline[key] = {i: (float(s), bool(s >= threshold)) for i, s in zip(ids, base_scores, strict=True)}
        candidate[key] = {i: (float(s), bool(s >= threshold)) for i, s in zip(ids, cand_scores, strict=True)}
    versions = {evaluator: "1" for evaluator, _ in checks}
    return ScoreTable("synthetic", candidate, versions), ScoreTable("synthetic", baseline, versions)


def _draw_pair(
    rng: np.random.Generator, scenario: Scenario, rows: int, shift: float
) -> tuple[np.ndarray, np.ndarray]:
    if scenario.kind == "continuous":
        level = rng.beta(5, 2, rows)
        base = np.clip(level + rng.normal(0, scenario.noise, rows), 0, 1)
        return base, np.clip(level - shift + rng.normal(0, scenario.noise, rows), 0, 1)
    if scenario.kind != "binary":
        raise ValueError(f"unknown scenario kind {scenario.kind!r}")
    probability = rng.beta(2, 1, rows)
    base_u = rng.random(rows)
    cand_u = np.where(rng.random(rows) < scenario.persistence, base_u, rng.random(rows))
    base = (base_u < probability).astype(np.float64)
    return base, (cand_u < np.clip(probability - shift, 0, 1)).astype(np.float64)
