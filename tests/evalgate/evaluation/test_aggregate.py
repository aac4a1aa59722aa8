"""Aggregation: seeded BCa intervals, fail rates and paired deltas (pure, synthetic data)."""

from __future__ import annotations

import numpy as np
import pytest

from evalgate.evaluation.aggregate import (
    RowMismatchError,
    ScoreRecord,
    bootstrap_mean,
    delta_table,
    paired_delta,
    paired_deltas,
    summarise,
)
from evalgate.evaluation.intervals import TangoTest


def test_bootstrap_interval_contains_the_mean_and_is_reproducible_with_a_seed() -> None:
    values = np.random.default_rng(1).normal(0.5, 0.2, size=40).tolist()

    first = bootstrap_mean(values, seed=7)
    again = bootstrap_mean(values, seed=7)
    other = bootstrap_mean(values, seed=8)

    assert first == again
    assert first.ci_low < first.mean < first.ci_high
    assert first.mean == pytest.approx(float(np.mean(values)))
    assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)


def test_bootstrap_interval_covers_a_known_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    trials = 200
    covered = 0
    for trial in range(trials):
        interval = bootstrap_mean(rng.normal(1.0, 1.0, size=60).tolist(), seed=trial, resamples=500)
        covered += interval.ci_low <= 1.0 <= interval.ci_high
    assert 0.88 <= covered / trials <= 0.99


def test_bootstrap_refuses_no_values() -> None:
    with pytest.raises(ValueError, match="no values"):
        bootstrap_mean([], seed=0)


def test_summary_per_evaluator_and_cohort_has_n_mean_interval_and_fail_rate() -> None:
    records = [
        ScoreRecord("exact", "target", "a", 1.0, True),
        ScoreRecord("exact", "target", "b", 0.0, False),
        ScoreRecord("exact", "target", "c", 1.0, True),
        ScoreRecord("exact", "target", "d", None, None),
        ScoreRecord("exact", "ood", "e", 0.0, False),
    ]

    summary = summarise(records, seed=0)

    target = summary["exact"]["target"]
    assert target["rows"] == 4 and target["n"] == 3
    assert target["mean"] == pytest.approx(2 / 3)
    assert target["fail_rate"] == pytest.approx(1 / 3)
    assert target["ci_low"] is not None and target["ci_high"] is not None
    assert target["ci_low"] <= target["mean"] <= target["ci_high"]
    assert summary["exact"]["ood"]["fail_rate"] == 1.0


def test_summary_of_a_group_without_scores_has_no_statistics() -> None:
    summary = summarise([ScoreRecord("x", "ood", "a", None, None)], seed=0)

    assert summary["x"]["ood"] == {
        "rows": 1,
        "n": 0,
        "mean": None,
        "ci_low": None,
        "ci_high": None,
        "fail_rate": None,
    }


def test_paired_deltas_pair_by_row_id_not_by_order() -> None:
    row_ids, deltas = paired_deltas({"b": 1.0, "a": 0.5}, {"a": 0.25, "b": 2.0})

    assert row_ids == ["a", "b"]
    assert deltas.tolist() == [0.25, -1.0]


def test_paired_deltas_refuse_mismatched_rows() -> None:
    with pytest.raises(RowMismatchError, match=r"1 rows only in the candidate \['c'\]"):
        paired_deltas({"a": 1.0, "c": 1.0}, {"a": 1.0, "b": 0.0})


def test_paired_delta_is_the_mean_of_the_per_row_differences_and_at_least_students_interval() -> None:
    candidate = {"a": 0.9, "b": 0.4, "c": 0.7, "d": 0.8}
    base = {"d": 0.6, "c": 0.7, "b": 0.6, "a": 0.5}  # differences: a +0.4, b -0.2, c 0.0, d +0.2

    delta = paired_delta(candidate, base, seed=0, resamples=500)

    mean = (0.4 - 0.2 + 0.0 + 0.2) / 4
    sd = ((0.3**2 + 0.3**2 + 0.1**2 + 0.1**2) / 3) ** 0.5  # deviations from the mean 0.1
    half = 3.1824463052837078 * sd / 4**0.5  # Student's t: t(0.975, 3 df) x standard error
    assert delta.n == 4 and delta.mean == pytest.approx(mean)
    assert delta.ci_low <= mean - half + 1e-12 and delta.ci_high >= mean + half - 1e-12, (
        "never below Student's t"
    )


