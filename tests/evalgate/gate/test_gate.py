"""The gate's pure decision on synthetic score tables with a known truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evalgate.gate.decide import GateRefusal, ScoreTable, decide, holm
from evalgate.gate.policy import Check, GatePolicy, PolicyError
from evalgate.gate.synthetic import Scenario, synthetic_pair

HIGHER = {"quality": True, "safety": True}


def _table(scores: dict[tuple[str, str], list[float]], dataset: str = "d1", version: str = "1") -> ScoreTable:
    return ScoreTable(
        dataset,
        {
            key: {f"r{i}": (value, value >= 0.5) for i, value in enumerate(values)}
            for key, values in scores.items()
        },
        {evaluator: version for evaluator, _ in scores},
    )


def _policy(*checks: Check, **options: object) -> GatePolicy:
    return GatePolicy(checks=checks or (Check("quality", "target", margin=0.05),), **options)  # type: ignore[arg-type]


def test_identical_scores_pass() -> None:
    scores = {("quality", "target"): list(np.linspace(0, 1, 50))}

    decision = decide(_policy(), _table(scores), _table(scores), HIGHER)

    assert decision.passed and decision.checks[0].verdict == "pass"


def test_a_clear_drop_regresses_and_blocks() -> None:
    base = list(np.random.default_rng(0).uniform(0.5, 1, 300))

    decision = decide(
        _policy(),
        _table({("quality", "target"): [b - 0.2 for b in base]}),
        _table({("quality", "target"): base}),
        HIGHER,
    )

    assert not decision.passed and decision.checks[0].verdict == "regress"
    assert decision.checks[0].evidence["ci_holm_regress"][1] < -0.05


def test_noisy_small_sample_is_inconclusive_and_fails_closed_unless_policy_allows() -> None:
    rng = np.random.default_rng(1)
    base = list(rng.uniform(0, 1, 12))
    cand = list(rng.uniform(0, 1, 12))
    tables = (_table({("quality", "target"): cand}), _table({("quality", "target"): base}))

    closed = decide(_policy(), *tables, HIGHER)
    opened = decide(_policy(inconclusive="pass"), *tables, HIGHER)

    assert closed.checks[0].verdict == "inconclusive" and not closed.passed
    assert opened.passed


def test_lower_is_better_evaluators_regress_when_scores_rise() -> None:
    base = [1.0 + 0.01 * i for i in range(100)]
    risen = {("perplexity", "ood"): [b + 0.5 for b in base]}
    policy = _policy(Check("perplexity", "ood", margin=0.1))

    decision = decide(policy, _table(risen), _table({("perplexity", "ood"): base}), {"perplexity": False})

    assert decision.checks[0].verdict == "regress" and decision.checks[0].evidence["oriented_delta"] < 0


def test_floor_and_flip_rules_block_on_top_of_the_statistics() -> None:
    base = [0.9] * 100
    cand = [0.9] * 97 + [0.1] * 3
    key = ("quality", "target")

    floored = decide(
        _policy(Check("quality", "target", floor=0.95)), _table({key: cand}), _table({key: base}), HIGHER
    )
    flipped = decide(
        _policy(Check("quality", "target", max_flips=2)), _table({key: cand}), _table({key: base}), HIGHER
    )

    assert floored.checks[0].verdict == "below_floor"
    assert flipped.checks[0].verdict == "too_many_flips" and flipped.checks[0].evidence["flips"] == 3


@pytest.mark.parametrize(
    ("candidate", "pattern"),
    [
        (_table({("quality", "target"): [0.5] * 10}, dataset="d2"), "different dataset versions"),
        (_table({("quality", "target"): [float("nan")] * 10}), "non-finite candidate scores"),
        (_table({("quality", "target"): [0.5] * 10}, version="2"), "evaluator versions differ"),
        (_table({("quality", "ood"): [0.5] * 10}), "no candidate scores"),
    ],
)
def test_incomparable_tables_are_refused(candidate: ScoreTable, pattern: str) -> None:
    with pytest.raises(GateRefusal, match=pattern):
        decide(_policy(), candidate, _table({("quality", "target"): [0.5] * 10}), HIGHER)


def test_holm_steps_down_and_stops_at_the_first_non_rejection() -> None:
    outcome = holm([0.01, 0.04, 0.03, 0.2], alpha=0.05)

    assert [rejected for rejected, _ in outcome] == [True, False, False, False]
    assert outcome[0][1] == pytest.approx(0.05 / 4) and outcome[2][1] == pytest.approx(0.05 / 3)


def test_decision_is_reproducible_and_carries_its_evidence() -> None:
    rng = np.random.default_rng(3)
    candidate, baseline = synthetic_pair(rng, Scenario("continuous", noise=0.2), rows=200, shift=0.0)

    first, second = (decide(_policy(), candidate, baseline, HIGHER) for _ in range(2))

    assert first.evidence == second.evidence
    assert (
        first.evidence["policy_sha256"] == _policy().sha256 and first.evidence["dataset_hash"] == "synthetic"
    )
    assert {"n", "ci_95", "ci_holm_pass", "ci_holm_regress", "p_pass", "margin"} <= first.evidence["checks"][
        0
    ].keys()


def test_calibration_on_synthetic_tables_with_known_truth() -> None:
    """Default policy (δ = 0.05), 300 rows, 200 trials: same distribution rarely blocked, 2δ drop blocked."""
    rng = np.random.default_rng(7)
    scenario = Scenario("continuous", noise=0.1)
    policy = GatePolicy(checks=(Check("quality", "target"),))
    null_blocks = sum(
        not decide(policy, *synthetic_pair(rng, scenario, rows=300, shift=0.0), HIGHER).passed
        for _ in range(200)
    )
    drop_blocks = sum(
        not decide(policy, *synthetic_pair(rng, scenario, rows=300, shift=0.1), HIGHER).passed
        for _ in range(200)
    )

    assert null_blocks <= 10 and drop_blocks >= 180


def test_policy_yaml_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("checks:\n  - {evaluator: quality, cohort: target, margin: -1}\n")

    with pytest.raises(PolicyError, match="margin: must be >= 0"):
        GatePolicy.from_yaml(path)
    path.write_text("checks:\n  - {evaluator: quality, cohort: target, tolerance: 1}\n")
    with pytest.raises(PolicyError, match="unknown key"):
        GatePolicy.from_yaml(path)
    path.write_text("checks:\n  - {evaluator: quality, cohort: target, margin: 1e9}\n")  # YAML: a string
    with pytest.raises(PolicyError, match=r"margin: must be a number, got '1e9'"):
        GatePolicy.from_yaml(path)
    path.write_text("resamples: many\nchecks:\n  - {evaluator: quality, cohort: target, max_flips: 1.5}\n")
    with pytest.raises(PolicyError, match="max_flips: must be an integer"):
        GatePolicy.from_yaml(path)


def test_rows_scored_on_one_side_only_keep_a_check_from_passing() -> None:
    key = ("quality", "target")
    baseline = _table({key: [0.8] * 100})
    candidate = ScoreTable("d1", {key: {f"r{i}": (0.8, True) for i in range(95)}}, {"quality": "1"})

    decision = decide(_policy(), candidate, baseline, HIGHER)

    assert decision.checks[0].verdict == "inconclusive" and decision.checks[0].evidence["unpaired_rows"] == 5
    assert "scored on one side only" in decision.checks[0].reason and not decision.passed


def test_nan_scores_are_refused_rather_than_passed() -> None:
    key = ("perplexity", "ood")
    base = _table({key: [2.0] * 50})
    broken = _table({key: [50.0] * 40 + [float("nan")] * 10})

    with pytest.raises(GateRefusal, match="non-finite candidate scores"):
        decide(_policy(Check("perplexity", "ood")), broken, base, {"perplexity": False})
