"""Selection recommends the passing candidate with the largest target gain and explains the rest."""

from __future__ import annotations

import numpy as np

from evalgate.gate.decide import ScoreTable, decide
from evalgate.gate.policy import Check, GatePolicy
from evalgate.gate.selection import CandidateOutcome, recommend

POLICY = GatePolicy(checks=(Check("quality", "target", margin=0.05), Check("quality", "ood", margin=0.05)))
ROWS = 300


def _table(target: np.ndarray, ood: np.ndarray) -> ScoreTable:
    def scores(values: np.ndarray) -> dict[str, tuple[float, bool]]:
        return {f"r{i}": (float(v), bool(v >= 0.5)) for i, v in enumerate(values)}

    return ScoreTable(
        "d", {("quality", "target"): scores(target), ("quality", "ood"): scores(ood)}, {"quality": "1"}
    )


def test_learning_rate_shape_recommends_the_middle_rate() -> None:
    rng = np.random.default_rng(0)
    base_target, base_ood = rng.uniform(0.0, 0.3, ROWS), rng.uniform(0.6, 1.0, ROWS)
    base = _table(base_target, base_ood)
    shapes = {
        "lr=3e-5": (base_target + 0.01, base_ood),  # barely moves the target
        "lr=3e-4": (base_target + 0.6, base_ood - 0.005),  # learns it, keeps ood
        "lr=3e-3": (base_target + 0.7, base_ood - 0.3),  # learns more, forgets ood
    }
    outcomes = [
        CandidateOutcome(label, decide(POLICY, _table(t, o), base, {"quality": True}))
        for label, (t, o) in shapes.items()
    ]
    outcomes.append(CandidateOutcome("lr=3e-2", None, status="diverged"))

    result = recommend(POLICY, outcomes)

    assert result.recommended == "lr=3e-4" and result.objective == "quality/target"
    assert result.reasons["lr=3e-5"].startswith("passed, smaller quality/target gain (+0.0100 vs +0.6000")
    assert result.reasons["lr=3e-3"].startswith("blocked: quality/ood regress")
    assert result.reasons["lr=3e-2"] == "not evaluated (training diverged)"


def test_no_passing_candidate_means_no_recommendation() -> None:
    rng = np.random.default_rng(1)
    base_target, base_ood = rng.uniform(0.4, 0.6, ROWS), rng.uniform(0.6, 1.0, ROWS)
    decision = decide(
        POLICY, _table(base_target - 0.3, base_ood), _table(base_target, base_ood), {"quality": True}
    )

    result = recommend(POLICY, [CandidateOutcome("only", decision)])

    assert result.recommended is None and result.reasons["only"].startswith("blocked: quality/target regress")
