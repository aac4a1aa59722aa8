"""The gate's statistics: method per score kind, rows needed, invariance, and its promise at the margin."""

from __future__ import annotations

import math
import re

import numpy as np

from evalgate.gate.decide import ScoreTable, decide
from evalgate.gate.policy import Check, GatePolicy

KEY = ("quality", "target")
HIGHER = {"quality": True}


def _table(scores: np.ndarray, ids: list[str] | None = None) -> ScoreTable:
    names = ids or [f"r{i}" for i in range(len(scores))]
    rows = {name: (float(s), bool(s >= 0.5)) for name, s in zip(names, scores, strict=True)}
    return ScoreTable("d1", {KEY: rows}, {"quality": "1"})


def _policy(seed: int = 0) -> GatePolicy:
    return GatePolicy(checks=(Check("quality", "target", margin=0.05),), seed=seed)


def _binary_pair(rng: np.random.Generator, rows: int, loss: float, gain: float) -> tuple[np.ndarray, ...]:
    """(candidate, baseline): base rate 0.9; cells both pass / loss / gain / both fail."""
    cell = rng.choice(4, size=rows, p=[0.9 - loss, loss, gain, 0.1 - gain])
    return np.isin(cell, (0, 2)).astype(float), np.isin(cell, (0, 1)).astype(float)


def _check(candidate: np.ndarray, baseline: np.ndarray, seed: int = 0) -> dict:
    return decide(_policy(seed), _table(candidate), _table(baseline), HIGHER).evidence["checks"][0]


def test_binary_scores_use_tango_and_continuous_scores_the_studentized_bootstrap() -> None:
    rng = np.random.default_rng(0)
    binary = _binary_pair(rng, 100, 0.05, 0.05)
    continuous = (rng.uniform(size=100), rng.uniform(size=100))

    assert _check(*binary)["method"] == "tango_score"
    assert _check(*continuous)["method"] == "studentized_bootstrap"


def test_an_inconclusive_check_says_how_many_rows_and_which_margin_would_decide_it() -> None:
    candidate, baseline = _binary_pair(np.random.default_rng(1), 200, 0.06, 0.04)

    check = _check(candidate, baseline)

    assert check["verdict"] == "inconclusive" and check["decides"] == "non_inferiority"
    assert check["rows_needed"] > 200 and check["margin_decidable"] > 0.05
    match = re.search(
        r"needs about ([\d,]+) rows to show non-inferiority at δ = 0\.05, or δ >= ([\d.]+)", check["reason"]
    )
    assert match is not None and check["reason"].endswith("with these 200 rows")
    assert int(match.group(1).replace(",", "")) >= check["rows_needed"]
    assert float(match.group(2)) >= check["margin_decidable"]


def test_the_same_candidate_at_the_rows_needed_is_decided() -> None:
    candidate, baseline = _binary_pair(np.random.default_rng(1), 200, 0.06, 0.04)
    check = _check(candidate, baseline)
    copies = math.ceil(check["rows_needed"] * 1.02 / 200)

    bigger = _check(np.tile(candidate, copies), np.tile(baseline, copies))
    at_its_margin = decide(
        GatePolicy(checks=(Check("quality", "target", margin=check["margin_decidable"] + 1e-9),)),
        _table(candidate),
        _table(baseline),
        HIGHER,
    )

    assert bigger["verdict"] == "pass" and at_its_margin.checks[0].verdict == "pass"


def test_a_check_heading_for_a_regression_states_the_rows_to_show_it() -> None:
    baseline = np.array([1.0] * 90 + [0.0] * 10)
    candidate = baseline.copy()
    candidate[:10] = 0.0  # 10 losses
    candidate[90:92] = 1.0  # 2 gains: mean delta -0.08

    check = _check(candidate, baseline)

    assert check["verdict"] == "inconclusive" and check["decides"] == "regression"
    assert "to show a regression beyond δ = 0.05" in check["reason"] and check["rows_needed"] > 100


def test_the_verdict_does_not_depend_on_row_order_or_row_ids() -> None:
    rng = np.random.default_rng(3)
    for candidate, baseline in (
        (rng.uniform(size=150), rng.uniform(size=150)),
        _binary_pair(rng, 150, 0.06, 0.03),
    ):
        order = rng.permutation(150)
        renamed = [f"question-{rng.integers(10**9)}-{i}" for i in range(150)]
        shuffled = decide(
            _policy(), _table(candidate[order], renamed), _table(baseline[order], renamed), HIGHER
        )
        original = decide(_policy(), _table(candidate), _table(baseline), HIGHER)
        assert shuffled.evidence["checks"] == original.evidence["checks"]


def test_the_seed_moves_p_values_only_within_monte_carlo_error() -> None:
    rng = np.random.default_rng(4)
    level = rng.beta(5, 2, 120)
    baseline = level + rng.normal(0, 0.1, 120)
    for shift in (0.0, 0.04, 0.15):
        candidate = level - shift + rng.normal(0, 0.1, 120)
        checks = [_check(candidate, baseline, seed) for seed in range(5)]
        p = np.array([c["p_pass"] for c in checks])
        error = math.sqrt(max(p.mean() * (1 - p.mean()), 1e-4) / 2000)  # 2000 resamples
        assert p.max() - p.min() <= 8 * error
        if min(abs(p.mean() - 0.025), abs(1 - p.mean() - 0.025)) > 8 * error:
            assert len({c["verdict"] for c in checks}) == 1


def _binomial_upper_bound(trials: int, rate: float, tail: float = 1e-3) -> int:
    """Smallest k with P(X > k) < tail for X ~ Binomial(trials, rate)."""
    cumulative = 0.0
    for k in range(trials + 1):
        cumulative += math.comb(trials, k) * rate**k * (1 - rate) ** (trials - k)
        if 1 - cumulative < tail:
            return k
    return trials


def test_binary_candidates_at_the_margin_pass_at_most_alpha_of_the_time() -> None:
    """2,000 candidates of 100 rows whose true drop is exactly δ: 10% of answers flipped.

    A calibrated test passes at most 2.5% (50 expected); more than the bound happens to it with
    probability < 0.1%. The percentile bootstrap used before passed about 5% here.
    """
    rng = np.random.default_rng(11)
    trials = 2000
    passes = sum(_check(*_binary_pair(rng, 100, 0.075, 0.025))["verdict"] == "pass" for _ in range(trials))

    assert passes <= _binomial_upper_bound(trials, 0.025)


def test_continuous_candidates_at_the_margin_pass_at_most_alpha_of_the_time() -> None:
    rng = np.random.default_rng(12)
    trials = 400
    passes = 0
    for trial in range(trials):
        level = rng.beta(5, 2, 50)
        baseline, candidate = level + rng.normal(0, 0.2, 50), level - 0.05 + rng.normal(0, 0.2, 50)
        passes += _check(candidate, baseline, seed=trial)["verdict"] == "pass"

    assert passes <= _binomial_upper_bound(trials, 0.025)


def test_a_drop_of_one_and_a_half_margins_almost_never_passes() -> None:
    rng = np.random.default_rng(13)
    passes = sum(_check(*_binary_pair(rng, 300, 0.1, 0.025))["verdict"] == "pass" for _ in range(300))

    assert passes <= 1
