"""A CI result built from hand-made per-row scores run through the real gate (no database, no model):
the main job's story with the mission's evaluators. 3e-5 barely moves the target and is inconclusive
out of domain, 3e-4 gains and passes, 2e-3 gains but regresses on the grounded out-of-domain rows,
1e-1 diverged."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from evalgate.ci.config import CiConfig
from evalgate.ci.result import CandidateResult, CiResult, recommendation_for
from evalgate.gate.decide import ScoreTable, decide
from evalgate.gate.policy import Check, GatePolicy
from evalgate.sweep.config import SweepConfig

ROWS = 160
HIGHER_IS_BETTER = {
    "json_validation": True,
    "answer_accuracy": True,
    "answer_relevancy": True,
    "faithfulness": True,
    "hallucination_score": False,
    "content_safety": True,
}
POLICY = GatePolicy(
    checks=(
        Check("json_validation", "target", margin=0.05),
        Check("answer_relevancy", "target", margin=0.05),
        Check("answer_accuracy", "ood", margin=0.05),
        Check("answer_relevancy", "ood", margin=0.05),
        Check("faithfulness", "ood_grounded", margin=0.05),
        Check("hallucination_score", "ood_grounded", margin=0.05),
        Check("content_safety", "safety", margin=0.05),
    ),
    objective="json_validation/target",
    name="main",
)
# rate -> per check: the share of the base model's passing rows the candidate fails (negative: the
# share of its failing rows it now passes)
SHIFTS: dict[float, dict[str, float]] = {
    3e-5: {"json_validation/target": -0.02, "answer_accuracy/ood": 0.05, "content_safety/safety": 0.03},
    3e-4: {"json_validation/target": -0.95, "answer_accuracy/ood": 0.01},
    2e-3: {"json_validation/target": -0.98, "answer_accuracy/ood": 0.06,
           "hallucination_score/ood_grounded": 0.2, "faithfulness/ood_grounded": 0.15},
}  # fmt: skip


def _base(rng: np.random.Generator) -> dict[tuple[str, str], np.ndarray]:
    """Per check, the base model's pass/fail (1/0) per row: JSON rarely valid, the rest mostly fine."""
    rates = {"json_validation/target": 0.05}
    return {
        (check.evaluator, check.cohort): (rng.uniform(size=ROWS) < rates.get(check.label, 0.85)).astype(float)
        for check in POLICY.checks
    }


def _shifted(base: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    values = base.copy()
    flip = np.flatnonzero(values == (1.0 if share > 0 else 0.0))
    chosen = rng.choice(flip, size=round(abs(share) * len(flip)), replace=False)
    values[chosen] = 1.0 - values[chosen]
    return values


def _table(scores: dict[tuple[str, str], np.ndarray]) -> ScoreTable:
    """Scores as the gate reads them; hallucination_score is lower-is-better, so a pass is a 0."""
    rows = {}
    for (evaluator, cohort), values in scores.items():
        oriented = values if HIGHER_IS_BETTER[evaluator] else 1.0 - values
        rows[(evaluator, cohort)] = {f"{cohort}-{i}": (float(v), bool(p)) for i, (v, p) in
                                     enumerate(zip(oriented, values == 1.0, strict=True))}  # fmt: skip
    return ScoreTable("h" * 64, rows, dict.fromkeys(HIGHER_IS_BETTER, "1"))


def synthetic_result(policy: GatePolicy = POLICY) -> CiResult:
    """Four rates decided by ``evalgate.gate.decide.decide`` against one base table, as ``evalgate ci`` keeps
    them (``DecisionOut`` shape)."""
    rng = np.random.default_rng(0)
    base = _base(rng)
    candidates = []
    for index, rate in enumerate([3e-5, 3e-4, 2e-3, 1e-1]):
        label = f"lr={rate:g}"
        if rate not in SHIFTS:
            candidates.append(CandidateResult(label, index + 1, rate, "diverged", "diverged"))
            continue
        shifts = SHIFTS[rate]
        scores = {key: _shifted(v, shifts.get(f"{key[0]}/{key[1]}", 0.0), rng) for key, v in base.items()}
        decision = decide(policy, _table(scores), _table(base), HIGHER_IS_BETTER)
        stored: dict[str, Any] = {"id": index + 1, "verdict": decision.verdict, "evidence": decision.evidence,
                                  "baseline_run_id": 1, "candidate_run_id": index + 2}  # fmt: skip
        diagnosis = "flat" if rate == 3e-5 else "healthy"
        candidates.append(CandidateResult(label, index + 1, rate, "trained", diagnosis, decision=stored))
    sweep = SweepConfig(dataset="evalgate-suite@v1", name="main", base_model="m")
    config = CiConfig(dataset="evalgate-suite@v1", policy=policy, sweep=sweep)
    result = CiResult(config, "h" * 64, candidates, recommendation_for(config, candidates), "base model m", 1)
    return replace(result)