def test_paired_delta_of_one_loss_in_44_pairs_gives_tangos_printed_lower_limit() -> None:
    """Tango (1998), section 6.1: 44 pairs, the candidate never alone right, the baseline once; the
    paper prints -0.096 as the lower limit of the 90% interval."""
    base = {f"r{i}": 1.0 if i == 0 else 0.0 for i in range(44)}
    candidate = dict.fromkeys(base, 0.0)

    delta = paired_delta(candidate, base, seed=0, confidence=0.90)

    assert delta.n == 44 and delta.mean == pytest.approx(-1 / 44)
    assert round(delta.ci_low, 3) == -0.096


def test_paired_delta_interval_is_seeded_and_detects_a_shift() -> None:
    rng = np.random.default_rng(3)
    base = {f"r{i}": float(v) for i, v in enumerate(rng.normal(0.7, 0.1, size=80))}
    candidate = {row: value - 0.1 + float(rng.normal(0, 0.02)) for row, value in base.items()}

    delta = paired_delta(candidate, base, seed=5)

    assert delta == paired_delta(candidate, base, seed=5)  # the same seed, the same interval
    assert delta.n == 80
    assert delta.ci_low <= delta.mean <= delta.ci_high < 0
    assert delta.mean == pytest.approx(sum(candidate[row] - base[row] for row in base) / 80)


def test_delta_table_compares_zero_baseline_evaluators_against_zero() -> None:
    candidate = [ScoreRecord("ood_kl", "ood", "a", 0.2, False), ScoreRecord("acc", "ood", "a", 1.0, True)]
    base = [ScoreRecord("acc", "ood", "a", 0.0, False)]

    table = delta_table(candidate, base, seed=0, zero_baseline=["ood_kl"])

    assert table["ood_kl"]["ood"]["mean"] == pytest.approx(0.2)
    assert table["acc"]["ood"]["mean"] == pytest.approx(1.0)


def test_delta_table_pairs_rows_scored_on_both_sides_and_counts_the_rest() -> None:
    base = [ScoreRecord("faithfulness", "target", f"r{i}", 0.5, True) for i in range(10)]
    candidate = [ScoreRecord("faithfulness", "target", f"r{i}", 0.7, True) for i in range(9)]
    candidate.append(ScoreRecord("faithfulness", "target", "r9", None, None))  # not applicable to this answer

    table = delta_table(candidate, base, seed=0, resamples=200)

    entry = table["faithfulness"]["target"]
    assert entry["n"] == 9 and entry["unpaired"] == 1 and entry["mean"] == pytest.approx(0.2)


def test_paired_delta_of_binary_scores_is_tangos_interval_as_the_gate_uses() -> None:
    base = {f"r{i}": 1.0 if i < 90 else 0.0 for i in range(100)}
    candidate = {
        row: (0.0 if i < 6 else 1.0 if i >= 97 else value) for i, (row, value) in enumerate(base.items())
    }

    delta = paired_delta(candidate, base, seed=0)

    low, high = TangoTest(gains=3, losses=6, n=100).interval(0.025)
    assert (delta.ci_low, delta.ci_high) == pytest.approx((low, high))
    assert delta.mean == pytest.approx(-0.03)


def test_summary_interval_does_not_depend_on_the_order_of_the_rows() -> None:
    values = np.random.default_rng(2).gamma(2.0, 1.0, size=60).tolist()

    assert bootstrap_mean(values, seed=1) == bootstrap_mean(values[::-1], seed=1)
